//! A resource built from its methods, and the pattern it carries for telemetry.

use actix_web::http::header::{ALLOW, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{HttpRequest, HttpResponse, Resource, ResponseError as _, Route, web};

use crate::error::ApiError;

/// The path pattern of the resource that served a request (`/v1/tenants/{tenant_id}/files`),
/// the `route` label of the HTTP metrics. Each resource carries its own, so the request
/// middleware reads it after routing instead of matching the path against every resource a
/// second time (`HttpRequest::match_pattern` does).
#[derive(Debug, Clone)]
pub struct RoutePattern(pub std::sync::Arc<str>);

/// A resource serving `routes`, each a method and its handler; any other method gets a JSON
/// 405 whose `Allow` header lists the methods served (RFC 9110).
pub fn resource<const N: usize>(path: &'static str, routes: [(Method, Route); N]) -> Resource {
    let allow = routes
        .iter()
        .map(|(method, _)| method.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let allow = HeaderValue::from_str(&allow).unwrap_or_else(|_| HeaderValue::from_static(""));
    let resource = routes.into_iter().fold(
        web::resource(path).app_data(RoutePattern(path.into())),
        |resource, (method, route)| resource.route(route.method(method)),
    );
    resource.default_service(web::to(move |req: HttpRequest| {
        let allow = allow.clone();
        async move { method_not_allowed(&req, allow) }
    }))
}

fn method_not_allowed(req: &HttpRequest, allow: HeaderValue) -> HttpResponse {
    let mut response = ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not supported on {}", req.method(), req.path()),
    )
    .error_response();
    response.headers_mut().insert(ALLOW, allow);
    response
}
