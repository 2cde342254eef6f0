//! HTTP: routing, shared state and middleware. Handlers only translate between HTTP and one
//! application call; everything else lives in `ingest`, `store` and the pure modules.

mod console;
mod destinations;
pub mod error;
pub mod extract;
mod health;
mod params;
mod postbacks;
mod quality;
mod rate_limit;
mod reports;
mod schemas;
pub mod server;
mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode};
use axum::response::IntoResponse;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use crate::ingest::Summary;
pub use console::{CONTENT_SECURITY_POLICY, ConsoleFiles};
pub use destinations::DeliveryPage;
pub use postbacks::{InstallInterval, PostbackDetail, PostbackPage, SubmitResponse};
pub use schemas::{Generated, InvalidSchemaBody};
pub use session::SessionView;

use crate::auth::Authenticator;
use crate::config::Settings;
use crate::error_body::ErrorBody;
use crate::ingest::Ingestor;
use crate::store::Store;
use error::ApiError;
use extract::BodyLimit;

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database.
    pub store: Arc<dyn Store>,
    /// The service's clock.
    pub clock: Arc<dyn crate::clock::Clock>,
    /// The ingest pipeline.
    pub ingestor: Arc<Ingestor>,
    /// API key checks.
    pub auth: Arc<Authenticator>,
    /// Resolved settings.
    pub settings: Arc<Settings>,
    /// Prometheus renderer, when metrics are served on the API listener.
    pub metrics: Option<PrometheusHandle>,
    /// The API description served at `/v1/openapi.json`.
    pub openapi: Arc<String>,
    /// Conversion-value schemas.
    pub schemas: Arc<crate::schema_versions::SchemaVersions>,
    /// The postback dispatcher (destinations and deliveries).
    pub dispatcher: Arc<crate::dispatch::Dispatcher>,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "skan-receiver",
        description = "Receives, verifies, stores, decodes and forwards Apple SKAdNetwork and AdAttributionKit postbacks. Errors are `{\"error\": {\"code\", \"message\", \"field\"}}`.",
    ),
    modifiers(&BearerAuth),
    tags(
        (name = "apple", description = "Apple's well-known postback paths (open)"),
        (name = "postbacks", description = "Forwarded postbacks and support lookups"),
        (name = "schemas", description = "Conversion-value schemas, per app and versioned"),
        (name = "reports", description = "Aggregated conversion reports"),
        (name = "quality", description = "Data quality: per-day rates, anomalies, acknowledgements and mutes"),
        (name = "destinations", description = "Forwarding to partners: destinations, deliveries, attempts, replay"),
        (name = "operations", description = "Health, readiness, metrics, API description"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "api_key",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        }
    }
}

/// Build the routes and their OpenAPI description together, so the two cannot drift apart.
/// `/metrics` is included only when metrics are served on the API listener.
pub fn routes(
    settings: &Settings,
    serve_metrics: bool,
) -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let apple = OpenApiRouter::new()
        .routes(routes!(postbacks::receive_skadnetwork))
        .routes(routes!(postbacks::receive_skadnetwork_no_slash))
        .routes(routes!(postbacks::receive_adattributionkit))
        .routes(routes!(postbacks::receive_adattributionkit_no_slash))
        .layer(DefaultBodyLimit::max(settings.max_postback_bytes))
        .layer(Extension(BodyLimit(settings.max_postback_bytes)));
    let apple = match rate_limit::AddressLimit::new(
        settings.rate_limit_per_ip,
        settings.rate_limit_burst,
        settings.trusted_proxies.clone(),
    ) {
        Some(limit) => apple.layer(axum::middleware::from_fn_with_state(limit, rate_limit::limit)),
        None => apple,
    };
    let forwarded = OpenApiRouter::new()
        .routes(routes!(postbacks::submit_postbacks, postbacks::list_postbacks))
        .layer(DefaultBodyLimit::max(settings.max_batch_bytes))
        .layer(Extension(BodyLimit(settings.max_batch_bytes)));
    let mut router = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(apple)
        .merge(forwarded)
        .routes(routes!(postbacks::get_postback))
        .routes(routes!(schemas::get_schema, schemas::put_schema))
        .routes(routes!(schemas::list_schema_versions))
        .routes(routes!(schemas::get_schema_version))
        .routes(routes!(schemas::diff_schema_versions))
        .routes(routes!(schemas::validate_schema))
        .routes(routes!(schemas::diff_draft))
        .routes(routes!(session::get_session))
        .routes(routes!(session::list_apps))
        .routes(routes!(schemas::simulate_schema))
        .routes(routes!(schemas::generate_schema))
        .routes(routes!(reports::get_report))
        .routes(routes!(quality::get_quality))
        .routes(routes!(quality::list_anomalies))
        .routes(routes!(quality::acknowledge_anomaly))
        .routes(routes!(quality::put_mute, quality::delete_mute))
        .routes(routes!(destinations::list_destinations, destinations::create_destination))
        .routes(routes!(
            destinations::get_destination,
            destinations::put_destination,
            destinations::delete_destination
        ))
        .routes(routes!(destinations::preview_destination))
        .routes(routes!(destinations::test_destination))
        .routes(routes!(destinations::replay_destination))
        .routes(routes!(destinations::list_deliveries))
        .routes(routes!(destinations::get_delivery))
        .routes(routes!(destinations::retry_delivery))
        .routes(routes!(health::get_health))
        .routes(routes!(health::get_ready))
        .routes(routes!(health::get_openapi));
    if serve_metrics {
        router = router.routes(routes!(health::get_metrics));
    }
    router.split_for_parts()
}

/// The full service: routes, fallbacks and middleware, bound to `state`.
pub fn router(routes: axum::Router<AppState>, state: AppState) -> axum::Router {
    let request_id = HeaderName::from_static("x-request-id");
    routes
        .route("/", axum::routing::get(console::root))
        .route("/ui", axum::routing::get(|| async { axum::response::Redirect::permanent("/ui/") }))
        .route("/ui/", axum::routing::get(console::index))
        .route("/ui/{*path}", axum::routing::get(console::file))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(CatchPanicLayer::custom(|_| {
            ApiError::Internal("handler panicked".to_owned()).into_response()
        }))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(60)))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
}

async fn not_found() -> ApiError {
    ApiError::NotFound(ErrorBody::new("not_found", "no such endpoint; see /v1/openapi.json"))
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}

/// `GET /metrics` on its own listener, away from the public API.
pub fn metrics_router(handle: PrometheusHandle) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let handle = handle.clone();
            async move {
                handle.run_upkeep();
                ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render())
            }
        }),
    )
}
