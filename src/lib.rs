//! Pressluft: a reconciliation controller that turns Linux servers into a managed WordPress
//! platform. See `docs/ARCHITECTURE.md` for the map.
pub mod adopt;
pub mod api;
pub mod cli;
pub mod clock;
pub mod dns;
pub mod ids;
pub mod local_node;
pub mod manifest;
pub mod notify;
pub mod password;
pub mod prober;
pub mod runner;
pub mod runtime;
pub mod secrets;
pub mod server;
pub mod settings;
pub mod ssh;
pub mod store;
