//! Payment gateways' webhooks: `POST /payments/{gateway}/webhook` (`stripe`, `btcpay`). The
//! route is open; each delivery proves itself by its gateway's signature
//! (`crate::payments::Gateway::receive`), checked on the raw body before anything is parsed
//! or written. A bad signature, a stale timestamp or a body that is not the protocol gets 400
//! and changes nothing; a notice that verifies is written in one transaction and answered
//! 200, also when it changes nothing (a replay, a retry, an event out of order, an event we
//! do not act on), so the gateway stops sending it. When the gateway's API cannot be read to
//! confirm a notice, the answer is 503 and the gateway delivers it again later.

use serde_json::json;

use crate::domain::market::payments::Applied;
use crate::http::router::Router;
use crate::http::{Ctx, Method, Request, Response};
use crate::payments::{self as gateways, Refusal};

pub fn routes(r: &mut Router) {
    r.public(Method::Post, "/payments/{gateway}/webhook", webhook);
}

fn webhook(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    let site = ctx.site;
    let name = req.param("gateway").unwrap_or("");
    let Some(gateway) = site.gateways.get(name) else {
        return Response::json_error(404, "not_found", "No payment gateway of that name is on.");
    };
    let header = |n: &str| req.header(n).map(str::to_string);
    let notices = match gateway.receive(&header, &req.body, ctx.now()) {
        Ok(n) => n,
        Err(Refusal::Bad(why)) => {
            log::warn!("{name} webhook refused: {why}");
            return Response::json_error(400, "invalid_request", &why);
        }
        Err(Refusal::Unavailable(why)) => {
            log::warn!("{name} webhook: cannot confirm at the gateway now: {why}");
            return Response::json_error(
                503,
                "busy",
                "The gateway could not be asked; deliver again later.",
            );
        }
    };
    match gateways::apply(ctx.db, &ctx.app.config, &notices, ctx.now()) {
        Ok(applied) => {
            let credited = applied
                .iter()
                .filter(|a| matches!(a, Applied::Credited { .. }))
                .count();
            if credited > 0 {
                // Wakes long-polls waiting on the account (the return page's reading).
                ctx.app.notify();
            }
            for a in &applied {
                match a {
                    Applied::Credited {
                        payment_id,
                        amount_minor,
                        ..
                    } => {
                        log::info!(
                            "{name}: top-up #{payment_id} credited ({amount_minor} minor units)"
                        )
                    }
                    Applied::Refused { payment_id, why } => {
                        log::warn!("{name}: top-up #{payment_id} not credited: {why}")
                    }
                    _ => {}
                }
            }
            Response::json(200, &json!({"received": true, "credited": credited}))
        }
        Err(e) => {
            log::error!("{name} webhook: {e}");
            Response::json_error(
                500,
                "internal",
                "The notice could not be recorded; deliver again later.",
            )
        }
    }
}
