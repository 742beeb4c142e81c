//! The per-user index: a sorted set of a user's session ids by creation time, in its
//! own Cluster slot, kept in step at login, logout and rotation, and expiring with the
//! user's longest-lived session.

use tether_core::{Id, Record, Result, SessionStore as _};

use crate::{RedisStore, scripts};

impl RedisStore {
    /// Adds the session to its user's index, which lives as long as the user's
    /// longest-lived session (its absolute deadline; forever while one has none).
    pub(crate) async fn index(
        &self,
        id: &Id,
        user: &str,
        created: i64,
        absolute: Option<i64>,
    ) -> Result<()> {
        let key = self.user_key(user);
        let member = id.to_string();
        self.with_conn("indexing a user's session", async |c| {
            scripts::INDEX
                .key(&key)
                .arg(created)
                .arg(&member)
                .arg(absolute.unwrap_or(0))
                .arg(tether_core::unix_ms::now_ms())
                .invoke_async::<i64>(c)
                .await
                .map(|_| ())
        })
        .await
    }

    /// [`RedisStore::index`] as one `EVALSHA` command, for a pipeline (which does not
    /// load a script Redis lacks: see [`RedisStore::create_and_index`]).
    pub(crate) fn index_cmd(
        &self,
        id: &Id,
        user: &str,
        created: i64,
        absolute: Option<i64>,
    ) -> redis::Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(scripts::INDEX.get_hash())
            .arg(1)
            .arg(self.user_key(user))
            .arg(created)
            .arg(id.to_string())
            .arg(absolute.unwrap_or(0))
            .arg(tether_core::unix_ms::now_ms());
        cmd
    }

    /// A new session's `SET … NX` and its index entry in one round trip (one Redis,
    /// not a Cluster: the two keys are in different slots). The `SET`'s answer, and
    /// whether the index was written (`false` when Redis did not have the script
    /// loaded yet: the caller indexes again, loading it).
    pub(crate) async fn create_and_index(
        &self,
        set: redis::Cmd,
        index: redis::Cmd,
    ) -> Result<(Option<String>, bool)> {
        let mut pipe = redis::pipe();
        pipe.ignore_errors().add_command(set).add_command(index);
        let replies: Vec<redis::RedisResult<redis::Value>> = self
            .with_conn("creating a session", async |c| pipe.query_async(c).await)
            .await?;
        let mut replies = replies.into_iter();
        let unavailable = |e: redis::RedisError| {
            tether_core::Error::unavailable("creating a session at Redis", e)
        };
        let set = match replies.next() {
            Some(Ok(redis::Value::Nil)) => None,
            Some(Ok(_)) => Some("OK".to_owned()),
            Some(Err(e)) => return Err(unavailable(e)),
            None => {
                return Err(unavailable(redis::RedisError::from(std::io::Error::other(
                    "no reply to SET",
                ))));
            }
        };
        let indexed = match replies.next() {
            Some(Ok(_)) => true,
            Some(Err(e))
                if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) =>
            {
                false
            }
            Some(Err(e)) => return Err(unavailable(e)),
            None => false,
        };
        Ok((set, indexed))
    }

    /// After a save moved the session from `old` user to `new` (either may be none or
    /// the same): the index entries, in another slot, and the per-user cap. A plain
    /// save (no binding change, no cap) costs nothing here.
    pub(crate) async fn reindex(
        &self,
        id: &Id,
        old: Option<&str>,
        new: Option<&str>,
        times: (i64, Option<i64>),
        cap: Option<u32>,
    ) -> Result<()> {
        if old == new && (new.is_none() || cap.is_none()) {
            return Ok(());
        }
        // Boxed: only a login, a logout or a cap gets here, and the calls' future is
        // large; inline, every save's future would carry it.
        Box::pin(self.reindex_calls(id, old, new, times, cap)).await
    }

    async fn reindex_calls(
        &self,
        id: &Id,
        old: Option<&str>,
        new: Option<&str>,
        (created, absolute): (i64, Option<i64>),
        cap: Option<u32>,
    ) -> Result<()> {
        if let Some(old) = old
            && new != Some(old)
        {
            self.unindex(id, old).await?;
        }
        if let Some(new) = new {
            if old != Some(new) {
                self.index(id, new, created, absolute).await?;
            }
            if let Some(cap) = cap {
                self.enforce_cap(new, id, cap).await?;
            }
        }
        Ok(())
    }

    /// Ends the user's oldest sessions beyond `cap`, keeping `keep`.
    pub(crate) async fn enforce_cap(&self, user: &str, keep: &Id, cap: u32) -> Result<()> {
        let sessions = self
            .live_sessions_of(user)
            .await?
            .into_iter()
            .map(|(id, r)| (id, r.created));
        for old in tether_core::sessions_beyond_cap(sessions, keep, cap) {
            self.delete(&old).await?;
        }
        Ok(())
    }

    pub(crate) async fn unindex(&self, id: &Id, user: &str) -> Result<()> {
        let key = self.user_key(user);
        let member = id.to_string();
        self.with_conn("unindexing a user's session", async |c| {
            redis::cmd("ZREM")
                .arg(&key)
                .arg(&member)
                .query_async::<()>(c)
                .await
        })
        .await
    }

    /// The user's live sessions, oldest first; index entries of ended sessions are
    /// removed as they are met.
    pub(crate) async fn live_sessions_of(&self, user: &str) -> Result<Vec<(Id, Record)>> {
        let key = self.user_key(user);
        let members: Vec<String> = self
            .with_conn("listing a user's sessions", async |c| {
                redis::cmd("ZRANGE")
                    .arg(&key)
                    .arg(0)
                    .arg(-1)
                    .query_async(c)
                    .await
            })
            .await?;
        let mut live = Vec::new();
        for member in members {
            let record = match Id::parse(&member) {
                Some(id) => self.load(&id).await?.map(|r| (id, r)),
                None => None,
            };
            match record {
                Some((id, r)) if r.user.as_deref() == Some(user) => live.push((id, r)),
                _ => {
                    self.with_conn("cleaning a user's index", async |c| {
                        redis::cmd("ZREM")
                            .arg(&key)
                            .arg(&member)
                            .query_async::<()>(c)
                            .await
                    })
                    .await?;
                }
            }
        }
        live.sort_by_key(|(_, r)| r.created);
        Ok(live)
    }
}
