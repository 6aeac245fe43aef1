//! Releases in the runtime: the extra-vars of `env_deploy` (the environment's desired release and
//! its source) and what its facts mean for the release rows and the environment: health and
//! notes of the release, `current_release_id`, events `ReleaseDeployed` / `ReleaseRolledBack`.
use std::sync::Arc;

use sea_orm::ConnectionTrait;
use serde_json::{json, Map, Value};

use super::observed::EnvFacts;
use super::{Result, Runtime, RuntimeError};
use crate::store::entity::{environments, jobs as job_rows};
use crate::store::{self, events::NewEvent, releases};

/// `release_id`, `release_source_type`, `release_source_ref`, `releases_keep`.
pub(super) async fn job_vars(
    rt: &Arc<Runtime>,
    env: &environments::Model,
    v: &mut Map<String, Value>,
    secrets: &mut Vec<String>,
) -> Result<()> {
    let id = env.desired_release_id.as_deref().ok_or_else(|| {
        RuntimeError::Inconsistent(format!("environment {}: no desired release", env.id))
    })?;
    let r = releases::by_id(&rt.db, id)
        .await?
        .ok_or_else(|| RuntimeError::Inconsistent(format!("release {id} is gone")))?;
    let keep = releases_keep(rt).await?;
    if let Some(userinfo) = credentials_in_url(&r.source_ref) {
        // a git URL may carry a token: never in the job's payload or log
        secrets.push(userinfo);
    }
    if r.source_type == "update" {
        let all = store::settings::all(&rt.db).await?;
        v.insert(
            "update_source_dir".into(),
            json!(all
                .get("update_source_dir")
                .map(String::as_str)
                .unwrap_or(crate::settings::DEFAULT_UPDATE_SOURCE_DIR)),
        );
        v.insert(
            "update_scope".into(),
            json!(r.source_ref.strip_prefix("scope:").unwrap_or("all")),
        );
        // the fresh full backup the update was gated on: its rollback point for the database
        let gate = r
            .details
            .as_deref()
            .and_then(|d| serde_json::from_str::<Value>(d).ok())
            .and_then(|d| {
                d.get("backup_id")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
        if let Some(b) = match gate {
            Some(id) => store::resources::backup_by_id(&rt.db, &id).await?,
            None => None,
        }
        .filter(|b| b.status == "completed" && b.deleted_at.is_none())
        {
            super::backup::storage_vars(rt, &b, "backup_", v, secrets).await?;
            v.insert("rollback_backup_id".into(), json!(b.id));
            v.insert("rollback_storage_path".into(), json!(b.storage_path));
            v.insert("rollback_manifest".into(), super::backup::manifest_of(&b));
        }
    }
    v.insert("release_id".into(), json!(r.id));
    v.insert("release_source_type".into(), json!(r.source_type));
    v.insert("release_source_ref".into(), json!(r.source_ref));
    v.insert("releases_keep".into(), json!(keep));
    Ok(())
}

/// How many release directories an environment keeps (the `releases_keep` setting): deploys,
/// updates and promotions prune beyond it.
pub(super) async fn releases_keep(rt: &Runtime) -> Result<i64> {
    Ok(store::settings::all(&rt.db)
        .await?
        .get("releases_keep")
        .and_then(|k| k.parse::<i64>().ok())
        .unwrap_or(crate::settings::DEFAULT_RELEASES_KEEP))
}

/// `user:password` of `scheme://user:password@host/…`, if any.
fn credentials_in_url(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    userinfo.contains(':').then(|| userinfo.to_string())
}

/// The outcome of `env_deploy` / `env_update` (successful or not), in the executor's transaction.
pub(super) async fn record_facts(
    db: &impl ConnectionTrait,
    job: &job_rows::Model,
    env: &environments::Model,
    f: &mut EnvFacts,
    ok: bool,
    facts: &Value,
) -> Result<()> {
    let s = |k: &str| facts.get(k).and_then(Value::as_str).map(str::to_string);
    if let Some(cur) = s("current_release") {
        let row = releases::by_id(db, &cur).await?;
        releases::set_current(db, &env.id, row.as_ref().map(|r| r.id.as_str())).await?;
        f.current_release = Some(cur);
    }
    let Some(release_id) = s("release_id") else {
        return Ok(());
    };
    let Some(release) = releases::by_id(db, &release_id).await? else {
        return Ok(());
    };
    // merged into what the release already records (an update's backup)
    let details = facts.get("release_files").map(|files| {
        let mut d: Value = release
            .details
            .as_deref()
            .and_then(|d| serde_json::from_str(d).ok())
            .filter(Value::is_object)
            .unwrap_or_else(|| json!({}));
        d["files"] = files.clone();
        d["source"] = facts.get("release_source").cloned().unwrap_or(Value::Null);
        d["previous"] = facts
            .get("release_previous")
            .cloned()
            .unwrap_or(Value::Null);
        d["components"] = facts
            .get("update_components")
            .cloned()
            .unwrap_or(Value::Null);
        d.to_string()
    });
    let count = |k: &str| {
        facts
            .get("release_files")
            .and_then(|x| x.get(k))
            .and_then(Value::as_i64)
            .unwrap_or(0)
    };
    let judged = match s("release_health").as_deref() {
        Some("healthy") => {
            releases::record_outcome(
                db,
                &release.id,
                releases::HEALTHY,
                None,
                details,
                Some(crate::clock::now()),
            )
            .await?;
            store::events::append(
                db,
                NewEvent {
                    resource_type: "environment",
                    resource_id: &env.id,
                    site_id: Some(&env.site_id),
                    environment_id: Some(&env.id),
                    reason: "ReleaseDeployed",
                    message: format!(
                        "release {} ({} {}) is live: {} files added, {} changed, {} removed",
                        release.id,
                        release.source_type,
                        redact(&release.source_ref),
                        count("added"),
                        count("changed"),
                        count("removed")
                    ),
                },
            )
            .await?;
            f.healthy = Some(true);
            f.http_failures = 0;
            true
        }
        Some("unhealthy") => {
            let mut why = s("release_error")
                .or_else(|| s("error"))
                .unwrap_or_else(|| "the release failed its health check".into());
            // an update rolled back after the switch: its database too (env-update.yml)
            match facts.get("database_restored").and_then(Value::as_bool) {
                Some(true) => why.push_str(&format!(
                    "; the database was restored from the pre-update backup {}",
                    s("rollback_backup_id").unwrap_or_default()
                )),
                Some(false) => why.push_str(&format!(
                    "; restoring the pre-update backup {} failed: {}",
                    s("rollback_backup_id").unwrap_or_default(),
                    s("restore_error").unwrap_or_else(|| "unknown error".into())
                )),
                None => {}
            }
            releases::record_outcome(
                db,
                &release.id,
                releases::UNHEALTHY,
                Some(why.clone()),
                details,
                None,
            )
            .await?;
            store::events::append(
                db,
                NewEvent {
                    resource_type: "environment",
                    resource_id: &env.id,
                    site_id: Some(&env.site_id),
                    environment_id: Some(&env.id),
                    reason: "ReleaseRolledBack",
                    message: format!(
                        "release {} is unhealthy ({why}); the environment serves {}",
                        release.id,
                        f.current_release
                            .as_deref()
                            .unwrap_or("its previous release")
                    ),
                },
            )
            .await?;
            true
        }
        _ => false,
    };
    // The generation declared nothing but this release: judged, it is applied.
    if judged
        && env.release_generation == Some(job.generation)
        && f.applied_generation == Some(job.generation - 1)
    {
        f.applied_generation = Some(job.generation);
    }
    let _ = ok;
    Ok(())
}

/// A source reference without the credentials a URL may carry.
pub fn redact(source_ref: &str) -> String {
    match credentials_in_url(source_ref) {
        Some(userinfo) => source_ref.replace(&format!("{userinfo}@"), "****@"),
        None => source_ref.to_string(),
    }
}

/// The backup gate of an update (decision "Rollback of data", "Fresh" backup): the update
/// release records in its `details` the full backup it may roll back to — a completed one not
/// older than `backup_fresh_window_minutes`, else one declared now (reason `gate`). `true` once
/// that backup is completed; until then the update waits.
pub(super) async fn update_gate(rt: &Arc<Runtime>, env: &environments::Model) -> Result<bool> {
    let Some(id) = env.desired_release_id.as_deref() else {
        return Ok(true);
    };
    let Some(r) = releases::by_id(&rt.db, id).await? else {
        return Ok(true);
    };
    let mut details: Value = r
        .details
        .as_deref()
        .and_then(|d| serde_json::from_str(d).ok())
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    if let Some(bid) = details.get("backup_id").and_then(Value::as_str) {
        match store::resources::backup_by_id(&rt.db, bid).await? {
            Some(b) if b.status == "completed" => return Ok(true),
            Some(b) if b.status != "failed" => return Ok(false),
            _ => {} // failed or gone: another one
        }
    }
    let minutes = store::settings::all(&rt.db)
        .await?
        .get("backup_fresh_window_minutes")
        .and_then(|m| m.parse::<i64>().ok())
        .unwrap_or(crate::settings::DEFAULT_FRESH_WINDOW_MINUTES);
    let since = crate::clock::from_now(time::Duration::minutes(-minutes));
    let now = crate::clock::now();
    if let Some(b) = store::promotions::fresh_full_backup(&rt.db, &env.id, &since, &now).await? {
        details["backup_id"] = json!(b.id);
        details["backup_reused"] = json!(true);
        store::gated(
            &rt.db,
            releases::set_details(&rt.db, &r.id, &details.to_string()),
        )
        .await?;
        return Ok(true);
    }
    let tx = store::begin_write(&rt.db).await?;
    let Some(b) = super::restore::declare_rollback_backup(
        &tx,
        env,
        "gate",
        &format!("pre-update backup for release {}", r.id),
    )
    .await?
    else {
        return Ok(false);
    };
    details["backup_id"] = json!(b.id);
    details["backup_reused"] = json!(false);
    releases::set_details(&tx, &r.id, &details.to_string()).await?;
    super::fence_check(rt, &tx).await?;
    tx.commit().await?;
    rt.enqueue(crate::notify::Kind::Backup, &b.id);
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_found_and_redacted() {
        assert_eq!(
            credentials_in_url("https://bot:tok3n@git.example.test/a.git#main").as_deref(),
            Some("bot:tok3n")
        );
        assert_eq!(credentials_in_url("file:///srv/repo.git#main"), None);
        assert_eq!(
            credentials_in_url("git@github.com:acme/site.git#main"),
            None
        );
        assert_eq!(
            redact("https://bot:tok3n@git.example.test/a.git#main"),
            "https://****@git.example.test/a.git#main"
        );
    }
}
