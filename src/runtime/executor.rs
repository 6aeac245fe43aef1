//! Running one job: take the locks its scope needs, claim it, build its extra-vars from the
//! database, run it (a playbook through the runner, or an SSH probe), and record the outcome and
//! the facts it reported in one transaction.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reconcilers::JobErrorCode;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{json, Map, Value};
use tokio_util::sync::CancellationToken;

use super::observed::{self, EnvFacts, NodeFacts};
use super::{jobs, kind_of, Result, Runtime, RuntimeError};
use crate::ids;
use crate::runner::{RunRequest, Runner, Target};
use crate::store::entity::{jobs as job_rows, nodes};
use crate::store::{self, events::NewEvent};

/// Jobs that change the whole node: exclusive on it.
fn node_wide(job_type: &str) -> bool {
    matches!(job_type, "node_provision" | "backup_cleanup")
}

const LOG_TAIL: usize = 10 * 1024;

pub(super) async fn execute(rt: Arc<Runtime>, job_id: String) {
    if let Err(e) = run(&rt, &job_id).await {
        tracing::error!(job = %job_id, error = %e, "job execution failed");
    }
    rt.running.lock().expect("running lock").remove(&job_id);
    rt.spawned.lock().expect("spawned lock").remove(&job_id);
    if let Ok(Some(j)) = store::jobs::by_id(&rt.db, &job_id).await {
        rt.enqueue_in(
            kind_of(&j.resource_type),
            &j.resource_id,
            j.site_id.as_deref(),
        );
        rt.notifier.changed(crate::notify::Kind::Job, &job_id);
    }
}

async fn run(rt: &Arc<Runtime>, job_id: &str) -> Result<()> {
    let Some(job) = store::jobs::by_id(&rt.db, job_id).await? else {
        return Ok(());
    };
    if job.status != "queued" {
        return Ok(());
    }
    let node_id = job
        .node_id
        .clone()
        .ok_or_else(|| RuntimeError::Inconsistent(format!("job {job_id} has no node")))?;
    // Locks, always taken in this order (so that no two jobs wait for each other): this replica's
    // site lock, a playbook process permit of this replica, this replica's node lock, the node's
    // slot leases (all replicas), the job's run lease (all replicas). Until the claim the job
    // stays `queued`. Node-wide work is alone on its node; site work one per site, up to
    // `node_job_limit` per node across all replicas.
    let wide = node_wide(&job.job_type);
    let lock = rt.node_lock(&node_id);
    let _site_guard = match (&job.site_id, wide) {
        (Some(s), false) => Some(rt.site_lock(s).lock_owned().await),
        _ => None,
    };
    // A job of a busy site waits behind its site lock, not here: the permits (FIFO) go round
    // the sites in turn.
    let _permit = if job.job_type == "node_probe" {
        None
    } else {
        rt.playbooks.clone().acquire_owned().await.ok()
    };
    let _node_write;
    let _node_read;
    let _slot;
    if wide {
        _node_write = Some(lock.exclusive.clone().write_owned().await);
    } else {
        _node_read = Some(lock.exclusive.clone().read_owned().await);
        _slot = lock.slots.clone().acquire_owned().await.ok();
    }
    let release_slots = |rt: &Arc<Runtime>, slots: Vec<super::lease::Held>| {
        let db = rt.db.clone();
        async move {
            for h in &slots {
                let _ = crate::store::gated(&db, super::lease::release_held(&db, h)).await;
            }
        }
    };
    // Across replicas: the node's slots, then the job's lease (one job per site, or per node for
    // node jobs). While another replica runs a job of the same site, the slots are given back
    // (a slot is never held by a job that waits).
    let mut first = true;
    let (slots, held) = loop {
        let Some(slots) = node_slots(rt, &job, &node_id, wide).await? else {
            return Ok(());
        };
        if let Some(held) = try_run_lease(rt, &job, first).await? {
            break (slots, held);
        }
        first = false;
        release_slots(rt, slots).await;
        if rt.shutdown.is_cancelled() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        match store::jobs::by_id(&rt.db, &job.id).await? {
            Some(j) if j.status == "queued" => {}
            _ => return Ok(()),
        }
    };
    let claimed = crate::store::gated(&rt.db, jobs::claim(&rt.db, job_id, &rt.worker_id)).await;
    let was_claimed = matches!(claimed, Ok(true));
    let r = match claimed {
        Ok(true) => run_claimed(rt, &job, node_id, &held, &slots).await,
        Ok(false) => Ok(()),
        Err(e) => Err(e.into()),
    };
    let r = match r {
        Err(RuntimeError::LeaseLost(key)) => {
            tracing::warn!(job = %job_id, lease = %key, "lease lost while the job ran: another replica took over; its outcome was not recorded");
            Ok(())
        }
        Err(e) if was_claimed => {
            tracing::error!(job = %job_id, error = %e, "job execution failed");
            // Never leave a claimed job running: record the failure (only while it is ours).
            let _ = crate::store::gated(
                &rt.db,
                jobs::finish_own(
                    &rt.db,
                    job_id,
                    &rt.worker_id,
                    jobs::Finish {
                        status: "failed",
                        exit_code: None,
                        error_code: Some(JobErrorCode::AnsibleUnexpectedError.as_str()),
                        error_message: Some(
                            "the control plane could not run this job; see its log".into(),
                        ),
                        facts_json: None,
                    },
                ),
            )
            .await;
            Ok(())
        }
        other => other,
    };
    let _ = crate::store::gated(&rt.db, super::lease::release_held(&rt.db, &held)).await;
    release_slots(rt, slots).await;
    r
}

