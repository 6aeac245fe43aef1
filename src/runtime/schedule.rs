//! The scheduler: one pass per backup schedule (woken at start-up, by the periodic resync, when
//! one of its backups changes phase, and at its next slot). A due schedule declares ONE backup,
//! however many slots were missed while Pressluft was down; retention expires the schedule's
//! backups beyond its keep rules (the backup reconciler removes their artifacts); a drilling
//! schedule declares a drill of its newest completed backup that has none yet.
use std::sync::Arc;
use std::time::Duration;

use reconcilers::schedule::{self, Cadence, Cron, Ts};

use super::{Result, Runtime};
use crate::clock;
use crate::notify::Kind;
use crate::store::entity::backup_schedules;
use crate::store::{self, events::NewEvent, resources};

pub(crate) fn ts(s: &str) -> Option<Ts> {
    clock::parse(s).map(|t| t.unix_timestamp())
}

pub(crate) fn from_ts(t: Ts) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .map(clock::format)
        .unwrap_or_else(|_| clock::now())
}

pub(crate) fn cadence(s: &backup_schedules::Model) -> Option<Cadence> {
    match (&s.cron, s.interval_minutes) {
        (Some(c), _) => Cron::parse(c).ok().map(Cadence::Cron),
        (None, Some(m)) => Some(Cadence::Interval { minutes: m }),
        (None, None) => None,
    }
}

/// Declares one scheduled backup of the schedule's environment (also `POST …/run`).
pub(crate) async fn declare_backup(
    db: &impl sea_orm::ConnectionTrait,
    s: &backup_schedules::Model,
    env: &crate::store::entity::environments::Model,
) -> std::result::Result<crate::store::entity::backups::Model, crate::settings::SettingsError> {
    let storage = crate::settings::backup_storage(db).await?;
    let b = resources::create_backup(
        db,
        resources::NewBackup {
            environment_id: &env.id,
            backup_scope: &s.backup_scope,
            storage_type: storage.storage_type,
            storage_base: &storage.base,
            site_id: &env.site_id,
            retention_until: clock::from_now(time::Duration::days(30)),
            reason: "schedule",
            schedule_id: Some(&s.id),
        },
    )
    .await?;
    store::events::append(
        db,
        NewEvent {
            resource_type: "backup",
            resource_id: &b.id,
            site_id: Some(&env.site_id),
            environment_id: Some(&env.id),
            reason: "Created",
            message: format!("{} backup declared by schedule {}", b.backup_scope, s.id),
        },
    )
    .await?;
    Ok(b)
}

/// One scheduler across replicas: schedule passes run only in the replica holding the
/// `scheduler` lease (kept while it works, taken over by another replica once it expires).
const SCHEDULER_LEASE: &str = "scheduler";

async fn scheduler_lease(rt: &Arc<Runtime>) -> Result<Option<super::lease::Held>> {
    let before = super::lease::get(&rt.db, SCHEDULER_LEASE).await?;
    let fence = store::gated(
        &rt.db,
        super::lease::acquire_fenced(&rt.db, SCHEDULER_LEASE, &rt.worker_id, rt.lease_ttl()),
    )
    .await?;
    let st = super::stats::global();
    match fence {
        Some(fence) => {
            if before
                .as_ref()
                .is_none_or(|b| b.holder != rt.worker_id || b.fence != fence)
            {
                st.lease_acquired("scheduler");
                if before.is_some_and(|b| b.holder != rt.worker_id) {
                    st.lease_handover();
                    tracing::info!(holder = %rt.worker_id, fence, "this replica is the backup scheduler now");
                }
            }
            Ok(Some(super::lease::Held {
                key: SCHEDULER_LEASE.into(),
                holder: rt.worker_id.clone(),
                fence,
            }))
        }
        None => {
            st.lease_busy("scheduler");
            Ok(None)
        }
    }
}

