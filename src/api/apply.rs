//! GitOps: manifests planned against the current desired state. `POST /api/apply/plan` validates
//! a whole set (every problem at once, 422 `invalid_manifests` with document index and path per
//! problem) and answers what an apply would do — created, changed (field by field), unchanged,
//! pruned — without writing anything. `pressluft diff` is built on it.
use std::collections::BTreeMap;

use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{Object, OpenApi};
use serde_json::Value;

use super::applier;
use super::auth::Auth;
use super::error::ApiError;
use super::text::Text;
use super::write::Write;
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
    /// `POST /apply` only: answer the plan and write nothing.
    pub dry_run: Option<bool>,
    /// `POST /apply` only: the values of the environment variables that `{env: VAR}` secret
    /// references name (the CLI sends them). Never stored in a receipt nor echoed.
    pub secrets: Option<BTreeMap<String, String>>,
}

/// What an apply did (or, for a dry run, would do).
#[derive(Debug, Object)]
pub struct ApplyReceipt {
    /// The receipt's id (`GET /api/apply/receipts/{id}`); none for a dry run.
    pub id: Option<String>,
    pub dry_run: bool,
    pub created_at: String,
    pub plan: ApplyPlan,
    /// `Kind/…/name` → the generation of each declared resource after the apply.
    pub generations: BTreeMap<String, i64>,
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

error_response!(ApplyError {
    BadRequest = 400,
    Unauthorized = 401,
    Forbidden = 403,
    Conflict = 409,
    UnprocessableEntity = 422,
});

/// One resource of an apply set and its health.
#[derive(Debug, Object)]
pub struct ApplySetResource {
    /// `Kind/name` or `Kind/site/name`.
    pub resource: String,
    /// Its phase (none for kinds without one: schedules).
    pub status: Option<String>,
    /// `healthy`, `progressing` or `degraded`.
    pub health: String,
    /// Why it is not healthy (the condition's reason and message).
    pub reason: Option<String>,
}

/// An apply set's sync and health, like an Argo CD application's.
#[derive(Debug, Object)]
pub struct ApplySetStatus {
    pub apply_set: String,
    pub last_receipt_id: Option<String>,
    pub last_applied_at: Option<String>,
    /// `synced`: the desired state is what the set's last apply declared; `out-of-sync`: it
    /// changed since (through the API, or a prune is pending); `unknown`: no manifests on record.
    pub sync: String,
    /// The resources whose desired state differs from the last apply.
    pub out_of_sync: Vec<String>,
    /// `healthy` (every resource Ready at its current generation), `progressing` (still being
    /// reconciled) or `degraded` (a resource is Degraded, Stalled or failed).
    pub health: String,
    pub resources: Vec<ApplySetResource>,
}

#[derive(Debug, Object)]
pub struct ApplySetList {
    pub items: Vec<ApplySetStatus>,
}

error_response!(ReceiptError {
    BadRequest = 400,
    Unauthorized = 401,
    NotFound = 404,
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

    /// Apply manifests.
    ///
    /// Server-side apply of the whole set in one transaction: every resource is created or
    /// changed through the same rules as the rest of the API (a rule a step breaks refuses the
    /// whole apply: 400/409 naming the resource, nothing written); with `prune` and
    /// `apply_set`, what the set applied before and no longer holds is deleted. Re-applying the
    /// same set changes nothing (no generation bump, no event). Answers the receipt, kept for
    /// `GET /api/apply/receipts/{id}`; `dry_run: true` answers the plan only.
    #[oai(path = "/", method = "post", operation_id = "apply")]
    async fn apply(
        &self,
        req: &Request,
        auth: Auth,
        body: Json<ApplyRequest>,
    ) -> Result<Json<ApplyReceipt>, ApplyError> {
        let st = state(req)?;
        let b = body.0;
        let apply_set = b
            .apply_set
            .as_deref()
            .map(|s| validate::slug("apply_set", s))
            .transpose()?;
        let prune = b.prune.unwrap_or(false);
        if prune && apply_set.is_none() {
            return Err(ApiError::invalid("prune", "prune needs an apply_set").into());
        }
        let secrets = b.secrets.unwrap_or_default();
        let tx = st.begin().await?;
        let named = store::manifests::current(&tx)
            .await
            .map_err(ApiError::from)?;
        let known = store::manifests::known(&named);
        let set = manifest::load(&b.manifests, &known).map_err(ApiError::InvalidManifests)?;
        let mut ids = applier::Ids(
            named
                .iter()
                .map(|n| (n.key.clone(), n.resource_id.clone()))
                .collect(),
        );
        let current = with_settings(&tx, named).await?;
        let steps = plan::plan(&set, &current, apply_set.as_deref().filter(|_| prune))
            .map_err(ApiError::InvalidManifests)?;
        if b.dry_run == Some(true) {
            return Ok(Json(ApplyReceipt {
                id: None,
                dry_run: true,
                created_at: crate::clock::now(),
                plan: render(apply_set, prune, steps),
                generations: BTreeMap::new(),
            }));
        }
        let actor = auth.principal().actor();
        let actor_text = actor
            .api_token_id
            .as_ref()
            .map(|t| format!("token:{t}"))
            .or_else(|| actor.user_id.as_ref().map(|u| format!("user:{u}")))
            .unwrap_or_default();
        let mut w = Write::new(&tx, st, actor);
        applier::run(&mut w, &set, &steps, &mut ids, &secrets).await?;
        applier::record_objects(&tx, &set, &ids, apply_set.as_deref()).await?;
        let generations = applier::generations(&tx, &set, &ids).await?;
        let plan = render(apply_set.clone(), prune, steps);
        let id = crate::ids::new_id();
        let stored_steps =
            poem_openapi::types::ToJSON::to_json(&plan).unwrap_or(serde_json::Value::Null);
        let receipt = applier::store_receipt(
            &tx,
            &id,
            &actor_text,
            apply_set.as_deref(),
            prune,
            &stored_steps,
            &generations,
            &b.manifests,
        )
        .await?;
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(Json(ApplyReceipt {
            id: Some(id),
            dry_run: false,
            created_at: receipt.created_at,
            plan,
            generations,
        }))
    }

    /// Read the receipt of an apply.
    #[oai(
        path = "/receipts/:id",
        method = "get",
        operation_id = "getApplyReceipt"
    )]
    async fn receipt(
        &self,
        req: &Request,
        _auth: Auth,
        id: Path<String>,
    ) -> Result<Json<ApplyReceipt>, ReceiptError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let r = store::manifests::receipt(&st.db, &id)
            .await
            .map_err(ApiError::from)?
            .ok_or_else(|| ApiError::NotFound("apply receipt not found".into()))?;
        let plan = serde_json::from_str::<serde_json::Value>(&r.steps)
            .ok()
            .and_then(|v| {
                <ApplyPlan as poem_openapi::types::ParseFromJSON>::parse_from_json(Some(v)).ok()
            })
            .ok_or_else(|| ApiError::Internal("unreadable apply receipt".into()))?;
        Ok(Json(ApplyReceipt {
            id: Some(r.id),
            dry_run: r.dry_run,
            created_at: r.created_at,
            plan,
            generations: serde_json::from_str(&r.generations).unwrap_or_default(),
        }))
    }

    /// The sync and health status of every apply set.
    #[oai(path = "/sets", method = "get", operation_id = "listApplySets")]
    async fn sets(&self, req: &Request, _auth: Auth) -> Result<Json<ApplySetList>, ExportError> {
        let st = state(req)?;
        let mut items = Vec::new();
        for set in store::manifests::apply_sets(&st.db)
            .await
            .map_err(ApiError::from)?
        {
            items.push(set_status(&st.db, &set).await?);
        }
        Ok(Json(ApplySetList { items }))
    }

    /// The sync and health status of one apply set.
    #[oai(path = "/sets/:name", method = "get", operation_id = "getApplySet")]
    async fn set(
        &self,
        req: &Request,
        _auth: Auth,
        name: Path<String>,
    ) -> Result<Json<ApplySetStatus>, ReceiptError> {
        let st = state(req)?;
        let name = validate::slug("name", &name.0)?;
        let status = set_status(&st.db, &name).await?;
        if status.last_receipt_id.is_none() && status.resources.is_empty() {
            return Err(ApiError::NotFound("apply set not found".into()).into());
        }
        Ok(Json(status))
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
    db: &impl sea_orm::ConnectionTrait,
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

/// An apply set's status: its last applied manifests planned again (with pruning) against the
/// current desired state, and the health of what it holds.
async fn set_status(
    db: &sea_orm::DatabaseConnection,
    set: &str,
) -> Result<ApplySetStatus, ApiError> {
    let receipt = store::manifests::last_receipt(db, set).await?;
    let named = store::manifests::current(db).await?;
    let known = store::manifests::known(&named);
    let (sync, out_of_sync) = match receipt.as_ref().and_then(|r| r.manifests.clone()) {
        None => ("unknown", Vec::new()),
        Some(text) => {
            let current = with_settings(db, named).await?;
            let planned =
                manifest::load(&text, &known).and_then(|m| plan::plan(&m, &current, Some(set)));
            match planned {
                Ok(steps) => {
                    let changed: Vec<String> = steps
                        .into_iter()
                        .filter(|s| s.action != Action::Unchanged)
                        .map(|s| s.resource)
                        .collect();
                    (
                        if changed.is_empty() {
                            "synced"
                        } else {
                            "out-of-sync"
                        },
                        changed,
                    )
                }
                // What the set referred to is gone (deleted through the API, say).
                Err(problems) => (
                    "out-of-sync",
                    problems.into_iter().map(|p| p.message).collect(),
                ),
            }
        }
    };
    let mut resources = Vec::new();
    for m in store::manifests::members(db, set).await? {
        let Some(kind) = Kind::parse(&m.kind) else {
            continue;
        };
        let resource = manifest::display(
            kind,
            Some(&m.scope).filter(|s| !s.is_empty()).map(String::as_str),
            &m.name,
        );
        let h = store::manifests::health(db, kind, &m.resource_id).await?;
        let (status, health, reason) = match h {
            None => (None, "healthy", None),
            Some(h) => {
                let (health, reason) = judge(&h);
                (Some(h.status), health, reason)
            }
        };
        resources.push(ApplySetResource {
            resource,
            status,
            health: health.into(),
            reason,
        });
    }
    let health = if resources.iter().any(|r| r.health == "degraded") {
        "degraded"
    } else if resources.iter().any(|r| r.health == "progressing") {
        "progressing"
    } else {
        "healthy"
    };
    Ok(ApplySetStatus {
        apply_set: set.to_string(),
        last_receipt_id: receipt.as_ref().map(|r| r.id.clone()),
        last_applied_at: receipt.map(|r| r.created_at),
        sync: sync.into(),
        out_of_sync,
        health: health.into(),
        resources,
    })
}

/// A resource's health from its phase and conditions.
fn judge(h: &store::manifests::Health) -> (&'static str, Option<String>) {
    let conditions = super::model::parse_conditions(&h.conditions);
    let why = |c: &super::model::Condition| {
        Some(format!(
            "{} {}: {}",
            c.type_,
            c.reason.as_deref().unwrap_or_default(),
            c.message.as_deref().unwrap_or_default()
        ))
    };
    if let Some(c) = conditions
        .iter()
        .find(|c| (c.type_ == "Degraded" || c.type_ == "Stalled") && c.status == "True")
    {
        return ("degraded", why(c));
    }
    if matches!(h.status.as_str(), "failed" | "blocked" | "rolled_back") {
        return ("degraded", Some(format!("phase {}", h.status)));
    }
    if matches!(h.status.as_str(), "completed" | "succeeded" | "expired") {
        return ("healthy", None);
    }
    let ready = conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .filter(|c| c.status == "True");
    if ready.is_none() || h.observed_generation < h.generation {
        let reason = conditions
            .iter()
            .find(|c| c.type_ == "Ready")
            .and_then(why)
            .or_else(|| Some(format!("phase {}", h.status)));
        return ("progressing", reason);
    }
    ("healthy", None)
}
