//! Every variable the `melo` binary reads (as `melo --help` lists them) is documented in
//! `.env.example` and in a table row of `docs/configuration.md`, and every variable either of them
//! documents is read (no stale documentation).

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

/// The variables named in the first column of the tables of `docs/configuration.md`
/// (`` | `NAME` | `` rows; a row may name two, as `` `A` / `B` ``).
fn in_configuration_tables() -> BTreeSet<String> {
    read("docs/configuration.md")
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|row| row.split(" | ").next())
        .flat_map(|first| {
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|name| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
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
    let tables = in_configuration_tables();
    assert!(
        tables.len() >= 50,
        "parsed the tables of docs/configuration.md: {tables:?}"
    );
    for var in &read_vars {
        assert!(
            example.contains(var),
            "{var} is read but not in .env.example"
        );
        assert!(
            tables.contains(var),
            "{var} is read but has no row in the tables of docs/configuration.md"
        );
    }
    for var in &tables {
        assert!(
            read_vars.contains(var),
            "{var} has a row in docs/configuration.md but the server does not read it"
        );
    }
    for var in &example {
        assert!(
            read_vars.contains(var),
            "{var} is in .env.example but the server does not read it"
        );
    }
}
