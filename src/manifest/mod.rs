//! Manifests: desired state as YAML or JSON documents (`apiVersion`, `kind`, `metadata`, `spec`),
//! the GitOps face of the same resources the API writes.
//!
//! Pure code, no I/O: [`parse`] splits a text into documents, [`kinds`] holds one field table per
//! kind from which both the validation and the published JSON Schema are made, and [`check`]
//! validates a whole set at once — every mistake of every document in one answer, each with its
//! document index and field path — and resolves references by name (site slug, environment slug,
//! node name), not by id.
//!
//! Field names are the API's (`snake_case`): a manifest's `spec` reads like the API's create body,
//! with names where the API takes ids.

pub mod check;
pub mod export;
pub mod kinds;
pub mod parse;
pub mod plan;
pub mod render;

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

pub use check::{check, Known};
pub use kinds::Kind;
pub use parse::parse;

/// The one API version manifests are written in.
pub const API_VERSION: &str = "pressluft.dev/v1";

/// A valid document: its spec normalised (trimmed, lower-cased where the API does) and holding
/// only the fields the document gave; defaults are the applier's business.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Manifest {
    /// Position in the submitted set (0-based), for messages.
    pub index: usize,
    pub kind: Kind,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub spec: BTreeMap<String, Value>,
}

impl Manifest {
    /// The site this resource belongs to (by slug), for kinds scoped to a site.
    pub fn site(&self) -> Option<&str> {
        match self.kind {
            Kind::Site => Some(&self.name),
            _ => self.spec.get("site").and_then(Value::as_str),
        }
    }

    /// What names this resource among its kind: `(scope, name)`, the scope being the site for
    /// kinds whose names are unique within a site.
    pub fn key(&self) -> (Kind, String, String) {
        let scope = if self.kind.site_scoped() {
            self.site().unwrap_or_default().to_string()
        } else {
            String::new()
        };
        (self.kind, scope, self.name.clone())
    }

    /// `Kind/name` (`Kind/site/name` when site-scoped), as the CLI prints it.
    pub fn display(&self) -> String {
        display(self.kind, self.site(), &self.name)
    }

    pub fn str(&self, field: &str) -> Option<&str> {
        self.spec.get(field).and_then(Value::as_str)
    }
}

pub fn display(kind: Kind, site: Option<&str>, name: &str) -> String {
    match site {
        Some(s) if kind.site_scoped() => format!("{}/{s}/{name}", kind.as_str()),
        _ => format!("{}/{name}", kind.as_str()),
    }
}

/// One mistake in a submitted set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The document's index in the set (0-based).
    pub document: usize,
    /// Dotted field path inside the document (`spec.site`), empty for the document as a whole.
    pub path: String,
    /// Stable code: see [`codes`].
    pub code: &'static str,
    pub message: String,
}

/// Stable problem codes (never renamed).
pub mod codes {
    pub const INVALID_SYNTAX: &str = "invalid_syntax";
    pub const NOT_AN_OBJECT: &str = "not_an_object";
    pub const UNSUPPORTED_API_VERSION: &str = "unsupported_api_version";
    pub const UNKNOWN_KIND: &str = "unknown_kind";
    pub const MISSING_FIELD: &str = "missing_field";
    pub const UNKNOWN_FIELD: &str = "unknown_field";
    pub const WRONG_TYPE: &str = "wrong_type";
    pub const INVALID_VALUE: &str = "invalid_value";
    pub const DUPLICATE_NAME: &str = "duplicate_name";
    pub const DANGLING_REFERENCE: &str = "dangling_reference";
    pub const CONFLICT: &str = "conflicting_resources";
    pub const IMMUTABLE_FIELD: &str = "immutable_field";
}

impl Problem {
    pub fn new(
        document: usize,
        path: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            document,
            path: path.into(),
            code,
            message: message.into(),
        }
    }
}

/// Parse and check a text in one go: the valid set, or every problem found.
pub fn load(text: &str, known: &Known) -> Result<Vec<Manifest>, Vec<Problem>> {
    let docs = parse(text)?;
    check(&docs, known)
}
