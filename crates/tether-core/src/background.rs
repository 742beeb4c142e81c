//! The handle of a store's background task (a sweeper, a cleanup): dropping it stops
//! the task.

use std::time::Duration;

/// A background task that stops when this handle is dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let task = tether_core::Background::spawn(async {
///     loop { tokio::time::sleep(std::time::Duration::from_secs(60)).await; }
/// });
/// assert!(task.is_running());
/// drop(task); // the loop ends here
/// # }
/// ```
#[derive(Debug)]
#[must_use = "the task stops when its handle is dropped"]
pub struct Background(tokio::task::JoinHandle<()>);

impl Background {
    /// Spawns `task` on the current tokio runtime.
    pub fn spawn(task: impl Future<Output = ()> + Send + 'static) -> Self {
        Self(tokio::spawn(task))
    }

    /// Runs `job` every `every` until the handle is dropped: a store's cleanup. When a
    /// run fails, the task logs it (`tracing` warn, field `error`), waits twice as long
    /// each time (up to ten times `every`) and tries again; it never stops by itself,
    /// so an outage of the store does not end its cleanup. A run that deletes
    /// something logs how many (`deleted`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::time::Duration;
    /// let cleanup = tether_core::Background::every(Duration::from_secs(60), || async {
    ///     Ok::<u64, tether_core::Error>(0) // e.g. `store.cleanup_once().await`
    /// });
    /// assert!(cleanup.is_running());
    /// # }
    /// ```
    pub fn every<F, Fut>(every: Duration, mut job: F) -> Self
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = crate::Result<u64>> + Send,
    {
        Self::spawn(async move {
            let mut pause = every;
            loop {
                tokio::time::sleep(pause).await;
                match job().await {
                    Ok(deleted) => {
                        if deleted > 0 {
                            tracing::info!(deleted, "deleted expired sessions");
                        }
                        pause = every;
                    }
                    Err(e) => {
                        pause = (pause * 2).min(every * 10);
                        tracing::warn!(error = %e, retry_in = ?pause, "session cleanup failed");
                    }
                }
            }
        })
    }

    /// Resolves when the task has ended (it returned, panicked or was stopped).
    pub async fn stopped(&mut self) {
        let _ = (&mut self.0).await;
    }

    /// Whether the task is still running.
    pub fn is_running(&self) -> bool {
        !self.0.is_finished()
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.0.abort();
    }
}
