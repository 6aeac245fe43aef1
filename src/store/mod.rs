//! The store: sea-orm entities and the queries the rest of the binary uses. Handlers hold no SQL.
pub mod entity;
