//! {{name}}: a Warden transformer (world `warden:plugin/transformer@0.2.0`). It upper-cases UTF-8
//! text and appends the configured `suffix`, if any. Empty or non-UTF-8 input is an error.

// `generate_all`: the host interface lives in another WIT package (wit/deps).
wit_bindgen::generate!({ path: "wit", world: "plugin", generate_all });

use warden::plugin::host::{Level, config, log};

struct Plugin;

impl Guest for Plugin {
    fn transform(input: Vec<u8>) -> Result<Vec<u8>, String> {
        if input.is_empty() {
            return Err("empty input".to_string());
        }
        let text = String::from_utf8(input).map_err(|_| "input is not UTF-8".to_string())?;
        log(Level::Info, &format!("upper-casing {} bytes", text.len()));

        let mut output = text.to_uppercase();
        if let Some(suffix) = config("suffix") {
            output.push_str(&suffix);
        }
        Ok(output.into_bytes())
    }
}

export!(Plugin);
