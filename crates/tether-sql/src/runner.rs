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

    /// The time limit of each statement.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// "`engine` at `url`", for error messages.
    pub fn target(&self) -> String {
        format!("{} {}", self.engine, self.target)
    }

    /// Runs `op`; a database error or the time limit is [`Error::Unavailable`] whose
    /// context says `what` and where.
    ///
    /// A statement the server rolled back to break a deadlock or a serialisation
    /// conflict (SQLSTATE `40001`, which InnoDB's 1213 reports, and Postgres' `40P01`)
    /// is run again, a few times and within the same time limit: every statement a
    /// store sends is one autocommit transaction, so the victim left nothing behind,
    /// and the app's request should not see the server's lock scheduling as an outage.
    pub async fn run<T, F, Fut>(&self, what: &str, op: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, sqlx::Error>>,
    {
        let retried = async {
            let mut pause = Duration::from_millis(1);
            for _ in 1..DEADLOCK_ATTEMPTS {
                match op().await {
                    Err(e) if is_rolled_back(&e) => {
                        tokio::time::sleep(pause).await;
                        pause = pause.saturating_mul(2);
                    }
                    other => return other,
                }
            }
            op().await
        };
        match tokio::time::timeout(self.timeout, retried).await {
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

/// How many times [`Runner::run`] tries a statement chosen as a deadlock victim.
const DEADLOCK_ATTEMPTS: u32 = 8;

/// Whether the server rolled the statement back to break a deadlock (`40P01`; InnoDB's
/// 1213 is reported as `40001`) or a serialisation conflict (`40001`), so running it
/// again is safe. Not the rest of class 40: `40003` ("statement completion unknown")
/// may have committed.
fn is_rolled_back(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(sqlx::error::DatabaseError::code)
        .is_some_and(|code| matches!(code.as_ref(), "40001" | "40P01"))
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
