//! Admin pages: overview, users, job runs, outbox, audit log.

use maud::{html, Markup};

use crate::domain::accounts::User;
use crate::domain::base::audit::{AuditFilter, AuditRow};
use crate::domain::base::mail::OutboxRow;
use crate::domain::base::money::Money;
use crate::domain::market::wallet::Entry;
use crate::domain::supply::stats::{Day, Rate};
use crate::domain::trust::admin::{Queues, QuietDevice};
use crate::jobs::RunRow;
use crate::url::percent_encode;
use crate::views::market::orders::Cur;
use crate::views::trust::charts::{percent_bars, stacked_bars, Series};
use crate::views::{csrf, flash, form_mark, opt_time, page, time, Flash, Kept, Nav};

pub fn tabs() -> Markup {
    html! {
        nav.tabs {
            a href="/admin" { "Overview" }
            a href="/admin/users" { "Users" }
            a href="/admin/orders" { "Orders" }
            a href="/admin/prices" { "Prices" }
            a href="/admin/vouchers" { "Vouchers" }
            a href="/admin/numbers" { "Numbers" }
            a href="/admin/providers" { "Providers" }
            a href="/admin/partners" { "Partners" }
            a href="/admin/payouts" { "Payouts" }
            a href="/admin/payments" { "Payments" }
            a href="/admin/jobs" { "Jobs" }
            a href="/admin/retention" { "Retention" }
            a href="/admin/outbox" { "Outbox" }
            a href="/admin/audit" { "Audit log" }
            a href="/admin/requests" { "Requests" }
            a href="/admin/abuse" { "Abuse" }
            a href="/admin/flags" { "Flags" }
            a href="/admin/blocked" { "Blocked" }
            a href="/admin/legal" { "Legal" }
        }
    }
}

/// Sums of the rollup's days over one period of the overview.
#[derive(Debug, Clone, Copy, Default)]
pub struct Totals {
    /// Activations that ended in the period, and of them: got a code, completed.
    pub orders: i64,
    pub coded: i64,
    pub completed: i64,
    pub revenue_minor: i64,
    pub refunds_minor: i64,
    pub earnings_minor: i64,
}

impl Totals {
    pub fn of(days: &[Day]) -> Totals {
        days.iter().fold(Totals::default(), |t, d| Totals {
            orders: t.orders + d.orders,
            coded: t.coded + d.coded,
            completed: t.completed + d.completed,
            revenue_minor: t.revenue_minor + d.revenue_minor,
            refunds_minor: t.refunds_minor + d.refunds_minor,
            earnings_minor: t.earnings_minor + d.earnings_minor,
        })
    }

    fn success(&self) -> String {
        Rate {
            orders: self.orders,
            coded: self.coded,
        }
        .label()
    }
}

