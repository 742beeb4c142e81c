//! `SessionStore` for [`RedisStore`]: each operation as the commands and scripts it
//! sends (the key layout and round trips are in the crate docs).

use redis::Value;
use tether_core::{
    Changes, Created, Error, Id, LockOptions, LockToken, LockWait, Record, Result, Saved,
    SessionInfo, SessionStore, Touch, async_trait, unix_ms,
};
use time::OffsetDateTime;

use crate::codec::{self, encode, parse_saved};
use crate::{RedisStore, scripts};

#[async_trait]
impl SessionStore for RedisStore {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        self.read(id, "loading a session").await
    }

    async fn create_capped(&self, id: &Id, record: &Record, cap: Option<u32>) -> Result<Created> {
        let created = self.create(id, record).await?;
        if let (Created::Yes, Some(user), Some(cap)) = (created, &record.user, cap) {
            self.enforce_cap(user, id, cap).await?;
        }
        Ok(created)
    }

    async fn create(&self, id: &Id, record: &Record) -> Result<Created> {
        // One plain `SET … NX`: the key exists exactly while a session lives there
        // (every write sets its TTL to the session's expiry). A new id is random, so
        let key = self.packed_key(id);
        let packed = encode(record)?;
        let expires = unix_ms::to_ms(record.expires_at());
        let mut set = redis::cmd("SET");
        set.arg(&key)
            .arg(&packed)
            .arg("PXAT")
            .arg(expires)
            .arg("NX");
        let created = unix_ms::to_ms(record.created);
        let absolute = record.absolute_deadline.map(unix_ms::to_ms);
        match &record.user {
            // A login on one Redis: the session and its user's index in one round
            // trip (on a Cluster they are in different slots: two calls).
            Some(user) if self.backend.is_single_node() => {
                let index = self.index_cmd(id, user, created, absolute);
                let (set, indexed) = self.create_and_index(set, index).await?;
                if set.is_none() {
                    // The id was taken after all (never, with random ids): the entry
                    // just added names another session, which the index drops when
                    // it meets it (its user differs).
                    return Ok(Created::IdTaken);
                }
                if !indexed {
                    self.index(id, user, created, absolute).await?;
                }
            }
            user => {
                let set: Option<String> = self
                    .with_conn("creating a session", async |c| set.query_async(c).await)
                    .await?;
                if set.is_none() {
                    return Ok(Created::IdTaken);
                }
                if let Some(user) = user {
                    self.index(id, user, created, absolute).await?;
                }
            }
        }
        Ok(Created::Yes)
    }

    async fn save(&self, id: &Id, changes: &Changes) -> Result<Saved> {
        let key = self.packed_key(id);
        let (user_op, user) = match &changes.user {
            None => ("0", ""),
            Some(Some(user)) => ("1", user.as_str()),
            Some(None) => ("2", ""),
        };
        let mut updates: Vec<Vec<u8>> = Vec::with_capacity(changes.updates.len() * 2);
        for (k, v) in &changes.updates {
            updates.push(k.as_bytes().to_vec());
            updates.push(match v {
                Some(v) => serde_json::to_vec(v).map_err(|e| Error::Corrupt(e.to_string()))?,
                None => Vec::new(),
            });
        }
        let saved = self
            .with_conn("saving a session", async |c| {
                let value: Value = scripts::SAVE
                    .key(&key)
                    .arg(unix_ms::now_ms())
                    .arg(unix_ms::to_ms(changes.idle_deadline))
                    .arg(if changes.clear { "1" } else { "0" })
                    .arg(user_op)
                    .arg(user)
                    .arg(&updates)
                    .invoke_async(c)
                    .await?;
                parse_saved(value)
            })
            .await?;
        let Some(saved) = saved else {
            return Ok(Saved::Gone);
        };
        self.reindex(
            id,
            saved.old_user.as_deref(),
            saved.new_user.as_deref(),
            (saved.created, saved.absolute),
            changes.user_cap,
        )
        .await?;
        Ok(Saved::Version {
            version: saved.version,
            expires_at: unix_ms::from_ms(saved.expires_at),
            browser_session: tether_core::Lifetime::from_ms(saved.lifetime)
                .map(|l| l.browser_session),
        })
    }

    async fn save_from(&self, id: &Id, base: &Record, changes: &Changes) -> Result<Saved> {
        // The common case: nothing wrote the session since this request read it, so
        // the client applies the changes and writes the whole record if the version
        // is still the one read (one short script, nothing unpacked at Redis). Else
        // the merge, which also tells a moved version from a gone session.
        if base.is_expired(OffsetDateTime::now_utc()) {
            return self.save(id, changes).await;
        }
        let mut record = base.clone();
        record.apply(changes);
        let packed = encode(&record)?;
        let key = self.packed_key(id);
        let written: i64 = self
            .with_conn("saving a session", async |c| {
                scripts::save_if_version(packed.len())
                    .key(&key)
                    .arg(&codec::version_prefix(base.version)[..])
                    .arg(&packed)
                    .arg(unix_ms::to_ms(record.expires_at()))
                    .invoke_async(c)
                    .await
            })
            .await?;
        if written != 1 {
            return self.save(id, changes).await;
        }
        let times = (
            unix_ms::to_ms(record.created),
            record.absolute_deadline.map(unix_ms::to_ms),
        );
        self.reindex(
            id,
            base.user.as_deref(),
            record.user.as_deref(),
            times,
            changes.user_cap,
        )
        .await?;
        Ok(Saved::of(&record))
    }

    async fn touch(&self, id: &Id, touch: &Touch) -> Result<bool> {
        let key = self.packed_key(id);
        let touched: i64 = self
            .with_conn("refreshing a session", async |c| {
                scripts::TOUCH
                    .key(&key)
                    .arg(unix_ms::now_ms())
                    .arg(unix_ms::to_ms(touch.last_seen))
                    .arg(unix_ms::to_ms(touch.idle_deadline))
                    .invoke_async(c)
                    .await
            })
            .await?;
        Ok(touched == 1)
    }

    async fn delete(&self, id: &Id) -> Result<bool> {
        let key = self.packed_key(id);
        let (deleted, user): (i64, Option<String>) = self
            .with_conn("deleting a session", async |c| {
                scripts::DELETE.key(&key).invoke_async(c).await
            })
            .await?;
        // The user's index lives in another slot: a second call, only for a bound
        // session.
        if let Some(user) = user {
            self.unindex(id, &user).await?;
        }
        Ok(deleted > 0)
    }

    async fn cycle_id(&self, old: &Id, new: &Id, changes: &Changes) -> Result<Saved> {
        // Old and new ids hash to different Cluster slots, so the move takes several
        // steps, ordered so that a failure at any point leaves the old session whole:
        // read the old record, create the new one, then delete the old one only if no
        // save moved it meanwhile (else start again from the newer record).
        let old_key = self.packed_key(old);
        for _ in 0..3 {
            let Some(mut record) = self.read(old, "rotating a session id").await? else {
                return Ok(Saved::Gone);
            };
            let read_version = record.version.to_string();
            let before = record.user.clone();
            record.apply(changes);
            if self.create(new, &record).await? == Created::IdTaken {
                return Err(Error::IdCollision);
            }
            let taken: i64 = self
                .with_conn("rotating a session id", async |c| {
                    scripts::TAKE_IF_VERSION
                        .key(&old_key)
                        .arg(&read_version)
                        .invoke_async(c)
                        .await
                })
                .await?;
            if taken != 1 {
                // Moved by a concurrent save (0) or ended meanwhile (-1): the new
                // record must not outlive this attempt.
                self.delete(new).await?;
                if taken == -1 {
                    return Ok(Saved::Gone);
                }
                continue;
            }
            if let Some(user) = &before {
                self.unindex(old, user).await?;
            }
            // `create` indexed the new id; only the cap is left to apply.
            if let (Some(user), Some(cap)) = (&record.user, changes.user_cap) {
                self.enforce_cap(user, new, cap).await?;
            }
            return Ok(Saved::of(&record));
        }
        Err(Error::unavailable(
            "rotating a session id",
            std::io::Error::other("the session kept changing during the rotation; try again"),
        ))
    }

    async fn user_sessions(&self, user: &str) -> Result<Vec<SessionInfo>> {
        Ok(self
            .live_sessions_of(user)
            .await?
            .into_iter()
            .map(|(id, r)| r.info(id))
            .collect())
    }

    async fn delete_user_sessions(&self, user: &str) -> Result<u64> {
        let mut ended = 0;
        for (id, _) in self.live_sessions_of(user).await? {
            // `delete` removes the index entry too.
            if self.delete(&id).await? {
                ended += 1;
            }
        }
        Ok(ended)
    }

    async fn lock(&self, id: &Id, options: &LockOptions) -> Result<LockToken> {
        let key = self.lock_key(id);
        let token = LockToken::generate()?;
        let ttl_ms = u64::try_from(options.ttl.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        LockWait::until(options.wait, || async {
            let acquired: Option<String> = self
                .with_conn("taking a session lock", async |c| {
                    redis::cmd("SET")
                        .arg(&key)
                        .arg(&token.0)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl_ms)
                        .query_async(c)
                        .await
                })
                .await?;
            Ok(acquired.map(|_| token.clone()))
        })
        .await
    }

    async fn unlock(&self, id: &Id, token: &LockToken) -> Result<()> {
        let key = self.lock_key(id);
        self.with_conn("releasing a session lock", async |c| {
            scripts::UNLOCK
                .key(&key)
                .arg(&token.0)
                .invoke_async::<i64>(c)
                .await
                .map(|_| ())
        })
        .await
    }
}
