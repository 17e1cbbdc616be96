//! The one shape of a page form: POST → one write transaction → redirect → GET.
//!
//! [`submit`] runs the form's change in one `BEGIN IMMEDIATE` transaction. On success the
//! browser is redirected where the handler says (a `?m=` key names a fixed message, see
//! [`super::flash_from_query`]); on failure it is redirected back to the form's page, and
//! the error and what the person typed wait for that page in a [`Stash`] kept in memory
//! for the session. The next GET of that page takes them (the router hands them to the
//! handler as `Page::flash` and `Page::kept`), so a refresh never re-submits and no error
//! page is rendered at a POST URL.
//!
//! Stashes are small and short-lived: one per session, taken at the next view of the page,
//! dropped after [`STASH_TTL`] seconds, at most [`MAX_STASHES`] in all (the oldest go
//! first). Losing one (a restart) loses only a message.

use std::collections::HashMap;
use std::sync::Mutex;

use rusqlite::Connection;

use super::super::auth::Page;
use super::super::request::Form;
use super::super::{Ctx, Request, Response};
use crate::clock::Timestamp;
use crate::domain::accounts::sessions::Session;
use crate::domain::base::audit::Actor;
use crate::views::{Flash, Kept};

/// How long a stash waits for its page.
pub const STASH_TTL: Timestamp = 600;
/// Stashes kept at most (one per session).
pub const MAX_STASHES: usize = 10_000;

/// Fields never kept for the next view: secrets and one-time values.
const SECRET_FIELDS: [&str; 9] = [
    "csrf",
    "password",
    "new_password",
    "current_password",
    "password_confirm",
    "code",
    "totp",
    "recovery_code",
    "key",
];

/// What a form that failed leaves for its page.
pub struct Stash {
    path: String,
    at: Timestamp,
    pub flash: Flash,
    pub kept: Kept,
}

/// The stashes waiting for their pages, by session id.
#[derive(Default)]
pub struct Stashes(Mutex<HashMap<i64, Stash>>);

impl Stashes {
    fn put(&self, session_id: i64, stash: Stash) {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= MAX_STASHES && !map.contains_key(&session_id) {
            let now = stash.at;
            map.retain(|_, s| now - s.at < STASH_TTL);
            if map.len() >= MAX_STASHES {
                if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.at).map(|(k, _)| *k) {
                    map.remove(&oldest);
                }
            }
        }
        map.insert(session_id, stash);
    }

    /// The stash this session left for `path`, if it is still fresh; it is gone afterwards.
    pub fn take(&self, session_id: i64, path: &str, now: Timestamp) -> Option<Stash> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if map.get(&session_id)?.path != path {
            return None;
        }
        let stash = map.remove(&session_id)?;
        (now - stash.at < STASH_TTL).then_some(stash)
    }
}

/// How much of a field is shown again: a line of text, or a pasted list.
const KEEP_CHARS: usize = 2000;
const KEEP_LINES_CHARS: usize = 16_000;

/// The fields worth showing again: everything but secrets, each cut to a sane length. A
/// pasted list (several lines) is cut after its last whole line that fits, never inside
/// one (a cut line could read as another valid line); the flag says a value was cut.
fn keepable(form: &Form) -> (Kept, bool) {
    let mut cut = false;
    let kept = form
        .0
        .iter()
        .filter(|(k, _)| !SECRET_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| {
            let (kept, was_cut) = shorten(v);
            cut |= was_cut;
            (k.clone(), kept)
        })
        .collect();
    (Kept(kept), cut)
}

/// `v` cut as [`keepable`] says, and whether it was.
fn shorten(v: &str) -> (String, bool) {
    let limit = if v.contains('\n') {
        KEEP_LINES_CHARS
    } else {
        KEEP_CHARS
    };
    let Some((end, _)) = v.char_indices().nth(limit) else {
        return (v.to_string(), false);
    };
    let head = &v[..end];
    match head.rfind('\n') {
        Some(nl) if v.contains('\n') => (head[..=nl].to_string(), true),
        _ => (head.to_string(), true),
    }
}

/// Sends the browser back to `back` (a local path, query allowed) with `message` and the
/// typed values waiting there.
pub fn fail(
    ctx: &Ctx<'_>,
    req: &Request,
    session: &Session,
    back: &str,
    message: impl std::fmt::Display,
) -> Response {
    let (kept, cut) = keepable(&req.form());
    let mut message = message.to_string();
    if cut {
        message.push_str(
            " (What you typed was too long to show again in full: only its first lines are \
             back in the form; paste the rest again.)",
        );
    }
    leave(ctx, session, back, Flash::Err(message), kept)
}

/// Redirects to `to` with `flash` waiting there: a success message that names amounts or
/// other values (fixed messages use `?m=`).
pub fn tell(ctx: &Ctx<'_>, session: &Session, to: &str, flash: Flash) -> Response {
    leave(ctx, session, to, flash, Kept::default())
}

/// Redirects to `to` (a page of the same session) carrying `value` whole as its kept field
/// `field`: what a POST hands to the page that shows its result (POST/redirect/GET), read
/// once. Only for values an admin page checked already (an import's CSV), never cut.
pub fn carry(ctx: &Ctx<'_>, session: &Session, to: &str, field: &str, value: String) -> Response {
    let kept = Kept(vec![(field.to_string(), value)]);
    let flash = Flash::Ok("Nothing changes until you apply the preview.".into());
    leave(ctx, session, to, flash, kept)
}

