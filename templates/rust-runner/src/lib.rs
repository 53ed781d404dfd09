//! {{name}}: a Warden runner (world `local:main/runner@0.1.0`). It takes no input and returns a
//! greeting.

// `generate_all`: the host interface lives in another WIT package (wit/deps).
wit_bindgen::generate!({ path: "wit", world: "plugin", generate_all });

use local::main::host::log;

struct Plugin;

impl Guest for Plugin {
    fn run() -> Result<String, String> {
        log("{{name}} is running");
        Ok("Hello from {{name}}!".to_string())
    }
}

export!(Plugin);
