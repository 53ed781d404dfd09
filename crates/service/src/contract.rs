//! The WIT contract as the server hands it out: each package the runtime speaks as WIT text, as
//! a binary-encoded WIT package, and as an OCI artifact in the CNCF Wasm layout that package
//! tools (`wkg`) pull through the OCI distribution API.
//!
//! Everything here is derived once, on first use, from the texts compiled into the runtime, and
//! is byte-for-byte the same on every node and after every restart (fixed creation time), so
//! the digests an author's `wkg.lock` records stay valid.

use bytes::Bytes;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use std::sync::OnceLock;
use warden_runtime::contract::{PACKAGES, WitPackage};

/// Media type of an OCI image manifest.
pub const OCI_MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// Media type of the config blob of a Wasm OCI artifact.
pub const WASM_CONFIG_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// Media type of a Wasm layer (here: a binary-encoded WIT package).
pub const WASM_LAYER_TYPE: &str = "application/wasm";
/// The creation time every artifact states (fixed, so digests never change).
const CREATED: &str = "2026-01-01T00:00:00Z";

/// One package, ready to serve.
#[derive(Debug)]
pub struct ServedPackage {
    /// The package.
    pub package: &'static WitPackage,
    /// The binary-encoded WIT package.
    pub wasm: Bytes,
    /// Its `sha256:…` digest.
    pub wasm_digest: String,
    /// The OCI config blob (JSON).
    pub config: Bytes,
    /// Its `sha256:…` digest.
    pub config_digest: String,
    /// The OCI image manifest (JSON).
    pub manifest: Bytes,
    /// Its `sha256:…` digest.
    pub manifest_digest: String,
}

/// Every package the server speaks, in [`PACKAGES`] order.
#[derive(Debug)]
pub struct Contract {
    packages: Vec<ServedPackage>,
}

/// `sha256:<hex>` of `bytes`.
fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl ServedPackage {
    fn new(package: &'static WitPackage) -> Option<ServedPackage> {
        let wasm = match package.encode() {
            Ok(wasm) => Bytes::from(wasm),
            Err(error) => {
                tracing::error!(%error, "a WIT package of this build does not encode");
                return None;
            }
        };
        let wasm_digest = digest(&wasm);
        let config = json!({
            "created": CREATED,
            "architecture": "wasm",
            "os": "wasip2",
            "layerDigests": [wasm_digest],
            "component": {"exports": [], "imports": [], "target": null},
        });
        let config = Bytes::from(config.to_string());
        let config_digest = digest(&config);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST_TYPE,
            "artifactType": WASM_CONFIG_TYPE,
            "config": {
                "mediaType": WASM_CONFIG_TYPE,
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": [{
                "mediaType": WASM_LAYER_TYPE,
                "digest": wasm_digest,
                "size": wasm.len(),
                "annotations": {
                    "org.opencontainers.image.title": format!("{}.wasm", package.deps_dir()),
                },
            }],
            "annotations": {
                "org.opencontainers.image.version": package.version,
                "org.opencontainers.image.description": format!("WIT package {}", package.id()),
            },
        });
        let manifest = Bytes::from(manifest.to_string());
        let manifest_digest = digest(&manifest);
        Some(ServedPackage {
            package,
            wasm,
            wasm_digest,
            config,
            config_digest,
            manifest,
            manifest_digest,
        })
    }

    /// The OCI repository it is pulled from: `namespace/name`, e.g. `warden/plugin`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.package.namespace, self.package.name)
    }
}

impl Contract {
    /// The contract of this build (made on first use).
    pub fn get() -> &'static Contract {
        static CONTRACT: OnceLock<Contract> = OnceLock::new();
        CONTRACT.get_or_init(|| Contract {
            packages: PACKAGES.iter().filter_map(ServedPackage::new).collect(),
        })
    }

    /// Every package, oldest first within a name.
    pub fn packages(&self) -> &[ServedPackage] {
        &self.packages
    }

    /// `namespace:name@version`, or the newest version of `namespace:name`.
    pub fn find(&self, reference: &str) -> Option<&ServedPackage> {
        let (name, version) = match reference.split_once('@') {
            Some((name, version)) => (name, Some(version)),
            None => (reference, None),
        };
        self.packages
            .iter()
            .filter(|p| p.package.package_name() == name)
            .rfind(|p| version.is_none_or(|v| v == p.package.version))
    }

    /// The versions (OCI tags) of a repository, or `None` if there is no such repository.
    pub fn tags(&self, repository: &str) -> Option<Vec<&'static str>> {
        let tags: Vec<&'static str> = self
            .in_repository(repository)
            .map(|p| p.package.version)
            .collect();
        (!tags.is_empty()).then_some(tags)
    }

    /// The package a manifest reference (a tag, or the manifest's digest) names.
    pub fn manifest(&self, repository: &str, reference: &str) -> Option<&ServedPackage> {
        self.in_repository(repository)
            .find(|p| p.package.version == reference || p.manifest_digest == reference)
    }

    /// A blob (config or layer) of a repository, by digest.
    pub fn blob(&self, repository: &str, digest: &str) -> Option<Bytes> {
        self.in_repository(repository).find_map(|p| {
            if p.wasm_digest == digest {
                Some(p.wasm.clone())
            } else if p.config_digest == digest {
                Some(p.config.clone())
            } else {
                None
            }
        })
    }

    fn in_repository(&self, repository: &str) -> impl Iterator<Item = &ServedPackage> {
        let repository = repository.to_owned();
        self.packages
            .iter()
            .filter(move |p| p.repository() == repository)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_package_is_served_with_consistent_digests() {
        let contract = Contract::get();
        assert_eq!(contract.packages().len(), PACKAGES.len());
        for served in contract.packages() {
            let manifest: serde_json::Value =
                serde_json::from_slice(&served.manifest).expect("manifest is JSON");
            assert_eq!(manifest["layers"][0]["digest"], served.wasm_digest.as_str());
            assert_eq!(manifest["config"]["digest"], served.config_digest.as_str());
            assert_eq!(digest(&served.wasm), served.wasm_digest);
            let repository = served.repository();
            assert_eq!(
                contract.blob(&repository, &served.wasm_digest),
                Some(served.wasm.clone())
            );
            let by_tag = contract.manifest(&repository, served.package.version);
            assert_eq!(
                by_tag.map(|p| &p.manifest_digest),
                Some(&served.manifest_digest)
            );
        }
        assert_eq!(contract.tags("warden/plugin"), Some(vec!["0.1.0", "0.2.0"]));
        assert_eq!(contract.tags("warden/other"), None);
        assert_eq!(
            contract.find("warden:plugin").map(|p| p.package.version),
            Some("0.2.0")
        );
        assert!(contract.find("warden:plugin@0.3.0").is_none());
    }
}
