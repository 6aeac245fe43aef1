//! Nodes: register, read, change, re-provision and delete the servers Pressluft manages.
use poem::Request;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sea_orm::sea_query::Expr;

use super::auth::Auth;
use super::error::ApiError;
use super::model::{Node, NodePage};
use super::text::Text;
use super::write::Write;
use super::{next_cursor, page_limit, state, validate, Tag};
use crate::error_response;
use crate::notify::Kind;
use crate::store::entity::nodes as node_rows;
use crate::store::events::NewEvent;
use crate::store::nodes::{self, NewNode};
use crate::store::resources::{self, Page};
use crate::store::StoreError;

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct CreateNode {
    pub name: Text,
    /// Host name or IP address Pressluft reaches over SSH.
    pub hostname: Text,
    /// Public IPv4 address (preview URLs, DNS checks).
    pub public_ip: Option<Text>,
    /// Default 22.
    pub ssh_port: Option<i64>,
    /// Default root.
    pub ssh_user: Option<Text>,
}

#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct UpdateNode {
    /// The `state_version` you last read; a stale one answers 409 `conflict`.
    pub state_version: i64,
    pub name: Option<Text>,
    pub hostname: Option<Text>,
    pub public_ip: Option<Text>,
    pub ssh_port: Option<i64>,
    pub ssh_user: Option<Text>,
}

#[derive(ApiResponse)]
pub enum NodeWritten {
    /// Nothing to do: the spec already says this.
    #[oai(status = 200)]
    Unchanged(Json<Node>),
    /// Recorded; reconciliation is pending.
    #[oai(status = 202)]
    Accepted(Json<Node>),
}

error_response!(ListError { BadRequest = 400, Unauthorized = 401 });
error_response!(CreateError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, Conflict = 409 });
error_response!(GetError { BadRequest = 400, Unauthorized = 401, NotFound = 404 });
error_response!(WriteError {
    BadRequest = 400,
    Unauthorized = 401,
    Forbidden = 403,
    NotFound = 404,
    Conflict = 409,
});

pub struct NodesApi;

#[OpenApi(prefix_path = "/nodes", tag = "Tag::Nodes")]
impl NodesApi {
    /// List nodes, oldest first.
    #[oai(path = "/", method = "get", operation_id = "listNodes")]
    async fn list(
        &self,
        req: &Request,
        _auth: Auth,
        limit: Query<Option<u64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<NodePage>, ListError> {
        let st = state(req)?;
        let limit = page_limit(limit.0)?;
        let page = Page {
            after: super::cursor(cursor.0)?,
            limit,
        };
        let rows = nodes::list(&st.db, &page).await.map_err(ApiError::from)?;
        let next = next_cursor(&rows, limit, |r| &r.id);
        Ok(Json(NodePage {
            items: rows.into_iter().map(Into::into).collect(),
            next_cursor: next,
        }))
    }

    /// Register a node. Pressluft pins its SSH host key on first contact and provisions it.
    #[oai(path = "/", method = "post", operation_id = "createNode")]
    async fn create(
        &self,
        req: &Request,
        auth: Auth,
        body: Json<CreateNode>,
    ) -> Result<NodeWritten, CreateError> {
        let st = state(req)?;
        let b = body.0;
        let name = validate::name("name", &b.name)?;
        let hostname = validate::node_address("hostname", &b.hostname)?;
        let public_ip = b
            .public_ip
            .as_deref()
            .map(|i| validate::ip("public_ip", i))
            .transpose()?;
        let ssh_port = validate::port("ssh_port", b.ssh_port.unwrap_or(22))?;
        let ssh_user = validate::unix_user("ssh_user", b.ssh_user.as_deref().unwrap_or("root"))?;
        let tx = st.begin().await?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let node = create_node_in(
            &mut w,
            NewNode {
                name: &name,
                hostname: &hostname,
                public_ip: public_ip.as_deref(),
                ssh_port,
                ssh_user: &ssh_user,
                is_local: false,
            },
        )
        .await?;
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(NodeWritten::Accepted(Json(node.into())))
    }

    /// Read a node.
    #[oai(path = "/:id", method = "get", operation_id = "getNode")]
    async fn get(
        &self,
        req: &Request,
        _auth: Auth,
        id: Path<String>,
    ) -> Result<Json<Node>, GetError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        Ok(Json(load(&st.db, &id).await?.into()))
    }

