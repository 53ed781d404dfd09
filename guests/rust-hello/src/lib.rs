//! The hello guest of the seed `runner` world: logs a line, prints to stdout, returns text.

wit_bindgen::generate!({ path: "../../wit/local-main-0.0.1", world: "runner" });

use local::main::host::log;

struct Hello;

impl Guest for Hello {
    fn run() -> Result<String, String> {
        log("hello from the Rust guest");
        println!("stdout works too");
        Ok("Hello, World!".to_string())
    }
}

export!(Hello);