/// Redirects to `to`, leaving `flash` and `kept` for the next view of its path.
fn leave(ctx: &Ctx<'_>, session: &Session, to: &str, flash: Flash, kept: Kept) -> Response {
    let path = to.split('?').next().unwrap_or(to).to_string();
    let at = ctx.now();
    let stash = Stash {
        path,
        at,
        flash,
        kept,
    };
    ctx.site.stashes.put(session.id, stash);
    Response::redirect(to)
}

/// Runs `write` in one write transaction with the parsed form and the clock's time. On
/// success `done` makes the answer (usually a redirect); on failure the browser goes back
/// to `back` with the error and the typed values (see [`fail`]).
pub fn submit<T: Send>(
    ctx: &mut Ctx<'_>,
    req: &Request,
    session: &Session,
    back: &str,
    write: impl FnOnce(&Connection, &Form, Timestamp) -> crate::domain::Result<T> + Send,
    done: impl FnOnce(&mut Ctx<'_>, T) -> Response,
) -> Response {
    let form = req.form();
    let now = ctx.now();
    match crate::db::write(ctx.db, |tx| write(tx, &form, now)) {
        Ok(value) => done(ctx, value),
        Err(e) => fail(ctx, req, session, back, e),
    }
}

/// [`submit`] for a change the domain audits: `write` also gets the acting account (the
/// page's account and its hashed address).
pub fn audited<T: Send>(
    ctx: &mut Ctx<'_>,
    req: &Request,
    p: &Page,
    back: &str,
    write: impl FnOnce(&Connection, &Form, Actor<'_>, Timestamp) -> crate::domain::Result<T> + Send,
    done: impl FnOnce(&mut Ctx<'_>, T) -> Response,
) -> Response {
    let (id, ip) = (p.user.id, ctx.ip_hash(req));
    submit(
        ctx,
        req,
        &p.session,
        back,
        |tx, form, now| write(tx, form, Actor { id, ip_hash: &ip }, now),
        done,
    )
}

/// Runs `f` in one write transaction as the page's account: an audited reading of someone
/// else's data by a page (not a form).
pub fn acting<T: Send>(
    ctx: &mut Ctx<'_>,
    req: &Request,
    p: &Page,
    f: impl FnOnce(&Connection, Actor<'_>, Timestamp) -> crate::domain::Result<T> + Send,
) -> crate::domain::Result<T> {
    let (id, ip, now) = (p.user.id, ctx.ip_hash(req), ctx.now());
    crate::db::write(ctx.db, |tx| f(tx, Actor { id, ip_hash: &ip }, now))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stash(path: &str, at: Timestamp) -> Stash {
        Stash {
            path: path.into(),
            at,
            flash: Flash::Err("no".into()),
            kept: Kept(vec![("email".into(), "a@b.c".into())]),
        }
    }

    #[test]
    fn a_stash_is_taken_once_by_its_own_page() {
        let s = Stashes::default();
        s.put(1, stash("/dashboard", 100));
        assert!(
            s.take(1, "/wallet", 101).is_none(),
            "another page leaves it"
        );
        assert!(s.take(2, "/dashboard", 101).is_none(), "another session");
        let got = s.take(1, "/dashboard", 101).unwrap();
        assert_eq!(got.kept.get("email"), Some("a@b.c"));
        assert!(s.take(1, "/dashboard", 102).is_none(), "taken once");
    }

    #[test]
    fn a_stale_stash_is_not_shown() {
        let s = Stashes::default();
        s.put(1, stash("/x", 100));
        assert!(s.take(1, "/x", 100 + STASH_TTL).is_none());
    }

    #[test]
    fn the_store_stays_bounded() {
        let s = Stashes::default();
        for i in 0..(MAX_STASHES as i64 + 5) {
            s.put(i, stash("/x", 100 + i));
        }
        assert!(s.0.lock().unwrap().len() <= MAX_STASHES);
        assert!(s.take(0, "/x", 200).is_none(), "the oldest went first");
        let last = MAX_STASHES as i64 + 4;
        assert!(
            s.take(last, "/x", 100 + last).is_some(),
            "the newest is kept"
        );
    }

    #[test]
    fn secrets_are_never_kept() {
        let form = Form(vec![
            ("email".into(), "a@b.c".into()),
            ("password".into(), "hunter2".into()),
            ("csrf".into(), "t".into()),
        ]);
        assert_eq!(
            keepable(&form),
            (Kept(vec![("email".into(), "a@b.c".into())]), false)
        );
    }

    #[test]
    fn a_long_paste_is_kept_in_whole_lines_and_the_cut_is_told() {
        let csv: String = (0..2000)
            .map(|i| format!("6,tg,12.50,30.{i:02}\n"))
            .collect();
        let form = Form(vec![("csv".into(), csv.clone())]);
        let (kept, cut) = keepable(&form);
        assert!(cut);
        let back = kept.get("csv").unwrap();
        assert!(back.len() > 2000 && back.len() < csv.len());
        assert!(back.ends_with('\n'));
        assert!(csv.starts_with(back), "every kept line is one typed, whole");
        // A short paste and a short line come back untouched.
        let short = Form(vec![("csv".into(), "6,tg,1.00,0.10\n22,wa,2,1".into())]);
        assert_eq!(
            keepable(&short).0.get("csv"),
            Some("6,tg,1.00,0.10\n22,wa,2,1")
        );
        assert!(!keepable(&short).1);
    }
}
