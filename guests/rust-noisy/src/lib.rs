//! A hostile guest: writes 10 MiB to stdout and 10 MiB to stderr, then returns. The host must
//! keep only its caps and mark the cut.

wit_bindgen::generate!({ path: "../../wit/local-main-0.0.1", world: "runner" });

use std::io::Write;

struct Noisy;

impl Guest for Noisy {
    fn run() -> Result<String, String> {
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..160 {
            std::io::stdout().write_all(&chunk).map_err(|e| e.to_string())?;
            std::io::stderr().write_all(&chunk).map_err(|e| e.to_string())?;
        }
        Ok("wrote 10 MiB to each".to_string())
    }
}

export!(Noisy);
