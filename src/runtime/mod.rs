//! The runtime: work queues per kind, woken by API writes, job completions and a periodic resync;
//! workers call the pure reconcilers and execute their plans (jobs run `ansible-playbook` through
//! the runner). One running mutation per site; node-wide work exclusive on its node; site jobs
//! on a node in parallel up to a limit; a lease per resource; graceful shutdown.
mod backup;
mod domain;
mod environment;
mod executor;
pub mod jobs;
pub mod lease;
mod node;
mod panel;
pub use panel::PANEL_SETTINGS;
pub mod observed;
mod probe;
mod promotion;
pub mod queue;
mod release;
pub use import::DEFAULT_IMPORT_MAX_BYTES;
pub use release::redact as redact_source;
mod adopt;
mod import;
mod restore;
pub mod routes;
mod schedule;
mod site;
pub mod stats;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection};
use tokio::sync::{RwLock, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::notify::{Kind, Notifier};
use crate::runner::Runner;
use crate::secrets::SecretBox;
use queue::WorkQueue;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    #[error("{0}")]
    Inconsistent(String),
    /// This replica no longer holds the lease (fence) it started with: it stops acting and
    /// commits nothing.
    #[error("lease {0} was lost")]
    LeaseLost(String),
}

pub type Result<T> = std::result::Result<T, RuntimeError>;

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Safety-net resync of every resource (self-healing).
    pub resync: Duration,
    /// Attempts in total per generation (spec R9).
    pub max_attempts: u32,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub job_timeout: Duration,
    /// Jobs that may run at once on one node, counted across all replicas (slot leases
    /// `slot:node/<id>/<k>`); a node-wide job takes every slot.
    pub node_job_limit: usize,
    /// `ansible-playbook` processes this replica runs at once; a job waiting for one stays
    /// `queued` and holds no node slot meanwhile.
    pub max_playbooks: usize,
    /// How long running jobs may take to finish at shutdown before they are cancelled.
    pub shutdown_grace: Duration,
    /// A probe round per node (observed state, drift detection).
    pub probe_interval: Duration,
    /// Lease time of a running job, a reconcile pass and the scheduler (renewed every third of
    /// it): after a replica dies, its work is taken over this long after its last renewal.
    pub lease_ttl: Duration,
    /// The service's own listen address: the local node's nginx serves the control plane by
    /// proxying to it (`pressluft_panel`). `None`: no panel server block (tests, `--no-local-node`).
    pub panel_upstream: Option<std::net::SocketAddr>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            resync: Duration::from_secs(600),
            max_attempts: 3,
            backoff_base: Duration::from_secs(60),
            backoff_max: Duration::from_secs(900),
            job_timeout: Duration::from_secs(1800),
            node_job_limit: 4,
            max_playbooks: 8,
            shutdown_grace: Duration::from_secs(30),
            probe_interval: Duration::from_secs(30),
            lease_ttl: Duration::from_secs(60),
            panel_upstream: None,
        }
    }
}

/// Per node: node-wide jobs take the write side, site jobs the read side plus a slot.
#[derive(Clone)]
struct NodeLock {
    exclusive: Arc<RwLock<()>>,
    slots: Arc<Semaphore>,
}

pub struct Runtime {
    pub db: DatabaseConnection,
    pub secrets: SecretBox,
    pub notifier: Notifier,
    pub runner: Option<Arc<Runner>>,
    pub cfg: RuntimeConfig,
    /// Stable worker id (host name + pid): `locked_by` of jobs and holder of leases.
    pub worker_id: String,
    pub admin_email: String,
    env_queue: WorkQueue<String>,
    node_queue: WorkQueue<String>,
    site_queue: WorkQueue<String>,
    domain_queue: WorkQueue<String>,
    backup_queue: WorkQueue<String>,
    restore_queue: WorkQueue<String>,
    import_queue: WorkQueue<String>,
    promotion_queue: WorkQueue<String>,
    schedule_queue: WorkQueue<String>,
    site_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    node_locks: Mutex<HashMap<String, NodeLock>>,
    /// Bounds the playbook processes of this replica (`--max-playbooks`).
    playbooks: Arc<Semaphore>,
    running: Mutex<HashMap<String, CancellationToken>>,
    /// Jobs with an executor task in this process (started, maybe waiting for locks).
    spawned: Mutex<std::collections::HashSet<String>>,
    jobs_tracker: TaskTracker,
    shutdown: CancellationToken,
    pub stats: Arc<stats::RuntimeStats>,
    /// When each environment's preview URL is next requested by the probe (see probe.rs).
    http_due: Mutex<HashMap<String, std::time::Instant>>,
}

