//! [`numbered_statements!`](crate::numbered_statements): the
//! [`Statements`](crate::flow::Statements) of an engine whose SQL numbers its
//! parameters (`$1` on Postgres, `?1` on SQLite) and so binds each value once, in the
//! same order: Postgres and SQLite share this implementation, each with its own SQL.

/// Implements [`Statements`](crate::flow::Statements) for `$store`, whose
/// `runner: Runner` field runs statements on its `$reader` (loads and lists) and
/// `$writer` pools. `$sql` is the module holding the engine's statements
/// (`CLEAR_EXPIRED_ID_SQL`, `LIST_SQL`, `DELETE_SQL`, `LOAD_SQL`, `TOUCH_SQL`,
/// `DELETE_USER_SQL`, `TAKE_LOCK_SQL`, `UNLOCK_SQL`, `CLEANUP_SESSIONS_SQL`,
/// `CLEANUP_LOCKS_SQL`), each taking its parameters in the order the methods here
/// bind them; `$text` says how its text reads back ([`rows::Text`](crate::rows::Text))
/// and `$name` how a user's name is kept (`fn(&str) -> impl AsRef<str>`).
#[macro_export]
macro_rules! numbered_statements {
    ($store:ty {
        reader: $reader:ident,
        writer: $writer:ident,
        sql: $sql:path,
        text: $text:expr,
        name: $name:path $(,)?
    }) => {
        #[::tether_core::async_trait]
        impl $crate::flow::Statements for $store {
            async fn clear_expired(&self, id: &::tether_core::Id) -> ::tether_core::Result<bool> {
                use $sql as sql;
                let now = ::tether_core::unix_ms::now_ms();
                let done = self
                    .runner
                    .run("replacing an expired session", async || {
                        ::sqlx::query(sql::CLEAR_EXPIRED_ID_SQL)
                            .bind(id.as_bytes().as_slice())
                            .bind(now)
                            .execute(&self.$writer)
                            .await
                    })
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn list(
                &self,
                user: &str,
            ) -> ::tether_core::Result<Vec<::tether_core::SessionInfo>> {
                use $sql as sql;
                let hash = $crate::codec::user_hash(user);
                let now = ::tether_core::unix_ms::now_ms();
                let rows = self
                    .runner
                    .run("listing a user's sessions", async || {
                        ::sqlx::query(sql::LIST_SQL)
                            .bind(&hash)
                            .bind(now)
                            .fetch_all(&self.$reader)
                            .await
                    })
                    .await?;
                $crate::rows::sessions_of(user, &rows, $text)
            }

            async fn delete(&self, id: &::tether_core::Id) -> ::tether_core::Result<bool> {
                use $sql as sql;
                let done = self
                    .runner
                    .run("deleting a session", async || {
                        ::sqlx::query(sql::DELETE_SQL)
                            .bind(id.as_bytes().as_slice())
                            .execute(&self.$writer)
                            .await
                    })
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn load(
                &self,
                id: &::tether_core::Id,
            ) -> ::tether_core::Result<Option<::tether_core::Record>> {
                use $sql as sql;
                let now = ::tether_core::unix_ms::now_ms();
                // Stepped to the end, so the statement leaves no read transaction open
                // (SQLite: one would keep the write-ahead log from being reset).
                let rows = self
                    .runner
                    .run("loading a session", async || {
                        ::sqlx::query(sql::LOAD_SQL)
                            .bind(id.as_bytes().as_slice())
                            .bind(now)
                            .fetch_all(&self.$reader)
                            .await
                    })
                    .await?;
                rows.first()
                    .map(|row| $crate::rows::record(row, $text))
                    .transpose()
            }

            async fn touch(
                &self,
                id: &::tether_core::Id,
                touch: &::tether_core::Touch,
            ) -> ::tether_core::Result<bool> {
                use ::tether_core::unix_ms;
                use $sql as sql;
                let now = unix_ms::now_ms();
                let done = self
                    .runner
                    .run("refreshing a session", async || {
                        ::sqlx::query(sql::TOUCH_SQL)
                            .bind(unix_ms::to_ms(touch.last_seen))
                            .bind(unix_ms::to_ms(touch.idle_deadline))
                            .bind(id.as_bytes().as_slice())
                            .bind(now)
                            .execute(&self.$writer)
                            .await
                    })
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn delete_user(&self, user: &str) -> ::tether_core::Result<u64> {
                use $sql as sql;
                let hash = $crate::codec::user_hash(user);
                let name = $name(user);
                let now = ::tether_core::unix_ms::now_ms();
                let done = self
                    .runner
                    .run("deleting a user's sessions", async || {
                        ::sqlx::query(sql::DELETE_USER_SQL)
                            .bind(&hash)
                            .bind(AsRef::<str>::as_ref(&name))
                            .bind(now)
                            .execute(&self.$writer)
                            .await
                    })
                    .await?;
                Ok(done.rows_affected())
            }

            async fn take_lock(
                &self,
                id: &::tether_core::Id,
                token: &::tether_core::LockToken,
                expires_ms: i64,
                now_ms: i64,
            ) -> ::tether_core::Result<bool> {
                use $sql as sql;
                let done = self
                    .runner
                    .run("taking a session lock", async || {
                        ::sqlx::query(sql::TAKE_LOCK_SQL)
                            .bind(id.as_bytes().as_slice())
                            .bind(&token.0)
                            .bind(expires_ms)
                            .bind(now_ms)
                            .execute(&self.$writer)
                            .await
                    })
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn unlock(
                &self,
                id: &::tether_core::Id,
                token: &::tether_core::LockToken,
            ) -> ::tether_core::Result<()> {
                use $sql as sql;
                self.runner
                    .run("releasing a session lock", async || {
                        ::sqlx::query(sql::UNLOCK_SQL)
                            .bind(id.as_bytes().as_slice())
                            .bind(&token.0)
                            .execute(&self.$writer)
                            .await
                    })
                    .await
                    .map(drop)
            }

            async fn delete_expired(&self, now_ms: i64) -> ::tether_core::Result<u64> {
                use $sql as sql;
                let done = self
                    .runner
                    .run("deleting expired sessions", async || {
                        ::sqlx::query(sql::CLEANUP_SESSIONS_SQL)
                            .bind(now_ms)
                            .execute(&self.$writer)
                            .await
                    })
                    .await?;
                Ok(done.rows_affected())
            }

            async fn delete_expired_locks(&self, now_ms: i64) -> ::tether_core::Result<()> {
                use $sql as sql;
                self.runner
                    .run("deleting expired locks", async || {
                        ::sqlx::query(sql::CLEANUP_LOCKS_SQL)
                            .bind(now_ms)
                            .execute(&self.$writer)
                            .await
                    })
                    .await
                    .map(drop)
            }
        }
    };
}
