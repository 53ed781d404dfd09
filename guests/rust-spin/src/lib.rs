//! A hostile guest: burns CPU forever. Used by `scripts/load-isolation`.

wit_bindgen::generate!({ path: "../../wit/local-main-0.0.1", world: "runner" });

struct Spin;

impl Guest for Spin {
    fn run() -> Result<String, String> {
        let mut x: u64 = 1;
        loop {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

export!(Spin);