impl Runtime {
    pub fn new(
        db: DatabaseConnection,
        secrets: SecretBox,
        notifier: Notifier,
        runner: Option<Arc<Runner>>,
        cfg: RuntimeConfig,
        admin_email: String,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "pressluft".into());
        let playbooks = Arc::new(Semaphore::new(cfg.max_playbooks.max(1)));
        let rt = Arc::new(Runtime {
            db,
            secrets,
            notifier,
            runner,
            cfg,
            // host, pid and a random suffix: unique even for two runtimes in one process (tests)
            worker_id: format!(
                "{}:{}:{:04x}",
                host.trim(),
                std::process::id(),
                rand::random::<u16>()
            ),
            admin_email,
            env_queue: WorkQueue::default(),
            node_queue: WorkQueue::default(),
            site_queue: WorkQueue::default(),
            domain_queue: WorkQueue::default(),
            backup_queue: WorkQueue::default(),
            restore_queue: WorkQueue::default(),
            import_queue: WorkQueue::default(),
            promotion_queue: WorkQueue::default(),
            schedule_queue: WorkQueue::default(),
            site_locks: Mutex::new(HashMap::new()),
            node_locks: Mutex::new(HashMap::new()),
            playbooks,
            running: Mutex::new(HashMap::new()),
            spawned: Mutex::new(Default::default()),
            jobs_tracker: TaskTracker::new(),
            shutdown,
            stats: Arc::default(),
            http_due: Mutex::new(HashMap::new()),
        });
        live_workers()
            .lock()
            .expect("live workers")
            .insert(rt.worker_id.clone());
        let weak = Arc::downgrade(&rt);
        rt.stats.set_queue_source(Box::new(move || {
            let Some(rt) = weak.upgrade() else {
                return Vec::new();
            };
            [
                Kind::Node,
                Kind::Site,
                Kind::Environment,
                Kind::Domain,
                Kind::Backup,
                Kind::Restore,
                Kind::Import,
                Kind::Promotion,
                Kind::Schedule,
            ]
            .into_iter()
            .filter_map(|k| {
                let (ready, delayed, running, oldest_ready) = rt.queue(k)?.depth();
                Some(stats::QueueDepth {
                    kind: k.as_str(),
                    ready,
                    delayed,
                    running,
                    oldest_ready,
                })
            })
            .collect()
        }));
        rt
    }

    /// Starts recovery, the wake-up listener, the resync loop and the workers. The returned task
    /// ends after shutdown once running jobs have finished (or were cancelled after the grace).
    pub fn start(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let rt = self.clone();
        tokio::spawn(async move {
            if let Err(e) = rt.recover().await {
                tracing::error!(error = %e, "job recovery failed");
            }
            let mut tasks = tokio::task::JoinSet::new();
            tasks.spawn(rt.clone().listen());
            tasks.spawn(rt.clone().reap_loop());
            if rt.db.get_database_backend() == sea_orm::DbBackend::Postgres {
                // wake-ups to and from the other replicas (LISTEN/NOTIFY)
                tasks.spawn(crate::notify::bridge_postgres(
                    rt.db.clone(),
                    rt.notifier.clone(),
                ));
            }
            tasks.spawn(rt.clone().resync_loop());
            tasks.spawn(probe::probe_loop(rt.clone()));
            for _ in 0..4 {
                tasks.spawn(rt.clone().worker(Kind::Environment));
            }
            for _ in 0..2 {
                tasks.spawn(rt.clone().worker(Kind::Node));
                tasks.spawn(rt.clone().worker(Kind::Site));
            }
            tasks.spawn(rt.clone().worker(Kind::Domain));
            for kind in [
                Kind::Backup,
                Kind::Backup,
                Kind::Restore,
                Kind::Import,
                Kind::Promotion,
                Kind::Schedule,
            ] {
                tasks.spawn(rt.clone().worker(kind));
            }
            rt.shutdown.cancelled().await;
            rt.env_queue.close();
            rt.node_queue.close();
            rt.site_queue.close();
            rt.domain_queue.close();
            rt.backup_queue.close();
            rt.restore_queue.close();
            rt.import_queue.close();
            rt.promotion_queue.close();
            rt.schedule_queue.close();
            rt.jobs_tracker.close();
            if tokio::time::timeout(rt.cfg.shutdown_grace, rt.jobs_tracker.wait())
                .await
                .is_err()
            {
                tracing::warn!("running jobs did not finish in time: cancelling them");
                for t in rt.running.lock().expect("running lock").values() {
                    t.cancel();
                }
                rt.jobs_tracker.wait().await;
            }
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        })
    }

    fn queue(&self, kind: Kind) -> Option<&WorkQueue<String>> {
        match kind {
            Kind::Environment => Some(&self.env_queue),
            Kind::Node => Some(&self.node_queue),
            Kind::Site => Some(&self.site_queue),
            Kind::Domain => Some(&self.domain_queue),
            Kind::Backup => Some(&self.backup_queue),
            Kind::Restore => Some(&self.restore_queue),
            Kind::Import => Some(&self.import_queue),
            Kind::Promotion => Some(&self.promotion_queue),
            Kind::Schedule => Some(&self.schedule_queue),
            _ => None,
        }
    }

    pub fn enqueue(&self, kind: Kind, id: &str) {
        if let Some(q) = self.queue(kind) {
            q.add(id.to_string());
        }
    }

    /// [`Self::enqueue`] naming the resource's site: keys of one site take turns with other
    /// sites' keys (fair hand-out, see queue.rs).
    pub fn enqueue_in(&self, kind: Kind, id: &str, site_id: Option<&str>) {
        match (self.queue(kind), site_id) {
            (Some(q), Some(site)) => q.add_in(id.to_string(), site),
            (Some(q), None) => q.add(id.to_string()),
            _ => {}
        }
    }

    async fn recover(self: &Arc<Self>) -> Result<()> {
        if self.db.get_database_backend() == sea_orm::DbBackend::Postgres {
            // Other replicas may be running jobs right now: the reaper hands over only the jobs
            // whose lease expired, and queued jobs left by a dead replica.
            return self.reap().await;
        }
        let live: Vec<String> = live_workers()
            .lock()
            .expect("live workers")
            .iter()
            .cloned()
            .collect();
        let (interrupted, queued) = jobs::recover(&self.db, &live).await?;
        if interrupted > 0 {
            tracing::warn!(
                count = interrupted,
                "jobs interrupted by a restart were marked cancelled"
            );
        }
        for j in queued {
            self.spawn_job(j.id);
        }
        Ok(())
    }

    async fn listen(self: Arc<Self>) {
        let mut rx = self.notifier.subscribe();
        loop {
            match rx.recv().await {
                Ok(change) => match change.kind {
                    Kind::Job => self.job_changed(&change.id).await,
                    kind => self.enqueue(kind, &change.id),
                },
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    // Missed wake-ups: look at everything once.
                    self.enqueue_all().await;
                }
                Err(_) => return,
            }
        }
    }

    /// A job changed (e.g. a cancel request): stop it if it runs here, and look at its resource.
    async fn job_changed(&self, job_id: &str) {
        if let Ok(Some(j)) = crate::store::jobs::by_id(&self.db, job_id).await {
            if j.cancel_requested_at.is_some() {
                if let Some(t) = self.running.lock().expect("running lock").get(job_id) {
                    t.cancel();
                }
            }
            self.enqueue(kind_of(&j.resource_type), &j.resource_id);
        }
    }

    async fn resync_loop(self: Arc<Self>) {
        loop {
            self.enqueue_all().await;
            self.stats.resync_done();
            let jitter = rand::random::<f64>() * 0.1;
            tokio::time::sleep(self.cfg.resync.mul_f64(1.0 + jitter)).await;
        }
    }

    async fn enqueue_all(&self) {
        use crate::store::entity::{domains, environments, nodes, sites};
        use sea_orm::{EntityTrait, QuerySelect};
        let db = &self.db;
        if let Ok(ids) = nodes::Entity::find()
            .select_only()
            .column(nodes::Column::Id)
            .into_tuple::<String>()
            .all(db)
            .await
        {
            ids.iter().for_each(|id| self.node_queue.add(id.clone()));
        }
        // environments take turns by site (see queue.rs): a site with many cannot starve others
        if let Ok(ids) = environments::Entity::find()
            .select_only()
            .column(environments::Column::Id)
            .column(environments::Column::SiteId)
            .into_tuple::<(String, String)>()
            .all(db)
            .await
        {
            let known: std::collections::HashSet<&String> = ids.iter().map(|(id, _)| id).collect();
            self.env_queue.retain_groups(|k| known.contains(k));
            ids.iter()
                .for_each(|(id, site)| self.env_queue.add_in(id.clone(), site));
        }
        if let Ok(ids) = sites::Entity::find()
            .select_only()
            .column(sites::Column::Id)
            .into_tuple::<String>()
            .all(db)
            .await
        {
            ids.iter().for_each(|id| self.site_queue.add(id.clone()));
        }
        if let Ok(ids) = domains::Entity::find()
            .select_only()
            .column(domains::Column::Id)
            .into_tuple::<String>()
            .all(db)
            .await
        {
            ids.iter().for_each(|id| self.domain_queue.add(id.clone()));
        }
        if let Ok(ids) = backup::ids_to_watch(db).await {
            ids.iter().for_each(|id| self.backup_queue.add(id.clone()));
        }
        if let Ok(ids) = crate::store::backups::restore_ids_in_progress(db).await {
            ids.iter().for_each(|id| self.restore_queue.add(id.clone()));
        }
        if let Ok(ids) = crate::store::imports::ids_in_progress(db).await {
            ids.iter().for_each(|id| self.import_queue.add(id.clone()));
        }
        if let Ok(ids) = crate::store::promotions::ids_in_progress(db).await {
            ids.iter()
                .for_each(|id| self.promotion_queue.add(id.clone()));
        }
        if let Ok(ids) = crate::store::backups::schedule_ids(db).await {
            ids.iter()
                .for_each(|id| self.schedule_queue.add(id.clone()));
        }
    }

    async fn worker(self: Arc<Self>, kind: Kind) {
        let Some(q) = self.queue(kind) else { return };
        let ttl = self.lease_ttl();
        while let Some(id) = q.next().await {
            let key = format!("{}/{id}", kind.as_str());
            let started = std::time::Instant::now();
            let requeue = match crate::store::gated(
                &self.db,
                lease::acquire_fenced(&self.db, &key, &self.worker_id, ttl),
            )
            .await
            {
                Ok(Some(fence)) => {
                    stats::global().lease_acquired("pass");
                    let held = lease::Held {
                        key: key.clone(),
                        holder: self.worker_id.clone(),
                        fence,
                    };
                    // A pass is short; a long one keeps its lease alive meanwhile.
                    let renewal = self.renew_while_running(held.clone(), None);
                    let r = self.reconcile_as(kind, &id, held.clone()).await;
                    renewal.abort();
                    let _ =
                        crate::store::gated(&self.db, lease::release_held(&self.db, &held)).await;
                    stats::global().reconcile_done(kind.as_str(), started.elapsed(), r.is_ok());
                    match r {
                        Ok(after) => after,
                        Err(RuntimeError::LeaseLost(k)) => {
                            tracing::warn!(kind = kind.as_str(), id = %id, lease = %k, "lease lost during a reconcile pass: its result was not committed");
                            Some(Duration::from_secs(5))
                        }
                        Err(e) => {
                            tracing::warn!(kind = kind.as_str(), id = %id, error = %e, "reconcile failed; retrying");
                            Some(Duration::from_secs(5))
                        }
                    }
                }
                // Another replica works it (or a job outcome is being recorded); look again soon.
                Ok(None) => {
                    stats::global().lease_busy("pass");
                    Some(Duration::from_secs(2).min(self.cfg.lease_ttl))
                }
                Err(e) => {
                    tracing::warn!(error = %e, "lease");
                    Some(Duration::from_secs(5))
                }
            };
            q.done(&id);
            if let Some(after) = requeue {
                q.add_after(id, after);
            }
        }
    }

    /// One reconcile pass of `kind/id` as the holder of `held` (taken by the caller): every
    /// write it commits is fenced by that lease ([`fence_check`]), so a pass whose lease was
    /// lost meanwhile commits nothing and ends with [`RuntimeError::LeaseLost`]. Public for the
    /// replica tests.
    #[doc(hidden)]
    pub async fn reconcile_as(
        self: &Arc<Self>,
        kind: Kind,
        id: &str,
        held: lease::Held,
    ) -> Result<Option<Duration>> {
        PASS_LEASE
            .scope(held, async {
                match kind {
                    Kind::Environment => environment::reconcile(self, id).await,
                    Kind::Node => node::reconcile(self, id).await,
                    Kind::Site => site::reconcile(self, id).await,
                    Kind::Domain => domain::reconcile(self, id).await,
                    Kind::Backup => backup::reconcile(self, id).await,
                    Kind::Restore => restore::reconcile(self, id).await,
                    Kind::Import => import::reconcile(self, id).await,
                    Kind::Promotion => promotion::reconcile(self, id).await,
                    Kind::Schedule => schedule::reconcile(self, id).await,
                    _ => Ok(None),
                }
            })
            .await
    }

    pub(crate) fn lease_ttl(&self) -> time::Duration {
        time::Duration::try_from(self.cfg.lease_ttl).unwrap_or(time::Duration::seconds(60))
    }

    /// Renews `held` every third of the lease time until aborted; when the lease turns out lost
    /// it logs that and cancels `cancel` (the running job stops acting).
    pub(crate) fn renew_while_running(
        &self,
        held: lease::Held,
        cancel: Option<CancellationToken>,
    ) -> tokio::task::JoinHandle<()> {
        self.renew_all_while_running(vec![held], cancel)
    }

    /// [`Self::renew_while_running`] for several leases (a job's run lease and its node slots):
    /// losing any of them cancels `cancel`.
    pub(crate) fn renew_all_while_running(
        &self,
        held: Vec<lease::Held>,
        cancel: Option<CancellationToken>,
    ) -> tokio::task::JoinHandle<()> {
        let db = self.db.clone();
        let ttl = self.lease_ttl();
        let every = self.cfg.lease_ttl / 3;
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                for held in &held {
                    match crate::store::gated(&db, lease::check(&db, held, ttl)).await {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(lease = %held.key, fence = held.fence, holder = %held.holder, "lease lost: another replica took over; this one stops acting");
                            stats::global().lease_lost();
                            if let Some(c) = &cancel {
                                c.cancel();
                            }
                            return;
                        }
                        Err(e) => {
                            tracing::warn!(lease = %held.key, error = %e, "lease renewal failed; retrying")
                        }
                    }
                }
            }
        })
    }

    /// Every half lease time: jobs left `running` by a replica that lost its lease are marked
    /// interrupted and their resources re-planned; queued jobs nobody started are started here.
    async fn reap_loop(self: Arc<Self>) {
        let mut rounds = 0u64;
        loop {
            tokio::time::sleep(self.cfg.lease_ttl / 2).await;
            if let Err(e) = self.reap().await {
                tracing::warn!(error = %e, "reaping interrupted jobs failed");
            }
            rounds += 1;
            if rounds % 1000 == 0 {
                let _ = crate::store::gated(&self.db, lease::purge_stale(&self.db)).await;
            }
        }
    }

    async fn reap(self: &Arc<Self>) -> Result<()> {
        let ttl = self.cfg.lease_ttl;
        let reaped = jobs::reap_orphans(&self.db, &self.worker_id).await?;
        for j in &reaped {
            tracing::warn!(job = %j.id, job_type = %j.job_type, was_on = j.locked_by.as_deref().unwrap_or(""), "job interrupted: its replica lost its lease; the work is planned again");
            stats::global().lease_reclaimed();
            self.notifier.changed(Kind::Job, &j.id);
            self.notifier
                .changed(kind_of(&j.resource_type), &j.resource_id);
        }
        // Queued jobs older than a lease time that no executor here knows: their replica died
        // before starting them (the claim is atomic, so a race with a live one is harmless).
        let cutoff = crate::clock::format(
            time::OffsetDateTime::now_utc()
                - time::Duration::try_from(ttl).unwrap_or(time::Duration::seconds(60)),
        );
        for j in jobs::queued_before(&self.db, &cutoff).await? {
            self.spawn_job(j.id);
        }
        Ok(())
    }

    fn site_lock(&self, site_id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.site_locks
            .lock()
            .expect("site locks")
            .entry(site_id.to_string())
            .or_default()
            .clone()
    }

    fn node_lock(&self, node_id: &str) -> NodeLock {
        self.node_locks
            .lock()
            .expect("node locks")
            .entry(node_id.to_string())
            .or_insert_with(|| NodeLock {
                exclusive: Arc::new(RwLock::new(())),
                slots: Arc::new(Semaphore::new(self.cfg.node_job_limit.max(1))),
            })
            .clone()
    }

    /// Records the intent of a job of `env` for a resource (attempt = failed attempts + 1, the
    /// runtime's attempt limit) behind the write gate, then starts it: what a reconcile pass does
    /// when its plan says RunJob.
    pub(super) async fn start_env_job(
        self: &Arc<Self>,
        env: &crate::store::entity::environments::Model,
        job_type: reconcilers::JobType,
        reason: &str,
        resource: (&str, &str, i64),
        failed_attempts: u32,
    ) -> Result<()> {
        let (resource_type, resource_id, generation) = resource;
        let job = create_job(
            self,
            jobs::NewJob {
                job_type: job_type.as_str(),
                reason,
                playbook: job_type.playbook(),
                site_id: Some(&env.site_id),
                environment_id: Some(&env.id),
                node_id: Some(&env.node_id),
                resource_type,
                resource_id,
                generation,
                attempt: failed_attempts as i64 + 1,
                max_attempts: self.cfg.max_attempts as i64,
            },
        )
        .await?;
        self.spawn_job(job.id);
        Ok(())
    }

    pub(crate) fn spawn_job(self: &Arc<Self>, job_id: String) {
        if !self
            .spawned
            .lock()
            .expect("spawned lock")
            .insert(job_id.clone())
        {
            return; // already started here
        }
        let rt = self.clone();
        self.jobs_tracker
            .spawn(async move { executor::execute(rt, job_id).await });
    }

    /// Backoff before the next attempt after `failed` failures; the jitter is drawn from the
    /// failed job's id so that every pass computes the same deadline.
    pub(crate) fn retry_delay(&self, failed: u32, seed: &str) -> u64 {
        let h = seed
            .bytes()
            .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(b as u64));
        let jitter = (h % 1000) as f64 / 1000.0;
        reconcilers::backoff_policy::retry_delay(
            self.cfg.backoff_base.as_millis() as u64,
            self.cfg.backoff_max.as_millis() as u64,
            failed,
            jitter,
        )
    }
}

