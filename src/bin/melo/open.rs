//! Opening what every command needs: the data directory, the keys and the store.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use melo::crypto::KeyPolicy;
use melo::{FileKeyProvider, Migrations, SqliteStore, Store};

use crate::settings::Settings;

/// Creates the data directory readable by the server's user only (it holds the database).
fn private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// The data directory (created 0700) and the key provider under `<data dir>/keys`.
pub(crate) async fn open_keys(settings: &Settings) -> anyhow::Result<FileKeyProvider> {
    let config = &settings.config;
    private_dir(&data_dir(settings)).with_context(|| format!("creating {}", settings.data_dir))?;
    let policy = KeyPolicy {
        rotation: Duration::from_secs(config.auth.jwt_key_rotation_days * 86_400),
        token_ttl: config.auth.token_ttl(),
        // Every node sharing the key directory loads a new key within one key check; wait at
        // least two (and at least the default 5 minutes) before it signs.
        publish_delay: KeyPolicy::default().publish_delay.max(Duration::from_secs(
            config.auth.key_check_secs.max(1).saturating_mul(2),
        )),
    };
    let secret = settings
        .encryption_key
        .as_ref()
        .map(|s| s.expose().to_owned());
    FileKeyProvider::open(keys_dir(settings), policy, secret.as_deref())
        .await
        .context("opening keys")
}

pub(crate) fn data_dir(settings: &Settings) -> PathBuf {
    PathBuf::from(&settings.data_dir)
}

pub(crate) fn keys_dir(settings: &Settings) -> PathBuf {
    data_dir(settings).join("keys")
}

/// The store `DB_URL` names (SQLite under the data directory by default).
pub(crate) async fn open_store(
    settings: &Settings,
    migrate: Migrations,
) -> anyhow::Result<Arc<dyn Store>> {
    let data_dir = data_dir(settings);
    Ok(match settings.db_url.as_deref() {
        None => Arc::new(
            SqliteStore::open_with(data_dir.join("melo.db"), migrate)
                .await
                .context("opening SQLite")?,
        ),
        Some("memory:") => {
            tracing::warn!("DB_URL=memory: nothing is persisted; for tests and measurements only");
            Arc::new(melo::MemoryStore::new())
        }
        #[cfg(feature = "mysql")]
        Some(url) if url.starts_with("mysql:") => Arc::new(
            melo::MysqlStore::connect_migrations(url, migrate)
                .await
                .context("connecting to MySQL")?,
        ),
        #[cfg(not(feature = "mysql"))]
        Some(url) if url.starts_with("mysql:") => {
            anyhow::bail!("DB_URL is a MySQL URL, but this build lacks the `mysql` feature")
        }
        Some(url) => Arc::new(
            SqliteStore::connect_with(url, migrate)
                .await
                .context("opening SQLite")?,
        ),
    })
}
