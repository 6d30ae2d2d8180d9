//! Flow files (TOML text) through the flow loader: deserialising, the
//! semantic checks and the error locator that names file, line and key.

#![no_main]

use callgate::flow::load::{References, load_str, unreachable_blocks};
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let prompts = Path::new(env!("CARGO_MANIFEST_DIR")).join("../prompts");
    let refs = References {
        prompt_dir: &prompts,
        queues: HashSet::from(["support".to_string(), "callbacks".to_string()]),
    };
    match load_str(Path::new("fuzz.toml"), text, &refs) {
        Ok(flow) => {
            let _ = unreachable_blocks(&flow);
            for block in flow.blocks.values() {
                let _ = block.prompts();
                let _ = block.branches();
            }
        }
        Err(errors) => {
            for e in errors {
                let _ = e.to_string();
                // A located error points inside the text, or just past
                // its end (an unterminated string at end of file).
                if e.line > 0 {
                    assert!(
                        e.line <= text.lines().count() + 1,
                        "line {} of {}: {e}",
                        e.line,
                        text.lines().count()
                    );
                }
            }
        }
    }
});