/// The lease key of slot `k` of a node: a node runs at most `node_job_limit` jobs at once across
/// all replicas, one per slot.
pub(crate) fn slot_key(node_id: &str, k: usize) -> String {
    format!("slot:node/{node_id}/{k}")
}

/// Takes the node's slot leases the job needs: one for a site job (any free one), all of them
/// for node-wide work (in slot order, after the node's `slot:node/<id>/wide` lease, so that two
/// node-wide jobs do not each hold half of the slots, and new site jobs stop taking slots while
/// node-wide work waits). Held slots are renewed while waiting. `None` when the job is no longer
/// queued or the process shuts down (nothing is held then).
async fn node_slots(
    rt: &Arc<Runtime>,
    job: &job_rows::Model,
    node_id: &str,
    wide: bool,
) -> Result<Option<Vec<super::lease::Held>>> {
    use super::lease::{acquire_fenced, release_held, Held};
    let limit = rt.cfg.node_job_limit.max(1);
    let ttl = rt.lease_ttl();
    // one holder per job: two jobs of one replica must not share a slot
    let holder = format!("{}/job/{}", rt.worker_id, job.id);
    let wide_key = format!("slot:node/{node_id}/wide");
    // site jobs start at a slot drawn from the job id, so they rarely contend for one row
    let start = job
        .id
        .bytes()
        .fold(0usize, |a, b| a.wrapping_mul(31).wrapping_add(b as usize))
        % limit;
    let mut waited = false;
    loop {
        let mut held: Vec<Held> = Vec::new();
        if wide {
            let take = |key: String| {
                let holder = holder.clone();
                async move {
                    crate::store::gated(&rt.db, acquire_fenced(&rt.db, &key, &holder, ttl))
                        .await
                        .map(|f| f.map(|fence| Held { key, holder, fence }))
                }
            };
            if let Some(h) = take(wide_key.clone()).await? {
                held.push(h);
                for k in 0..limit {
                    match take(slot_key(node_id, k)).await? {
                        Some(h) => held.push(h),
                        None => break,
                    }
                }
                if held.len() == limit + 1 {
                    return Ok(Some(held));
                }
            }
        } else {
            let wide_pending = match super::lease::get(&rt.db, &wide_key).await? {
                Some(r) => r.expires_at >= crate::clock::now(),
                None => false,
            };
            if !wide_pending {
                for i in 0..limit {
                    let key = slot_key(node_id, (start + i) % limit);
                    if let Some(fence) =
                        crate::store::gated(&rt.db, acquire_fenced(&rt.db, &key, &holder, ttl))
                            .await?
                    {
                        return Ok(Some(vec![Held {
                            key,
                            holder: holder.clone(),
                            fence,
                        }]));
                    }
                }
            }
        }
        if !waited {
            super::stats::global().lease_busy("slot");
            waited = true;
        }
        let gone = rt.shutdown.is_cancelled()
            || !matches!(store::jobs::by_id(&rt.db, &job.id).await?, Some(j) if j.status == "queued");
        if gone {
            for h in &held {
                let _ = crate::store::gated(&rt.db, release_held(&rt.db, h)).await;
            }
            return Ok(None);
        }
        // a node-wide job keeps the slots it has (its next round renews them)
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// One attempt at the job's run lease (another replica may run work of the same site); `first`
/// counts a busy lease in the metrics once per job.
async fn try_run_lease(
    rt: &Arc<Runtime>,
    job: &job_rows::Model,
    first: bool,
) -> Result<Option<super::lease::Held>> {
    let key = jobs::run_key(job);
    let before = if first {
        super::lease::get(&rt.db, &key).await?
    } else {
        None
    };
    let st = super::stats::global();
    match crate::store::gated(
        &rt.db,
        super::lease::acquire_fenced(&rt.db, &key, &rt.worker_id, rt.lease_ttl()),
    )
    .await?
    {
        Some(fence) => {
            st.lease_acquired("run");
            if before.is_some_and(|b| b.holder != rt.worker_id) {
                st.lease_handover();
            }
            Ok(Some(super::lease::Held {
                key,
                holder: rt.worker_id.clone(),
                fence,
            }))
        }
        None => {
            if first {
                st.lease_busy("run");
            }
            Ok(None)
        }
    }
}

async fn run_claimed(
    rt: &Arc<Runtime>,
    job: &job_rows::Model,
    node_id: String,
    held: &super::lease::Held,
    slots: &[super::lease::Held],
) -> Result<()> {
    let job_id = job.id.as_str();
    let cancel = CancellationToken::new();
    rt.running
        .lock()
        .expect("running lock")
        .insert(job_id.to_string(), cancel.clone());
    if jobs::cancel_requested(&rt.db, job_id).await? {
        cancel.cancel();
    }
    let node = store::nodes::by_id(&rt.db, &node_id)
        .await?
        .ok_or_else(|| RuntimeError::Inconsistent(format!("node {node_id} is gone")))?;

    let started = Instant::now();
    // Keep the lease while the job runs; losing it cancels the run.
    let mut leases = vec![held.clone()];
    leases.extend(slots.iter().cloned());
    let renewal = rt.renew_all_while_running(leases, Some(cancel.clone()));
    let outcome = match job.job_type.as_str() {
        "node_probe" => probe(rt, &node).await,
        _ => match playbook(rt, job, &node, cancel.clone()).await {
            Ok(o) => o,
            Err(e) => {
                renewal.abort();
                return Err(e);
            }
        },
    };
    renewal.abort();
    super::stats::global().job_done(
        &job.job_type,
        match (outcome.cancelled, outcome.error_code) {
            (true, _) => "cancelled",
            (false, None) => "succeeded",
            (false, Some(c)) => c.as_str(),
        },
        started.elapsed(),
    );
    tracing::info!(
        job = %job_id,
        job_type = %job.job_type,
        ok = outcome.error_code.is_none() && !outcome.cancelled,
        error_code = outcome.error_code.map(|c| c.as_str()).unwrap_or(""),
        secs = started.elapsed().as_secs_f64(),
        "job finished"
    );
    // The outcome commits while no reconcile pass of the resource is reading it (on any replica):
    // a pass that read the resource before the commit and its latest job after it would plan the
    // work again.
    let pass = pass_lease(rt, job).await;
    let r = record(rt, job, &node, outcome, held).await;
    if let Some(p) = pass {
        let _ = crate::store::gated(&rt.db, super::lease::release_held(&rt.db, &p)).await;
    }
    r
}

/// The resource's reconcile-pass lease, taken by the job's outcome (a holder of its own, so a
/// pass of this replica is excluded too); `None` when a pass keeps it for over 5 s (the outcome
/// is then recorded anyway: the next pass re-reads everything).
async fn pass_lease(rt: &Arc<Runtime>, job: &job_rows::Model) -> Option<super::lease::Held> {
    let key = format!(
        "{}/{}",
        kind_of(&job.resource_type).as_str(),
        job.resource_id
    );
    let holder = format!("{}/outcome", rt.worker_id);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match crate::store::gated(
            &rt.db,
            super::lease::acquire_fenced(&rt.db, &key, &holder, rt.lease_ttl()),
        )
        .await
        {
            Ok(Some(fence)) => {
                return Some(super::lease::Held { key, holder, fence });
            }
            Ok(None) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(job = %job.id, error = %e, "pass lease for the outcome");
                return None;
            }
        }
    }
}

