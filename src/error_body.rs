//! The one error shape every interface speaks: `{"error": {"code", "message", "field"}}`.
//!
//! HTTP responses, CLI diagnostics and per-item results all use it, so a client needs one parser
//! and a `code` means the same thing everywhere.

use serde::{Deserialize, Serialize};

use crate::skan::ParseError;

/// A machine-readable error: a stable snake_case `code`, a human `message`, and the `field` to
/// blame when one input is at fault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable snake_case identifier.
    pub code: String,
    /// Explanation for a human.
    pub message: String,
    /// The input (JSON key, parameter, flag) at fault, if one is.
    pub field: Option<String>,
}

/// `{"error": ErrorBody}`, the top-level error document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

impl ErrorBody {
    /// An error with no single field to blame.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into(), field: None }
    }

    /// Name the field at fault.
    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// Wrap in the top-level envelope.
    #[must_use]
    pub fn envelope(self) -> ErrorEnvelope {
        ErrorEnvelope { error: self }
    }
}

impl From<&ParseError> for ErrorBody {
    fn from(err: &ParseError) -> Self {
        Self { code: err.code().to_owned(), message: err.message(), field: err.field.clone() }
    }
}