pub(super) async fn reconcile(rt: &Arc<Runtime>, id: &str) -> Result<Option<Duration>> {
    let Some(scheduler) = scheduler_lease(rt).await? else {
        // another replica schedules; look again in case it goes away
        return Ok(Some(rt.cfg.lease_ttl / 2));
    };
    let Some(s) = store::backups::schedule_by_id(&rt.db, id).await? else {
        return Ok(None);
    };
    let Some(env) = resources::environment_by_id(&rt.db, &s.environment_id).await? else {
        return Ok(None);
    };
    let now_s = clock::now();
    let now = ts(&now_s).unwrap_or_default();
    let Some(cad) = cadence(&s) else {
        return Ok(None);
    };
    let active = s.enabled && env.deletion_requested_at.is_none();
    let next = s.next_run_at.as_deref().and_then(ts);
    let t = schedule::tick(&cad, active, next, now);
    let mut woken = Vec::new();
    if t.run_now || t.next_run_at != next {
        let tx = store::begin_write(&rt.db).await?;
        // fenced: a replica that lost the scheduler lease declares nothing
        if !super::lease::check(&tx, &scheduler, rt.lease_ttl()).await? {
            return Err(super::RuntimeError::LeaseLost(scheduler.key));
        }
        super::fence_check(rt, &tx).await?;
        let mut row = s.clone();
        if t.run_now {
            match declare_backup(&tx, &s, &env).await {
                Ok(b) => woken.push(b.id),
                Err(e) => {
                    tracing::warn!(schedule = %id, error = %e, "scheduled backup not declared")
                }
            }
            row.last_run_at = Some(now_s.clone());
        }
        row.next_run_at = t.next_run_at.map(from_ts);
        store::backups::save_schedule(&tx, row).await?;
        tx.commit().await?;
    }
    // Retention over the schedule's completed backups.
    let kept = store::backups::kept_by_schedule(&rt.db, id).await?;
    let list: Vec<(String, Ts)> = kept
        .iter()
        .filter_map(|b| Some((b.id.clone(), ts(b.completed_at.as_deref()?)?)))
        .collect();
    let expire = schedule::expired(
        &list,
        s.keep_last.map(|n| n as u32),
        s.keep_days.map(|n| n as u32),
        now,
    );
    if !expire.is_empty() {
        let tx = store::begin_write(&rt.db).await?;
        for b in &expire {
            store::backups::expire(&tx, b).await?;
            store::events::append(
                &tx,
                NewEvent {
                    resource_type: "backup",
                    resource_id: b,
                    site_id: Some(&env.site_id),
                    environment_id: Some(&env.id),
                    reason: "Expired",
                    message: format!("expired by the retention of schedule {id}"),
                },
            )
            .await?;
            woken.push(b.to_string());
        }
        tx.commit().await?;
    }
    // Drills of the newest completed backup.
    if s.drill && active {
        if let Some(b) = kept
            .iter()
            .find(|b| !expire.contains(&b.id.as_str()) && b.verified_at.is_none())
        {
            if !store::backups::drill_exists(&rt.db, &b.id).await? {
                let tx = store::begin_write(&rt.db).await?;
                let r = store::backups::create_drill(&tx, b, &env).await?;
                store::events::append(
                    &tx,
                    NewEvent {
                        resource_type: "restore",
                        resource_id: &r.id,
                        site_id: Some(&env.site_id),
                        environment_id: Some(&r.environment_id),
                        reason: "Created",
                        message: format!("restore drill of backup {} (schedule {id})", b.id),
                    },
                )
                .await?;
                tx.commit().await?;
                rt.enqueue(Kind::Environment, &r.environment_id);
                rt.enqueue(Kind::Restore, &r.id);
            }
        }
    }
    for b in woken {
        rt.enqueue(Kind::Backup, &b);
    }
    // Look again at the next slot (at most a minute away so enabling/disabling is seen soon).
    let until = t.next_run_at.map_or(60, |n| (n - now).clamp(1, 60)) as u64;
    Ok(Some(Duration::from_secs(until)))
}
