//! One statement under the store's timeout, its failure named with the server.

use std::time::Duration;

use tether_core::{Error, Result};

/// Runs statements with a time limit and names the server in every failure.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use std::time::Duration;
/// let runner = tether_sql::Runner::new("Postgres", "postgres://app@db/app", Duration::from_millis(10));
/// let slow = runner
///     .run("loading a session", async || {
///         tokio::time::sleep(Duration::from_secs(1)).await;
///         Ok::<_, sqlx::Error>(())
///     })
///     .await;
/// assert!(slow.unwrap_err().is_transient()); // a 503, not a fresh session
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Runner {
    engine: &'static str,
    target: String,
    timeout: Duration,
}

impl Runner {
    /// A runner for `engine` (as users name it: "MySQL") at `url` (its password is
    /// redacted before it is kept), with `timeout` for each statement.
    pub fn new(engine: &'static str, url: &str, timeout: Duration) -> Self {
        Self {
            engine,
            target: tether_core::redact_url(url),
            timeout,
        }
    }

    /// The same runner with another time limit.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// "`engine` at `url`", for error messages.
    pub fn target(&self) -> String {
        format!("{} {}", self.engine, self.target)
    }

    /// Runs `op`; a database error or the time limit is [`Error::Unavailable`] whose
    /// context says `what` and where.
    pub async fn run<T, F>(&self, what: &str, op: F) -> Result<T>
    where
        F: AsyncFnOnce() -> Result<T, sqlx::Error>,
    {
        match tokio::time::timeout(self.timeout, op()).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Error::unavailable(
                format!("{what} at {}", self.target()),
                e,
            )),
            Err(_) => Err(Error::timed_out(
                format_args!("{what} at {}", self.target()),
                self.timeout,
            )),
        }
    }
}

/// The database's own error inside one of [`Runner::run`]'s failures, if any.
pub fn database_error(e: &Error) -> Option<&dyn sqlx::error::DatabaseError> {
    let Error::Unavailable {
        source: Some(source),
        ..
    } = e
    else {
        return None;
    };
    source
        .downcast_ref::<sqlx::Error>()
        .and_then(|e| e.as_database_error())
}

/// Whether `e` is a unique-key violation (an id already taken), on any engine.
pub fn is_unique_violation(e: &Error) -> bool {
    database_error(e).is_some_and(sqlx::error::DatabaseError::is_unique_violation)
}
