//! Turns inputs of the `generated` target into the components they stand for, so that the
//! ordinary tests (which replay `fuzz/corpus/component` and `fuzz/artifacts/component`) run
//! them without building wasm-smith.
//!   cargo run --manifest-path fuzz/Cargo.toml --bin materialize -- OUT_DIR INPUT...
//! Each component is written as `OUT_DIR/generated-<input file name>.wasm`; inputs that make no
//! component are skipped. Prints how many were written.

fn main() {
    let mut args = std::env::args_os().skip(1);
    let out = std::path::PathBuf::from(args.next().expect("usage: materialize OUT_DIR INPUT..."));
    std::fs::create_dir_all(&out).expect("output directory");
    let mut written = 0;
    for input in args {
        let path = std::path::PathBuf::from(input);
        let data = std::fs::read(&path).expect("input readable");
        if let Some(component) = warden_fuzz::generate(&data) {
            let name = path.file_name().expect("a file").to_string_lossy();
            std::fs::write(out.join(format!("generated-{name}.wasm")), component)
                .expect("component written");
            written += 1;
        }
    }
    println!("{written} components written to {}", out.display());
}
