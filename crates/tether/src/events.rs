//! What the layer tells the app about sessions' lives: a callback on the layer and
//! `tracing` events with stable names.

use std::sync::Arc;

use tether_core::Id;

/// Something that happened to a session, reported after the store did it.
///
/// Ids are bearer credentials and user names are personal data: the callback gets
/// them (to audit, to link a login to a device), the `tracing` events never carry
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// A new session was stored.
    Created {
        /// Its id (on a client-side store, the id the layer gave it: the JWT store
        /// seals it as `sid`, the cookie store seals none).
        id: Id,
    },
    /// The session moved to a new id (`cycle_id`, or a new lifetime by `set_expiry`).
    Rotated {
        /// The id that stopped working.
        from: Id,
        /// The id it goes on with.
        to: Id,
    },
    /// The session was bound to a user (a login).
    UserBound {
        /// The session's id, when known.
        id: Option<Id>,
        /// The user.
        user: String,
    },
    /// The session was ended by `logout`.
    LoggedOut {
        /// Its id, when known.
        id: Option<Id>,
    },
    /// Every session of a user was ended by `logout_everywhere`.
    LoggedOutEverywhere {
        /// The user.
        user: String,
        /// How many sessions ended.
        ended: u64,
    },
}

impl SessionEvent {
    /// The event's stable name, as in the `event` field of the `tracing` events
    /// (target `tether::events`): `created`, `rotated`, `user_bound`, `logged_out`,
    /// `logged_out_everywhere`.
    ///
    /// ```
    /// let event = tether::SessionEvent::LoggedOutEverywhere { user: "alice".into(), ended: 3 };
    /// assert_eq!(event.name(), "logged_out_everywhere");
    /// ```
    pub fn name(&self) -> &'static str {
        match self {
            Self::Created { .. } => "created",
            Self::Rotated { .. } => "rotated",
            Self::UserBound { .. } => "user_bound",
            Self::LoggedOut { .. } => "logged_out",
            Self::LoggedOutEverywhere { .. } => "logged_out_everywhere",
        }
    }
}

/// The callback [`SessionLayer::with_events`](crate::SessionLayer::with_events) takes.
pub type EventHook = Arc<dyn Fn(&SessionEvent) + Send + Sync>;

/// Reports `event` to `hook`, if any, and as a `tracing` event (target
/// `tether::events`; fields `event`, `store`, and `ended` where it applies).
pub(crate) fn emit(hook: Option<&EventHook>, store: &str, event: &SessionEvent) {
    crate::observe::session_event(event.name());
    // Neither ids (bearer credentials) nor user names (often e-mail addresses) go
    // to the logs; the hook gets them.
    if let SessionEvent::LoggedOutEverywhere { ended, .. } = event {
        tracing::info!(target: "tether::events", event = event.name(), store, ended);
    } else {
        tracing::info!(target: "tether::events", event = event.name(), store);
    }
    if let Some(hook) = hook {
        hook(event);
    }
}
