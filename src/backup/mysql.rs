//! The MySQL part: the migration level and the key check's samples read from a live database,
//! and the dump, `mariadb-dump --single-transaction` (one consistent snapshot, taken while the
//! servers keep writing; InnoDB only, which every melo table is).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions, MySqlRow};
use sqlx::{MySqlPool, Row};
use zeroize::Zeroizing;

use super::files;
use super::keycheck::{merge, sample_sql, Samples};
use super::BackupError;
use crate::config::Secret;
use crate::store::{KeyShape, RowKey, SealedRow, SealedTable};

/// Options every dump is made with: one consistent snapshot without locking the tables
/// (`--single-transaction`), rows streamed (`--quick`), binary columns as hex (`--hex-blob`:
/// sealed values survive any client character set), no tablespace statements (which need the
/// PROCESS privilege and that a restore does not want), and no `CREATE DATABASE`, so the dump
/// loads into a database of any name.
pub(crate) const DUMP_OPTIONS: [&str; 5] = [
    "--single-transaction",
    "--quick",
    "--hex-blob",
    "--no-tablespaces",
    "--default-character-set=utf8mb4",
];

fn db_err(what: &'static str) -> impl Fn(sqlx::Error) -> BackupError {
    move |e| BackupError::Database(format!("{what}: {e}"))
}

fn options(url: &Secret) -> Result<MySqlConnectOptions, BackupError> {
    let url = url.expose();
    let url = match url.strip_prefix("mariadb:") {
        Some(rest) => format!("mysql:{rest}"),
        None => url.to_owned(),
    };
    MySqlConnectOptions::from_str(&url)
        .map_err(|_| BackupError::Database("DB_URL is not a valid MySQL URL".into()))
}

/// A small pool on the database of `url` (no migration is run: a backup only reads).
pub(crate) async fn connect(url: &Secret) -> Result<MySqlPool, BackupError> {
    let pool = MySqlPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options(url)?)
        .await
        .map_err(db_err("connecting to MySQL"))?;
    Ok(pool)
}

/// The migration level, or `None` when the database has no melo schema (an empty database).
pub(crate) async fn schema_version(pool: &MySqlPool) -> Result<Option<i64>, BackupError> {
    let tables = columns(pool).await?;
    if !tables.contains_key("_sqlx_migrations") {
        return Ok(None);
    }
    let v: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(MAX(version), 0) AS SIGNED) FROM _sqlx_migrations WHERE success = 1",
    )
    .fetch_one(pool)
    .await
    .map_err(db_err("reading the migration level"))?;
    Ok(Some(v))
}

/// Every table of the database with its columns.
async fn columns(pool: &MySqlPool) -> Result<HashMap<String, HashSet<String>>, BackupError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE()",
    )
    .fetch_all(pool)
    .await
    .map_err(db_err("reading the schema"))?;
    let mut out: HashMap<String, HashSet<String>> = HashMap::new();
    for (t, c) in rows {
        out.entry(t).or_default().insert(c);
    }
    Ok(out)
}

/// The oldest and newest rows of every table with sealed columns.
pub(crate) async fn sample(pool: &MySqlPool) -> Result<Samples, BackupError> {
    let schema = columns(pool).await?;
    let none = HashSet::new();
    let mut out = Vec::new();
    for table in SealedTable::ALL {
        let present = schema.get(table.name()).unwrap_or(&none);
        let has = |c: &str| present.contains(c);
        let (Some((first, chosen)), Some((last, _))) =
            (sample_sql(table, false, has), sample_sql(table, true, has))
        else {
            continue;
        };
        let mut ends = Vec::with_capacity(2);
        for sql in [first, last] {
            let rows = sqlx::query(&sql)
                .fetch_all(pool)
                .await
                .map_err(db_err("sampling sealed values"))?;
            ends.push(
                rows.iter()
                    .map(|r| parse(table, r, &chosen))
                    .collect::<Result<Vec<_>, _>>()?,
            );
        }
        let newest = ends.pop().unwrap_or_default();
        let oldest = ends.pop().unwrap_or_default();
        out.push((table, merge(oldest, newest)));
    }
    Ok(out)
}

fn parse(table: SealedTable, r: &MySqlRow, chosen: &[usize]) -> Result<SealedRow, BackupError> {
    let e = db_err("reading a sampled row");
    let keys = table.key_columns().len();
    let key = match table.key_shape() {
        KeyShape::Id => RowKey::Id(r.try_get::<i64, _>(0).map_err(&e)?),
        KeyShape::Bytes => RowKey::Bytes(r.try_get::<Vec<u8>, _>(0).map_err(&e)?),
        KeyShape::Pair => RowKey::Pair(
            r.try_get::<i64, _>(0).map_err(&e)?,
            r.try_get::<i64, _>(1).map_err(&e)?,
        ),
    };
    let mut values = vec![None; table.columns().len()];
    for (n, &i) in chosen.iter().enumerate() {
        values[i] = r.try_get::<Option<Vec<u8>>, _>(keys + n).map_err(&e)?;
    }
    let mut context = Vec::new();
    for c in 0..table.context_columns().len() {
        let at = keys + chosen.len() + c;
        // Integers (uid) or text (device ids: VARBINARY), as the store's `SealedStore` reads them.
        let text = match r.try_get::<i64, _>(at) {
            Ok(n) => n.to_string(),
            Err(_) => match r.try_get::<String, _>(at) {
                Ok(s) => s,
                Err(_) => {
                    String::from_utf8_lossy(&r.try_get::<Vec<u8>, _>(at).map_err(&e)?).into_owned()
                }
            },
        };
        context.push(text);
    }
    Ok(SealedRow {
        key,
        values,
        context,
    })
}

