//! The whole configuration: the main file plus the flow files it points
//! to, checked against each other (numbers and queues name flows of the
//! right type).

use crate::config::Config;
use crate::config::load::load_lenient;
use crate::config::{ConfigError, ConfigErrors, Overrides};
use crate::flow::FlowSet;
use crate::flow::load::{References, load_dir};
use crate::flow::model::FlowType;
use std::path::Path;

pub struct Loaded {
    pub config: Config,
    pub flows: FlowSet,
}

pub fn load_all(path: &Path, overrides: &Overrides) -> Result<Loaded, ConfigErrors> {
    // Problems in the main file do not stop the flows being checked: an
    // operator gets every problem in one run.
    let (config, mut errors) = load_lenient(path, overrides)?;
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let refs = References {
        prompt_dir: &config.prompts.dir,
        queues: config.queues.iter().map(|q| q.name.clone()).collect(),
    };
    let needs_flows = !config.numbers.is_empty()
        || config.queues.iter().any(|q| {
            q.customer_queue_flow.is_some()
                || q.agent_whisper_flow.is_some()
                || q.outbound_whisper_flow.is_some()
        });
    let flows = match (&config.flows.dir, needs_flows) {
        (Some(dir), _) => match load_dir(dir, &refs) {
            Ok(f) => f,
            Err(mut e) => {
                errors.append(&mut e);
                FlowSet::default()
            }
        },
        (None, true) => {
            errors.push(ConfigError {
                file: path.to_path_buf(),
                line: 0,
                column: 0,
                key: "flows.dir".into(),
                message: "numbers or queues refer to flows, but no flow directory is configured"
                    .into(),
            });
            FlowSet::default()
        }
        (None, false) => FlowSet::default(),
    };
    let flows_dir = config
        .flows
        .dir
        .as_ref()
        .map(|d| d.display().to_string())
        .unwrap_or_default();
    let mut check = |key: String, name: &str, want: FlowType| {
        let problem = match flows.get(name) {
            None if errors.is_empty() => Some(format!("no flow named {name:?} in {flows_dir}")),
            None => None,
            Some(f) if f.flow_type != want => Some(format!(
                "flow {name:?} is a {:?} flow, not {want:?}",
                f.flow_type
            )),
            Some(_) => None,
        };
        if let Some(message) = problem {
            let (line, column) = crate::config::locate::locate(&text, &key).unwrap_or((0, 0));
            errors.push(ConfigError {
                file: path.to_path_buf(),
                line,
                column,
                key,
                message,
            });
        }
    };
    for (i, n) in config.numbers.iter().enumerate() {
        check(format!("numbers[{i}].flow"), &n.flow, FlowType::Inbound);
    }
    for (i, q) in config.queues.iter().enumerate() {
        if let Some(f) = &q.customer_queue_flow {
            check(
                format!("queues[{i}].customer_queue_flow"),
                f,
                FlowType::CustomerQueue,
            );
        }
        if let Some(f) = &q.agent_whisper_flow {
            check(
                format!("queues[{i}].agent_whisper_flow"),
                f,
                FlowType::AgentWhisper,
            );
        }
        if let Some(f) = &q.outbound_whisper_flow {
            check(
                format!("queues[{i}].outbound_whisper_flow"),
                f,
                FlowType::OutboundWhisper,
            );
        }
    }
    for flow in flows.iter() {
        for (name, block) in &flow.blocks {
            if let crate::flow::model::Block::TransferToFlow(t) = block {
                let target = &t.flow;
                let problem = match flows.get(target) {
                    None => Some(format!("block {name:?}: no flow named {target:?}")),
                    Some(t)
                        if t.flow_type != flow.flow_type && t.flow_type != FlowType::Inbound =>
                    {
                        Some(format!(
                            "block {name:?}: flow {target:?} is a {:?} flow",
                            t.flow_type
                        ))
                    }
                    Some(_) => None,
                };
                if let Some(message) = problem {
                    let ftext = std::fs::read_to_string(&flow.file).unwrap_or_default();
                    let key = format!("blocks.{name}.flow");
                    let (line, column) =
                        crate::config::locate::locate(&ftext, &key).unwrap_or((0, 0));
                    errors.push(ConfigError {
                        file: flow.file.clone(),
                        line,
                        column,
                        key,
                        message,
                    });
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(Loaded { config, flows })
    } else {
        Err(ConfigErrors(errors))
    }
}
