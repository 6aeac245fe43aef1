//! One-shot operations with a phase of their own (restores, promotions): what a reconcile pass
//! records about them. Their tables share the columns written here.
use sea_orm::sea_query::{Alias, Expr, ExprTrait};
use sea_orm::{ConnectionTrait, EntityTrait, QueryFilter};

use super::Result;

/// The outcome of one reconcile pass of an operation.
pub struct PassOutcome<'a> {
    pub phase: &'a str,
    /// Conditions as JSON.
    pub conditions: &'a str,
    pub error_code: Option<&'a str>,
    pub attempts: i64,
    pub finished_at: Option<&'a str>,
    pub now: &'a str,
}

/// Stores `o` on operation `id` of table `E`.
pub async fn record_pass<E: EntityTrait>(
    db: &impl ConnectionTrait,
    id: &str,
    o: &PassOutcome<'_>,
) -> Result<()> {
    E::update_many()
        .col_expr(Alias::new("status"), Expr::value(o.phase))
        .col_expr(Alias::new("conditions"), Expr::value(o.conditions))
        .col_expr(
            Alias::new("last_error_code"),
            Expr::value(o.error_code.map(str::to_string)),
        )
        .col_expr(Alias::new("reconcile_attempts"), Expr::value(o.attempts))
        .col_expr(
            Alias::new("finished_at"),
            Expr::value(o.finished_at.map(str::to_string)),
        )
        .col_expr(Alias::new("updated_at"), Expr::value(o.now))
        .filter(Expr::col(Alias::new("id")).eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// The message of a phase change event: `old → new`, the error code when it failed, the message.
pub fn phase_change(
    old: &str,
    phase: &str,
    error_code: Option<&str>,
    message: Option<&str>,
) -> String {
    format!(
        "{old} → {phase}{}{}",
        error_code
            .filter(|_| phase == "failed")
            .map(|c| format!(" ({c})"))
            .unwrap_or_default(),
        message.map(|m| format!(": {m}")).unwrap_or_default()
    )
}
