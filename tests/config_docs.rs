//! Every variable the example server reads is documented in `.env.example` and in the README's
//! configuration table, and every documented variable is read (no stale documentation).

use std::collections::BTreeSet;
use std::path::Path;

fn read(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `"NAME"` string literals in the example server's sources: the variables it reads.
fn read_by_binary() -> BTreeSet<String> {
    let mut vars = BTreeSet::new();
    for file in [
        "examples/server/env.rs",
        "examples/server/settings.rs",
        "examples/server/logging.rs",
    ] {
        let src = read(file);
        for piece in src.split('"').skip(1).step_by(2) {
            let looks_like_var = piece.len() >= 4
                && piece
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
            if looks_like_var {
                vars.insert(piece.to_owned());
            }
        }
    }
    vars
}

/// `# NAME=` and `NAME=` lines of `.env.example`.
fn in_env_example() -> BTreeSet<String> {
    read(".env.example")
        .lines()
        .filter_map(|l| {
            let l = l.trim_start_matches('#').trim();
            let (name, _) = l.split_once('=')?;
            (!name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
            .then(|| name.to_owned())
        })
        .collect()
}

#[test]
fn every_variable_is_documented_and_every_documented_one_is_read() {
    let read_vars = read_by_binary();
    assert!(read_vars.len() >= 50, "parsed the sources: {read_vars:?}");
    for must in [
        "BCRYPT_COST",
        "DB_URL",
        "LOG_FILE",
        "METRICS_ENABLED",
        "TLS_KEY_FILE",
    ] {
        assert!(read_vars.contains(must), "{must} not found in the sources");
    }
    let example = in_env_example();
    let readme = read("README.md");
    for var in &read_vars {
        assert!(
            example.contains(var),
            "{var} is read but not in .env.example"
        );
        assert!(
            readme.contains(&format!("`{var}`")),
            "{var} is read but not in the README"
        );
    }
    for var in &example {
        assert!(
            read_vars.contains(var),
            "{var} is in .env.example but the server does not read it"
        );
    }
}
