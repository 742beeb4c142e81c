//! Waiting for a lock a store polls for: the pacing, and the retry loop every polling
//! store runs (Redis's `SET NX`, the SQL stores' insert-if-absent, the file store's
//! lock files).

use std::time::Duration;

use crate::{Error, Result};

/// Paces a store that polls for a lock: pauses from 1 ms doubling to 20 ms, until
/// the wait (a session lock's [`LockOptions::wait`](crate::LockOptions::wait)) runs out.
///
/// ```
/// use std::time::Duration;
/// use tether_core::LockWait;
///
/// let mut wait = LockWait::new(Duration::ZERO);
/// assert!(wait.next_pause().is_err(), "no waiting allowed");
/// let mut wait = LockWait::new(Duration::from_secs(1));
/// assert_eq!(wait.next_pause()?, Duration::from_millis(1));
/// assert_eq!(wait.next_pause()?, Duration::from_millis(2));
/// # Ok::<(), tether_core::Error>(())
/// ```
#[derive(Debug)]
pub struct LockWait {
    wait: Duration,
    give_up: std::time::Instant,
    pause: Duration,
}

impl LockWait {
    /// Starts a wait of at most `wait`, now.
    pub fn new(wait: Duration) -> Self {
        Self {
            wait,
            give_up: std::time::Instant::now() + wait,
            pause: Duration::from_millis(1),
        }
    }

    /// How long to pause before the next attempt, or [`Error::LockTimeout`] once the
    /// wait is over.
    pub fn next_pause(&mut self) -> Result<Duration> {
        let now = std::time::Instant::now();
        if now >= self.give_up {
            return Err(Error::LockTimeout(self.wait));
        }
        let pause = self.pause.min(self.give_up - now);
        self.pause = (self.pause * 2).min(Duration::from_millis(20));
        Ok(pause)
    }
}

impl LockWait {
    /// Runs `attempt` until it answers `Some`, pausing as [`LockWait::next_pause`]
    /// says between tries; [`Error::LockTimeout`] once `wait` is over, or the first
    /// error `attempt` returns.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> tether_core::Result<()> {
    /// use std::time::Duration;
    /// let mut tries = 0;
    /// let got = tether_core::LockWait::until(Duration::from_secs(1), || {
    ///     tries += 1;
    ///     let ready = tries == 3;
    ///     async move { Ok(ready.then_some("token")) }
    /// })
    /// .await?;
    /// assert_eq!((got, tries), ("token", 3));
    /// let busy = tether_core::LockWait::until(Duration::ZERO, || async { Ok(None::<()>) }).await;
    /// assert!(matches!(busy, Err(tether_core::Error::LockTimeout(_))));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::LockTimeout`], or `attempt`'s.
    pub async fn until<T, F, Fut>(wait: Duration, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<T>>>,
    {
        Self::with_state(wait, (), |()| {
            let tried = attempt();
            async move { tried.await.map(|got| got.ok_or(())) }
        })
        .await
    }

    /// [`LockWait::until`] for an attempt that takes `state` by value and hands it
    /// back when the lock was busy (`Err(state)`), such as an operation to run once
    /// the lock is held.
    ///
    /// # Errors
    /// [`Error::LockTimeout`], or `attempt`'s.
    pub async fn with_state<S, T, F, Fut>(wait: Duration, mut state: S, mut attempt: F) -> Result<T>
    where
        F: FnMut(S) -> Fut,
        Fut: Future<Output = Result<std::result::Result<T, S>>>,
    {
        let mut pacing = Self::new(wait);
        loop {
            match attempt(state).await? {
                Ok(value) => return Ok(value),
                Err(back) => state = back,
            }
            tokio::time::sleep(pacing.next_pause()?).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_error_ends_the_wait_at_once() {
        let mut tries = 0;
        let result: Result<()> = LockWait::until(Duration::from_secs(5), || {
            tries += 1;
            async { Err(Error::config("broken")) }
        })
        .await;
        assert!(matches!(result, Err(Error::Config(_))));
        assert_eq!(tries, 1);
    }

    #[tokio::test]
    async fn the_state_comes_back_for_the_next_try() {
        let got = LockWait::with_state(Duration::from_secs(5), 0_u32, |n| async move {
            Ok(if n == 4 { Ok(n) } else { Err(n + 1) })
        })
        .await;
        assert_eq!(got.ok(), Some(4));
    }
}
