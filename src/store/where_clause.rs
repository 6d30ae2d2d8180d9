//! A WHERE clause built condition by condition, with its parameters
//! numbered in order of appearance: the one builder behind both stores'
//! listings (SQLite numbers them `?1`, PostgreSQL `$1`). Conditions are
//! written with bare `?`s and never hold caller text, so nothing from a
//! request is ever spliced into SQL.

use super::query::{Cursor, Order};

/// A parameter of one engine, made from the two kinds a keyset cursor
/// holds.
pub(crate) trait SqlParam: Sized {
    /// `?1` for SQLite, `$1` for PostgreSQL.
    const MARK: char;
    fn int(v: i64) -> Self;
    fn text(v: String) -> Self;
}

pub(crate) struct Where<P> {
    sql: Vec<String>,
    pub params: Vec<P>,
}

impl<P> Default for Where<P> {
    fn default() -> Self {
        Where {
            sql: Vec::new(),
            params: Vec::new(),
        }
    }
}

impl<P: SqlParam> Where<P> {
    pub fn add(&mut self, sql: &str, params: impl IntoIterator<Item = P>) {
        let mut text = String::new();
        let mut rest = sql;
        let mut params = params.into_iter();
        while let Some(i) = rest.find('?') {
            text.push_str(&rest[..i]);
            let Some(p) = params.next() else { break };
            self.params.push(p);
            text.push(P::MARK);
            text.push_str(&self.params.len().to_string());
            rest = &rest[i + 1..];
        }
        text.push_str(rest);
        self.sql.push(text);
    }

    /// Rows after `after` in `order` of (`ms_col`, id).
    pub fn after(&mut self, ms_col: &str, after: Option<&Cursor>, order: Order) {
        if let Some(c) = after {
            let op = match order {
                Order::NewestFirst => "<",
                Order::OldestFirst => ">",
            };
            self.add(
                &format!("({ms_col} {op} ? OR ({ms_col} = ? AND id {op} ?))"),
                [P::int(c.ms), P::int(c.ms), P::text(c.id.clone())],
            );
        }
    }

    pub fn clause(&self) -> String {
        if self.sql.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.sql.join(" AND "))
        }
    }
}

impl SqlParam for rusqlite::types::Value {
    const MARK: char = '?';
    fn int(v: i64) -> Self {
        rusqlite::types::Value::Integer(v)
    }
    fn text(v: String) -> Self {
        rusqlite::types::Value::Text(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::types::Value;

    #[test]
    fn parameters_are_numbered_across_conditions() {
        let mut w = Where::<Value>::default();
        w.add("a = ?", [Value::Integer(1)]);
        w.add("(b = ? OR c = ?)", [Value::Integer(2), Value::Integer(3)]);
        assert_eq!(w.clause(), "WHERE a = ?1 AND (b = ?2 OR c = ?3)");
        assert_eq!(w.params.len(), 3);
    }
}
