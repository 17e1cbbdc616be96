//! The only code that knows tiny_http lives in [`server`]. Everything else here works on our
//! own [`Request`]/[`Response`] types: the router, the session and CSRF guards, and the
//! handlers per area (public pages, account pages, admin pages, the native API, the
//! SMS-Activate protocol, dev hooks).

pub mod api;
pub mod assets;
pub mod auth;
pub mod dev;
pub mod protocols;
pub mod ratelimit;
pub mod request;
pub mod response;
pub mod router;
pub mod server;
pub mod web;

use std::sync::Arc;

use rusqlite::Connection;

use crate::app::App;
use crate::config::Config;
use crate::domain::accounts::User;
use crate::domain::market::activations::{OrderRequest, Placed};
use crate::domain::supply::routing;
use crate::domain::Error;
use crate::jobs::Jobs;
pub use request::{Method, Request};
pub use response::Response;
use router::{Access, Handler, Match, Router};

/// What the HTTP side owns beside the [`App`]: the route table, the customer APIs' rate
/// limiter and the job registry (the admin's jobs page and the dev hooks run jobs by hand).
pub struct Site {
    pub router: Router,
    /// Token buckets of the customer APIs' rate limits.
    pub limiter: ratelimit::RateLimiter,
    pub jobs: Arc<Jobs>,
    /// Errors and typed values of failed forms, waiting for their pages (`web::form`).
    pub stashes: web::form::Stashes,
    /// The payment gateways that are on.
    pub gateways: crate::payments::Gateways,
    /// The OpenID Connect providers and their cached metadata and keys.
    pub oidc: crate::oidc::Oidc,
}

impl Site {
    pub fn new(config: &Config, jobs: Arc<Jobs>) -> Site {
        Site {
            router: build_router(config),
            limiter: ratelimit::RateLimiter::new(config.api_key_limit, config.api_ip_limit),
            jobs,
            stashes: Default::default(),
            gateways: crate::payments::Gateways::from_config(config),
            oidc: crate::oidc::Oidc::new(config),
        }
    }
}

/// What a handler gets: the shared app, the site and this thread's database connection.
pub struct Ctx<'a> {
    pub app: &'a App,
    pub site: &'a Site,
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
        keep_going: impl Fn(&Error) -> bool + Sync,
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
    protocols::handler_api::routes(&mut r);
    protocols::fivesim::routes(&mut r);
    api::webhooks::routes(&mut r);
    api::notifications::routes(&mut r);
    api::admin::routes(&mut r);
    protocols::ingest::routes(&mut r);
    protocols::partner::routes(&mut r);
    protocols::payments::routes(&mut r);
    protocols::telegram::routes(&mut r);
    api::topups::routes(&mut r);
    assets::routes(&mut r);
    if config.dev_clock {
        dev::routes(&mut r);
    }
    r
}

/// Runs the matched route: the rate limiter for the customer APIs, then the route's
/// [`Access`](router::Access) check (and the CSRF check of browser forms), then the handler
/// with the checked caller. Unknown paths get 404, known paths with another method 405.
pub fn route(ctx: &mut Ctx<'_>, req: &mut Request) -> Response {
    if let Some(refusal) = ratelimit::guard(&ctx.site.limiter, req, ctx.app.clock.now_ms()) {
        return refusal;
    }
    let route = match ctx.site.router.find(req.method, &req.path) {
        Match::Route { route, params } => {
            req.params = params;
            route
        }
        Match::MethodNotAllowed(allowed) => {
            let allow: Vec<&str> = allowed.iter().map(|m| m.as_str()).collect();
            return error_page(req, 405, "This address does not accept that method.")
                .with_header("Allow", &allow.join(", "));
        }
        Match::NotFound => return error_page(req, 404, "There is nothing at this address."),
    };
    let visitor = match route.access {
        Access::Visitor | Access::Page(_) => {
            let v = auth::visiting(ctx, req);
            if route.needs_csrf() && !auth::csrf_ok(v.session.as_ref(), req) {
                return error_page(
                    req,
                    403,
                    "This form has expired or did not come from this site. Go back, reload \
                     the page and try again.",
                );
            }
            Some(v)
        }
        _ => None,
    };
    // The native API's document is its contract: checked after the caller (a 401 comes
    // before a 400), before the handler.
    let documented = |req: &Request| {
        if route.pattern.starts_with("/api/") {
            api::contract::check(route.method, &route.pattern, req)
        } else {
            Ok(())
        }
    };
    match (route.handler, route.access, visitor) {
        (Handler::Open(h), _, _) => match documented(req) {
            Ok(()) => h(ctx, req),
            Err(refusal) => refusal,
        },
        (Handler::Visitor(h), _, Some(v)) => h(ctx, req, &v),
        (Handler::Page(h), Access::Page(role), Some(v)) => match auth::page(ctx, req, v, role) {
            Ok(page) => h(ctx, req, &page),
            Err(refusal) => refusal,
        },
        (Handler::User(h), Access::Api(role), _) => {
            match auth::api_caller(ctx, req, role).and_then(|user| documented(req).map(|()| user)) {
                Ok(user) => h(ctx, req, &user),
                Err(refusal) => refusal,
            }
        }
        (Handler::User(h), Access::FiveSimKey, _) => match protocols::fivesim::caller(ctx, req) {
            Ok(user) => h(ctx, req, &user),
            Err(refusal) => refusal,
        },
        (Handler::Gateway(h), Access::Gateway, _) => match protocols::ingest::sender(ctx, req) {
            Ok(sender) => h(ctx, req, &sender),
            Err(refusal) => refusal,
        },
        // `Router::add` refuses a handler that does not take what its access checks.
        _ => error_page(req, 500, "This route is misconfigured."),
    }
}

/// An error in the caller's form: plain text for the 5sim API, JSON for API paths and JSON
/// clients, a page otherwise.
pub fn error_page(req: &Request, status: u16, message: &str) -> Response {
    if req.path.starts_with("/v1/") {
        return protocols::fivesim::plain_error(status);
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
