//! A processor (world `warden:plugin/processor@0.2.0`): splits a record at the configured
//! `separator` (default `,`) into zero or more records, dropping empty pieces. A record without
//! the separator passes through unchanged; an empty record yields none; `fail` is an error.

wit_bindgen::generate!({ path: "../../wit/warden-plugin-0.2.0", world: "processor" });

use warden::plugin::host::config;

struct Split;

impl Guest for Split {
    fn process(input: Vec<u8>) -> Result<Vec<Vec<u8>>, String> {
        if input == b"fail" {
            return Err("asked to fail".to_string());
        }
        let separator = config("separator").unwrap_or_else(|| ",".to_string());
        let Some(&separator) = separator.as_bytes().first() else {
            return Ok(vec![input]);
        };
        Ok(input
            .split(|&b| b == separator)
            .filter(|piece| !piece.is_empty())
            .map(<[u8]>::to_vec)
            .collect())
    }
}

export!(Split);
