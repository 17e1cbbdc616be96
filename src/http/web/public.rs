//! Landing page, policies, health check, metrics.

use super::super::auth::Visitor;
use super::super::router::Router;
use super::super::{Ctx, Method, Request, Response};
use super::nav;
use crate::clock::describe_seconds;
use crate::domain::trust::retention::Rule;
use crate::views::public::{self, Operator, Retention};

pub fn routes(r: &mut Router) {
    use Method::Get;
    r.visitors(&[(Get, "/", landing)]);
    r.publics(&[(Get, "/healthz", healthz), (Get, "/metrics", metrics)]);
    r.visitors(&[
        (Get, "/privacy", privacy),
        (Get, "/aup", aup),
        (Get, "/terms", terms),
    ]);
}

/// `GET /metrics` (see [`crate::metrics`]): only when `metrics_token` is set, and only with
/// `Authorization: Bearer <token>`; otherwise it is not there (404), so metrics are never
/// public by accident.
fn metrics(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    let token = &ctx.app.config.metrics_token;
    if token.is_empty() {
        return crate::http::error_page(req, 404, "There is nothing at this address.");
    }
    let sent = req.bearer().unwrap_or("");
    if !crate::domain::base::crypto::constant_time_eq(sent.as_bytes(), token.as_bytes()) {
        return Response::text(401, "metrics need Authorization: Bearer <metrics_token>")
            .with_header("WWW-Authenticate", "Bearer");
    }
    Response::prometheus(ctx.app.metrics.render(ctx.db, ctx.app.now()))
}

/// `GET /healthz`: 200 `ok` when the database answers and takes writes and the scheduler ran
/// lately; otherwise 503 with the reason in one line (see [`crate::lifecycle`]).
fn healthz(ctx: &mut Ctx<'_>, _: &Request) -> Response {
    match ctx.app.life.health(ctx.db, ctx.app.now()) {
        Ok(()) => Response::text(200, "ok"),
        Err(why) => Response::text(503, format!("unhealthy: {why}")),
    }
}

fn operator<'a>(ctx: &'a Ctx<'_>) -> Operator<'a> {
    let c = &ctx.app.config;
    Operator {
        name: &c.operator_name,
        contact: &c.operator_contact,
        min_age: c.min_age,
    }
}

fn landing(ctx: &mut Ctx<'_>, _req: &Request, v: &Visitor) -> Response {
    Response::html(public::landing(&nav(ctx, v), &operator(ctx)))
}

/// The period of a retention rule, from the live settings.
pub fn period(ctx: &Ctx<'_>, rule: Rule) -> u64 {
    let c = &ctx.app.config;
    match rule {
        Rule::Sms => c.sms_retention,
        Rule::Orders => c.order_retention,
        Rule::Ledger => c.ledger_retention,
        Rule::Logs => c.log_retention,
        Rule::Security => c.security_log_retention,
        Rule::Accounts => c.deletion_cooldown,
    }
}

/// The retention rules the scheduled jobs enforce, with the live periods.
pub fn retention_rules(ctx: &Ctx<'_>) -> Vec<Retention> {
    let c = &ctx.app.config;
    let mut rules: Vec<Retention> = Rule::ALL
        .into_iter()
        .map(|rule| Retention {
            what: rule.what().into(),
            period: describe_seconds(period(ctx, rule)),
        })
        .collect();
    rules.extend([
        Retention {
            what: "Your webhooks' delivery log (times, statuses, errors; the message text \
                   is removed as soon as a delivery ends), after the delivery ends"
                .into(),
            period: describe_seconds(crate::domain::market::webhooks::KEEP_FINISHED as u64),
        },
        Retention {
            what: "The keyed hash of the address an abuse report was sent from (kept only to \
                   limit floods of reports)"
                .into(),
            period: describe_seconds(crate::domain::trust::abuse::KEEP_REPORTER_HASH as u64),
        },
        Retention {
            what: "Your notifications' delivery log (times, titles, states; the message text \
                   is removed as soon as it is sent or given up, and a message not sent within \
                   the SMS period above is given up)"
                .into(),
            period: describe_seconds(c.log_retention),
        },
        Retention {
            what: "Signed-in sessions without use".into(),
            period: describe_seconds(c.session_idle),
        },
        Retention {
            what: "Signed-in sessions at most".into(),
            period: describe_seconds(c.session_max),
        },
    ]);
    rules
}

fn privacy(ctx: &mut Ctx<'_>, _req: &Request, v: &Visitor) -> Response {
    let rules = retention_rules(ctx);
    let cooldown = describe_seconds(ctx.app.config.deletion_cooldown);
    Response::html(public::privacy(
        &nav(ctx, v),
        &operator(ctx),
        &rules,
        &cooldown,
        &ctx.site.gateways.privacy_notes(),
    ))
}

fn aup(ctx: &mut Ctx<'_>, _req: &Request, v: &Visitor) -> Response {
    Response::html(public::aup(&nav(ctx, v), &operator(ctx)))
}

fn terms(ctx: &mut Ctx<'_>, _req: &Request, v: &Visitor) -> Response {
    Response::html(public::terms(&nav(ctx, v), &operator(ctx)))
}