pub struct Overview<'a> {
    pub users: i64,
    pub active_sessions: i64,
    pub pending_mail: i64,
    /// Today, the last 7 days, the last 30 days.
    pub periods: [(&'a str, Totals); 3],
    /// The last 30 days of the rollup, oldest first.
    pub days: &'a [Day],
    /// Activation success per source over the last 30 days.
    pub sources: &'a [(String, Rate)],
    pub queues: &'a Queues,
    pub quiet_devices: &'a [QuietDevice],
    pub cur: &'a Cur,
}

fn queue(href: &str, id: &str, n: i64, what: &str) -> Markup {
    html! {
        li id=(id) class=(if n > 0 { "waiting" } else { "clear" }) {
            a href=(href) { strong { (n) } " " (what) }
        }
    }
}

pub fn overview(nav: &Nav, o: &Overview<'_>) -> Markup {
    let cur = o.cur;
    let money = |m: i64| Money(m).decimal(cur.digits);
    let labels: Vec<String> = o
        .days
        .iter()
        .map(|d| crate::clock::format_datetime(d.day * 86_400)[5..10].to_string())
        .collect();
    let outcome = [
        Series {
            name: "completed",
            class: "completed",
            values: o.days.iter().map(|d| d.completed).collect(),
        },
        Series {
            name: "canceled",
            class: "canceled",
            values: o.days.iter().map(|d| d.canceled).collect(),
        },
        Series {
            name: "expired",
            class: "expired",
            values: o.days.iter().map(|d| d.expired).collect(),
        },
    ];
    let revenue = [Series {
        name: &cur.code,
        class: "revenue",
        values: o.days.iter().map(|d| d.revenue_minor).collect(),
    }];
    let sources: Vec<(String, Option<u8>, String)> = o
        .sources
        .iter()
        .map(|(s, r)| {
            (
                s.clone(),
                r.percent(),
                format!("{} of {} orders", r.coded, r.orders),
            )
        })
        .collect();
    let q = o.queues;
    page(
        "Admin",
        nav,
        html! {
            h1 { "Admin" }
            (tabs())
            section.card #queues {
                h2 { "Needs attention" @if q.total() == 0 { " " span.ok { "— nothing" } } }
                ul.queues {
                    (queue("/admin/abuse", "q-abuse", q.abuse_open, "open abuse reports and appeals"))
                    (queue("/admin/payouts", "q-payouts", q.payouts_pending, "payouts to pay"))
                    (queue("/admin/flags", "q-flags", q.flags_open, "open flags"))
                    (queue("/admin/jobs", "q-jobs", q.jobs_failed, "failed job runs (24 h)"))
                    (queue("#quiet-devices", "q-devices", q.devices_offline, "devices offline or never seen"))
                    (queue("/admin/providers", "q-providers", q.providers_unhealthy, "providers off, paused or failing"))
                }
            }
            section #periods {
                div.scroll {
                    table.periods {
                        thead { tr { th {} @for (label, _) in &o.periods { th { (label) } } } }
                        tbody {
                            tr { th { "Orders ended" } @for (_, t) in &o.periods { td { (t.orders) } } }
                            tr { th { "Completed" } @for (_, t) in &o.periods { td { (t.completed) } } }
                            tr { th { "Success rate" } @for (_, t) in &o.periods { td { (t.success()) } } }
                            tr { th { "Revenue (" (cur.code) ")" } @for (_, t) in &o.periods { td { (money(t.revenue_minor)) } } }
                            tr { th { "Refunds" } @for (_, t) in &o.periods { td { (money(t.refunds_minor)) } } }
                            tr { th { "Operators' earnings" } @for (_, t) in &o.periods { td { (money(t.earnings_minor)) } } }
                        }
                    }
                }
                p.muted { "From the daily rollup of ended orders (UTC days), refreshed every minute by the stats job. Success rate: orders that got a code ÷ orders that got a number; “new” below " (crate::domain::supply::stats::MIN_ORDERS) " orders. Revenue: charges less refunds." }
            }
            section.card {
                h2 { "Orders per day by outcome (30 days)" }
                (stacked_bars("chart-orders", "Activations ended per day by outcome, last 30 days", &labels, &outcome, &|v| v.to_string()))
            }
            section.card {
                h2 { "Success rate by source (30 days)" }
                (percent_bars("chart-sources", "Share of activations that got a code, per source, last 30 days", &sources))
            }
            section.card {
                h2 { "Revenue per day (30 days)" }
                (stacked_bars("chart-revenue", &format!("Revenue per day in {}, last 30 days", cur.code), &labels, &revenue, &|v| Money(v).decimal(cur.digits)))
            }
            @if !o.quiet_devices.is_empty() {
                section.card #quiet-devices {
                    h2 { "Devices offline or never seen" }
                    div.scroll {
                        table {
                            thead { tr { th { "Device" } th { "Kind" } th { "Operator" } th { "Last seen" } } }
                            tbody {
                                @for d in o.quiet_devices {
                                    tr { td { (d.name) } td { (d.kind) } td { a href=(format!("/admin/users/{}", d.owner_id)) { (d.owner) } } td { @if let Some(t) = d.last_seen_at { (time(t)) } @else { "never" } } }
                                }
                            }
                        }
                    }
                }
            }
            section.grid3 {
                div.card.stat { span.big { (o.users) } " accounts" }
                div.card.stat { span.big { (o.active_sessions) } " signed-in sessions" }
                div.card.stat { span.big { (o.pending_mail) } " mails waiting" }
            }
        },
    )
}

