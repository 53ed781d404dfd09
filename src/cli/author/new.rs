//! `warden new PATH --lang L --world W`: a ready plugin project from the templates built into
//! the binary (`templates/` in the repository), with the WIT contract it targets. Like
//! `cargo new`, the project is written at PATH and named after its last component.

use super::super::out;
use super::{Lang, World};
use anyhow::{Context, bail};
use include_dir::{Dir, include_dir};
use std::path::Path;
use warden_runtime::contract::WitPackage;

/// The project templates: `<lang>/` holds what every project of a language shares,
/// `<lang>-<world>/` what is particular to one world. `{{name}}` and `{{name_snake}}` are
/// replaced in contents and file names; a `.tmpl` suffix is dropped (it keeps the repository's
/// own cargo and npm from seeing template manifests).
static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");

#[derive(clap::Args)]
pub(crate) struct NewArgs {
    /// Where to write the project (missing or empty); its last component is the plugin's name:
    /// lowercase letters, digits and `-`, starting with a letter.
    path: std::path::PathBuf,
    /// The language of the project.
    #[arg(long, value_enum)]
    lang: Lang,
    /// The world the plugin implements.
    #[arg(long, value_enum)]
    world: World,
}

/// Whether `name` can name a project (and a Rust crate, an npm package, a WIT world).
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// Every `lang-world` a template exists for.
pub(crate) fn available() -> Vec<String> {
    let mut pairs: Vec<String> = TEMPLATES
        .dirs()
        .filter_map(|dir| dir.path().to_str())
        .filter(|name| name.contains('-'))
        .map(str::to_owned)
        .collect();
    pairs.sort();
    pairs
}

/// The plugin's name: the last component of `path`, checked.
fn name_of(path: &Path) -> anyhow::Result<String> {
    let Some(name) = path.file_name() else {
        bail!(
            "{} does not end in a name for the plugin: give the project's path, e.g. \
             plugins/my-plugin",
            path.display()
        );
    };
    let name = name.to_string_lossy();
    if !valid_name(&name) {
        bail!(
            "`{name}` (the last component of {}) cannot name a plugin: use lowercase letters, \
             digits and single `-`, starting with a letter (at most 64)",
            path.display()
        );
    }
    Ok(name.into_owned())
}

pub(crate) fn new(args: NewArgs) -> anyhow::Result<u8> {
    let name = name_of(&args.path)?;
    let pair = format!("{}-{}", args.lang.as_str(), args.world.as_str());
    let (Some(shared), Some(particular)) = (
        TEMPLATES.get_dir(args.lang.as_str()),
        TEMPLATES.get_dir(&pair),
    ) else {
        bail!(
            "no template for {pair}; there are: {}",
            available().join(", ")
        );
    };
    let dir = args.path;
    if dir.exists() {
        let empty = std::fs::read_dir(&dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            bail!("{} is not empty: choose another path", dir.display());
        }
    }
    let names = [
        ("{{name}}", name.clone()),
        ("{{name_snake}}", name.replace('-', "_")),
    ];
    for template in [shared, particular] {
        write_tree(template, template.path(), &dir, &names)?;
    }
    write_wit(&dir, args.world)?;
    out!("created {} ({pair})", dir.display());
    out!("next:");
    out!("  cd {}", dir.display());
    out!("  warden build          # writes dist/{name}.wasm");
    out!("  warden test           # runs tests/*.input against tests/*.expected");
    out!("  warden push dist/{name}.wasm --name {name} --server URL");
    Ok(0)
}

/// Copies every file under `template` into `dir`, substituting `names`.
fn write_tree(
    template: &Dir<'static>,
    root: &Path,
    dir: &Path,
    names: &[(&str, String)],
) -> anyhow::Result<()> {
    for file in template.files() {
        let relative = file.path().strip_prefix(root).unwrap_or(file.path());
        let mut relative = substitute(&relative.to_string_lossy(), names);
        if let Some(stripped) = relative.strip_suffix(".tmpl") {
            relative = stripped.to_owned();
        }
        let path = dir.join(&relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        let contents = match file.contents_utf8() {
            Some(text) => substitute(text, names).into_bytes(),
            None => file.contents().to_vec(),
        };
        std::fs::write(&path, contents).with_context(|| format!("writing {}", path.display()))?;
        if relative.ends_with(".sh") {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("making {} executable", path.display()))?;
        }
    }
    for sub in template.dirs() {
        write_tree(sub, root, dir, names)?;
    }
    Ok(())
}

fn substitute(text: &str, names: &[(&str, String)]) -> String {
    names
        .iter()
        .fold(text.to_owned(), |text, (from, to)| text.replace(from, to))
}

/// The package a world comes from.
fn package_of(world: World) -> &'static WitPackage {
    let (name, version) = match world {
        World::Runner => ("local:main", "0.1.0"),
        _ => ("warden:plugin", "0.2.0"),
    };
    warden_runtime::contract::find(name, version).unwrap_or(&warden_runtime::contract::PACKAGES[0])
}

/// `wit/world.wit` (a world `plugin` including the chosen one) and the package it includes,
/// under `wit/deps/` where `wkg wit fetch` keeps dependencies.
fn write_wit(dir: &Path, world: World) -> anyhow::Result<()> {
    let package = package_of(world);
    let deps = dir.join("wit/deps").join(package.deps_dir());
    std::fs::create_dir_all(&deps).with_context(|| format!("creating {}", deps.display()))?;
    std::fs::write(deps.join("package.wit"), package.text)?;
    let world_wit = format!(
        "// The plugin's world: {id} `{world}`, whose WIT is in deps/\n\
         // (refresh it from a Warden server with `wkg wit fetch`).\n\
         package local:plugin;\n\
         \n\
         world plugin {{\n    include {name}/{world}@{version};\n}}\n",
        id = package.id(),
        name = package.package_name(),
        world = world.as_str(),
        version = package.version,
    );
    std::fs::write(dir.join("wit/world.wit"), world_wit)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        for good in ["a", "my-plugin", "rule2"] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "My", "2x", "a_b", "a-", "a--b", "a b", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn the_name_is_the_paths_last_component() {
        let name = |path: &str| name_of(Path::new(path)).map_err(|e| e.to_string());
        assert_eq!(name("my-plugin").as_deref(), Ok("my-plugin"));
        assert_eq!(name("some/dir/my-plugin/").as_deref(), Ok("my-plugin"));
        assert_eq!(name("/abs/rule2").as_deref(), Ok("rule2"));
        let refused = name("some/dir/My_Plugin").expect_err("not a name");
        assert!(refused.contains("`My_Plugin`"), "{refused}");
        assert!(refused.contains("some/dir/My_Plugin"), "{refused}");
        for no_name in [".", "..", "/", "some/.."] {
            assert!(name(no_name).is_err(), "{no_name}");
        }
    }

    #[test]
    fn every_template_pair_has_its_language() {
        let pairs = available();
        assert!(pairs.contains(&"rust-transformer".to_owned()), "{pairs:?}");
        for pair in pairs {
            let lang = pair.split('-').next().unwrap_or_default();
            assert!(TEMPLATES.get_dir(lang).is_some(), "{pair} without {lang}/");
        }
    }
}