/// What a run produced, whatever ran it.
pub(super) struct Outcome {
    pub exit_code: Option<i64>,
    pub error_code: Option<JobErrorCode>,
    pub cancelled: bool,
    pub facts: Map<String, Value>,
    pub log: String,
}

async fn probe(rt: &Arc<Runtime>, node: &nodes::Model) -> Outcome {
    let target = match target(rt, node).await {
        Ok(t) => t,
        Err(e) => return failed(JobErrorCode::AnsibleUnexpectedError, e),
    };
    match crate::ssh::exec(&target, "true", Duration::from_secs(10)).await {
        Ok(out) if out.exit_status == 0 => Outcome {
            exit_code: Some(0),
            error_code: None,
            cancelled: false,
            facts: json!({"reachable": true})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            log: format!("probe of {}:{} answered\n", node.hostname, node.ssh_port),
        },
        Ok(out) => failed(
            JobErrorCode::AnsibleHostFailed,
            format!("probe command exited with {}\n", out.exit_status),
        ),
        Err(e) => {
            let mut o = failed(
                JobErrorCode::AnsibleHostUnreachable,
                format!("probe of {}:{} failed: {e}\n", node.hostname, node.ssh_port),
            );
            o.facts.insert("reachable".into(), Value::Bool(false));
            o
        }
    }
}

fn failed(code: JobErrorCode, log: String) -> Outcome {
    Outcome {
        exit_code: None,
        error_code: Some(code),
        cancelled: false,
        facts: Map::new(),
        log,
    }
}

