//! [`MeloBuilder`]: wires the pluggable parts into a [`Melo`].

use std::sync::Arc;

use crate::config::Config;
use crate::crypto::jwt::TokenCodec;
use crate::crypto::password::PasswordHasher;
use crate::crypto::{KeyProvider, Pii};
use crate::ephemeral::{Ephemeral, MemoryEphemeral};
use crate::error::BuildError;
use crate::hooks::{Hooks, RegistrationPolicy};
use crate::metrics::{MeteredEphemeral, MeteredStore, Metrics};
#[cfg(not(feature = "web-push"))]
use crate::push::NoopPush;
use crate::push::{PushProvider, VapidKey};
use crate::server::Melo;
use crate::service::{Core, Services};
use crate::store::Store;

/// Builds a [`Melo`]. Required parts are arguments of [`Melo::builder`]; the rest have
/// defaults: [`MemoryEphemeral`], the Web Push provider (feature `web-push`; [`NoopPush`](crate::push::NoopPush)
/// without it), the key provider's VAPID pair, `Config::default()`.
#[derive(Debug)]
#[must_use]
pub struct MeloBuilder {
    store: Arc<dyn Store>,
    keys: Arc<dyn KeyProvider>,
    ephemeral: Option<Arc<dyn Ephemeral>>,
    push: Option<Arc<dyn PushProvider>>,
    vapid: Option<Arc<VapidKey>>,
    metrics: Option<Arc<Metrics>>,
    cluster: bool,
    config: Config,
    hooks: Hooks,
}

impl MeloBuilder {
    pub(crate) fn new(store: Arc<dyn Store>, keys: Arc<dyn KeyProvider>) -> Self {
        Self {
            store,
            keys,
            ephemeral: None,
            push: None,
            vapid: None,
            metrics: None,
            cluster: false,
            config: Config::default(),
            hooks: Hooks::default(),
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

    /// Push provider (default: `WebPushProvider` with the VAPID pair and `VAPID_SUBJECT`
    /// when feature `web-push` is on, else [`NoopPush`](crate::push::NoopPush)).
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

    /// The Web Push VAPID key pair (`GET /vapid_public_key`, and the default provider's
    /// signing key). Default: the key provider's pair ([`KeyProvider::vapid_key`]); a provider
    /// without one gets a pair generated at build time, which does not survive a restart.
    pub fn vapid(mut self, key: VapidKey) -> Self {
        self.vapid = Some(Arc::new(key));
        self
    }

    /// The metric families to count into (default: new ones in their own registry). Pass
    /// [`Metrics::with_registry`] to expose Melo's families beside your own. With
    /// `metrics_enabled` the store and ephemeral state are wrapped in [`MeteredStore`] and
    /// [`MeteredEphemeral`] (per-operation latency and errors).
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Runs this node as one of several that share the store and the ephemeral state (default:
    /// false). Deliveries, socket closes, cache invalidations and presence then also travel on
    /// the ephemeral bus, so every node must use the same shared [`Ephemeral`] (Redis) and store.
    /// With a single node leave it off: it costs one bus publish per delivery.
    pub fn cluster(mut self, on: bool) -> Self {
        self.cluster = on;
        self
    }

    /// Settings (default: `Config::default()`, the documented defaults).
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

    /// Decides on every registration before the account is created (default: every one is
    /// allowed). The policy runs after validation, rate limits and the registration mode, and
    /// before the password is hashed; see [`RegistrationPolicy`].
    ///
    /// ```no_run
    /// # use std::sync::Arc;
    /// # use melo::{Melo, MemoryStore, StaticKeys};
    /// use melo::hooks::{RegistrationAttempt, RegistrationDecision, RegistrationPolicy};
    ///
    /// struct Closed;
    ///
    /// #[melo::async_trait]
    /// impl RegistrationPolicy for Closed {
    ///     async fn check(&self, _: &RegistrationAttempt<'_>) -> RegistrationDecision {
    ///         RegistrationDecision::deny("Registration opens on Monday")
    ///     }
    /// }
    ///
    /// # fn f(keys: Arc<StaticKeys>) {
    /// let b = Melo::builder(Arc::new(MemoryStore::new()), keys).registration_policy(Arc::new(Closed));
    /// # }
    /// ```
    pub fn registration_policy(mut self, policy: Arc<dyn RegistrationPolicy>) -> Self {
        self.hooks.policy = Some(policy);
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
        let vapid = match self.vapid.or_else(|| self.keys.vapid_key()) {
            Some(k) => k,
            None => {
                tracing::warn!(
                    "the key provider keeps no VAPID pair: using one generated now; \
                     Web Push subscriptions will not survive a restart"
                );
                Arc::new(VapidKey::generate())
            }
        };
        let push = match self.push {
            Some(p) => p,
            None => default_push(&vapid, &self.config)?,
        };
        let metrics = match self.metrics {
            Some(m) => m,
            None => Arc::new(Metrics::new()?),
        };
        let mut store = self.store;
        let mut ephemeral = self
            .ephemeral
            .unwrap_or_else(|| Arc::new(MemoryEphemeral::new()));
        let pii = Pii::new(self.keys.clone());
        if !ephemeral.in_process() {
            ephemeral = Arc::new(crate::ephemeral::blind::Blinded::new(
                ephemeral,
                pii.clone(),
            ));
        }
        if self.config.metrics_enabled {
            store = Arc::new(MeteredStore::new(store, &metrics));
            ephemeral = Arc::new(MeteredEphemeral::new(ephemeral, &metrics));
        }
        let cluster = self
            .cluster
            .then(|| crate::service::cluster::Cluster::new(metrics.bus_meters()));
        let core = Core {
            store,
            ephemeral,
            metrics,
            background: tokio_util::task::TaskTracker::new(),
            cluster,
            pii,
            keys: self.keys,
            push,
            vapid,
            tokens,
            passwords: PasswordHasher::new(auth.bcrypt_cost),
            config: self.config,
            hub: Arc::new(crate::service::hub::Hub::new()),
            cache: crate::service::ReadCache::new(
                self.cluster.then_some(crate::service::cache::CACHE_TTL),
            ),
            hooks: self.hooks,
        };
        let services = Services::new(core);
        Melo::start(services, &handle).map_err(BuildError::Routes)
    }
}

#[cfg(feature = "web-push")]
fn default_push(
    vapid: &Arc<VapidKey>,
    config: &Config,
) -> Result<Arc<dyn PushProvider>, BuildError> {
    let options = crate::push::WebPushOptions {
        allow_http: config.push.allow_http,
        allow_private: config.push.allow_private,
        ..Default::default()
    };
    let provider = crate::push::WebPushProvider::new(
        (**vapid).clone(),
        config.push.vapid_subject.clone(),
        options,
    )
    .map_err(|e| BuildError::InvalidConfig(format!("web push: {e}")))?;
    Ok(Arc::new(provider))
}

#[cfg(not(feature = "web-push"))]
fn default_push(_: &Arc<VapidKey>, _: &Config) -> Result<Arc<dyn PushProvider>, BuildError> {
    Ok(Arc::new(NoopPush))
}
