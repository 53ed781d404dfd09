//! A pipeline node (world `warden:plugin/transformer@0.2.0`) that upper-cases its record and
//! appends the configured `suffix`, and misbehaves when the record asks it to: `trap` panics,
//! `loop` never returns, `bomb` allocates until the memory limit stops it, `fail` returns an
//! error. Tests put it in the middle of pipelines to see each `on_error` policy hold.

wit_bindgen::generate!({ path: "../../wit/warden-plugin-0.2.0", world: "transformer" });

use warden::plugin::host::{Level, config, log};

struct Node;

impl Guest for Node {
    fn transform(input: Vec<u8>) -> Result<Vec<u8>, String> {
        match input.as_slice() {
            b"trap" => panic!("asked to trap"),
            b"loop" => loop {
                std::hint::black_box(&input);
            },
            b"bomb" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![0xAB; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            b"fail" => Err("asked to fail".to_string()),
            _ => {
                if input.starts_with(b"log:") {
                    log(Level::Info, &String::from_utf8_lossy(&input[4..]));
                }
                let mut out = input.to_ascii_uppercase();
                if let Some(suffix) = config("suffix") {
                    out.extend_from_slice(suffix.as_bytes());
                }
                Ok(out)
            }
        }
    }
}

export!(Node);
