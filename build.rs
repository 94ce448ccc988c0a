//! Embeds the web client (`web/`) into the library: `$OUT_DIR/web_assets.rs` lists every file
//! under `web/` with its bytes (`include_bytes!`), so the binary serves `/app/` with no files
//! beside it. Editing a file under `web/` rebuilds the crate.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let web = root.join("web");
    println!("cargo:rerun-if-changed={}", web.display());
    let mut files = Vec::new();
    if web.is_dir() {
        collect(&web, &web, &mut files);
    }
    files.sort();
    let mut out = String::from(
        "/// Every file of `web/`: path relative to `web/` (with `/`), bytes.\n\
         pub(crate) static WEB_ASSETS: &[(&str, &[u8])] = &[\n",
    );
    for (rel, abs) in &files {
        println!("cargo:rerun-if-changed={}", abs.display());
        let _ = writeln!(
            out,
            "    ({rel:?}, include_bytes!({:?})),",
            abs.display().to_string()
        );
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("web_assets.rs");
    std::fs::write(dest, out).expect("write web_assets.rs");
}

/// Regular files below `dir`, skipping hidden names (editor swap files, `.DS_Store`).
fn collect(base: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) {
    let entries = std::fs::read_dir(dir).expect("read web/");
    for entry in entries {
        let entry = entry.expect("read web/ entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.ends_with('~') {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect(base, &path, out);
        } else if kind.is_file() {
            let rel = path
                .strip_prefix(base)
                .expect("below web/")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
                .join("/");
            out.push((rel, path));
        }
    }
}
