//! The OpenAPI document of the HTTP API, generated from the router itself: each operation is the
//! handler that serves it, annotated with `#[utoipa::path]` (its parameters are the typed queries of
//! `tend_api::query`, its bodies and answers the wire types), collected by `utoipa-axum` as the routes
//! are registered. The answers every operation shares (401 without the token, 503 while Tend stops,
//! 400 and 413 where there is a query or a body) are added here from what the operation takes. Served
//! at `/api/v1/openapi.json`; `docs/openapi.json` is the committed copy (`TEND_BLESS=1 cargo test -p
//! tend-server openapi` rewrites it).

use std::sync::OnceLock;

use axum::Json;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, ParameterIn};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

use tend_engine::api;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Tend",
        description = "Watch, recycle and keep the history of pools of workers. Errors are \
            `{\"error\": {\"code\", \"message\"}}`; clients branch on `code`. When a token is configured \
            every endpoint but `/api/v1/health` needs `Authorization: Bearer <token>`. Bodies are JSON, \
            at most 64 KiB."
    ),
    components(schemas(api::ErrorResponse, api::ApiError, api::ErrorCode, api::ExportKind)),
    tags(
        (name = "workers", description = "Workers, pools, alerts and actions"),
        (name = "containers", description = "Container workers and orphaned containers"),
        (name = "reports", description = "Orchestrators report the workers they run"),
        (name = "metrics", description = "Prometheus exposition"),
        (name = "history", description = "The SQLite history: metrics over time, events, alerts, recycles, CSV"),
    )
)]
struct ApiDoc;

/// The document: the description above, every operation of the router, the shared answers.
pub fn spec() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.merge(crate::operations().into_openapi());
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    doc.security = Some(vec![SecurityRequirement::new("bearer", Vec::<String>::new())]);
    for (path, item) in doc.paths.paths.iter_mut() {
        for op in [&mut item.get, &mut item.post].into_iter().flatten() {
            shared_answers(path, op);
        }
    }
    doc
}

fn error(description: &str) -> RefOr<Response> {
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorResponse"))).build();
    RefOr::T(ResponseBuilder::new().description(description).content("application/json", content).build())
}

/// The answers an operation can give whatever it does, from what it takes.
fn shared_answers(path: &str, op: &mut Operation) {
    let answers = &mut op.responses.responses;
    let has_query = op.parameters.as_ref().is_some_and(|ps| {
        ps.iter().any(|p| matches!(p, RefOr::T(p) if matches!(p.parameter_in, ParameterIn::Query)))
    });
    let has_body = op.request_body.is_some();
    if has_query || has_body {
        answers
            .entry("400".into())
            .or_insert_with(|| error("A bad parameter or body field, named (code bad_request)"));
    }
    if path != "/api/v1/health" {
        answers
            .entry("401".into())
            .or_insert_with(|| error("Missing or wrong bearer token (code unauthorized)"));
    }
    if has_body {
        answers
            .entry("413".into())
            .or_insert_with(|| error("The body is larger than 64 KiB (code too_large)"));
    }
    if path != "/api/v1/openapi.json" && path != "/api/v1/settings" {
        let why = if op.tags.as_ref().is_some_and(|t| t.iter().any(|t| t == "history")) {
            "Tend is stopping (code stopping), or the history store is off or not open (code store_unavailable)"
        } else {
            "Tend is stopping (code stopping)"
        };
        answers.entry("503".into()).or_insert_with(|| error(why));
    }
}

/// The document as pretty JSON with a trailing newline (the committed file's exact form).
pub fn document() -> String {
    let mut s = spec().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "workers",
    responses((status = 200, description = "The OpenAPI document of this API", content_type = "application/json", body = Object)))]
pub(crate) async fn openapi_json() -> Json<&'static utoipa::openapi::OpenApi> {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    Json(DOC.get_or_init(spec))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_says_what_it_answers() {
        let doc = spec();
        let mut ops = 0;
        for (path, item) in &doc.paths.paths {
            for (method, op) in [("GET", &item.get), ("POST", &item.post)] {
                let Some(op) = op else { continue };
                ops += 1;
                let codes: Vec<&str> = op.responses.responses.keys().map(String::as_str).collect();
                assert!(codes.iter().any(|c| c.starts_with('2')), "{method} {path}: no success answer");
                if path != "/api/v1/health" {
                    assert!(codes.contains(&"401"), "{method} {path}: 401 undocumented");
                }
                if op.request_body.is_some() {
                    assert!(codes.contains(&"413") && codes.contains(&"400"), "{method} {path}: {codes:?}");
                }
            }
        }
        assert!(ops >= 30, "only {ops} operations");
        assert!(doc.paths.paths.contains_key("/metrics"));
        assert!(doc.paths.paths.contains_key("/api/v1/workers/{id}/history"));
    }

    #[test]
    fn openapi_committed_document_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/openapi.json");
        let generated = document();
        if std::env::var_os("TEND_BLESS").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/openapi.json is stale: run TEND_BLESS=1 cargo test -p tend-server openapi and commit it"
        );
    }
}
