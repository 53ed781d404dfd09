//! Probes the file, environment and secret grants (world `warden:plugin/transformer@0.2.0`): the
//! input is `read PATH`, `write PATH`, `fill PATH BYTES`, `mkdirs PATH COUNT`, `symlink PATH`,
//! `sparse PATH OFFSET` (three bytes written at OFFSET of a new file, leaving a hole before them),
//! `env KEY`, `config KEY`, `leak KEY` (logs the value and prints it to stdout) or
//! `straddle KEY PAD` (the same after PAD filler bytes, so a cap can cut through the value); the
//! output is what the guest could read or did, and every refusal is the guest's error, so tests
//! see exactly what the host allowed.

wit_bindgen::generate!({ path: "../../wit/warden-plugin-0.2.0", world: "transformer" });

struct Files;

impl Guest for Files {
    fn transform(input: Vec<u8>) -> Result<Vec<u8>, String> {
        let text = String::from_utf8(input).map_err(|e| e.to_string())?;
        let (verb, arg) = text.trim().split_once(' ').unwrap_or((text.trim(), ""));
        match verb {
            "read" => std::fs::read(arg).map_err(|e| format!("read {arg}: {e}")),
            "write" => std::fs::write(arg, b"written by a guest")
                .map(|()| b"written".to_vec())
                .map_err(|e| format!("write {arg}: {e}")),
            "fill" => {
                let (path, bytes) = path_and_count(arg)?;
                std::fs::write(path, vec![b'w'; bytes])
                    .map(|()| format!("wrote {bytes}").into_bytes())
                    .map_err(|e| format!("fill {path}: {e}"))
            }
            "mkdirs" => {
                let (path, count) = path_and_count(arg)?;
                for n in 0..count {
                    std::fs::create_dir(format!("{path}{n}"))
                        .map_err(|e| format!("mkdirs {path}{n}: {e}"))?;
                }
                Ok(format!("made {count}").into_bytes())
            }
            "symlink" => symlink(arg).map(|()| b"linked".to_vec()),
            "sparse" => {
                let (path, offset) = arg.split_once(' ').ok_or("expected `PATH OFFSET`")?;
                let offset = offset
                    .parse()
                    .map_err(|e| format!("offset `{offset}`: {e}"))?;
                sparse(path, offset).map(|size| format!("size {size}").into_bytes())
            }
            "straddle" => {
                let (key, pad) = path_and_count(arg)?;
                let value = warden::plugin::host::config(key).unwrap_or_default();
                let line = format!("{}{value}", "x".repeat(pad));
                warden::plugin::host::log(warden::plugin::host::Level::Info, &line);
                let mut stdout = std::io::stdout();
                std::io::Write::write_all(&mut stdout, format!("{}{value}", "y".repeat(pad)).as_bytes())
                    .and_then(|()| std::io::Write::flush(&mut stdout))
                    .map_err(|e| format!("stdout: {e}"))?;
                Ok(b"straddled".to_vec())
            }
            "env" => std::env::var(arg)
                .map(String::into_bytes)
                .map_err(|e| format!("env {arg}: {e}")),
            "config" => warden::plugin::host::config(arg)
                .map(String::into_bytes)
                .ok_or_else(|| format!("config {arg}: none")),
            "leak" => {
                let value = warden::plugin::host::config(arg).unwrap_or_default();
                warden::plugin::host::log(
                    warden::plugin::host::Level::Info,
                    &format!("the value is {value}"),
                );
                println!("stdout has {value}");
                Ok(b"leaked?".to_vec())
            }
            _ => Err(format!("unknown verb `{verb}`")),
        }
    }
}

/// Asks for a symbolic link at `path` (under a preopened directory) to `/etc/passwd`.
fn symlink(path: &str) -> Result<(), String> {
    let (dir, name) = path.rsplit_once('/').ok_or("expected /DIR/NAME")?;
    let preopens = wasi::filesystem::preopens::get_directories();
    let (descriptor, _) = preopens
        .iter()
        .find(|(_, guest)| guest == dir)
        .ok_or_else(|| format!("symlink {path}: no directory {dir}"))?;
    descriptor
        .symlink_at("/etc/passwd", name)
        .map_err(|e| format!("symlink {path}: {e:?}"))
}

/// Writes `end` at `offset` of a new file at `path` (under a preopened directory) with one
/// positional write; answers the file's size.
fn sparse(path: &str, offset: u64) -> Result<u64, String> {
    use wasi::filesystem::types::{DescriptorFlags, OpenFlags, PathFlags};
    let (dir, name) = path.rsplit_once('/').ok_or("expected /DIR/NAME")?;
    let preopens = wasi::filesystem::preopens::get_directories();
    let (descriptor, _) = preopens
        .iter()
        .find(|(_, guest)| guest == dir)
        .ok_or_else(|| format!("sparse {path}: no directory {dir}"))?;
    let file = descriptor
        .open_at(
            PathFlags::empty(),
            name,
            OpenFlags::CREATE,
            DescriptorFlags::READ | DescriptorFlags::WRITE,
        )
        .map_err(|e| format!("sparse {path}: open: {e:?}"))?;
    file.write(b"end", offset)
        .map_err(|e| format!("sparse {path}: write at {offset}: {e:?}"))?;
    file.stat()
        .map(|stat| stat.size)
        .map_err(|e| format!("sparse {path}: stat: {e:?}"))
}

/// `PATH COUNT` split and parsed.
fn path_and_count(arg: &str) -> Result<(&str, usize), String> {
    let (path, count) = arg.split_once(' ').ok_or("expected `PATH COUNT`")?;
    let count = count.parse().map_err(|e| format!("count `{count}`: {e}"))?;
    Ok((path, count))
}

export!(Files);
