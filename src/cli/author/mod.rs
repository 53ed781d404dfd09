//! The plugin-author kit: `warden new` writes a project from templates built into the binary,
//! `warden build` builds it with its language's toolchain, and `warden test` runs its test
//! cases through the same service and defaults as a server.

pub(crate) mod build;
pub(crate) mod new;
pub(crate) mod test;

/// A language a plugin can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Lang {
    /// Rust, built for wasm32-wasip2 with wit-bindgen.
    Rust,
    /// JavaScript, built with componentize-js.
    Js,
    /// Python, built with componentize-py.
    Python,
    /// C, built with clang (wasi-libc) and wit-bindgen.
    C,
}

impl Lang {
    /// The name used on the command line and in template directories.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Js => "js",
            Lang::Python => "python",
            Lang::C => "c",
        }
    }
}

/// A world a plugin can implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum World {
    /// `warden:plugin/transformer@0.2.0`: one input, one output.
    Transformer,
    /// `warden:plugin/processor@0.2.0`: one record in, zero or more out.
    Processor,
    /// `warden:plugin/aggregator@0.2.0`: records folded into host-kept state, then emitted.
    Aggregator,
    /// `local:main/runner@0.1.0`: no input, returns text.
    Runner,
}

impl World {
    /// The world's name in WIT and in template directories.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            World::Transformer => "transformer",
            World::Processor => "processor",
            World::Aggregator => "aggregator",
            World::Runner => "runner",
        }
    }
}
