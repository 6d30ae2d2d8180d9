//! Loading flow files and validating them: every problem is reported with
//! the file, the line and the block it is in.

use super::blocks::Problems;
pub use super::blocks::References;
use super::model::{Block, FlowFile, FlowType};
use super::speech;
use crate::config::ConfigError;
use crate::config::locate::{key_at, line_col, locate};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug, Clone)]
pub struct Flow {
    pub name: String,
    pub file: PathBuf,
    pub flow_type: FlowType,
    pub start: String,
    pub blocks: BTreeMap<String, Block>,
}

/// Every flow, by name.
#[derive(Debug, Clone, Default)]
pub struct FlowSet {
    flows: HashMap<String, Arc<Flow>>,
}

impl FlowSet {
    pub fn get(&self, name: &str) -> Option<Arc<Flow>> {
        self.flows.get(name).cloned()
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.flows.keys().map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Flow>> {
        self.flows.values()
    }

    pub fn len(&self) -> usize {
        self.flows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.flows.is_empty()
    }

    /// Every prompt file name any flow plays.
    pub fn prompt_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .flows
            .values()
            .flat_map(|f| f.blocks.values().flat_map(|b| b.prompts()))
            .flat_map(|item| match parse_item(item) {
                Ok(PromptRef::File(n)) => vec![n.to_string()],
                Ok(PromptRef::Digits(_)) => speech::digit_prompt_names(),
                Ok(PromptRef::Number(_)) => speech::number_prompt_names(),
                Err(_) => vec![],
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

/// A parsed prompt item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptRef<'a> {
    File(&'a str),
    Digits(&'a str),
    Number(&'a str),
}

pub fn parse_item(item: &str) -> Result<PromptRef<'_>, String> {
    let plain = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    if let Some(a) = item.strip_prefix("digits:") {
        return if plain(a) {
            Ok(PromptRef::Digits(a))
        } else {
            Err(format!("bad attribute name in {item:?}"))
        };
    }
    if let Some(a) = item.strip_prefix("number:") {
        return if plain(a) {
            Ok(PromptRef::Number(a))
        } else {
            Err(format!("bad variable name in {item:?}"))
        };
    }
    if plain(item) {
        Ok(PromptRef::File(item))
    } else {
        Err(format!(
            "{item:?} is not a prompt name, digits:<attribute> or number:<variable>"
        ))
    }
}

fn err(file: &Path, text: &str, key: &str, message: String) -> ConfigError {
    let (line, column) = locate(text, key).unwrap_or((0, 0));
    ConfigError {
        file: file.to_path_buf(),
        line,
        column,
        key: key.to_string(),
        message,
    }
}

/// Loads every `*.toml` in `dir`.
pub fn load_dir(dir: &Path, refs: &References<'_>) -> Result<FlowSet, Vec<ConfigError>> {
    let mut errors = Vec::new();
    let mut set = FlowSet::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            return Err(vec![ConfigError {
                file: dir.to_path_buf(),
                line: 0,
                column: 0,
                key: String::new(),
                message: format!("cannot read the flow directory: {e}"),
            }]);
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    for file in files {
        match load_file(&file, refs) {
            Ok(flow) => {
                if let Some(prev) = set.flows.get(&flow.name) {
                    errors.push(ConfigError {
                        file: file.clone(),
                        line: 1,
                        column: 1,
                        key: "name".into(),
                        message: format!(
                            "flow {:?} is also defined in {}",
                            flow.name,
                            prev.file.display()
                        ),
                    });
                } else {
                    set.flows.insert(flow.name.clone(), Arc::new(flow));
                }
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if errors.is_empty() {
        Ok(set)
    } else {
        Err(errors)
    }
}

pub fn load_file(file: &Path, refs: &References<'_>) -> Result<Flow, Vec<ConfigError>> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        vec![ConfigError {
            file: file.to_path_buf(),
            line: 0,
            column: 0,
            key: String::new(),
            message: format!("cannot read: {e}"),
        }]
    })?;
    load_str(file, &text, refs)
}

/// Loads a flow from its text; `file` names it (the flow's default name is
/// the file stem) and locates errors. Public for the fuzz targets, which
/// feed it arbitrary text without touching the file system.
pub fn load_str(file: &Path, text: &str, refs: &References<'_>) -> Result<Flow, Vec<ConfigError>> {
    let parsed: FlowFile = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
        let key = e
            .span()
            .and_then(|s| key_at(text, s.start))
            .unwrap_or_default();
        vec![ConfigError {
            file: file.to_path_buf(),
            line,
            column,
            key,
            message: e
                .message()
                .trim()
                .replace("unknown variant", "unknown block type"),
        }]
    })?;
    let name = parsed.name.clone().unwrap_or_else(|| {
        file.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let flow = Flow {
        name,
        file: file.to_path_buf(),
        flow_type: parsed.flow_type,
        start: parsed.start,
        blocks: parsed.blocks,
    };
    let problems = validate(&flow, refs);
    if problems.is_empty() {
        Ok(flow)
    } else {
        Err(problems
            .into_iter()
            .map(|(key, message)| err(file, text, &key, message))
            .collect())
    }
}

/// Semantic checks: (key path, message).
pub(crate) fn validate(flow: &Flow, refs: &References<'_>) -> Vec<(String, String)> {
    let mut p = Vec::new();
    if !flow.blocks.contains_key(&flow.start) {
        p.push((
            "start".into(),
            format!("start block {:?} does not exist", flow.start),
        ));
    }
    let whisper = matches!(
        flow.flow_type,
        FlowType::AgentWhisper | FlowType::OutboundWhisper
    );
    for (name, block) in &flow.blocks {
        let at = |field: &str| format!("blocks.{name}.{field}");
        for (key, target) in block.branches() {
            if !flow.blocks.contains_key(target) {
                p.push((
                    at(&key),
                    format!(
                        "block {name:?}: branch {key} goes to {target:?}, which does not exist"
                    ),
                ));
            }
        }
        for (i, item) in block.prompts().into_iter().enumerate() {
            match parse_item(item) {
                Err(e) => p.push((
                    format!("blocks.{name}.prompts[{i}]"),
                    format!("block {name:?}: {e}"),
                )),
                Ok(PromptRef::File(f)) => {
                    let path = refs.prompt_dir.join(format!("{f}.wav"));
                    if !path.is_file() {
                        p.push((
                            format!("blocks.{name}.prompts[{i}]"),
                            format!("block {name:?}: prompt file {} not found", path.display()),
                        ));
                    }
                }
                Ok(_) => {}
            }
        }
        block.check(refs, whisper, &mut Problems { name, list: &mut p });
    }
    if p.is_empty()
        && let Some((cycle, first)) = inputless_cycle(flow)
    {
        p.push((
            format!("blocks.{first}"),
            format!(
                "blocks {} form a loop that never waits for input",
                cycle.join(" → ")
            ),
        ));
    }
    p
}

/// A cycle of blocks none of which takes input or counts iterations: a
/// flow that would spin forever. Returns the cycle's names and its first.
fn inputless_cycle(flow: &Flow) -> Option<(Vec<String>, String)> {
    // Only edges between blocks that neither wait for input nor bound the
    // loop can form a runaway cycle.
    let safe = |b: &Block| b.takes_input() || matches!(b, Block::Loop(_));
    let graph: BTreeMap<&str, Vec<&str>> = flow
        .blocks
        .iter()
        .filter(|(_, b)| !safe(b))
        .map(|(n, b)| {
            let next: Vec<&str> = b
                .branches()
                .into_iter()
                .map(|(_, t)| t)
                .filter(|t| flow.blocks.get(*t).is_some_and(|tb| !safe(tb)))
                .collect();
            (n.as_str(), next)
        })
        .collect();
    // Depth-first search with colours, recording the path.
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour: HashMap<&str, Colour> = graph.keys().map(|k| (*k, Colour::White)).collect();
    fn dfs<'a>(
        n: &'a str,
        graph: &BTreeMap<&'a str, Vec<&'a str>>,
        colour: &mut HashMap<&'a str, Colour>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        colour.insert(n, Colour::Grey);
        path.push(n);
        for &m in graph.get(n).map(Vec::as_slice).unwrap_or_default() {
            match colour.get(m).copied() {
                Some(Colour::Grey) => {
                    let start = path.iter().position(|x| *x == m).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        path.iter().skip(start).map(|s| s.to_string()).collect();
                    cycle.push(m.to_string());
                    return Some(cycle);
                }
                Some(Colour::White) => {
                    if let Some(c) = dfs(m, graph, colour, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        colour.insert(n, Colour::Black);
        None
    }
    let keys: Vec<&str> = graph.keys().copied().collect();
    for k in keys {
        if colour.get(k) == Some(&Colour::White) {
            let mut path = Vec::new();
            if let Some(c) = dfs(k, &graph, &mut colour, &mut path) {
                let first = c.first().cloned().unwrap_or_default();
                return Some((c, first));
            }
        }
    }
    None
}

/// Blocks no path from `start` reaches (reported as warnings).
pub fn unreachable_blocks(flow: &Flow) -> Vec<String> {
    let mut seen = HashSet::new();
    let mut stack = vec![flow.start.as_str()];
    while let Some(n) = stack.pop() {
        if !seen.insert(n) {
            continue;
        }
        if let Some(b) = flow.blocks.get(n) {
            stack.extend(b.branches().into_iter().map(|(_, t)| t));
        }
    }
    flow.blocks
        .keys()
        .filter(|k| !seen.contains(k.as_str()))
        .cloned()
        .collect()
}
