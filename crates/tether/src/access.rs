//! Reading and writing the session's data: typed, raw, and read-modify-write.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::SessionError;
use crate::session::Session;

impl Session {
    /// The value under `key`, or `None`.
    ///
    /// ```
    /// # async fn handler(session: tether::Session) -> Result<(), tether::SessionError> {
    /// let theme: Option<String> = session.get("theme").await?;
    /// # Ok(()) }
    /// ```
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        // Deserialised from the stored value in place, not from a copy of it.
        let mut state = self.begin().await?;
        let value = match state.changes.lookup(key) {
            Some(v) => v,
            None => self.load(&mut state).await?.and_then(|r| r.data.get(key)),
        };
        value.map(|v| decode(key, v)).transpose()
    }

    /// The JSON value under `key` as stored, or `None`: for data whose type the
    /// handler does not know in advance.
    ///
    /// ```
    /// # async fn handler(session: tether::Session) -> Result<(), tether::SessionError> {
    /// if let Some(serde_json::Value::Array(items)) = session.get_value("cart").await? {
    ///     println!("{} items", items.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn get_value(&self, key: &str) -> Result<Option<Value>, SessionError> {
        let mut state = self.begin().await?;
        Ok(match state.changes.lookup(key) {
            Some(v) => v.cloned(),
            None => self
                .load(&mut state)
                .await?
                .and_then(|r| r.data.get(key).cloned()),
        })
    }

    /// Whether `key` holds a value.
    ///
    /// ```
    /// # async fn handler(session: tether::Session) -> Result<(), tether::SessionError> {
    /// if !session.contains_key("visited").await? {
    ///     session.insert("visited", true).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn contains_key(&self, key: &str) -> Result<bool, SessionError> {
        Ok(self.get_value(key).await?.is_some())
    }

    /// Whether the session holds no data (a new or cleared session; a session bound
    /// to a user with no data is empty too).
    pub async fn is_empty(&self) -> Result<bool, SessionError> {
        Ok(self.data().await?.is_empty())
    }

    /// Sets `key` to `value`. Does not load the session: a write-only request costs
    /// one store call.
    ///
    /// ```
    /// # async fn handler(session: tether::Session) -> Result<(), tether::SessionError> {
    /// session.insert("theme", "dark").await?;
    /// # Ok(()) }
    /// ```
    pub async fn insert(&self, key: &str, value: impl Serialize) -> Result<(), SessionError> {
        let value = encode(key, value)?;
        self.insert_value(key, value).await
    }

    /// Sets `key` to a JSON value as it is.
    pub async fn insert_value(&self, key: &str, value: Value) -> Result<(), SessionError> {
        let mut state = self.begin().await?;
        state.changes.set(key, value);
        Ok(())
    }

    /// Removes `key`, returning what it held, typed.
    ///
    /// ```
    /// # async fn handler(session: tether::Session) -> Result<(), tether::SessionError> {
    /// let flash: Option<String> = session.remove("flash").await?;
    /// # Ok(()) }
    /// ```
    pub async fn remove<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SessionError> {
        self.remove_value(key)
            .await?
            .map(|v| decode(key, &v))
            .transpose()
    }

    /// Removes `key`, returning the JSON value it held.
    pub async fn remove_value(&self, key: &str) -> Result<Option<Value>, SessionError> {
        let old = self.get_value(key).await?;
        self.begin().await?.changes.remove(key);
        Ok(old)
    }

    /// Replaces the value under `key` with `f(old)`, returning the new value.
    ///
    /// Under lock mode ([`SessionLayer::with_lock`](crate::SessionLayer::with_lock))
    /// this is atomic: no other request of the session runs its session work between
    /// the read and the save. Without it, concurrent requests each read, and the last
    /// to save `key` wins (their other keys merge, as always).
    ///
    /// ```
    /// # async fn handler(session: tether::Session) -> Result<(), tether::SessionError> {
    /// let views: u64 = session.update("views", |old: Option<u64>| old.unwrap_or(0) + 1).await?;
    /// # Ok(()) }
    /// ```
    pub async fn update<T, F>(&self, key: &str, f: F) -> Result<T, SessionError>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(Option<T>) -> T,
    {
        let mut state = self.begin().await?;
        let old = match state.changes.lookup(key) {
            Some(v) => v.cloned(),
            None => self
                .load(&mut state)
                .await?
                .and_then(|r| r.data.get(key).cloned()),
        };
        let new = f(old.map(|v| decode(key, &v)).transpose()?);
        state.changes.set(key, encode(key, &new)?);
        Ok(new)
    }

    /// Removes every key (the session and its user binding stay).
    pub async fn clear(&self) -> Result<(), SessionError> {
        self.begin().await?.changes.clear();
        Ok(())
    }

    /// Every key and value, with this request's changes applied.
    pub async fn data(&self) -> Result<Map<String, Value>, SessionError> {
        let mut state = self.begin().await?;
        let mut data = if state.changes.clear {
            Map::new()
        } else {
            self.load(&mut state)
                .await?
                .map(|r| r.data.clone())
                .unwrap_or_default()
        };
        for (key, value) in &state.changes.updates {
            match value {
                Some(v) => data.insert(key.clone(), v.clone()),
                None => data.remove(key),
            };
        }
        Ok(data)
    }
}

fn decode<T: DeserializeOwned>(key: &str, value: &Value) -> Result<T, SessionError> {
    T::deserialize(value).map_err(|source| SessionError::Deserialize {
        key: key.to_owned(),
        source,
    })
}

fn encode(key: &str, value: impl Serialize) -> Result<Value, SessionError> {
    serde_json::to_value(value).map_err(|source| SessionError::Serialize {
        key: key.to_owned(),
        source,
    })
}
