//! Test hooks, routed only when the `dev_clock` setting is on (never in production):
//! move the clock forward, run every scheduled job at once, pause the scheduler, make a
//! handler panic, and list
//! the routes (so a test can prove every `/api/v1` route is documented).

use super::router::Router;
use super::{Ctx, Method, Request, Response};

pub fn routes(r: &mut Router) {
    r.dev(Method::Post, "/__dev/clock", advance);
    r.dev(Method::Post, "/__dev/jobs", run_jobs);
    r.dev(Method::Post, "/__dev/scheduler", scheduler);
    r.dev(Method::Get, "/__dev/panic", panic_now);
    r.dev(Method::Get, "/__dev/routes", list_routes);
}

/// `GET /__dev/routes` → `[{"method", "path", "access"}]`, every route the router knows with
/// the access it declares (the route-access test walks it).
fn list_routes(ctx: &mut Ctx<'_>, _: &Request) -> Response {
    let out: Vec<_> = ctx
        .site
        .router
        .routes()
        .iter()
        .map(|r| {
            serde_json::json!({
                "method": r.method.as_str(),
                "path": r.pattern,
                "access": format!("{:?}", r.access),
            })
        })
        .collect();
    Response::json(200, &out)
}

/// `POST /__dev/clock?advance=SECONDS` → the new clock time.
fn advance(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    let secs = req
        .query_param("advance")
        .and_then(|s| crate::config::parse_duration(&s).ok());
    match secs {
        Some(s) if ctx.app.clock.advance(s as i64) => {
            Response::json(200, &serde_json::json!({"now": ctx.now()}))
        }
        _ => Response::json_error(400, "invalid_request", "advance=SECONDS required"),
    }
}

/// `POST /__dev/scheduler?paused=1|0` → stops or resumes the scheduler's ticks, as if it were
/// stuck (health tests).
fn scheduler(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    match req.query_param("paused").as_deref() {
        Some(v @ ("1" | "0")) => {
            ctx.app.life.pause_scheduler(v == "1");
            Response::json(200, &serde_json::json!({"paused": v == "1"}))
        }
        _ => Response::json_error(400, "invalid_request", "paused=1 or paused=0 required"),
    }
}

/// `POST /__dev/jobs` → runs every job now; their summaries.
fn run_jobs(ctx: &mut Ctx<'_>, _: &Request) -> Response {
    let results = ctx.site.jobs.run_all(ctx.app, ctx.db);
    let out: Vec<_> = results
        .into_iter()
        .map(|(name, ok, msg)| serde_json::json!({"job": name, "ok": ok, "message": msg}))
        .collect();
    Response::json(200, &out)
}

/// `GET /__dev/panic` → always panics, so tests can prove a panicking handler answers 500
/// and leaves its worker serving.
fn panic_now(_: &mut Ctx<'_>, _: &Request) -> Response {
    panic!("panic requested through /__dev/panic");
}