async fn target(rt: &Arc<Runtime>, node: &nodes::Model) -> std::result::Result<Target, String> {
    let key = crate::ssh::control_key(&rt.db, &rt.secrets)
        .await
        .map_err(|e| e.to_string())?;
    let mut host_key = node.host_key.clone();
    if host_key.is_none() {
        // First contact: pin the host key now; every later connection must present the same one.
        let k = crate::ssh::fetch_host_key(
            &node.hostname,
            node.ssh_port as u16,
            Duration::from_secs(10),
        )
        .await
        .map_err(|e| {
            format!(
                "cannot reach {}:{} to pin its host key: {e}",
                node.hostname, node.ssh_port
            )
        })?;
        store::nodes::set_host_key(&rt.db, &node.id, &k)
            .await
            .map_err(|e| e.to_string())?;
        host_key = Some(k);
    }
    Ok(Target {
        hostname: node.hostname.clone(),
        port: node.ssh_port as u16,
        user: node.ssh_user.clone(),
        private_key_openssh: key.private_openssh,
        host_key,
    })
}

async fn playbook(
    rt: &Arc<Runtime>,
    job: &job_rows::Model,
    node: &nodes::Model,
    cancel: CancellationToken,
) -> Result<Outcome> {
    let Some(runner) = rt.runner.clone() else {
        return Ok(failed(
            JobErrorCode::AnsibleUnexpectedError,
            "ansible-playbook is not available on the control plane (see the local node's conditions)\n".into(),
        ));
    };
    let target = match target(rt, node).await {
        Ok(t) => t,
        Err(e) => {
            let mut o = failed(JobErrorCode::AnsibleHostUnreachable, format!("{e}\n"));
            o.facts.insert("reachable".into(), Value::Bool(false));
            return Ok(o);
        }
    };
    if let Some(msg) = clone_source_unavailable(rt, job).await? {
        // retryable: the reconciler waits while the source exists but is not Ready yet
        return Ok(failed(JobErrorCode::AnsiblePlayError, format!("{msg}\n")));
    }
    let (vars, secrets) = vars(rt, job, node).await?;
    // The job row shows what ran, secrets redacted.
    let shown: Map<String, Value> = vars
        .iter()
        .map(|(k, v)| {
            let secret = v.as_str().is_some_and(|s| secrets.iter().any(|x| x == s));
            (
                k.clone(),
                if secret {
                    Value::String("********".into())
                } else {
                    v.clone()
                },
            )
        })
        .collect();
    crate::store::gated(
        &rt.db,
        job_rows::Entity::update_many()
            .col_expr(
                job_rows::Column::PayloadJson,
                Expr::value(Value::Object(shown).to_string()),
            )
            .filter(job_rows::Column::Id.eq(job.id.as_str()))
            .exec(&rt.db),
    )
    .await?;

    let log = Arc::new(Mutex::new(String::new()));
    let sink = log.clone();
    // Persist the live log every second so `logs --follow` and the API see progress.
    let flusher = {
        let log = log.clone();
        let db = rt.db.clone();
        let id = job.id.clone();
        tokio::spawn(async move {
            let mut last = 0;
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let snapshot = log.lock().expect("log lock").clone();
                if snapshot.len() != last {
                    last = snapshot.len();
                    let _ = crate::store::gated(&db, jobs::save_log(&db, &id, &snapshot)).await;
                }
            }
        })
    };
    let req = RunRequest {
        playbook: job.playbook.clone(),
        target,
        vars,
        secrets,
        timeout: rt.cfg.job_timeout,
        cancel,
    };
    let result = run_playbook(&runner, req, move |line: &str| {
        let mut l = sink.lock().expect("log lock");
        l.push_str(line);
        if !line.ends_with('\n') {
            l.push('\n');
        }
    })
    .await;
    flusher.abort();
    Ok(match result {
        Ok(o) => Outcome {
            exit_code: o.exit_code.map(i64::from),
            error_code: o.error_code,
            cancelled: o.cancelled,
            facts: o.facts,
            log: o.log,
        },
        Err(e) => failed(JobErrorCode::AnsibleUnexpectedError, format!("{e}\n")),
    })
}

async fn run_playbook(
    runner: &Runner,
    req: RunRequest,
    on_log: impl FnMut(&str) + Send,
) -> std::result::Result<crate::runner::RunOutcome, crate::runner::RunnerError> {
    runner.run(req, on_log).await
}

