//! A hostile guest: asks for 1 GiB at once (world `warden:plugin/transformer`). Used by
//! `tests/all/hostile_memory.rs`.
//!
//! Input `try` asks with `Vec::try_reserve_exact` and returns the refusal as an error, as a
//! careful plugin would; any other input asks with `vec!`, which aborts the guest when the
//! host refuses to grow its memory.

wit_bindgen::generate!({ path: "../../wit/warden-plugin-0.1.0", world: "transformer" });

const ONE_GIB: usize = 1 << 30;

struct Alloc;

impl Guest for Alloc {
    fn transform(input: Vec<u8>) -> Result<Vec<u8>, String> {
        if input == b"try" {
            let mut hoard: Vec<u8> = Vec::new();
            hoard
                .try_reserve_exact(ONE_GIB)
                .map_err(|e| format!("1 GiB refused: {e}"))?;
            hoard.resize(ONE_GIB, 1);
            return Ok(format!("got {} bytes", hoard.len()).into_bytes());
        }
        let hoard = vec![1u8; ONE_GIB];
        Ok(format!("got {} bytes", std::hint::black_box(hoard).len()).into_bytes())
    }
}

export!(Alloc);
