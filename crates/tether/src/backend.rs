//! Where sessions live: at a store keyed by id, or sealed in the cookie itself; and
//! what one layer shares with every request.

use std::sync::Arc;

use tether_core::{ClientStore, Error, SessionStore};

use crate::config::Config;

/// What one layer instance shares with every request.
#[derive(Debug, Clone)]
pub(crate) struct Shared {
    pub(crate) backend: Backend,
    pub(crate) config: Config,
    /// Background tasks the store needs (its cleanup), stopped with the last clone.
    pub(crate) tasks: Option<Arc<tether_core::Background>>,
}

/// Where sessions live.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Server(Arc<dyn SessionStore>),
    Client(Arc<dyn ClientStore>),
}

impl Backend {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Self::Server(s) => s.name(),
            Self::Client(c) => c.name(),
        }
    }

    /// The server-side store, or the refusal a client-side one gives `operation`.
    pub(crate) fn server(&self, operation: &'static str) -> Result<&Arc<dyn SessionStore>, Error> {
        match self {
            Self::Server(store) => Ok(store),
            Self::Client(store) => Err(Error::Unsupported {
                store: store.name(),
                operation,
                why: "the session lives in the client's cookie; there is no server state for it",
            }),
        }
    }
}
