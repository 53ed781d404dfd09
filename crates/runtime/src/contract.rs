//! The WIT contract this runtime speaks: every package a guest may target, as WIT text and as a
//! binary-encoded WIT package (what `wasm-tools component wit --wasm` makes), for plugin
//! authors and for package tools such as `wkg`.
//!
//! The texts are the files of the repository's `wit/` directory, compiled into the binary, so
//! what is served is exactly what the linker was written against.

/// One WIT package a guest may import from and export for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WitPackage {
    /// `namespace` of `namespace:name@version`, e.g. `warden`.
    pub namespace: &'static str,
    /// `name` of `namespace:name@version`, e.g. `plugin`.
    pub name: &'static str,
    /// Semantic version, e.g. `0.2.0`.
    pub version: &'static str,
    /// The package's WIT text.
    pub text: &'static str,
    /// Worlds a guest can implement, in the order the text defines them.
    pub worlds: &'static [&'static str],
}

/// Every package served, oldest first within a name. `warden:plugin@0.2.0` is the one to write
/// new plugins against.
pub const PACKAGES: &[WitPackage] = &[
    WitPackage {
        namespace: "local",
        name: "main",
        version: "0.0.1",
        text: include_str!("../../../wit/local-main-0.0.1/world.wit"),
        worlds: &["runner"],
    },
    WitPackage {
        namespace: "local",
        name: "main",
        version: "0.1.0",
        text: include_str!("../../../wit/local-main-0.1.0/world.wit"),
        worlds: &["runner"],
    },
    WitPackage {
        namespace: "warden",
        name: "plugin",
        version: "0.1.0",
        text: include_str!("../../../wit/warden-plugin-0.1.0/world.wit"),
        worlds: &["transformer"],
    },
    WitPackage {
        namespace: "warden",
        name: "plugin",
        version: "0.2.0",
        text: include_str!("../../../wit/warden-plugin-0.2.0/world.wit"),
        worlds: &["transformer", "processor", "aggregator"],
    },
];

/// A package text that does not parse or encode (a build defect, never guest input).
#[derive(Debug, thiserror::Error)]
#[error("WIT package {package}: {message}")]
pub struct ContractError {
    package: String,
    message: String,
}

impl WitPackage {
    /// `namespace:name@version`, e.g. `warden:plugin@0.2.0`.
    pub fn id(&self) -> String {
        format!("{}:{}@{}", self.namespace, self.name, self.version)
    }

    /// `namespace:name`, e.g. `warden:plugin`.
    pub fn package_name(&self) -> String {
        format!("{}:{}", self.namespace, self.name)
    }

    /// The directory name `wkg` gives this package under `wit/deps/`, e.g.
    /// `warden-plugin-0.2.0`.
    pub fn deps_dir(&self) -> String {
        format!("{}-{}-{}", self.namespace, self.name, self.version)
    }

    /// The binary-encoded WIT package: a component holding only type information, the form
    /// `wkg` and other package tools exchange.
    pub fn encode(&self) -> Result<Vec<u8>, ContractError> {
        let failed = |error: anyhow::Error| ContractError {
            package: self.id(),
            message: format!("{error:#}"),
        };
        let mut resolve = wit_parser::Resolve::new();
        let package = resolve
            .push_str(format!("{}.wit", self.deps_dir()), self.text)
            .map_err(failed)?;
        wit_component::encode(&resolve, package).map_err(failed)
    }
}

/// The package `namespace:name@version`, if this runtime speaks it.
pub fn find(package_name: &str, version: &str) -> Option<&'static WitPackage> {
    PACKAGES
        .iter()
        .find(|p| p.version == version && package_name == format!("{}:{}", p.namespace, p.name))
}

/// The newest version of `namespace:name`, if any.
pub fn newest(package_name: &str) -> Option<&'static WitPackage> {
    PACKAGES
        .iter()
        .rfind(|p| package_name == format!("{}:{}", p.namespace, p.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_package_names_itself_and_encodes() {
        for package in PACKAGES {
            let header = format!("package {};", package.id());
            assert!(
                package.text.contains(&header),
                "{} lacks `{header}`",
                package.id()
            );
            for world in package.worlds {
                assert!(package.text.contains(&format!("world {world} {{")));
            }
            let bytes = package.encode().expect("encodes");
            assert!(bytes.starts_with(b"\0asm"));
            let decoded = wit_component::decode(&bytes).expect("decodes");
            let resolve = decoded.resolve();
            let id = decoded.package();
            assert_eq!(resolve.packages[id].name.to_string(), package.id());
        }
    }

    #[test]
    fn newest_is_the_last_version() {
        assert_eq!(newest("warden:plugin").map(|p| p.version), Some("0.2.0"));
        assert_eq!(
            find("local:main", "0.0.1").map(|p| p.version),
            Some("0.0.1")
        );
        assert!(find("warden:plugin", "9.9.9").is_none());
    }
}
