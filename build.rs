//! Rebuilds the binary when a project template changes: `include_dir!` embeds `templates/`
//! (for `warden new`), and cargo cannot see the files a macro reads.

fn main() {
    println!("cargo:rerun-if-changed=templates");
}
