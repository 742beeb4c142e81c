//! tower-sessions 0.15.

implement!(tower_sessions_core_015);