    /// Change how Pressluft reaches a node. Needs the current `state_version`.
    #[oai(path = "/:id", method = "patch", operation_id = "updateNode")]
    async fn update(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        body: Json<UpdateNode>,
    ) -> Result<NodeWritten, WriteError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let b = body.0;
        let name = b
            .name
            .as_deref()
            .map(|v| validate::name("name", v))
            .transpose()?;
        let hostname = b
            .hostname
            .as_deref()
            .map(|v| validate::node_address("hostname", v))
            .transpose()?;
        let public_ip = b
            .public_ip
            .as_deref()
            .map(|v| validate::ip("public_ip", v))
            .transpose()?;
        let ssh_port = b
            .ssh_port
            .map(|v| validate::port("ssh_port", v))
            .transpose()?;
        let ssh_user = b
            .ssh_user
            .as_deref()
            .map(|v| validate::unix_user("ssh_user", v))
            .transpose()?;
        let tx = st.begin().await?;
        let node = load(&tx, &id).await?;
        if node.state_version != b.state_version {
            return Err(ApiError::from(StoreError::Stale).into());
        }
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let change = NodeChange {
            name: name.as_deref(),
            hostname: hostname.as_deref(),
            public_ip: public_ip.as_deref(),
            ssh_port,
            ssh_user: ssh_user.as_deref(),
        };
        if !update_node_in(&mut w, &node, &change).await? {
            return Ok(NodeWritten::Unchanged(Json(node.into())));
        }
        let node = load(&tx, &id).await?;
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(NodeWritten::Accepted(Json(node.into())))
    }

    /// Run provisioning again (e.g. after changing the node by hand).
    #[oai(
        path = "/:id/provision",
        method = "post",
        operation_id = "provisionNode"
    )]
    async fn provision(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
    ) -> Result<NodeWritten, WriteError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let tx = st.begin().await?;
        let mut w = Write::new(&tx, st, auth.principal().actor());
        let node = load(&tx, &id).await?;
        if node.deletion_requested_at.is_some() {
            return Err(ApiError::Conflict("the node is being deleted".into()).into());
        }
        resources::cas_update::<node_rows::Entity>(
            &tx,
            "node",
            &id,
            node.state_version,
            vec![("provision_requested_at", Expr::value(crate::clock::now()))],
        )
        .await
        .map_err(ApiError::from)?;
        w.event(event(
            &id,
            "ProvisionRequested",
            "provisioning requested".into(),
        ))
        .await?;
        w.audit("node.provision", "node", &id).await?;
        let node = load(&tx, &id).await?;
        w.wake(Kind::Node, &id);
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(NodeWritten::Accepted(Json(node.into())))
    }

    /// Forget a node. Refused (409 `resource_in_use`) while it still hosts environments.
    #[oai(path = "/:id", method = "delete", operation_id = "deleteNode")]
    async fn delete(
        &self,
        req: &Request,
        auth: Auth,
        id: Path<String>,
        /// The `state_version` you last read.
        state_version: Query<i64>,
    ) -> Result<NodeWritten, WriteError> {
        let st = state(req)?;
        let id = validate::uuid("id", &id.0)?;
        let tx = st.begin().await?;
        let node = load(&tx, &id).await?;
        if node.state_version != state_version.0 {
            return Err(ApiError::from(StoreError::Stale).into());
        }
        let mut w = Write::new(&tx, st, auth.principal().actor());
        if !delete_node_in(&mut w, &node).await? {
            return Ok(NodeWritten::Unchanged(Json(node.into())));
        }
        let node = load(&tx, &id).await?;
        let wakes = w.into_wakes();
        st.commit_and_wake(tx, wakes).await?;
        Ok(NodeWritten::Accepted(Json(node.into())))
    }
}

