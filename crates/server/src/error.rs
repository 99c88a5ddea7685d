//! How failures become responses.
//!
//! The rule (from `rxvault_auth`'s documentation): every credential failure
//! is the same 401 with the same body; a missing, expired or revoked session
//! is another single 401; step-up is a 401 with an RFC 9470 challenge;
//! throttling is 429 with `Retry-After`; a lock is 423; a role that may not
//! do something is 403. Internal failures are 500 (503 for a full disk) and
//! say nothing more: the detail goes to the server log, without PHI.
//!
//! Under `/api/v1` the body is `{"error": {"code", "message"}}`; under
//! `/fhir` it is a FHIR `OperationOutcome`.

use crate::fhir_format::{FHIR_JSON, operation_outcome};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Which body an error gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// `{"error": {...}}`.
    Json,
    /// `OperationOutcome`.
    Fhir,
}

/// An error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// Status code.
    pub status: StatusCode,
    /// A stable machine-readable code.
    pub code: &'static str,
    /// A human-readable message (no PHI, no secrets).
    pub message: String,
    /// `Retry-After` seconds.
    pub retry_after: Option<u64>,
    /// Ask for a fresh second factor (RFC 9470).
    pub step_up: bool,
    /// Body flavour.
    pub flavor: Flavor,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
            step_up: false,
            flavor: Flavor::Json,
        }
    }

    /// The same error as a FHIR `OperationOutcome`.
    pub fn fhir(mut self) -> Self {
        self.flavor = Flavor::Fhir;
        self
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid", message)
    }

    /// 404.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "not found")
    }

    /// 403.
    pub fn forbidden() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "your role does not allow this",
        )
    }

    /// 401 for any session problem (one body for all of them).
    pub fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "authentication required",
        )
    }

    /// 500, logging `detail` (which must carry no PHI).
    pub fn internal(detail: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "exception",
            "internal error",
        )
    }

    fn fhir_code(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "login",
            403 => "forbidden",
            404 => "not-found",
            409 => "duplicate",
            413 => "too-costly",
            423 => "lock-error",
            429 => "throttled",
            400 | 422 => "invalid",
            _ => "exception",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = match self.flavor {
            Flavor::Json => (
                self.status,
                axum::Json(json!({"error": {"code": self.code, "message": self.message}})),
            )
                .into_response(),
            Flavor::Fhir => {
                let severity = if self.status.is_server_error() {
                    "fatal"
                } else {
                    "error"
                };
                let body = operation_outcome(severity, self.fhir_code(), &self.message);
                let mut r = (self.status, axum::Json(body)).into_response();
                r.headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
                r
            }
        };
        if let Some(s) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.step_up {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(
                    "Bearer error=\"insufficient_user_authentication\", error_description=\"a second factor within the last 5 minutes is required\"",
                ),
            );
        } else if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<rxvault_auth::Error> for ApiError {
    fn from(e: rxvault_auth::Error) -> Self {
        use rxvault_auth::Error as E;
        match e {
            E::InvalidCredentials => Self::new(
                StatusCode::UNAUTHORIZED,
                "invalid-credentials",
                "invalid credentials",
            ),
            E::Unauthenticated => Self::unauthenticated(),
            E::StepUpRequired => {
                let mut err = Self::new(
                    StatusCode::UNAUTHORIZED,
                    "step-up-required",
                    "a recent second factor is required",
                );
                err.step_up = true;
                err
            }
            E::Throttled { retry_after_secs } => {
                let mut err = Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "throttled",
                    "too many attempts; retry later",
                );
                err.retry_after = Some(retry_after_secs.max(1));
                err
            }
            E::Locked => Self::new(
                StatusCode::LOCKED,
                "locked",
                "too many failed attempts: the account is locked",
            ),
            E::Forbidden { .. } => Self::forbidden(),
            E::WeakPassword(reason) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "weak-password",
                reason.to_string(),
            ),
            E::Invalid(reason) => Self::bad_request(reason),
            E::NotFound { .. } => Self::not_found(),
            E::Conflict(what) => Self::new(StatusCode::CONFLICT, "conflict", what),
            E::PasskeysDisabled => Self::new(
                StatusCode::NOT_FOUND,
                "not-found",
                "passkeys are not configured on this server",
            ),
            other => Self::internal(&other),
        }
    }
}

impl From<rxvault_vault::Error> for ApiError {
    fn from(e: rxvault_vault::Error) -> Self {
        use rxvault_vault::Error as E;
        match e {
            E::Invalid(m) => Self::bad_request(m),
            E::Store(rxvault_store::Error::DiskFull) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "disk-full",
                "the server's disk is full",
            ),
            other => Self::internal(&other),
        }
    }
}

impl From<rxvault_vault::access::WriteError> for ApiError {
    fn from(e: rxvault_vault::access::WriteError) -> Self {
        use rxvault_vault::access::WriteError as W;
        match e {
            W::Invalid(f) => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", f.to_string()),
            W::Forbidden { .. } => Self::new(StatusCode::FORBIDDEN, "forbidden", e.to_string()),
            W::NotFound => Self::not_found(),
            W::Conflict => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                "a record with that id already exists",
            ),
            W::Failed(e) => e.into(),
        }
    }
}
