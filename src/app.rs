//! Wiring: from configuration to a running server.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use orderhub_actors::ports::{Store, SystemClock};
use orderhub_actors::restaurant::{Deps, RegistryConfig, RestaurantRegistry};
use orderhub_actors::StoreError;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

use crate::auth::{Tokens, WeakSecret};
use crate::bus::LocalBus;
use crate::config::{ServeArgs, StoreArgs};
use crate::graphql::{self, Services};
use crate::http::{self, HttpState};
use crate::store::{self, ConnectError};

/// Why the server could not start; one line each, for the operator.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Store(#[from] ConnectError),
    #[error(transparent)]
    Secret(#[from] WeakSecret),
    #[error("cannot read or store the token secret: {0}")]
    SecretStore(StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create the demo restaurant: {0}")]
    Demo(String),
}

/// Where the token secret came from, so the operator is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretSource {
    Configured,
    Stored,
    Generated,
}

const SECRET_SETTING: &str = "jwt_secret";

/// The configured secret, else the one kept in the database, else a new random one that is
/// stored there for every later start and every other node.
pub async fn token_secret(
    args: &StoreArgs,
    store: &dyn Store,
) -> Result<(Tokens, SecretSource), StartError> {
    if let Some(secret) = &args.jwt_secret {
        return Ok((Tokens::new(secret.as_bytes())?, SecretSource::Configured));
    }
    if let Some(secret) = store
        .setting(SECRET_SETTING)
        .await
        .map_err(StartError::SecretStore)?
    {
        return Ok((Tokens::new(secret.as_bytes())?, SecretSource::Stored));
    }
    let mut random = [0u8; 48];
    getrandom::fill(&mut random)
        .map_err(|e| StartError::SecretStore(StoreError::Internal(e.to_string())))?;
    let candidate = URL_SAFE_NO_PAD.encode(random);
    // Another node may have stored one first; whichever was stored is used by all.
    let secret = store
        .init_setting(SECRET_SETTING, &candidate)
        .await
        .map_err(StartError::SecretStore)?;
    let source = if secret == candidate {
        SecretSource::Generated
    } else {
        SecretSource::Stored
    };
    Ok((Tokens::new(secret.as_bytes())?, source))
}

/// Everything a node runs, ready to serve.
pub struct App {
    pub store: Arc<dyn Store>,
    pub registry: RestaurantRegistry,
    pub tokens: Tokens,
    pub secret_source: SecretSource,
    pub router: axum::Router,
}

impl App {
    pub async fn build(args: &ServeArgs) -> Result<App, StartError> {
        let store = store::connect(&args.store.database_url).await?;
        let (tokens, secret_source) = token_secret(&args.store, store.as_ref()).await?;
        let bus = LocalBus::new(1024);
        let registry = RestaurantRegistry::new(
            Deps {
                store: store.clone(),
                sink: Arc::new(bus),
                clock: Arc::new(SystemClock),
            },
            RegistryConfig {
                idle_after: args.actor_idle,
                call_timeout: args.command_timeout,
            },
        );
        let schema = graphql::build(Some(Services {
            store: store.clone(),
            registry: registry.clone(),
        }));
        let router = http::router(
            HttpState {
                schema,
                tokens: tokens.clone(),
                store: store.clone(),
            },
            args.max_body_bytes,
        );
        Ok(App {
            store,
            registry,
            tokens,
            secret_source,
            router,
        })
    }

    /// Serves until `shutdown` completes, then lets in-flight requests finish and stops the
    /// restaurant actors after the commands they already hold.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let registry = self.registry.clone();
        axum::serve(listener, self.router)
            .with_graceful_shutdown(shutdown)
            .await?;
        registry.shutdown();
        Ok(())
    }
}

pub async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Listen { addr, source })
}
