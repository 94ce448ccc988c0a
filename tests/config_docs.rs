//! Every variable the `melo` binary reads (as `melo --help` lists them) is documented in `.env.example` and in the README's
//! configuration table, and every documented variable is read (no stale documentation).

use std::collections::BTreeSet;
use std::path::Path;

fn read(rel: &str) -> String {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The variables `melo --help` names (`[env: NAME=…]`): every setting the binary reads.
fn read_by_binary() -> BTreeSet<String> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_melo"))
        .arg("--help")
        .output()
        .expect("run melo --help");
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).expect("utf-8");
    help.split("[env:")
        .skip(1)
        .filter_map(|rest| {
            let name: String = rest
                .trim_start()
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            (!name.is_empty()).then_some(name)
        })
        .collect()
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
