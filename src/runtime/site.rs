//! The site loop: a site's phase and conditions summarise its environments; a deleted site goes
//! once its environments are gone.
use std::sync::Arc;
use std::time::Duration;

use reconcilers::site::{EnvironmentSummary, SiteObserved, SiteSpec};
use reconcilers::{Action, Context};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::{conditions_of, Result, Runtime};
use crate::clock;
use crate::store::entity::{environments, sites};
use crate::store::{self, events::NewEvent, resources};

pub(super) async fn reconcile(rt: &Arc<Runtime>, id: &str) -> Result<Option<Duration>> {
    let Some(site) = resources::site_by_id(&rt.db, id).await? else {
        return Ok(None);
    };
    let envs = environments::Entity::find()
        .filter(environments::Column::SiteId.eq(id))
        .all(&rt.db)
        .await?;
    let summaries = envs
        .iter()
        .filter_map(|e| {
            Some(EnvironmentSummary {
                phase: e.status.parse().ok()?,
                conditions: conditions_of(&e.conditions),
            })
        })
        .collect();
    let spec = SiteSpec {
        generation: site.generation,
        deletion_requested: site.deletion_requested_at.is_some(),
    };
    let obs = SiteObserved {
        environments: summaries,
        conditions: conditions_of(&site.conditions),
    };
    let ctx = Context {
        now: clock::now(),
        max_attempts: rt.cfg.max_attempts,
        failed_attempts: 0,
        retry_delay_ms: 0,
        retry_due: true,
        resync_after_ms: rt.cfg.resync.as_millis() as u64,
    };
    let plan = reconcilers::site::reconcile(&spec, &obs, &ctx);
    if plan.action == Action::Finalize {
        let tx = crate::store::begin_write(&rt.db).await?;
        sites::Entity::delete_by_id(id.to_string())
            .exec(&tx)
            .await?;
        store::events::append(
            &tx,
            NewEvent {
                resource_type: "site",
                resource_id: id,
                site_id: Some(id),
                environment_id: None,
                reason: "Deleted",
                message: format!("site '{}' deleted", site.slug),
            },
        )
        .await?;
        super::fence_check(rt, &tx).await?;
        tx.commit().await?;
        return Ok(None);
    }
    let phase = plan.phase.as_str();
    let conditions = serde_json::to_string(&plan.conditions).unwrap_or_else(|_| "[]".into());
    // The site is acted on through its environments: its spec counts as observed once they
    // have caught up with it.
    let observed_generation = if envs.iter().all(|e| e.observed_generation == e.generation) {
        site.generation
    } else {
        site.observed_generation
    };
    if site.status != phase
        || site.conditions != conditions
        || site.observed_generation != observed_generation
    {
        let tx = crate::store::begin_write(&rt.db).await?;
        sites::Entity::update_many()
            .col_expr(sites::Column::Status, Expr::value(phase))
            .col_expr(sites::Column::Conditions, Expr::value(conditions))
            .col_expr(
                sites::Column::ObservedGeneration,
                Expr::value(observed_generation),
            )
            .col_expr(sites::Column::ObservedAt, Expr::value(clock::now()))
            .filter(sites::Column::Id.eq(id))
            .exec(&tx)
            .await?;
        if site.status != phase {
            store::events::append(
                &tx,
                NewEvent {
                    resource_type: "site",
                    resource_id: id,
                    site_id: Some(id),
                    environment_id: None,
                    reason: "PhaseChanged",
                    message: format!("{} → {phase}", site.status),
                },
            )
            .await?;
        }
        super::fence_check(rt, &tx).await?;
        tx.commit().await?;
    }
    Ok(plan.requeue_after_ms.map(Duration::from_millis))
}