/// Registers a node (validated fields).
pub(crate) async fn create_node_in(
    w: &mut Write<'_>,
    n: NewNode<'_>,
) -> Result<node_rows::Model, ApiError> {
    let node = nodes::create(w.tx, n).await?;
    w.event(event(
        &node.id,
        "Created",
        format!(
            "node '{}' registered at {}:{}",
            node.name, node.hostname, node.ssh_port
        ),
    ))
    .await?;
    w.audit("node.create", "node", &node.id).await?;
    w.wake(Kind::Node, &node.id);
    Ok(node)
}

/// How Pressluft reaches a node (None: keep; validated).
#[derive(Default)]
pub(crate) struct NodeChange<'s> {
    pub name: Option<&'s str>,
    pub hostname: Option<&'s str>,
    pub public_ip: Option<&'s str>,
    pub ssh_port: Option<i64>,
    pub ssh_user: Option<&'s str>,
}

/// Changes a node; false when it already says this.
pub(crate) async fn update_node_in(
    w: &mut Write<'_>,
    node: &node_rows::Model,
    c: &NodeChange<'_>,
) -> Result<bool, ApiError> {
    if node.deletion_requested_at.is_some() {
        return Err(ApiError::Conflict("the node is being deleted".into()));
    }
    let mut changes = Vec::new();
    if let Some(v) = c.name.filter(|v| *v != node.name) {
        changes.push(("name", Expr::value(v)));
    }
    let address_changed = c.hostname.is_some_and(|v| v != node.hostname);
    if let Some(v) = c.hostname.filter(|v| *v != node.hostname) {
        changes.push(("hostname", Expr::value(v)));
    }
    if let Some(v) = c
        .public_ip
        .filter(|v| Some(*v) != node.public_ip.as_deref())
    {
        changes.push(("public_ip", Expr::value(v)));
    }
    if let Some(v) = c.ssh_port.filter(|v| *v != node.ssh_port) {
        changes.push(("ssh_port", Expr::value(v)));
    }
    if let Some(v) = c.ssh_user.filter(|v| *v != node.ssh_user) {
        changes.push(("ssh_user", Expr::value(v)));
    }
    if changes.is_empty() {
        return Ok(false);
    }
    // Another host answers at a new address: its key must be pinned anew.
    if address_changed {
        changes.push(("host_key", Expr::value(Option::<String>::None)));
    }
    resources::cas_update::<node_rows::Entity>(w.tx, "node", &node.id, node.state_version, changes)
        .await?;
    w.event(event(&node.id, "SpecChanged", "node spec updated".into()))
        .await?;
    w.audit("node.update", "node", &node.id).await?;
    w.wake(Kind::Node, &node.id);
    Ok(true)
}

/// Marks a node for deletion; refused while it hosts environments; false when it already is.
pub(crate) async fn delete_node_in(
    w: &mut Write<'_>,
    node: &node_rows::Model,
) -> Result<bool, ApiError> {
    if node.deletion_requested_at.is_some() {
        return Ok(false);
    }
    let hosted = nodes::hosted_environments(w.tx, &node.id).await?;
    if hosted > 0 {
        return Err(ApiError::ResourceInUse(format!(
            "the node still hosts {hosted} environment(s): delete or move them first"
        )));
    }
    resources::cas_update::<node_rows::Entity>(
        w.tx,
        "node",
        &node.id,
        node.state_version,
        vec![("deletion_requested_at", Expr::value(crate::clock::now()))],
    )
    .await?;
    w.event(event(
        &node.id,
        "DeletionRequested",
        format!("node '{}' marked for deletion", node.name),
    ))
    .await?;
    w.audit("node.delete", "node", &node.id).await?;
    w.wake(Kind::Node, &node.id);
    Ok(true)
}

fn event<'a>(id: &'a str, reason: &'static str, message: String) -> NewEvent<'a> {
    NewEvent {
        resource_type: "node",
        resource_id: id,
        site_id: None,
        environment_id: None,
        reason,
        message,
    }
}

async fn load(db: &impl sea_orm::ConnectionTrait, id: &str) -> Result<node_rows::Model, ApiError> {
    nodes::by_id(db, id)
        .await?
        .ok_or_else(|| ApiError::NotFound("node not found".into()))
}
