//! {{name}}: a Warden processor (world `warden:plugin/processor@0.2.0`). It splits one UTF-8
//! record into one record per word (words are separated by whitespace); a record without words
//! yields none. Non-UTF-8 input is an error.

// `generate_all`: the host interface lives in another WIT package (wit/deps).
wit_bindgen::generate!({ path: "wit", world: "plugin", generate_all });

use warden::plugin::host::{Level, log};

struct Plugin;

impl Guest for Plugin {
    fn process(input: Vec<u8>) -> Result<Vec<Vec<u8>>, String> {
        let text = std::str::from_utf8(&input).map_err(|_| "input is not UTF-8".to_string())?;
        let words: Vec<Vec<u8>> = text
            .split_whitespace()
            .map(|word| word.as_bytes().to_vec())
            .collect();
        log(Level::Debug, &format!("{} word(s)", words.len()));
        Ok(words)
    }
}

export!(Plugin);
