//! The documentation says what the code does: the defaults docs/CONFIGURATION.md gives for every
//! per-call limit are the runtime's own, read from the table, so neither can drift alone.

use crate::fixtures::repo_root;
use warden_runtime::{Limits, MAX_TIMEOUT_MS};

/// A default as the table writes it (`2 000 000 000`, `8 KiB`, `64 KiB each`, `4 MiB`) in
/// its unit.
fn amount(text: &str) -> u64 {
    let text = text.trim().trim_end_matches(" each");
    let (number, unit) = match text.rsplit_once(' ') {
        Some((number, "KiB")) => (number, 1024),
        Some((number, "MiB")) => (number, 1024 * 1024),
        _ => (text, 1),
    };
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    digits
        .parse::<u64>()
        .unwrap_or_else(|_| panic!("`{text}` is not an amount"))
        * unit
}

#[test]
fn every_documented_limit_default_is_the_runtimes() {
    let page = std::fs::read_to_string(repo_root().join("docs/CONFIGURATION.md")).unwrap();
    let defaults = serde_json::to_value(Limits::default()).unwrap();
    let mut checked = Vec::new();
    for row in page.lines().filter(|line| line.starts_with("| `limits.")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // `limits.max_log_bytes` / `max_log_lines` | 64 KiB / 1000
        let names = cells[1].split('/').map(|name| {
            name.trim()
                .trim_matches('`')
                .trim_start_matches("limits.")
                .to_owned()
        });
        let values: Vec<&str> = cells[2].split('/').collect();
        for (at, name) in names.enumerate() {
            let value = values.get(at).or(values.last()).unwrap();
            let actual = defaults[&name]
                .as_u64()
                .unwrap_or_else(|| panic!("limits.{name} is documented but not a limit"));
            assert_eq!(actual, amount(value), "limits.{name}: {row}");
            checked.push(name);
        }
        if cells[1].contains("timeout_ms") {
            assert!(cells[3].contains("at most 24 h"), "{row}");
            assert_eq!(MAX_TIMEOUT_MS, 24 * 3600 * 1000);
        }
    }
    let every: Vec<String> = defaults.as_object().unwrap().keys().cloned().collect();
    for name in &every {
        assert!(
            checked.contains(name),
            "limits.{name} has no row in docs/CONFIGURATION.md"
        );
    }
}
