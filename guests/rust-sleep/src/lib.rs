//! A guest that blocks in a WASI clock sleep for 20 s: the deadline must still end it.

wit_bindgen::generate!({ path: "../../wit/local-main-0.0.1", world: "runner" });

struct Sleeper;

impl Guest for Sleeper {
    fn run() -> Result<String, String> {
        local::main::host::log("going to sleep for 20 s");
        std::thread::sleep(std::time::Duration::from_secs(20));
        Ok("woke up".to_string())
    }
}

export!(Sleeper);
