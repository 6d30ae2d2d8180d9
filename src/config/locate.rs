//! Finds the line of a key path in a TOML text, for errors found after
//! deserialisation (an agent naming an unknown routing profile, say).

use toml_edit::{Document, Item};

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// Parses `agents[1].secret` into segments.
pub fn parse_path(path: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            let (k, idx) = rest.split_at(i);
            if !k.is_empty() {
                segs.push(Seg::Key(k.to_string()));
            }
            rest = idx;
            for piece in rest.split('[').filter(|p| !p.is_empty()) {
                if let Ok(n) = piece.trim_end_matches(']').parse() {
                    segs.push(Seg::Index(n));
                }
            }
        } else if !rest.is_empty() {
            segs.push(Seg::Key(rest.to_string()));
        }
    }
    segs
}

/// Byte offset → (line, column), both 1-based.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or_default();
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

enum Cursor<'a> {
    Item(&'a Item),
    Table(&'a toml_edit::Table),
    Value(&'a toml_edit::Value),
}

impl<'a> Cursor<'a> {
    fn table_like(&self) -> Option<&'a dyn toml_edit::TableLike> {
        match self {
            Cursor::Item(i) => i.as_table_like(),
            Cursor::Table(t) => Some(*t),
            Cursor::Value(v) => v.as_inline_table().map(|t| t as &dyn toml_edit::TableLike),
        }
    }
}

/// The (line, column) of the deepest part of `path` present in `text`.
pub fn locate(text: &str, path: &str) -> Option<(usize, usize)> {
    let doc = Document::parse(text.to_string()).ok()?;
    let mut best: Option<usize> = None;
    let mut cur = Cursor::Item(doc.as_item());
    for seg in parse_path(path) {
        let next = match seg {
            Seg::Key(k) => cur
                .table_like()
                .and_then(|t| t.get_key_value(&k))
                .map(|(key, item)| {
                    best = key.span().map(|s| s.start).or(best);
                    Cursor::Item(item)
                }),
            Seg::Index(i) => match cur {
                Cursor::Item(item) => {
                    if let Some(aot) = item.as_array_of_tables() {
                        aot.get(i).map(|t| {
                            best = t.span().map(|s| s.start).or(best);
                            Cursor::Table(t)
                        })
                    } else {
                        item.as_array().and_then(|a| a.get(i)).map(|v| {
                            best = v.span().map(|s| s.start).or(best);
                            Cursor::Value(v)
                        })
                    }
                }
                _ => None,
            },
        };
        match next {
            Some(n) => cur = n,
            None => break,
        }
    }
    best.map(|b| line_col(text, b))
}

/// The dotted key path whose key or value covers byte `offset`, for
/// naming the key in a deserialisation error that only carries a span.
pub fn key_at(text: &str, offset: usize) -> Option<String> {
    let doc = Document::parse(text.to_string()).ok()?;
    let mut path = String::new();
    walk_table(doc.as_table(), offset, &mut path).then_some(path)
}

fn covers(span: Option<std::ops::Range<usize>>, offset: usize) -> bool {
    span.is_some_and(|s| s.start <= offset && offset < s.end.max(s.start + 1))
}

fn walk_table(t: &dyn toml_edit::TableLike, offset: usize, path: &mut String) -> bool {
    for (k, item) in t.iter() {
        let key_span = t.key(k).and_then(|key| key.span());
        let push = |path: &mut String| {
            if !path.is_empty() {
                path.push('.');
            }
            path.push_str(k);
        };
        let len = path.len();
        if covers(key_span, offset) {
            push(path);
            return true;
        }
        push(path);
        if walk_item(item, offset, path) {
            return true;
        }
        path.truncate(len);
    }
    false
}

fn walk_item(item: &Item, offset: usize, path: &mut String) -> bool {
    match item {
        // A table's own span is its header: an error about the table as a
        // whole ("missing field") points there.
        Item::Table(t) => walk_table(t, offset, path) || covers(t.span(), offset),
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                if walk_table(t, offset, path) || covers(t.span(), offset) {
                    return true;
                }
                path.truncate(len);
            }
            false
        }
        Item::Value(v) => {
            if let Some(t) = v.as_inline_table()
                && walk_table(t, offset, path)
            {
                return true;
            }
            if let Some(a) = v.as_array() {
                for (i, e) in a.iter().enumerate() {
                    if covers(e.span(), offset) {
                        path.push_str(&format!("[{i}]"));
                        return true;
                    }
                }
            }
            covers(v.span(), offset)
        }
        Item::None => false,
    }
}

/// The toml crate reports a value that failed inside an array at the
/// whole array. Our value errors begin with the value quoted (`"banana" is
/// not …`): find that element, for its own line and `[index]`.
pub fn element_named(text: &str, span_start: usize, message: &str) -> Option<usize> {
    let quoted = message.strip_prefix('"')?;
    let value = quoted.get(..quoted.find('"')?)?;
    let doc = Document::parse(text.to_string()).ok()?;
    find_element(doc.as_item(), span_start, value)
}

fn find_element(item: &Item, span_start: usize, value: &str) -> Option<usize> {
    match item {
        Item::Table(t) => t
            .iter()
            .find_map(|(_, i)| find_element(i, span_start, value)),
        Item::ArrayOfTables(a) => a.iter().find_map(|t| {
            t.iter()
                .find_map(|(_, i)| find_element(i, span_start, value))
        }),
        Item::Value(v) => {
            if let Some(a) = v.as_array()
                && v.span().is_some_and(|s| s.start == span_start)
            {
                return a
                    .iter()
                    .find(|e| e.as_str() == Some(value))
                    .and_then(|e| e.span().map(|s| s.start));
            }
            let t = v.as_inline_table()?;
            t.iter()
                .find_map(|(_, v)| find_element(&Item::Value(v.clone()), span_start, value))
        }
        Item::None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_in_arrays_of_tables() {
        let text = "[sip]\nrealm = \"x\"\n\n[[agents]]\nuser = \"a\"\n\n[[agents]]\nuser = \"b\"\nsecret = \"\"\n";
        assert_eq!(locate(text, "sip.realm"), Some((2, 1)));
        assert_eq!(locate(text, "agents[1].secret"), Some((9, 1)));
        assert_eq!(locate(text, "agents[1].missing"), Some((7, 1)));
        assert_eq!(locate(text, "nothing"), None);
    }

    #[test]
    fn an_array_error_is_narrowed_to_the_element_it_names() {
        let text = "[security]\ntrusted = [\n  \"10.0.0.0/8\",\n  \"banana\",\n]\n";
        let array = text.find('[').map(|_| text.find("[\n").unwrap()).unwrap();
        let at = element_named(text, array, "\"banana\" is not an address").unwrap();
        assert_eq!(line_col(text, at), (4, 3));
        assert_eq!(key_at(text, at).as_deref(), Some("security.trusted[1]"));
        assert_eq!(element_named(text, array, "no quote"), None);
    }

    #[test]
    fn key_at_offsets() {
        let text = "[sip]\nt1_ms = \"soon\"\n[[agents]]\nuser = \"a\"\n";
        let off = text.find("\"soon").unwrap();
        assert_eq!(key_at(text, off).as_deref(), Some("sip.t1_ms"));
        let off = text.find("\"a\"").unwrap();
        assert_eq!(key_at(text, off).as_deref(), Some("agents[0].user"));
    }
}