/// Extra-vars for a job (flat names, spec §8.3), and the secret values among them.
async fn vars(
    rt: &Arc<Runtime>,
    job: &job_rows::Model,
    node: &nodes::Model,
) -> Result<(Map<String, Value>, Vec<String>)> {
    let node_facts: NodeFacts = observed::parse(node.observed.as_deref());
    let mut v = Map::new();
    let mut secrets = Vec::new();
    v.insert("node_hostname".into(), json!(node.hostname));
    v.insert("node_ssh_user".into(), json!(node.ssh_user));
    v.insert(
        "node_public_ip".into(),
        json!(node.public_ip.clone().unwrap_or_default()),
    );
    v.insert(
        "php_version".into(),
        json!(node_facts.php_version.clone().unwrap_or_default()),
    );
    if let Some(env_id) = &job.environment_id {
        let env = store::resources::environment_by_id(&rt.db, env_id)
            .await?
            .ok_or_else(|| RuntimeError::Inconsistent(format!("environment {env_id} is gone")))?;
        let site = store::resources::site_by_id(&rt.db, &env.site_id)
            .await?
            .ok_or_else(|| RuntimeError::Inconsistent(format!("site {} is gone", env.site_id)))?;
        let db_password = store::secrets::get_or_create(
            &rt.db,
            &rt.secrets,
            &format!("env/{env_id}/db_password"),
            || ids::random_token(24),
        )
        .await?;
        let wp_password = store::secrets::get_or_create(
            &rt.db,
            &rt.secrets,
            &format!("env/{env_id}/wp_admin_password"),
            || ids::random_token(16),
        )
        .await?;
        secrets.push(db_password.clone());
        secrets.push(wp_password.clone());
        // Deterministic names (spec: crash-safe reruns converge onto the same ones): the Linux
        // user, and the database and its user, are `pl_` + the last 16 hex digits of the id.
        let hex: String = env.id.chars().filter(|c| *c != '-').collect();
        let unix_name = format!("pl_{}", &hex[hex.len() - 16..]).to_ascii_lowercase();
        let preview_host = env
            .preview_url
            .split("://")
            .nth(1)
            .unwrap_or(&env.preview_url)
            .trim_end_matches('/')
            .to_string();
        for (k, val) in [
            ("site_id", json!(site.id)),
            ("site_slug", json!(site.slug)),
            ("site_title", json!(site.name)),
            ("environment_id", json!(env.id)),
            ("environment_slug", json!(env.slug)),
            ("environment_type", json!(env.environment_type)),
            (
                "environment_root",
                json!(format!("/var/www/sites/{}/{}", site.id, env.id)),
            ),
            ("preview_url", json!(env.preview_url)),
            ("preview_host", json!(preview_host)),
            ("db_name", json!(unix_name)),
            ("db_user", json!(unix_name)),
            ("db_password", json!(db_password)),
            ("wp_admin_login", json!(env.wp_admin_login)),
            ("wp_admin_email", json!(rt.admin_email)),
            ("wp_admin_password", json!(wp_password)),
            ("redis_prefix", json!(format!("pressluft_{}:", env.id))),
            ("fastcgi_cache_enabled", json!(env.fastcgi_cache_enabled)),
            ("redis_cache_enabled", json!(env.redis_cache_enabled)),
            ("wordpress_source_dir", json!("/usr/share/wordpress")),
        ] {
            v.insert(k.into(), val);
        }
        if let Some(src) = clone_source(rt, &env).await? {
            source_vars(rt, &src, &site.id, &mut v).await?;
            // a clone of production records production's drift baseline first (once)
            v.insert("promotion_preset".into(), json!(env.promotion_preset));
            v.insert(
                "drift_baseline_wanted".into(),
                json!(src.environment_type == "production" && env.drift_baseline_id.is_none()),
            );
        }
        let routes = super::routes::desired(&rt.db, &env).await?;
        v.insert("routes_digest".into(), json!(routes.digest()));
        v.insert("site_url".into(), json!(routes.site_url));
        v.insert("domains".into(), json!(routes.domains));
        // every domain of the environment, for the teardown's certificate removal
        let domain_ids: Vec<String> = crate::store::entity::domains::Entity::find()
            .filter(crate::store::entity::domains::Column::EnvironmentId.eq(env.id.as_str()))
            .all(&rt.db)
            .await?
            .into_iter()
            .map(|d| d.id)
            .collect();
        v.insert("domain_ids".into(), json!(domain_ids));
        v.insert(
            "fastcgi_cache_ttl_seconds".into(),
            json!(env.fastcgi_cache_ttl_seconds),
        );
        if matches!(job.job_type.as_str(), "env_deploy" | "env_update") {
            super::release::job_vars(rt, &env, &mut v, &mut secrets).await?;
        }
    }
    if job.resource_type == "domain" {
        domain_vars(rt, job, &mut v, &mut secrets).await?;
    }
    if job.job_type == "node_provision" {
        // the local node: the control plane's own server block (pressluft_panel)
        if let Some(p) = super::panel::desired(rt, node).await? {
            p.insert_vars(&mut v);
        }
    }
    if job.resource_type == "promotion" {
        super::promotion::job_vars(rt, job, &mut v, &mut secrets).await?;
    }
    if job.resource_type == "environment" && job.job_type == "drift_check" {
        // a drift check requested on a staging/clone: the job's environment is production
        super::promotion::requested_drift_check_vars(rt, job, &mut v).await?;
    }
    if matches!(job.resource_type.as_str(), "backup" | "restore") {
        super::backup::job_vars(rt, job, &mut v, &mut secrets).await?;
    }
    if job.resource_type == "import" {
        super::import::job_vars(rt, job, &mut v, &mut secrets).await?;
    }
    Ok((v, secrets))
}

