//! Long-poll: a read that may wait (up to [`MAX_WAIT`]) for the state it shows to change.
//!
//! A handler renders its answer as usual and, when the caller asked to wait and the state is
//! not final, attaches a [`Wait`] to the response. The server then parks the tiny_http request
//! with the parking thread instead of answering, and the worker goes back to the queue at once:
//! waiting requests never occupy workers. The parking thread re-renders a parked answer when
//! something may have changed (the [`crate::app::Notifier`] moved, or SQLite's `data_version`
//! says another connection — a CLI `sms inject`, say — committed), answers as soon as the state
//! differs, and answers with the current state when the wait runs out. How many requests may
//! wait at once is bounded by the `max_waiting` setting; past it, the answer goes out at once.
//!
//! A page's own script (the dashboard's `/live`, [`answer_since`]) gets at most half of that
//! pool, so open tabs never crowd out API clients; past its half it is told `503` with
//! `Retry-After` instead of an immediate unchanged answer it would poll again at once. Its
//! state may come from a cheap [`Probe`]: the full answer is rendered only when that changed.

use std::fmt;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::app::App;
use crate::http::{Ctx, Request, Response};

/// The longest wait a caller may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// Renders the answer from current data: the state it shows (`None` when that state is final
/// and waiting makes no sense) and the response.
pub type Render = Box<dyn Fn(&App, &mut Connection) -> (Option<String>, Response) + Send + Sync>;

/// The state alone, computed without rendering the answer (index look-ups only); `None` as in
/// [`Render`]. It must equal the state [`Render`] gives for the same data.
pub type Probe = Box<dyn Fn(&App, &mut Connection) -> Option<String> + Send + Sync>;

/// Seconds a page's script is told to wait (`Retry-After`) when its share of the waiting
/// pool is full.
pub const PAGE_RETRY_AFTER: u64 = 10;

/// What a parked request waits for.
pub struct Wait {
    /// When to stop waiting and answer with whatever the state is then.
    pub until: Instant,
    /// The notifier's version when the first answer was rendered.
    pub seen: u64,
    /// The state the first answer showed.
    pub state: String,
    pub render: Render,
    /// How to tell that the state moved without rendering (the answer is rendered only then).
    pub probe: Option<Probe>,
    /// A page's own script: it may use only half of `max_waiting`, and past that it is told
    /// to come back later (503) instead of being answered with the unchanged state.
    pub page: bool,
}

impl Wait {
    /// The new answer if the state moved on, `None` while it is unchanged.
    pub fn changed(&self, app: &App, db: &mut Connection) -> Option<Response> {
        if let Some(probe) = &self.probe {
            if probe(app, db).as_deref() == Some(self.state.as_str()) {
                return None;
            }
        }
        let (state, resp) = (self.render)(app, db);
        (state.as_deref() != Some(self.state.as_str())).then_some(resp)
    }

    /// The answer when the wait is over.
    pub fn current(&self, app: &App, db: &mut Connection) -> Response {
        (self.render)(app, db).1
    }
}

impl fmt::Debug for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait")
            .field("until", &self.until)
            .field("seen", &self.seen)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// The `wait` parameter (seconds, query string or form body): `None` when absent or zero,
/// capped at [`MAX_WAIT`]; a value that is not a whole number is ignored.
pub fn wait_param(req: &Request) -> Option<Duration> {
    let raw = req
        .query_param("wait")
        .or_else(|| req.is_form().then(|| req.form().text("wait")))?;
    wait_from(&raw)
}

/// A wait given as whole seconds: `None` when zero or not a number, capped at [`MAX_WAIT`].
pub fn wait_from(raw: &str) -> Option<Duration> {
    let secs: u64 = raw.trim().parse().ok()?;
    (secs > 0).then(|| Duration::from_secs(secs).min(MAX_WAIT))
}

/// Renders the answer now and, when `wait` is given, the answer is a success and its state is
/// not final, marks it to be held until the state changes or the wait ends.
pub fn answer(
    ctx: &mut Ctx<'_>,
    wait: Option<Duration>,
    render: impl Fn(&App, &mut Connection) -> (Option<String>, Response) + Send + Sync + 'static,
) -> Response {
    let seen = ctx.app.notifier.version();
    let (state, resp) = render(ctx.app, ctx.db);
    match (wait, state) {
        (Some(wait), Some(state)) if resp.status == 200 => {
            let wait = Wait {
                until: Instant::now() + wait,
                seen,
                state,
                render: Box::new(render),
                probe: None,
                page: false,
            };
            resp.with_wait(wait)
        }
        _ => resp,
    }
}

/// A page's own script waiting for the state it already shows (`seen`) to change: when the
/// current state (from `probe`, cheap) differs from `seen`, the answer is rendered and goes out
/// at once; otherwise, with `wait`, the request waits against `seen` itself, so a change that
/// lands while this request is handled is never taken for the baseline. The page's share of
/// the waiting pool is bounded (see the module's text).
pub fn answer_since(
    ctx: &mut Ctx<'_>,
    wait: Option<Duration>,
    seen: String,
    probe: impl Fn(&App, &mut Connection) -> Option<String> + Send + Sync + 'static,
    render: impl Fn(&App, &mut Connection) -> (Option<String>, Response) + Send + Sync + 'static,
) -> Response {
    let version = ctx.app.notifier.version();
    let state = probe(ctx.app, ctx.db);
    match (wait, state) {
        (Some(wait), Some(state)) if state == seen => {
            let first = Response::text(200, "");
            first.with_wait(Wait {
                until: Instant::now() + wait,
                seen: version,
                state: seen,
                render: Box::new(render),
                probe: Some(Box::new(probe)),
                page: true,
            })
        }
        _ => render(ctx.app, ctx.db).1,
    }
}

/// Whether a page's script may park one more request: fewer than half of `max_waiting` (at
/// least one) of the parked requests are a page's.
pub fn page_may_wait(max_waiting: usize, parked_pages: usize) -> bool {
    parked_pages < (max_waiting / 2).max(1)
}

/// What a page's script is told when its share of the waiting pool is full.
pub fn page_busy() -> Response {
    Response::text(503, "too many pages are waiting; try again shortly")
        .with_header("Retry-After", &PAGE_RETRY_AFTER.to_string())
        .with_header("Cache-Control", "no-store")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;

    #[test]
    fn wait_parameter_is_capped_and_optional() {
        let get = |url: &str| wait_param(&Request::fake(Method::Get, url, b""));
        assert_eq!(get("/x"), None);
        assert_eq!(get("/x?wait=0"), None);
        assert_eq!(get("/x?wait=abc"), None);
        assert_eq!(get("/x?wait=5"), Some(Duration::from_secs(5)));
        assert_eq!(get("/x?wait=3600"), Some(MAX_WAIT));
        let form = Request::fake(Method::Post, "/x", b"wait=7")
            .with_header("content-type", "application/x-www-form-urlencoded");
        assert_eq!(wait_param(&form), Some(Duration::from_secs(7)));
    }
}
