//! The only code that knows tiny_http lives in [`server`]. Everything else here works on our
//! own [`Request`]/[`Response`] types: the router, the session and CSRF guards, and the
//! handlers per area (public pages, account pages, admin pages, the native API, the
//! SMS-Activate protocol, dev hooks).

pub mod api;
pub mod api_admin;
pub mod api_webhooks;
pub mod assets;
pub mod auth;
pub mod dev;
pub mod fivesim;
pub mod handler_api;
pub mod ingest;
pub mod longpoll;
pub mod net;
pub mod ratelimit;
pub mod request;
pub mod response;
pub mod router;
pub mod server;
pub mod supervisor;
pub mod web;

use rusqlite::Connection;

use crate::app::App;
use crate::config::Config;
use crate::domain::accounts::User;
use crate::domain::market::activations::{OrderRequest, Placed};
use crate::domain::supply::routing;
use crate::domain::Error;
pub use request::{Method, Request};
pub use response::Response;
use router::{Match, Router};

/// What a handler gets: the shared app and this thread's database connection.
pub struct Ctx<'a> {
    pub app: &'a App,
    pub db: &'a mut Connection,
}

impl Ctx<'_> {
    pub fn now(&self) -> i64 {
        self.app.now()
    }

    pub fn ip_hash(&self, req: &Request) -> String {
        self.app.keys.ip_hash(&req.remote_ip.to_string())
    }

    /// Places an order for `user` through [`routing::place_order`] (own numbers, else bought
    /// upstream), with the install's policy and clock. Every ordering edge calls this.
    pub fn place_order(
        &mut self,
        user: &User,
        alternatives: &[OrderRequest],
        keep_going: impl Fn(&Error) -> bool,
    ) -> Result<Placed, Error> {
        let app = self.app;
        routing::place_order(
            self.db,
            user,
            alternatives,
            keep_going,
            &app.policy(),
            || app.now(),
            &mut crate::upstream::Buyer::new(app),
        )
    }
}

/// Every route of the application, in one place.
pub fn build_router(config: &Config) -> Router {
    let mut r = Router::new();
    web::routes(&mut r);
    api::routes(&mut r);
    handler_api::routes(&mut r);
    fivesim::routes(&mut r);
    api_webhooks::routes(&mut r);
    api_admin::routes(&mut r);
    ingest::routes(&mut r);
    assets::routes(&mut r);
    if config.dev_clock {
        dev::routes(&mut r);
    }
    r
}

/// Runs the matched handler, answering 404/405 and refusing form posts without a valid CSRF
/// token. Requests to the customer APIs pass the rate limiter first.
pub fn route(ctx: &mut Ctx<'_>, req: &mut Request) -> Response {
    if let Some(refusal) = ratelimit::guard(&ctx.app.limiter, req, ctx.app.clock.now_ms()) {
        return refusal;
    }
    match ctx.app.router.find(req.method, &req.path) {
        Match::Route {
            handler,
            csrf,
            params,
            ..
        } => {
            req.params = params;
            if csrf && !auth::csrf_ok(ctx, req) {
                return error_page(
                    req,
                    403,
                    "This form has expired or did not come from this site. Go back, reload \
                     the page and try again.",
                );
            }
            handler(ctx, req)
        }
        Match::MethodNotAllowed(allowed) => {
            let allow: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
            error_page(req, 405, "This address does not accept that method.")
                .with_header("Allow", &allow.join(", "))
        }
        Match::NotFound => error_page(req, 404, "There is nothing at this address."),
    }
}

/// An error in the caller's form: plain text for the 5sim API, JSON for API paths and JSON
/// clients, a page otherwise.
pub fn error_page(req: &Request, status: u16, message: &str) -> Response {
    if req.path.starts_with("/v1/") {
        return fivesim::plain_error(status);
    }
    if req.path.starts_with("/api/") || req.path.starts_with("/ingest/") || req.wants_json() {
        let code = match status {
            400 => "invalid_request",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not_found",
            405 => "method_not_allowed",
            409 => "conflict",
            429 => "rate_limited",
            503 => "busy",
            _ => "internal",
        };
        Response::json_error(status, code, message)
    } else {
        Response::html(crate::views::error_page(status, message)).with_status(status)
    }
}
