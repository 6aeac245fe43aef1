//! GitOps: manifests planned against the current desired state. `POST /api/apply/plan` validates
//! a whole set (every problem at once, 422 `invalid_manifests` with document index and path per
//! problem) and answers what an apply would do — created, changed (field by field), unchanged,
//! pruned — without writing anything. `pressluft diff` is built on it.
use std::collections::BTreeMap;

use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;

use super::auth::Auth;
use super::error::ApiError;
use super::text::Text;
use super::{state, validate, Tag};
use crate::error_response;
use crate::manifest::plan::{self, Action, Current, Key};
use crate::manifest::{self, Kind};
use crate::store;

/// A set of manifests to plan.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct ApplyRequest {
    /// The manifests: multi-document YAML, or JSON (an object, an array, or a `List`).
    pub manifests: Text,
    /// The apply set these manifests belong to (a slug): with `prune`, what the set applied
    /// before and no longer holds is pruned.
    pub apply_set: Option<Text>,
    /// Prune within `apply_set`.
    pub prune: Option<bool>,
}

/// One field that would change.
#[derive(Debug, Object)]
pub struct PlannedChange {
    pub field: String,
    /// `null` when unset before.
    pub from: Value,
    pub to: Value,
}

/// What an apply would do to one resource.
#[derive(Debug, Object)]
pub struct PlannedStep {
    /// `create`, `change`, `unchanged` or `prune`.
    pub action: String,
    pub kind: String,
    /// `Kind/name`, or `Kind/site/name` for kinds named within a site.
    pub resource: String,
    pub name: String,
    pub site: Option<String>,
    /// Index of the document it comes from (none for a pruned resource).
    pub document: Option<u32>,
    pub changes: Vec<PlannedChange>,
}

#[derive(Debug, Object)]
pub struct PlanSummary {
    pub create: u32,
    pub change: u32,
    pub unchanged: u32,
    pub prune: u32,
}

/// The plan of an apply.
#[derive(Debug, Object)]
pub struct ApplyPlan {
    pub apply_set: Option<String>,
    pub prune: bool,
    /// In the order an apply performs them (dependencies first; prunes last, dependents first).
    pub steps: Vec<PlannedStep>,
    pub summary: PlanSummary,
    /// True when the apply would change nothing.
    pub in_sync: bool,
}

/// The current desired state as manifests.
#[derive(Debug, Object)]
pub struct Export {
    /// Multi-document YAML: every declarative resource with every field, so that applying it
    /// changes nothing. Secrets are never exported.
    pub manifests: String,
}

error_response!(ExportError {
    Unauthorized = 401,
});

error_response!(PlanError {
    BadRequest = 400,
    Unauthorized = 401,
    Forbidden = 403,
    UnprocessableEntity = 422,
});

pub struct ApplyApi;

#[OpenApi(prefix_path = "/apply", tag = "Tag::Apply")]
impl ApplyApi {
    /// Plan an apply (dry run).
    ///
    /// Validates every document (422 `invalid_manifests`; `details.problems` lists each problem
    /// with its `document` index, field `path`, stable `code` and message) and compares the set
    /// with the current desired state: a field a manifest does not give keeps its value
    /// (server-side apply), so re-planning an applied set shows everything `unchanged`. Nothing
    /// is written.
    #[oai(path = "/plan", method = "post", operation_id = "planApply")]
    async fn plan(
        &self,
        req: &Request,
        _auth: Auth,
        body: Json<ApplyRequest>,
    ) -> Result<Json<ApplyPlan>, PlanError> {
        let st = state(req)?;
        let apply_set = body
            .0
            .apply_set
            .as_deref()
            .map(|s| validate::slug("apply_set", s))
            .transpose()?;
        let prune = body.0.prune.unwrap_or(false);
        if prune && apply_set.is_none() {
            return Err(ApiError::invalid("prune", "prune needs an apply_set").into());
        }
        let named = store::manifests::current(&st.db)
            .await
            .map_err(ApiError::from)?;
        let known = store::manifests::known(&named);
        let set = manifest::load(&body.0.manifests, &known).map_err(ApiError::InvalidManifests)?;
        let current = with_settings(&st.db, named).await?;
        let steps = plan::plan(&set, &current, apply_set.as_deref().filter(|_| prune))
            .map_err(ApiError::InvalidManifests)?;
        Ok(Json(render(apply_set, prune, steps)))
    }

    /// Export the desired state as manifests.
    ///
    /// Every node, site, environment, domain, backup schedule and the settings, as multi-document
    /// YAML with every field: planning (or applying) the export changes nothing. Secrets are
    /// never exported.
    #[oai(path = "/export", method = "get", operation_id = "exportManifests")]
    async fn export(&self, req: &Request, _auth: Auth) -> Result<Json<Export>, ExportError> {
        let st = state(req)?;
        let named = store::manifests::current(&st.db)
            .await
            .map_err(ApiError::from)?;
        let current = with_settings(&st.db, named).await?;
        Ok(Json(Export {
            manifests: manifest::export::yaml(&current),
        }))
    }
}

async fn with_settings(
    db: &sea_orm::DatabaseConnection,
    named: Vec<store::manifests::Named>,
) -> Result<BTreeMap<Key, Current>, ApiError> {
    let mut current: BTreeMap<Key, Current> =
        named.into_iter().map(|n| (n.key, n.current)).collect();
    let all = store::settings::all(db).await.map_err(ApiError::from)?;
    current.insert(
        (Kind::Settings, String::new(), "settings".into()),
        settings_current(&all),
    );
    Ok(current)
}

/// The settings as a manifest declares them: the API's reading (defaults filled in) without the
/// `*_set` flags of secrets, whose values are compared by the applier only.
fn settings_current(all: &BTreeMap<String, String>) -> Current {
    let mut spec = BTreeMap::new();
    let rendered = poem_openapi::types::ToJSON::to_json(&super::settings::render(all));
    if let Some(Value::Object(m)) = rendered {
        for f in Kind::Settings.fields() {
            if let Some(v) = m.get(f.name).filter(|v| !v.is_null()) {
                spec.insert(f.name.to_string(), v.clone());
            }
        }
    }
    Current {
        spec,
        labels: BTreeMap::new(),
        apply_set: None,
    }
}

fn render(apply_set: Option<String>, prune: bool, steps: Vec<plan::Step>) -> ApplyPlan {
    let mut summary = PlanSummary {
        create: 0,
        change: 0,
        unchanged: 0,
        prune: 0,
    };
    let steps: Vec<PlannedStep> = steps
        .into_iter()
        .map(|s| {
            let action = match s.action {
                Action::Create => {
                    summary.create += 1;
                    "create"
                }
                Action::Change => {
                    summary.change += 1;
                    "change"
                }
                Action::Unchanged => {
                    summary.unchanged += 1;
                    "unchanged"
                }
                Action::Prune => {
                    summary.prune += 1;
                    "prune"
                }
            };
            PlannedStep {
                action: action.into(),
                kind: s.kind.as_str().into(),
                resource: s.resource,
                name: s.name,
                site: s.site,
                document: s.document.and_then(|d| u32::try_from(d).ok()),
                changes: s
                    .changes
                    .into_iter()
                    .map(|c| PlannedChange {
                        field: c.field,
                        from: c.from,
                        to: c.to,
                    })
                    .collect(),
            }
        })
        .collect();
    let in_sync = summary.create + summary.change + summary.prune == 0;
    ApplyPlan {
        apply_set,
        prune,
        steps,
        summary,
        in_sync,
    }
}