/// `pl_` + the last 16 hex digits of an id: an environment's Linux user, database and DB user.
fn unix_name_of(id: &str) -> String {
    let hex: String = id.chars().filter(|c| *c != '-').collect();
    format!("pl_{}", &hex[hex.len().saturating_sub(16)..]).to_ascii_lowercase()
}

/// The environment to clone `env` from: its source while `env` has never been Ready (a clone is
/// made once, by its first converge; the node module never clones over an installed WordPress
/// either), and that source still exists and is not being deleted.
async fn clone_source(
    rt: &Arc<Runtime>,
    env: &crate::store::entity::environments::Model,
) -> Result<Option<crate::store::entity::environments::Model>> {
    let Some(src_id) = &env.source_environment_id else {
        return Ok(None);
    };
    let facts: EnvFacts = observed::parse(env.observed.as_deref());
    if facts.ever_ready {
        return Ok(None);
    }
    Ok(store::resources::environment_by_id(&rt.db, src_id)
        .await?
        .filter(|s| s.deletion_requested_at.is_none()))
}

/// Why the converge job of a clone cannot run (its source gone, being deleted, never Ready, on
/// another node), or None. The environment loop holds the clone back while its source exists
/// but is not Ready yet, so this mostly answers for a source that went away.
async fn clone_source_unavailable(
    rt: &Arc<Runtime>,
    job: &job_rows::Model,
) -> Result<Option<String>> {
    if job.job_type != "env_create" {
        return Ok(None);
    }
    let Some(env_id) = &job.environment_id else {
        return Ok(None);
    };
    let Some(env) = store::resources::environment_by_id(&rt.db, env_id).await? else {
        return Ok(None);
    };
    let Some(src_id) = env.source_environment_id.clone() else {
        return Ok(None);
    };
    let facts: EnvFacts = observed::parse(env.observed.as_deref());
    if facts.ever_ready {
        return Ok(None);
    }
    let Some(src) = clone_source(rt, &env).await? else {
        return Ok(Some(format!(
            "the source environment {src_id} of this clone is gone or being deleted: nothing to clone"
        )));
    };
    let src_facts: EnvFacts = observed::parse(src.observed.as_deref());
    if !src_facts.ever_ready {
        return Ok(Some(format!(
            "the source environment {src_id} is not Ready yet: the clone waits for it"
        )));
    }
    if src.node_id != env.node_id {
        return Ok(Some(format!(
            "the source environment {src_id} is on another node: clones are made on the same node"
        )));
    }
    Ok(None)
}

/// The source of a clone for `env_create` (the node module copies it while the target holds no
/// installed WordPress): its root, database and the URL it serves WordPress on (its last
/// converge's `site_url`, else the site URL its routes give: its primary domain or its preview
/// URL), rewritten to the clone's. (The module also rewrites the copied `home` when it differs.)
async fn source_vars(
    rt: &Arc<Runtime>,
    src: &crate::store::entity::environments::Model,
    site_id: &str,
    v: &mut Map<String, Value>,
) -> Result<()> {
    let facts: EnvFacts = observed::parse(src.observed.as_deref());
    let reported = facts
        .facts
        .get("site_url")
        .and_then(Value::as_str)
        .filter(|s| s.starts_with("http://") || s.starts_with("https://"))
        .map(|s| s.trim_end_matches('/').to_string());
    let site_url = match reported {
        Some(u) => u,
        None => super::routes::desired(&rt.db, src)
            .await?
            .site_url
            .trim_end_matches('/')
            .to_string(),
    };
    v.insert("source_environment_id".into(), json!(src.id));
    v.insert(
        "source_environment_root".into(),
        json!(format!("/var/www/sites/{site_id}/{}", src.id)),
    );
    v.insert("source_db_name".into(), json!(unix_name_of(&src.id)));
    v.insert("source_site_url".into(), json!(site_url));
    Ok(())
}

