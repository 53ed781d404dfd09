//! The SQLite schema, one migration at a time. Never edit a released migration: add one.

/// The schema, in order. Never edit a released migration: add one.
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "components, names and name history",
        "
CREATE TABLE IF NOT EXISTS components (
    tenant      TEXT NOT NULL,
    digest      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    world       TEXT NOT NULL,
    imports     TEXT NOT NULL,
    exports     TEXT NOT NULL,
    compile_ms  INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    PRIMARY KEY (tenant, digest)
);
CREATE TABLE IF NOT EXISTS names (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    digest      TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE INDEX IF NOT EXISTS names_by_digest ON names (tenant, digest);
CREATE TABLE IF NOT EXISTS name_history (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    digest      TEXT,
    changed_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS name_history_by_name ON name_history (tenant, name, id);
",
    ),
    (
        "tenants, API keys and usage",
        "
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    limits      TEXT NOT NULL,
    quotas      TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE TABLE api_keys (
    id            TEXT PRIMARY KEY,
    tenant        TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    scope         TEXT NOT NULL,
    hash          BLOB NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER,
    last_used_at  INTEGER
);
CREATE INDEX api_keys_by_tenant ON api_keys (tenant, created_at);
CREATE TABLE usage (
    tenant       TEXT NOT NULL,
    day          TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    calls        INTEGER NOT NULL,
    fuel         INTEGER NOT NULL,
    wall_us      INTEGER NOT NULL,
    memory_gb_s  REAL NOT NULL,
    bytes_in     INTEGER NOT NULL,
    bytes_out    INTEGER NOT NULL,
    PRIMARY KEY (tenant, day, outcome)
);
",
    ),
    (
        "invocation records and each tenant's recording policy",
        "
ALTER TABLE tenants ADD COLUMN recording TEXT NOT NULL DEFAULT '{}';
CREATE TABLE records (
    id          TEXT NOT NULL,
    tenant      TEXT NOT NULL,
    digest      TEXT NOT NULL,
    name        TEXT,
    outcome     TEXT NOT NULL,
    document    TEXT NOT NULL,
    input       BLOB
);
CREATE UNIQUE INDEX records_by_tenant ON records (tenant, id);
",
    ),
    (
        "pipelines: versioned definitions, one current",
        "
CREATE TABLE pipelines (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    current     INTEGER NOT NULL,
    latest      INTEGER NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (tenant, name)
);
CREATE TABLE pipeline_versions (
    tenant      TEXT NOT NULL,
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    document    TEXT NOT NULL,
    PRIMARY KEY (tenant, name, version)
);
",
    ),
    (
        "capability grants of tenants and components",
        "
CREATE TABLE grants (
    tenant      TEXT NOT NULL,
    digest      TEXT NOT NULL,
    document    TEXT NOT NULL,
    PRIMARY KEY (tenant, digest)
);
",
    ),
    (
        "tenants' secrets, sealed",
        "
CREATE TABLE secrets (
    tenant      TEXT NOT NULL,
    key         TEXT NOT NULL,
    sealed      BLOB NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (tenant, key)
);
",
    ),
    (
        "outbound HTTP in the usage meter",
        "
ALTER TABLE usage ADD COLUMN http_requests INTEGER NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN http_bytes INTEGER NOT NULL DEFAULT 0;
",
    ),
    (
        "the bytes of each record, and of each tenant's records",
        "
ALTER TABLE records ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
UPDATE records SET bytes = length(CAST(document AS BLOB)) + COALESCE(length(input), 0);
CREATE TABLE record_bytes (
    tenant      TEXT PRIMARY KEY,
    bytes       INTEGER NOT NULL
);
INSERT INTO record_bytes (tenant, bytes) SELECT tenant, SUM(bytes) FROM records GROUP BY tenant;
CREATE TRIGGER record_bytes_added AFTER INSERT ON records BEGIN
    INSERT INTO record_bytes (tenant, bytes) VALUES (NEW.tenant, NEW.bytes)
        ON CONFLICT (tenant) DO UPDATE SET bytes = bytes + excluded.bytes;
END;
CREATE TRIGGER record_bytes_removed AFTER DELETE ON records BEGIN
    UPDATE record_bytes SET bytes = bytes - OLD.bytes WHERE tenant = OLD.tenant;
END;
",
    ),
    (
        "a version on each tenant, for conditional updates",
        "
ALTER TABLE tenants ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
",
    ),
];
