//! Pressluft: a reconciliation controller that turns Linux servers into a managed WordPress platform.
pub mod store;
