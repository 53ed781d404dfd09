//! The hello guest built against `local:main@0.1.0`: the same shapes as @0.0.1, a newer package.

wit_bindgen::generate!({ path: "../../wit/local-main-0.1.0", world: "runner" });

struct Hello;

impl Guest for Hello {
    fn run() -> Result<String, String> {
        local::main::host::log("hello from local:main@0.1.0");
        Ok("Hello from 0.1.0!".to_string())
    }
}

export!(Hello);