/// Extra-vars of `domain_add` / `domain_remove`: the name, the TLS mode and where certificates
/// come from (ACME settings, or the uploaded certificate and key from the secret store).
async fn domain_vars(
    rt: &Arc<Runtime>,
    job: &job_rows::Model,
    v: &mut Map<String, Value>,
    secrets: &mut Vec<String>,
) -> Result<()> {
    let d = store::resources::domain_by_id(&rt.db, &job.resource_id)
        .await?
        .ok_or_else(|| RuntimeError::Inconsistent(format!("domain {} is gone", job.resource_id)))?;
    let all = store::settings::all(&rt.db).await?;
    let facts: observed::DomainFacts = observed::parse(d.observed.as_deref());
    let renew_before_days = all
        .get("tls_renew_before_days")
        .and_then(|x| x.parse::<i64>().ok())
        .unwrap_or(crate::settings::DEFAULT_TLS_RENEW_BEFORE_DAYS);
    // Renewal = a certificate of this generation inside the window: certbot must replace it.
    let force_renew = facts.certificate.as_ref().is_some_and(|c| {
        c.generation >= d.generation
            && crate::clock::parse(&c.not_after).is_some_and(|t| {
                t - time::OffsetDateTime::now_utc() < time::Duration::days(renew_before_days)
            })
    });
    for (k, val) in [
        ("domain_id", json!(d.id)),
        ("hostname", json!(d.hostname)),
        ("www_redirect", json!(d.www_redirect)),
        ("tls_mode", json!(d.tls_mode)),
        (
            "acme_directory_url",
            json!(all
                .get("acme_directory_url")
                .map(String::as_str)
                .unwrap_or(crate::settings::DEFAULT_ACME_DIRECTORY_URL)),
        ),
        (
            "acme_email",
            json!(all.get("acme_email").cloned().unwrap_or_default()),
        ),
        (
            "acme_ca_file",
            json!(all.get("acme_ca_file").cloned().unwrap_or_default()),
        ),
        ("force_renew", json!(force_renew)),
    ] {
        v.insert(k.into(), val);
    }
    if d.tls_mode == "custom" && job.job_type == "domain_add" {
        for (var, name) in [
            ("custom_certificate_pem", "certificate"),
            ("custom_private_key_pem", "private_key"),
        ] {
            let value =
                store::secrets::get(&rt.db, &rt.secrets, &format!("domain/{}/{name}", d.id))
                    .await?
                    .ok_or_else(|| {
                        RuntimeError::Inconsistent(format!("domain {}: no uploaded {name}", d.id))
                    })?;
            if name == "private_key" {
                secrets.push(value.clone());
            }
            v.insert(var.into(), json!(value));
        }
    }
    Ok(())
}

