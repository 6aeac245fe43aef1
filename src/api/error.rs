//! The API's errors: one enum, one place that maps each variant to its stable `code` and HTTP
//! status. Internal causes are logged here and never sent to the client.
use poem::http::StatusCode;
use poem_openapi::Object;

/// The error body of every non-2xx answer.
#[derive(Debug, Clone, Object, serde::Serialize, serde::Deserialize)]
#[oai(rename = "Error")]
pub struct ErrorBody {
    /// Stable, machine-readable code (append-only registry).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Optional structured details (e.g. which field was invalid).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub details: Option<serde_json::Value>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// Manifests with problems: every one of them, in `details.problems`.
    #[error("the manifests have {} problem(s); nothing was written", .0.len())]
    InvalidManifests(Vec<crate::manifest::Problem>),
    #[error("authentication required")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("too many failed login attempts; try again later")]
    TooManyAttempts,
    #[error("request body is too large")]
    PayloadTooLarge,
    #[error("the resource is not failed")]
    ResourceNotFailed,
    #[error("{0}")]
    ResetValidationFailed(String),
    #[error("the job has already finished")]
    JobNotCancellable,
    #[error("{0}")]
    ResourceInUse(String),
    /// The cause is logged, never returned.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A node query needs an environment that is `active` and Ready.
    #[error("the environment is not active")]
    EnvironmentNotActive,
    /// SSH to the node failed or timed out; the low-level cause is logged, never returned.
    #[error("{0}")]
    NodeUnreachable(String),
    /// The WordPress helper on the node failed; its output is logged, never returned.
    #[error("{0}")]
    WpCliError(String),
    /// A source Pressluft reads from refused (an adoption's dry run: `ADOPT_*` codes); 422.
    #[error("{message}")]
    Source { code: &'static str, message: String },
}

impl ApiError {
    pub fn internal(e: impl std::error::Error + Send + Sync + 'static) -> Self {
        ApiError::Internal(Box::new(e))
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::Invalid {
            field: field.to_string(),
            message: message.into(),
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest(_) | ApiError::Invalid { .. } => "bad_request",
            ApiError::InvalidManifests(_) => "invalid_manifests",
            ApiError::Unauthorized => "unauthorized",
            ApiError::Forbidden(_) => "forbidden",
            ApiError::NotFound(_) => "not_found",
            ApiError::Conflict(_) => "conflict",
            ApiError::TooManyAttempts => "too_many_attempts",
            ApiError::PayloadTooLarge => "payload_too_large",
            ApiError::ResourceNotFailed => "resource_not_failed",
            ApiError::ResetValidationFailed(_) => "reset_validation_failed",
            ApiError::JobNotCancellable => "job_not_cancellable",
            ApiError::ResourceInUse(_) => "resource_in_use",
            ApiError::Internal(_) => "internal",
            ApiError::EnvironmentNotActive => "environment_not_active",
            ApiError::NodeUnreachable(_) => "node_unreachable",
            ApiError::WpCliError(_) => "wp_cli_error",
            ApiError::Source { code, .. } => code,
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) | ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_)
            | ApiError::ResourceNotFailed
            | ApiError::ResetValidationFailed(_)
            | ApiError::JobNotCancellable
            | ApiError::ResourceInUse(_) => StatusCode::CONFLICT,
            ApiError::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
            ApiError::InvalidManifests(_) | ApiError::Source { .. } => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::EnvironmentNotActive => StatusCode::CONFLICT,
            ApiError::NodeUnreachable(_) | ApiError::WpCliError(_) => StatusCode::BAD_GATEWAY,
        }
    }

    pub fn body(&self) -> ErrorBody {
        if let ApiError::Internal(cause) = self {
            tracing::error!(error = %cause, "internal error while handling a request");
        }
        let details = match self {
            ApiError::Invalid { field, .. } => Some(serde_json::json!({ "field": field })),
            ApiError::InvalidManifests(problems) => {
                Some(serde_json::json!({ "problems": problems }))
            }
            _ => None,
        };
        ErrorBody {
            code: self.code().to_string(),
            message: self.to_string(),
            details,
        }
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::NotFound(what) => ApiError::NotFound(format!("{what} not found")),
            StoreError::Stale => ApiError::Conflict(
                "state_version is stale: the resource changed since you read it".into(),
            ),
            StoreError::Duplicate(msg) => ApiError::Conflict(msg),
            other => ApiError::internal(other),
        }
    }
}

/// Declares an operation's error response: exactly the listed statuses (plus 500), each with the
/// shared error body, convertible from [`ApiError`].
#[macro_export]
macro_rules! error_response {
    ($name:ident { $($variant:ident = $status:literal),* $(,)? }) => {
        #[derive(poem_openapi::ApiResponse, Debug)]
        pub enum $name {
            $(
                #[oai(status = $status)]
                $variant(poem_openapi::payload::Json<$crate::api::error::ErrorBody>),
            )*
            /// Unexpected server error; details are in the server log only.
            #[oai(status = 500)]
            Internal(poem_openapi::payload::Json<$crate::api::error::ErrorBody>),
        }

        impl From<$crate::api::error::ApiError> for $name {
            fn from(e: $crate::api::error::ApiError) -> Self {
                let status = e.status().as_u16();
                let body = poem_openapi::payload::Json(e.body());
                match status {
                    $( $status => $name::$variant(body), )*
                    _ => {
                        tracing::error!(status, code = %body.0.code, "error status not declared for this operation");
                        $name::Internal(poem_openapi::payload::Json($crate::api::error::ErrorBody {
                            code: "internal".into(),
                            message: "internal error".into(),
                            details: None,
                        }))
                    }
                }
            }
        }
    };
}

/// Turns errors that never reached a handler (unknown route, unparsable body, body over the limit,
/// failed authentication inside poem) into the shared error body with a stable code.
pub fn normalize(err: poem::Error) -> poem::Response {
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    let (code, message) = match status {
        StatusCode::BAD_REQUEST => ("bad_request", sanitize(&err.to_string())),
        StatusCode::UNAUTHORIZED => ("unauthorized", "authentication required".to_string()),
        StatusCode::FORBIDDEN => ("forbidden", "forbidden".to_string()),
        StatusCode::NOT_FOUND => ("not_found", "not found".to_string()),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "method not allowed".to_string()),
        StatusCode::PAYLOAD_TOO_LARGE => {
            ("payload_too_large", "request body is too large".to_string())
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "bad_request",
            "the request body must be application/json".to_string(),
        ),
        s if s.is_client_error() => ("bad_request", sanitize(&err.to_string())),
        _ => {
            tracing::error!(error = %err, "unhandled server error");
            ("internal", "internal error".to_string())
        }
    };
    // Parse errors of a request body are client errors: answer 400 whatever poem chose.
    let status = if code == "bad_request" {
        StatusCode::BAD_REQUEST
    } else {
        status
    };
    let body = ErrorBody {
        code: code.into(),
        message,
        details: None,
    };
    poem::Response::builder()
        .status(status)
        .content_type("application/json")
        .body(serde_json::to_vec(&body).unwrap_or_default())
}

/// Parser messages are safe to show (they describe the client's own input) but can be long.
fn sanitize(msg: &str) -> String {
    let mut s: String = msg.chars().filter(|c| !c.is_control()).take(300).collect();
    if s.is_empty() {
        s = "bad request".into();
    }
    s
}
