//! The metadata interface: components, names and their history, per tenant.
//!
//! [`MetadataStore`] is what a storage backend implements. The embedded default is SQLite
//! ([`crate::sqlite::SqliteStore`]); a PostgreSQL backend shared by many nodes implements the
//! same trait and must pass the same tests. Calls are synchronous and short; the registry runs
//! them on blocking threads.

use serde::Serialize;

/// The tenant every record belongs to until authentication lands.
pub const DEFAULT_TENANT: &str = "default";

/// One stored component.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ComponentRecord {
    /// `sha256:<hex>` of the component's bytes.
    pub digest: String,
    /// Size of the component in bytes.
    pub size: u64,
    /// The world it implements, e.g. `local:main/runner@0.0.1`.
    pub world: String,
    /// Its imports.
    pub imports: Vec<String>,
    /// Its exports.
    pub exports: Vec<String>,
    /// How long the first compile took, in milliseconds.
    pub compile_ms: u64,
    /// When it was first stored (RFC 3339, UTC).
    pub created_at: String,
}

/// Where a name points now, and where it pointed before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NameRecord {
    /// The name.
    pub name: String,
    /// The digest it points at.
    pub digest: String,
    /// When it was last changed (RFC 3339, UTC).
    pub updated_at: String,
    /// Every change, newest first (the first entry is the current target).
    pub history: Vec<NameChange>,
}

/// One change of a name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NameChange {
    /// The digest the name was pointed at; `None` when the name was removed.
    pub digest: Option<String>,
    /// When (RFC 3339, UTC).
    pub changed_at: String,
}

/// A failure of the storage backend itself (I/O, corruption, a bug), never of the input.
#[derive(Debug, thiserror::Error)]
#[error("metadata store: {0}")]
pub struct StoreError(pub String);

/// Persistence of registry metadata. Every method is scoped to one tenant, and every digest
/// argument and field is the full `sha256:<hex>` string.
pub trait MetadataStore: Send + Sync + 'static {
    /// Inserts a component unless one with the same digest exists; returns whether it was new.
    /// When `name` is given, points it at the digest in the same transaction.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn insert_component(
        &self,
        tenant: &str,
        record: &ComponentRecord,
        name: Option<&str>,
    ) -> Result<bool, StoreError>;

    /// The component with `digest`, if stored.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn component(&self, tenant: &str, digest: &str) -> Result<Option<ComponentRecord>, StoreError>;

    /// Up to `limit` components with digests after `after`, in digest order.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn list_components(
        &self,
        tenant: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<ComponentRecord>, StoreError>;

    /// Deletes a component and (with `force`) the names pointing at it, recording their removal.
    /// Without `force`, refuses when names point at it and returns those names.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn delete_component(
        &self,
        tenant: &str,
        digest: &str,
        force: bool,
    ) -> Result<DeleteResult, StoreError>;

    /// Points `name` at `digest` (which must exist) and records the change.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn set_name(&self, tenant: &str, name: &str, digest: &str) -> Result<(), StoreError>;

    /// The name's current target and history, if it exists.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn name(&self, tenant: &str, name: &str) -> Result<Option<NameRecord>, StoreError>;

    /// Removes a name (its history records the removal); returns whether it existed.
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn delete_name(&self, tenant: &str, name: &str) -> Result<bool, StoreError>;

    /// Whether any tenant still stores `digest` (its files are shared, content-addressed).
    ///
    /// # Errors
    /// [`StoreError`] when the backend fails.
    fn digest_in_use(&self, digest: &str) -> Result<bool, StoreError>;
}

/// The result of [`MetadataStore::delete_component`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteResult {
    /// Deleted (with the names that were removed alongside, under `force`).
    Deleted {
        /// Names removed with it.
        names: Vec<String>,
    },
    /// No such component.
    NotFound,
    /// Names point at it and `force` was not given.
    Referenced {
        /// The names pointing at it.
        names: Vec<String>,
    },
}