/// The runtimes of this process (SQLite recovery spares their jobs and leases: tests run two).
fn live_workers() -> &'static Mutex<std::collections::HashSet<String>> {
    static LIVE: std::sync::OnceLock<Mutex<std::collections::HashSet<String>>> =
        std::sync::OnceLock::new();
    LIVE.get_or_init(Default::default)
}

tokio::task_local! {
    /// The lease the current reconcile pass holds (see [`fence_check`]).
    static PASS_LEASE: lease::Held;
}

/// Records a job a reconcile pass planned, in a transaction fenced by the pass's lease
/// ([`fence_check`]): a replica that lost the lease creates no job.
pub(crate) async fn create_job(
    rt: &Runtime,
    j: jobs::NewJob<'_>,
) -> Result<crate::store::entity::jobs::Model> {
    let tx = crate::store::begin_write(&rt.db).await?;
    fence_check(rt, &tx).await?;
    let job = jobs::create(&tx, j).await?;
    tx.commit().await?;
    Ok(job)
}

/// In a reconcile pass's write transaction: commits only while the pass still holds its lease
/// with the fence it started with (else `LeaseLost`; dropping the transaction rolls it back).
/// Outside a pass it checks nothing.
pub(crate) async fn fence_check(rt: &Runtime, tx: &impl ConnectionTrait) -> Result<()> {
    let Ok(held) = PASS_LEASE.try_with(|h| h.clone()) else {
        return Ok(());
    };
    if lease::check(tx, &held, rt.lease_ttl()).await? {
        Ok(())
    } else {
        Err(RuntimeError::LeaseLost(held.key))
    }
}

