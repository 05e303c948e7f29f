//! The web console at `/`: one page, embedded in the binary (no CDN, no build step), that shows
//! the peers of every instance, the load balancers with their backends, a live timeline of
//! health changes and failovers (`GET /v1/events`, long poll), a NIC's effective routes with the
//! backend each load-balanced route goes to now (`GET /v1/effective-routes`, long poll), a
//! looking glass over every peer's learned and advertised routes, and a `trace` form.
//!
//! The page holds no data: it asks the API from the browser, with the token the user types (kept
//! in the tab's sessionStorage), so it is served without one; what the token allows is what the
//! page can show. What is looked at (NIC, search, trace) lives in the URL's fragment, so a link
//! shows the same view.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const PAGE: &str = include_str!("console.html");

pub async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // The page's own inline script and style, and calls to this origin only.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
                 frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        PAGE,
    )
        .into_response()
}