/// One page of accounts; `older` is the `before=` of the next page, `not_first` links back
/// to the newest.
pub fn users(nav: &Nav, q: &str, users: &[User], not_first: bool, older: Option<i64>) -> Markup {
    page(
        "Users",
        nav,
        html! {
            h1 { "Users" }
            (tabs())
            form.search method="get" action="/admin/users" {
                input type="search" name="q" value=(q) placeholder="e-mail or name";
                button type="submit" { "Search" }
            }
            div.scroll {
                table #users {
                    thead { tr { th { "E-mail" } th { "Role" } th { "State" } th { "Verified" } th { "Created" } } }
                    tbody {
                        @for u in users {
                            tr {
                                td { a href=(format!("/admin/users/{}", u.id)) { (u.email) } }
                                td { (u.role.as_str()) }
                                td { (u.state.as_str()) @if u.processing_restricted_at.is_some() { " · " span.restricted { "restricted" } } }
                                td { @if u.is_verified() { "yes" } @else { "no" } }
                                td { (time(u.created_at)) }
                            }
                        }
                    }
                }
            }
            p.pager {
                @if not_first { a rel="first" href=(format!("/admin/users?q={}", percent_encode(q))) { "← Newest" } " " }
                @if let Some(id) = older { a rel="next" href=(format!("/admin/users?q={}&before={id}", percent_encode(q))) { "Older →" } }
            }
        },
    )
}

/// A user's page.
pub struct UserPage<'a> {
    pub user: &'a User,
    pub two_factor: bool,
    /// How the account signs in: "password" and the labels of its linked providers.
    pub sign_in: Vec<String>,
    pub currency: &'a str,
    /// The sections of other areas below the account's own: the newest orders
    /// (`views::market::admin_orders::user_panel`), the lifecycle requests
    /// (`views::trust::lifecycle::admin_user_panel`) and the flags, chargebacks and termination
    /// (`views::trust::abuse::user_section`), in that order.
    pub panels: Vec<Markup>,
}

/// A user's page; `kept` refills the form that failed.
pub fn user(nav: &Nav, token: &str, p: &UserPage<'_>, f: &Option<Flash>, kept: &Kept) -> Markup {
    let (u, two_factor, currency) = (p.user, p.two_factor, p.currency);
    let digits = crate::domain::base::money::currency_digits(currency);
    page(
        &u.email,
        nav,
        html! {
            h1 { (u.email) }
            (tabs())
            (flash(f))
            section.card {
                dl {
                    dt { "Role" } dd #role { (u.role.as_str()) }
                    dt { "State" } dd #state { (u.state.as_str()) @if !u.state_reason.is_empty() { " — " (u.state_reason) } }
                    dt { "Verified" } dd { (opt_time(u.email_verified_at)) }
                    dt { "Balance" } dd { (crate::domain::base::money::Money(u.balance_minor).decimal(digits)) " " (currency) }
                    dt { "Created" } dd { (time(u.created_at)) }
                    dt { "Two-factor" } dd #two-factor { @if two_factor { "on" } @else { "off" } }
                    dt { "Sign-in" } dd #sign-in { @if p.sign_in.is_empty() { "none" } @else { (p.sign_in.join(", ")) } }
                }
                p {
                    a href=(format!("/admin/users/{}/ledger", u.id)) { "Ledger" } " (audited) · "
                    a href=(format!("/admin/audit?target={}", u.id)) { "Audit rows on this account" }
                }
            }
            section.card {
                h2 { "Role" }
                form method="post" action=(format!("/admin/users/{}/role", u.id)) {
                    (csrf(token))
                    select name="role" {
                        @for r in ["user", "operator", "admin"] {
                            option value=(r) selected[r == u.role.as_str()] { (r) }
                        }
                    }
                    button type="submit" { "Change role" }
                }
            }
            section.card {
                h2 { "Credit" }
                form method="post" action=(format!("/admin/users/{}/credit", u.id)) {
                    (csrf(token))
                    (form_mark("credit"))
                    label { "Amount (" (currency) "; negative to debit)" input type="text" name="amount" inputmode="decimal" required value=(kept.of("credit", "amount").unwrap_or("")); }
                    label { "Note (recorded)" input type="text" name="note" maxlength="200" value=(kept.of("credit", "note").unwrap_or("")); }
                    button type="submit" { "Apply" }
                }
            }
            @if two_factor {
                section.card {
                    h2 { "Two-factor sign-in" }
                    p.muted { "For a person who lost both the phone and the recovery codes, once you are sure it is them. They are told by e-mail; the action is audited." }
                    form method="post" action=(format!("/admin/users/{}/2fa/reset", u.id)) {
                        (csrf(token))
                        button.danger type="submit" { "Turn off two-factor sign-in" }
                    }
                }
            }
            section.card {
                h2 { "State" }
                form method="post" action=(format!("/admin/users/{}/state", u.id)) {
                    (csrf(token))
                    (form_mark("state"))
                    select name="state" {
                        @for s in ["active", "suspended"] {
                            option value=(s) selected[s == kept.of("state", "state").unwrap_or(u.state.as_str())] { (s) }
                        }
                    }
                    label { "Reason (recorded)" input type="text" name="reason" maxlength="200" value=(kept.of("state", "reason").unwrap_or("")); }
                    button type="submit" { "Change state" }
                }
            }
            @for panel in &p.panels { (panel) }
        },
    )
}

