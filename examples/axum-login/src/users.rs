//! The demo's users and axum-login's backend over them.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use axum_login::{AuthUser, AuthnBackend, UserId};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

/// A demo user. A real app keeps a password hash (argon2) in its database.
#[derive(Clone)]
pub(crate) struct User {
    name: String,
    password: String,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl User {
    /// The user's name, which is also its id.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }
}

impl AuthUser for User {
    type Id = String;

    fn id(&self) -> String {
        self.name.clone()
    }

    /// Changing the password ends the user's sessions: axum-login compares this on
    /// every request.
    fn session_auth_hash(&self) -> &[u8] {
        self.password.as_bytes()
    }
}

/// What the login form posts.
#[derive(Clone, Deserialize)]
pub(crate) struct Credentials {
    pub(crate) username: String,
    pub(crate) password: String,
}

/// The demo's fixed users: `alice` / `wonderland` and `bob` / `builder`.
#[derive(Clone, Debug)]
pub(crate) struct Users(Arc<HashMap<String, User>>);

impl Default for Users {
    fn default() -> Self {
        let users = [("alice", "wonderland"), ("bob", "builder")]
            .into_iter()
            .map(|(name, password)| {
                let user = User {
                    name: name.to_owned(),
                    password: password.to_owned(),
                };
                (name.to_owned(), user)
            })
            .collect();
        Self(Arc::new(users))
    }
}

impl AuthnBackend for Users {
    type User = User;
    type Credentials = Credentials;
    type Error = Infallible;

    async fn authenticate(&self, creds: Credentials) -> Result<Option<User>, Infallible> {
        let user = self.0.get(&creds.username);
        Ok(user
            .filter(|u| bool::from(u.password.as_bytes().ct_eq(creds.password.as_bytes())))
            .cloned())
    }

    async fn get_user(&self, id: &UserId<Self>) -> Result<Option<User>, Infallible> {
        Ok(self.0.get(id).cloned())
    }
}
