//! [`MeloBuilder`]: wires the pluggable parts into a [`Melo`].

use std::sync::Arc;

use crate::config::Config;
use crate::crypto::jwt::TokenCodec;
use crate::crypto::password::PasswordHasher;
use crate::crypto::{KeyProvider, Pii};
use crate::ephemeral::{Ephemeral, MemoryEphemeral};
use crate::error::BuildError;
use crate::push::{NoopPush, PushProvider};
use crate::server::Melo;
use crate::service::{Core, Services};
use crate::store::Store;

/// Builds a [`Melo`]. Required parts are arguments of [`Melo::builder`]; the rest have
/// defaults: [`MemoryEphemeral`], [`NoopPush`], `Config::default()`.
#[derive(Debug)]
#[must_use]
pub struct MeloBuilder {
    store: Arc<dyn Store>,
    keys: Arc<dyn KeyProvider>,
    ephemeral: Option<Arc<dyn Ephemeral>>,
    push: Option<Arc<dyn PushProvider>>,
    config: Config,
}

impl MeloBuilder {
    pub(crate) fn new(store: Arc<dyn Store>, keys: Arc<dyn KeyProvider>) -> Self {
        Self {
            store,
            keys,
            ephemeral: None,
            push: None,
            config: Config::default(),
        }
    }

    /// Ephemeral state and node bus (default: [`MemoryEphemeral`], single node).
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # use melo::{Melo, MemoryStore, MemoryEphemeral, StaticKeys};
    /// # fn f(keys: Arc<StaticKeys>) {
    /// let b = Melo::builder(Arc::new(MemoryStore::new()), keys).ephemeral(Arc::new(MemoryEphemeral::new()));
    /// # }
    /// ```
    pub fn ephemeral(mut self, ephemeral: Arc<dyn Ephemeral>) -> Self {
        self.ephemeral = Some(ephemeral);
        self
    }

    /// Push provider (default: [`NoopPush`]).
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # use melo::{Melo, MemoryStore, RecordingPush, StaticKeys};
    /// # fn f(keys: Arc<StaticKeys>) {
    /// let push = Arc::new(RecordingPush::new());
    /// let b = Melo::builder(Arc::new(MemoryStore::new()), keys).push(push.clone());
    /// # }
    /// ```
    pub fn push(mut self, push: Arc<dyn PushProvider>) -> Self {
        self.push = Some(push);
        self
    }

    /// Settings (default: `Config::default()`, the PROTOCOL defaults).
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # use melo::{Config, Melo, MemoryStore, StaticKeys};
    /// # fn f(keys: Arc<StaticKeys>) {
    /// let mut config = Config::default();
    /// config.auth.bcrypt_cost = 10;
    /// let b = Melo::builder(Arc::new(MemoryStore::new()), keys).config(config);
    /// # }
    /// ```
    pub fn config(mut self, config: Config) -> Self {
        self.config = config;
        self
    }

    /// Validates the config, assembles the services and starts the background tasks.
    /// Must run inside a Tokio runtime.
    pub fn build(self) -> Result<Melo, BuildError> {
        self.config.validate().map_err(BuildError::InvalidConfig)?;
        let handle = tokio::runtime::Handle::try_current().map_err(|_| BuildError::NoRuntime)?;
        let auth = &self.config.auth;
        let tokens = TokenCodec::new(
            self.keys.clone(),
            auth.jwt_issuer.clone(),
            auth.jwt_audience.clone(),
            auth.token_ttl().as_secs() as i64,
        );
        let core = Core {
            store: self.store,
            ephemeral: self
                .ephemeral
                .unwrap_or_else(|| Arc::new(MemoryEphemeral::new())),
            pii: Pii::new(self.keys.clone()),
            keys: self.keys,
            push: self.push.unwrap_or_else(|| Arc::new(NoopPush)),
            tokens,
            passwords: PasswordHasher::new(auth.bcrypt_cost),
            config: self.config,
            hub: Arc::new(crate::service::hub::Hub::new()),
            cache: crate::service::ReadCache::default(),
        };
        let services = Services::new(core);
        Melo::start(services, &handle).map_err(BuildError::Routes)
    }
}