/// An account's ledger as the admin sees it (the reading is audited).
pub fn ledger(nav: &Nav, u: &User, cur: &Cur, entries: &[Entry]) -> Markup {
    page(
        &format!("Ledger of {}", u.email),
        nav,
        html! {
            p { a href=(format!("/admin/users/{}", u.id)) { "← " (u.email) } }
            h1 { "Ledger of " (u.email) }
            (tabs())
            p.muted { "Your reading of this page is recorded in the audit log." }
            p { "Balance: " strong #balance { (cur.fmt(u.balance_minor)) } }
            @if entries.is_empty() { p.muted { "No movements." } } @else {
                div.scroll {
                    table #ledger {
                        thead { tr { th { "When" } th { "What" } th { "Amount" } th { "Balance" } } }
                        tbody {
                            @for e in entries {
                                tr {
                                    td { (time(e.created_at)) }
                                    td { (e.kind) @if let Some(r) = e.ref_id { " · " (e.ref_type) " #" (r) } @if !e.note.is_empty() { " · " (e.note) } }
                                    td { (cur.fmt(e.amount_minor)) }
                                    td { (cur.fmt(e.balance_after)) }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub fn jobs(nav: &Nav, schedule: &[(&str, &str, &str)], runs: &[RunRow]) -> Markup {
    page(
        "Jobs",
        nav,
        html! {
            h1 { "Scheduled jobs" }
            (tabs())
            table {
                thead { tr { th { "Job" } th { "Schedule" } th { "What it does" } } }
                tbody {
                    @for (name, sched, about) in schedule {
                        tr { td { code { (name) } } td { code { (sched) } } td { (about) } }
                    }
                }
            }
            h2 { "Recent runs" }
            div.scroll {
                table #runs {
                    thead { tr { th { "Job" } th { "Started" } th { "Duration" } th { "Result" } } }
                    tbody {
                        @for r in runs {
                            tr class=(if r.ok { "ok" } else { "failed" }) {
                                td { (r.job) }
                                td { (time(r.started_at)) }
                                td { (r.duration_ms) " ms" }
                                td { @if r.ok { "ok: " } @else { "FAILED: " } (r.message) }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// One retention rule as the admin sees it.
pub struct RetentionRow {
    pub rule: &'static str,
    pub what: &'static str,
    pub setting: &'static str,
    pub period: String,
    pub last_run_at: Option<crate::clock::Timestamp>,
    pub last_removed: i64,
    pub total_removed: i64,
}

pub fn retention(nav: &Nav, rows: &[RetentionRow]) -> Markup {
    page(
        "Retention",
        nav,
        html! {
            h1 { "Retention rules" }
            (tabs())
            p.muted { "Each rule is enforced by a scheduled job (" code { "sms_retention" } " every minute, " code { "retention" } " daily, " code { "accounts" } " hourly); the periods are the live settings and are what " a href="/privacy" { "the privacy page" } " promises." }
            div.scroll {
                table #retention {
                    thead { tr { th { "Rule" } th { "Removes" } th { "Period" } th { "Last run" } th { "Removed then" } th { "Removed in total" } } }
                    tbody {
                        @for r in rows {
                            tr data-rule=(r.rule) {
                                td { code { (r.rule) } }
                                td { (r.what) }
                                td { (r.period) br; small.muted { code { (r.setting) } } }
                                td { (opt_time(r.last_run_at)) }
                                td.removed { (r.last_removed) }
                                td.total { (r.total_removed) }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub fn outbox(nav: &Nav, rows: &[OutboxRow]) -> Markup {
    page(
        "Outbox",
        nav,
        html! {
            h1 { "Outbox" }
            (tabs())
            p.muted { "Every outgoing mail is recorded here. Without SMTP configured, mail is not sent and this is where it can be read. Your reading of this page is recorded in the audit log." }
            @for m in rows {
                article.card.mail {
                    p { strong { (m.subject) } " → " (m.to_addr) }
                    p.muted { (time(m.created_at)) " · "
                        @if let Some(s) = m.sent_at { "sent " (time(s)) } @else if m.attempts > 0 { "failed " (m.attempts) "×: " (m.last_error) } @else { "not sent" } }
                    pre { @for (text, link) in with_links(&m.body) { (text) @if !link.is_empty() { a href=(link) rel="noopener noreferrer" { (link) } } } }
                }
            }
        },
    )
}

/// A mail's text cut around its http(s) links: (text before, link) pairs, the last link
/// empty, so a page can make the links clickable while maud escapes everything.
fn with_links(body: &str) -> Vec<(&str, &str)> {
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let at = ["https://", "http://"]
            .iter()
            .filter_map(|s| rest.find(s))
            .min();
        let Some(at) = at else {
            out.push((rest, ""));
            return out;
        };
        let len = rest[at..]
            .find(|c: char| c.is_whitespace() || c == '<' || c == '>' || c == '"')
            .unwrap_or(rest.len() - at);
        let link = rest[at..at + len].trim_end_matches(['.', ',', ')', ';', ':']);
        out.push((&rest[..at], link));
        rest = &rest[at + link.len()..];
    }
}

/// One page of the audit log with its filter.
pub struct AuditPage<'a> {
    pub rows: &'a [AuditRow],
    /// Every action in the log, for the filter's list.
    pub actions: &'a [String],
    pub filter: &'a AuditFilter,
    /// Not the newest page: link back to it.
    pub not_first: bool,
    /// The `before=` of the next (older) page, if there is one.
    pub older: Option<i64>,
}

impl AuditPage<'_> {
    fn link(&self, before: Option<i64>) -> String {
        let mut link = format!(
            "/admin/audit?target={}&action={}",
            percent_encode(&self.filter.target),
            percent_encode(&self.filter.action)
        );
        if let Some(id) = before {
            link.push_str(&format!("&before={id}"));
        }
        link
    }
}

pub fn audit(nav: &Nav, p: &AuditPage<'_>, f: &Option<Flash>) -> Markup {
    page(
        "Audit log",
        nav,
        html! {
            h1 { "Audit log" }
            (tabs())
            (flash(f))
            p.muted { "Every administrator action that reads or changes someone else's data, newest first." }
            form.search method="get" action="/admin/audit" {
                input type="search" name="target" value=(p.filter.target) placeholder="account: e-mail or id" aria-label="Account";
                select name="action" aria-label="Action" {
                    option value="" { "any action" }
                    @for a in p.actions {
                        option value=(a) selected[*a == p.filter.action] { (a) }
                    }
                }
                button type="submit" { "Filter" }
            }
            div.scroll {
                table #audit {
                    thead { tr { th { "When" } th { "Who" } th { "Action" } th { "On" } th { "Detail" } } }
                    tbody {
                        @for r in p.rows {
                            tr {
                                td { (time(r.at)) }
                                td { (r.actor.as_deref().unwrap_or("command line")) }
                                td { (r.action) }
                                td { (r.target.as_deref().unwrap_or("—")) }
                                td { (r.detail) }
                            }
                        }
                    }
                }
            }
            @if p.rows.is_empty() { p.muted { "No rows." } }
            nav.pager {
                @if p.not_first { a rel="first" href=(p.link(None)) { "← Newest" } " " }
                @if let Some(id) = p.older { a rel="next" href=(p.link(Some(id))) { "Older →" } }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::with_links;

    #[test]
    fn mail_links_are_cut_out_of_the_text() {
        assert_eq!(
            with_links("Open https://x.example/verify/abc. Thanks"),
            vec![("Open ", "https://x.example/verify/abc"), (". Thanks", "")]
        );
        assert_eq!(with_links("no link"), vec![("no link", "")]);
        assert_eq!(
            with_links("a http://h/1\nb http://h/2"),
            vec![("a ", "http://h/1"), ("\nb ", "http://h/2"), ("", "")]
        );
    }
}
