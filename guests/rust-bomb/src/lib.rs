//! A hostile guest: allocates and touches memory until the limit stops it. Used by
//! `scripts/load-isolation`.

wit_bindgen::generate!({ path: "../../wit/local-main-0.0.1", world: "runner" });

struct Bomb;

impl Guest for Bomb {
    fn run() -> Result<String, String> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(vec![0xAB; 1 << 20]);
            std::hint::black_box(&hoard);
        }
    }
}

export!(Bomb);
