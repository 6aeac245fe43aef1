//! Pressluft's decision logic: desired state + observed state → the next action and the derived
//! status. The runtime (`src/runtime`) feeds it facts from the database and executes its plans.
//!
//! # Invariants
//!
//! * **No I/O.** No database, SSH, HTTP, filesystem, clock or randomness: time arrives as
//!   [`plan::Context::now`], random jitter as an argument of [`backoff_policy::retry_delay`],
//!   attempt counts and "is the retry due" from the runtime. Nothing here can block or fail.
//! * **Level-based.** A reconcile function sees only the current desired and observed state, never
//!   the event that woke it; missing an event costs nothing because the next pass (at the latest
//!   the periodic resync) sees the same levels.
//! * **Same inputs, same plan.** Every function is deterministic; property tests check it.
//! * **Status is derived.** Phases and conditions are computed on every pass from the difference
//!   between desired and observed, never stored by a handler.
//! * **Convergence.** For every kind, from any observed state, applying plans repeatedly (with
//!   jobs succeeding) reaches "nothing to do" (or `Finalize` when deleting), and a converged
//!   resource yields no action; property tests check both with a small simulator.
//!
//! # Map
//!
//! * Shared vocabulary: [`condition`], [`phase`], [`error_code`], [`job`], [`plan`].
//! * Shared rules: [`backoff_policy`] (how long to wait), [`attempts`] (whether to try again).
//! * One reconciler per kind: [`node`], [`environment`], [`site`], [`domain`].
//!
//! Fixture builders (`EnvSpec::fixture().deleting()`, …) are compiled for this crate's tests and,
//! with the `fixtures` feature, for the runtime's tests.

mod str_enum;

pub mod attempts;
pub mod backoff_policy;
pub mod backup;
pub mod condition;
mod decision;
pub mod domain;
pub mod environment;
pub mod error_code;
pub mod import;
pub mod job;
pub mod node;
pub mod phase;
pub mod plan;
pub mod promotion;
pub mod restore;
pub mod schedule;
pub mod site;

pub use condition::{Condition, ConditionStatus, ConditionType, Conditions};
pub use error_code::JobErrorCode;
pub use job::{JobObservation, JobStatus, JobType};
pub use phase::{NodePhase, Phase};
pub use plan::{Action, Context, Plan, WaitReason};
pub use str_enum::UnknownValue;