/// Stores the outcome: the job's status and log, and the facts on its resource — one transaction.
async fn record(
    rt: &Arc<Runtime>,
    job: &job_rows::Model,
    node: &nodes::Model,
    o: Outcome,
    held: &super::lease::Held,
) -> Result<()> {
    let status = if o.cancelled {
        "cancelled"
    } else if o.error_code.is_some() {
        "failed"
    } else {
        "succeeded"
    };
    // Resources to look at once the outcome is committed.
    let mut wake: Vec<(crate::notify::Kind, String)> = Vec::new();
    let tx = crate::store::begin_write(&rt.db).await?;
    // Fencing: the outcome commits only while this replica holds the job's lease with the fence
    // it started with (dropping the transaction rolls everything back).
    if !super::lease::check(&tx, held, rt.lease_ttl()).await? {
        super::stats::global().lease_lost();
        return Err(RuntimeError::LeaseLost(held.key.clone()));
    }
    jobs::finish(
        &tx,
        &job.id,
        jobs::Finish {
            status,
            exit_code: o.exit_code,
            error_code: o.error_code.map(|c| c.as_str()),
            error_message: (status != "succeeded")
                .then(|| crate::runner::Runner::tail(&o.log, LOG_TAIL)),
            facts_json: (!o.facts.is_empty()).then(|| Value::Object(o.facts.clone()).to_string()),
        },
    )
    .await?;
    jobs::save_log(&tx, &job.id, &o.log).await?;
    let ok = status == "succeeded";
    let facts = Value::Object(o.facts.clone());
    match job.resource_type.as_str() {
        "node" => {
            let mut f: NodeFacts = observed::parse(node.observed.as_deref());
            match job.job_type.as_str() {
                "node_provision" if ok => {
                    f.provisioned_generation = Some(job.generation);
                    f.reachable = Some(true);
                    f.services_down.clear();
                    if let Some(p) = facts.get("php_version").and_then(Value::as_str) {
                        f.php_version = Some(p.to_string());
                    }
                    f.facts = facts.clone();
                }
                "node_probe" => f.reachable = Some(ok),
                _ => {}
            }
            if o.error_code == Some(JobErrorCode::AnsibleHostUnreachable) {
                f.reachable = Some(false);
            }
            store::nodes::record_observed(
                &tx,
                &node.id,
                observed::render(&f),
                f.reachable == Some(true),
            )
            .await?;
        }
        "environment" => {
            if let Some(env) = store::resources::environment_by_id(&tx, &job.resource_id).await? {
                let mut f: EnvFacts = observed::parse(env.observed.as_deref());
                let previously_served = f.served_domains.clone();
                let healthy = facts.get("healthy").and_then(Value::as_bool);
                match job.job_type.as_str() {
                    "site_create" | "env_create" if ok => {
                        // The run's own health check just requested the preview URL: the probe
                        // need not repeat it soon (after many creations it would request them
                        // all in one round).
                        rt.http_checked_now(&env.id);
                        f.applied_generation = Some(job.generation);
                        f.data_missing = None;
                        f.healthy = Some(healthy.unwrap_or(true));
                        f.exists_on_node = Some(true);
                        f.http_failures = 0;
                        f.config_hash = facts
                            .get("config_hash")
                            .and_then(Value::as_str)
                            .map(str::to_string);
                        f.routes_digest = facts
                            .get("routes_digest")
                            .and_then(Value::as_str)
                            .filter(|d| !d.is_empty())
                            .map(str::to_string);
                        f.served_domains = facts
                            .get("served_domains")
                            .and_then(Value::as_array)
                            .map(|a| {
                                a.iter()
                                    .filter_map(|x| x.as_str().map(str::to_string))
                                    .collect()
                            })
                            .unwrap_or_default();
                        // the domains it now serves (or stopped serving) move on
                        for d in f.served_domains.iter().chain(&previously_served) {
                            wake.push((crate::notify::Kind::Domain, d.clone()));
                        }
                        f.facts = facts.clone();
                        if job.job_type == "env_create" {
                            super::promotion::record_clone_baseline(&tx, &env, &facts).await?;
                        }
                    }
                    "site_create" | "env_create" | "health_check" if healthy.is_some() => {
                        f.healthy = healthy;
                        if job.job_type == "health_check" || !f.facts.is_object() {
                            f.facts = facts.clone();
                        }
                    }
                    "env_delete" if ok => {
                        f.exists_on_node = Some(false);
                        f.applied_generation = None;
                    }
                    "drift_check" => {
                        super::promotion::record_requested_drift_check(
                            &tx, job, &env, &mut f, ok, &facts,
                        )
                        .await?;
                    }
                    "env_deploy" | "env_update" => {
                        super::release::record_facts(&tx, job, &env, &mut f, ok, &facts).await?;
                        if ok {
                            rt.http_checked_now(&env.id);
                        }
                    }
                    _ => {}
                }
                store::resources::record_environment_observed(&tx, &env.id, observed::render(&f))
                    .await?;
            }
        }
        "domain" => {
            if let Some(d) = store::resources::domain_by_id(&tx, &job.resource_id).await? {
                let mut f: observed::DomainFacts = observed::parse(d.observed.as_deref());
                match job.job_type.as_str() {
                    "domain_add" if ok => {
                        let s = |k: &str| {
                            facts
                                .get(k)
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_string()
                        };
                        let changed = facts
                            .get("certificate_changed")
                            .and_then(Value::as_bool)
                            .unwrap_or(true);
                        let obtained_at = match (&f.certificate, changed) {
                            (Some(c), false) => c.obtained_at.clone(),
                            _ => crate::clock::now(),
                        };
                        f.certificate = Some(observed::CertificateFacts {
                            generation: job.generation,
                            issuer: s("certificate_issuer"),
                            serial: s("certificate_serial"),
                            not_before: s("certificate_not_before"),
                            not_after: s("certificate_not_after"),
                            names: facts
                                .get("certificate_names")
                                .and_then(Value::as_array)
                                .map(|a| {
                                    a.iter()
                                        .filter_map(|x| x.as_str().map(str::to_string))
                                        .collect()
                                })
                                .unwrap_or_default(),
                            obtained_at,
                            renewed_at: if job.reason == "renew" && changed {
                                Some(crate::clock::now())
                            } else {
                                f.certificate.as_ref().and_then(|c| c.renewed_at.clone())
                            },
                        });
                    }
                    "domain_remove" if ok => f.certificate = None,
                    _ => {}
                }
                store::resources::record_domain_observed(&tx, &d.id, observed::render(&f)).await?;
                if let Some(env_id) = job.environment_id.as_deref() {
                    // a new or renewed certificate changes what the environment renders
                    wake.push((crate::notify::Kind::Environment, env_id.to_string()));
                }
            }
        }
        "backup" | "restore" => super::backup::record_facts(&tx, job, ok, &facts).await?,
        "promotion" => super::promotion::record_facts(&tx, job, ok, &facts).await?,
        "import" => super::import::record_facts(&tx, job, ok, &facts).await?,
        _ => {}
    }
    let (site_id, env_id) = (job.site_id.as_deref(), job.environment_id.as_deref());
    store::events::append(
        &tx,
        NewEvent {
            resource_type: &job.resource_type,
            resource_id: &job.resource_id,
            site_id,
            environment_id: env_id,
            reason: match status {
                "succeeded" => "JobSucceeded",
                "cancelled" => "JobCancelled",
                _ => "JobFailed",
            },
            message: format!(
                "{} (attempt {}) {status}{}",
                job.job_type,
                job.attempt_count,
                o.error_code
                    .map(|c| format!(": {}", c.as_str()))
                    .unwrap_or_default()
            ),
        },
    )
    .await?;
    tx.commit().await?;
    for (kind, id) in wake {
        rt.enqueue(kind, &id);
    }
    Ok(())
}
