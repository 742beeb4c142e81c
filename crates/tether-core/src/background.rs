//! The handle of a store's background task (a sweeper, a cleanup): dropping it stops
//! the task.

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
