//! tower-sessions 0.14 (axum-login 0.18, axum-messages 0.8).

implement!(tower_sessions_core_014);
