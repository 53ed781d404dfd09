//! Probes the file, environment and secret grants (world `warden:plugin/transformer@0.2.0`): the
//! input is `read PATH`, `write PATH`, `env KEY`, `config KEY` or `leak KEY` (logs the value and
//! prints it to stdout); the output is what the guest could read, and every refusal is the
//! guest's error, so tests see exactly what the host allowed.

wit_bindgen::generate!({ path: "../../wit/warden-plugin-0.2.0", world: "transformer" });

struct Files;

impl Guest for Files {
    fn transform(input: Vec<u8>) -> Result<Vec<u8>, String> {
        let text = String::from_utf8(input).map_err(|e| e.to_string())?;
        let (verb, arg) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
        match verb {
            "read" => std::fs::read(arg).map_err(|e| format!("read {arg}: {e}")),
            "write" => std::fs::write(arg, b"written by a guest")
                .map(|()| b"written".to_vec())
                .map_err(|e| format!("write {arg}: {e}")),
            "env" => std::env::var(arg)
                .map(String::into_bytes)
                .map_err(|e| format!("env {arg}: {e}")),
            "config" => warden::plugin::host::config(arg)
                .map(String::into_bytes)
                .ok_or_else(|| format!("config {arg}: none")),
            "leak" => {
                let value = warden::plugin::host::config(arg).unwrap_or_default();
                warden::plugin::host::log(
                    warden::plugin::host::Level::Info,
                    &format!("the value is {value}"),
                );
                println!("stdout has {value}");
                Ok(b"leaked?".to_vec())
            }
            _ => Err(format!("unknown verb `{verb}`: read PATH, write PATH or env KEY")),
        }
    }
}

export!(Files);