/// `mariadb-dump` (or `mysqldump`) on `PATH`.
pub(crate) fn find_dump_program() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    for name in ["mariadb-dump", "mysqldump"] {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if is_executable(&candidate) {
                return Some(candidate);
            }
        }
    }
    None
}

fn is_executable(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.is_file() && meta.permissions().mode() & 0o111 != 0
    }
    #[cfg(not(unix))]
    meta.is_file()
}

/// A dump of the database of a URL: its arguments and (apart) its password.
pub(crate) struct DumpPlan {
    /// Connection options and [`DUMP_OPTIONS`], then the database name.
    args: Vec<String>,
    /// Passed to the program in `MYSQL_PWD`, never on its command line (where `ps` shows it).
    password: Option<Zeroizing<String>>,
}

impl DumpPlan {
    /// The dump of the database `url` names.
    pub(crate) fn new(url: &Secret) -> Result<Self, BackupError> {
        let opts = options(url)?;
        let database = opts
            .get_database()
            .ok_or_else(|| BackupError::Database("DB_URL names no database".into()))?
            .to_owned();
        let mut args: Vec<String> = DUMP_OPTIONS.iter().map(|s| (*s).to_owned()).collect();
        match opts.get_socket() {
            Some(socket) => {
                args.push("--protocol=SOCKET".into());
                args.push(format!("--socket={}", socket.display()));
            }
            None => {
                args.push("--protocol=TCP".into());
                args.push(format!("--host={}", opts.get_host()));
                args.push(format!("--port={}", opts.get_port()));
            }
        }
        args.push(format!("--user={}", opts.get_username()));
        args.push(database);
        Ok(Self {
            args,
            password: url_password(url.expose()).map(Zeroizing::new),
        })
    }

    /// The command line, password left out (the manifest records it).
    pub(crate) fn display(&self, program: &str) -> String {
        let mut parts = vec![program.to_owned()];
        parts.extend(self.args.iter().map(|a| shell_quote(a)));
        parts.join(" ")
    }

    /// The command the operator runs: prompts for the password (`-p`) and writes `out`.
    pub(crate) fn for_operator(&self, out: &Path) -> String {
        let (db, options) = self
            .args
            .split_last()
            .map_or((None, &[][..]), |(d, o)| (Some(d), o));
        let mut parts = vec!["mariadb-dump".to_owned()];
        parts.extend(options.iter().map(|a| shell_quote(a)));
        if self.password.is_some() {
            parts.push("-p".into());
        }
        parts.extend(db.map(|d| shell_quote(d)));
        format!(
            "umask 077 && {} > {}",
            parts.join(" "),
            shell_quote(&out.display().to_string())
        )
    }

    /// Runs `program`, writing the dump to the new file `out` (0600). A failure removes `out`
    /// and reports the program's own message.
    pub(crate) fn run(&self, program: &Path, out: &Path) -> Result<(), BackupError> {
        let file = files::create_new(out)?;
        let mut cmd = std::process::Command::new(program);
        cmd.args(&self.args)
            .stdin(std::process::Stdio::null())
            .stdout(file)
            .stderr(std::process::Stdio::piped())
            .env_remove("MYSQL_PWD");
        if let Some(p) = &self.password {
            cmd.env("MYSQL_PWD", p.as_str());
        }
        let result = cmd.output();
        let failed = match result {
            Err(e) => Some(format!("could not run {}: {e}", program.display())),
            Ok(o) if !o.status.success() => {
                let msg = String::from_utf8_lossy(&o.stderr);
                let msg = msg.trim();
                let tail: String = msg
                    .chars()
                    .rev()
                    .take(1000)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                Some(format!(
                    "{} failed ({}): {tail}",
                    program.display(),
                    o.status
                ))
            }
            Ok(_) => None,
        };
        if let Some(msg) = failed {
            files::remove_all(out);
            return Err(BackupError::Dump(msg));
        }
        std::fs::File::open(out)
            .and_then(|f| f.sync_all())
            .map_err(BackupError::io(out))
    }
}

/// The password of a `scheme://user:password@host/…` URL, percent-decoded.
fn url_password(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    Some(percent_decode(password))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| char::from(c).to_digit(16);
        match (b[i], b.get(i + 1).copied(), b.get(i + 2).copied()) {
            (b'%', Some(h), Some(l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (c, ..) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Quotes for a POSIX shell when needed.
fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_=./:@%+,".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plan_keeps_the_password_off_the_command_line() {
        let url =
            Secret::new("mysql://melo:p%40ss%3Aw@db.example:3307/melo_prod?ssl-mode=required");
        let plan = DumpPlan::new(&url).expect("plan");
        assert_eq!(plan.password.as_deref().map(String::as_str), Some("p@ss:w"));
        let line = plan.display("mariadb-dump");
        assert_eq!(
            line,
            "mariadb-dump --single-transaction --quick --hex-blob --no-tablespaces \
             --default-character-set=utf8mb4 --protocol=TCP --host=db.example --port=3307 \
             --user=melo melo_prod"
        );
        assert!(!line.contains("p@ss"));
        let op = plan.for_operator(Path::new("/backups/2025 06/database.sql"));
        assert!(
            op.starts_with("umask 077 && mariadb-dump --single-transaction"),
            "{op}"
        );
        assert!(
            op.ends_with("--user=melo -p melo_prod > '/backups/2025 06/database.sql'"),
            "{op}"
        );
        assert_eq!(url_password("mysql://root@127.0.0.1/x"), None);
        assert_eq!(url_password("mysql://u:@h/x").as_deref(), Some(""));
    }
}
