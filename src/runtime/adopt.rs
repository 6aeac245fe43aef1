//! Adoptions: the extra-vars `site_adopt` needs on top of `site_import`'s (the import's loop,
//! gates and facts are the import's: an adoption is an import whose source is reached over SSH).
use serde_json::{json, Map, Value};

use super::{Result, Runtime, RuntimeError};
use crate::store::entity::imports;

/// The SSH source and, for this run only, the adoption key's private part (a secret: redacted
/// from every log, never stored on the node beyond the run).
pub(super) async fn job_vars(
    rt: &Runtime,
    r: &imports::Model,
    v: &mut Map<String, Value>,
    secrets: &mut Vec<String>,
) -> Result<()> {
    let missing =
        |what: &str| RuntimeError::Inconsistent(format!("adoption {} has no {what}", r.id));
    let key = crate::adopt::key(&rt.db, &rt.secrets)
        .await
        .map_err(|e| RuntimeError::Inconsistent(format!("the adoption key: {e}")))?;
    secrets.push(key.private_openssh.clone());
    for (k, val) in [
        (
            "adopt_ssh_host",
            json!(r.ssh_host.as_ref().ok_or_else(|| missing("ssh_host"))?),
        ),
        ("adopt_ssh_port", json!(r.ssh_port.unwrap_or(22))),
        (
            "adopt_ssh_user",
            json!(r.ssh_user.as_ref().ok_or_else(|| missing("ssh_user"))?),
        ),
        (
            "adopt_source_path",
            json!(r
                .source_path
                .as_ref()
                .ok_or_else(|| missing("source_path"))?),
        ),
        (
            "adopt_host_key",
            json!(r
                .source_host_key
                .as_ref()
                .ok_or_else(|| missing("source_host_key"))?),
        ),
        ("adopt_private_key", json!(key.private_openssh)),
    ] {
        v.insert(k.into(), val);
    }
    Ok(())
}
