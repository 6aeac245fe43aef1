//! An environment's routes: which of its domains its server block renders (and whether over
//! HTTPS), and the WordPress site URL that follows from them (spec R7: the primary domain when it
//! is served, else the preview URL). The environment's converge renders them; their digest, echoed
//! back by the converge, tells the environment loop when a domain, a certificate or the primary
//! changed and the node must render again — without a generation bump of the environment.
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::observed::{self, DomainFacts};
use crate::store::entity::{domains, environments};
use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteDomain {
    pub id: String,
    pub hostname: String,
    pub primary: bool,
    pub www_redirect: bool,
    /// Served over HTTPS with the certificate in `/etc/pressluft/tls/<id>/`.
    pub tls: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Routes {
    pub site_url: String,
    pub domains: Vec<RouteDomain>,
}

impl Routes {
    pub fn digest(&self) -> String {
        hex::encode(Sha256::digest(observed::render(self).as_bytes()))
    }

    /// The routes of an environment without domains: what a converge before routes rendered.
    pub fn preview_only(env: &environments::Model) -> Self {
        Routes {
            site_url: env.preview_url.clone(),
            domains: vec![],
        }
    }
}

/// The routes the environment should render now. A domain is rendered once it can be served:
/// mode `none` at once; `acme`/`custom` once its certificate for the current generation is
/// installed. Domains being removed are not rendered (so their removal can proceed).
pub async fn desired(
    db: &impl ConnectionTrait,
    env: &environments::Model,
) -> Result<Routes, StoreError> {
    let rows = domains::Entity::find()
        .filter(domains::Column::EnvironmentId.eq(env.id.as_str()))
        .filter(domains::Column::DeletionRequestedAt.is_null())
        .order_by_asc(domains::Column::Hostname)
        .all(db)
        .await?;
    let mut routes = Routes::preview_only(env);
    for d in rows {
        let tls = d.tls_mode != "none";
        if tls {
            let facts: DomainFacts = observed::parse(d.observed.as_deref());
            let installed = facts
                .certificate
                .as_ref()
                .is_some_and(|c| c.generation >= d.generation);
            if !installed {
                continue;
            }
        }
        let primary = env.primary_domain_id.as_deref() == Some(d.id.as_str());
        if primary {
            routes.site_url = format!("{}://{}", if tls { "https" } else { "http" }, d.hostname);
        }
        routes.domains.push(RouteDomain {
            id: d.id,
            hostname: d.hostname,
            primary,
            www_redirect: d.www_redirect,
            tls,
        });
    }
    Ok(routes)
}