pub(crate) use schedule::{
    declare_backup as declare_scheduled_backup, from_ts as schedule_from_ts, ts as schedule_ts,
};

pub(crate) fn kind_of(resource_type: &str) -> Kind {
    match resource_type {
        "node" => Kind::Node,
        "site" => Kind::Site,
        "domain" => Kind::Domain,
        "backup" => Kind::Backup,
        "restore" => Kind::Restore,
        "import" => Kind::Import,
        "promotion" => Kind::Promotion,
        _ => Kind::Environment,
    }
}

/// The retry bookkeeping every kind computes the same way.
pub(crate) struct Attempts {
    pub failed: u32,
    pub retry_delay_ms: u64,
    pub retry_due: bool,
}

pub(crate) async fn attempts(
    rt: &Runtime,
    resource_type: &str,
    id: &str,
    generation: i64,
    since: Option<&str>,
    latest: Option<&crate::store::entity::jobs::Model>,
) -> Result<Attempts> {
    let failed = jobs::failed_attempts(&rt.db, resource_type, id, generation, since).await? as u32;
    let seed = latest.map(|j| j.id.as_str()).unwrap_or(id);
    let retry_delay_ms = rt.retry_delay(failed, seed);
    let retry_due = match latest
        .and_then(|j| j.finished_at.as_deref())
        .and_then(crate::clock::parse)
    {
        Some(t) => {
            time::OffsetDateTime::now_utc()
                >= t + time::Duration::milliseconds(retry_delay_ms as i64)
        }
        None => true,
    };
    Ok(Attempts {
        failed,
        retry_delay_ms,
        retry_due,
    })
}

pub(crate) fn job_observation(
    j: &crate::store::entity::jobs::Model,
) -> Option<reconcilers::JobObservation> {
    Some(reconcilers::JobObservation {
        job_type: j.job_type.parse().ok()?,
        status: j.status.parse().ok()?,
        generation: j.generation,
        error_code: j.error_code.as_deref().and_then(|c| c.parse().ok()),
        finished_at: j.finished_at.clone(),
    })
}

pub(crate) fn conditions_of(json: &str) -> Vec<reconcilers::Condition> {
    serde_json::from_str(json).unwrap_or_default()
}

/// The conditions whose status differs from the stored ones, as event messages
/// (`Ready → True (Healthy): …`).
pub(crate) fn condition_changes(stored: &str, derived: &[reconcilers::Condition]) -> Vec<String> {
    let before = conditions_of(stored);
    derived
        .iter()
        .filter(|c| {
            !before
                .iter()
                .any(|b| b.type_ == c.type_ && b.status == c.status)
        })
        .map(|c| {
            format!(
                "{} → {} ({}): {}",
                c.type_.as_str(),
                c.status.as_str(),
                c.reason,
                c.message
            )
        })
        .collect()
}
