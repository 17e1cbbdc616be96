//! Abuse and enforcement pages: the public abuse report form, the appeal pages, the
//! transparency report; the admin's abuse queue, flags, blocked services and countries, the
//! law-enforcement register, and the enforcement section of the admin's user page.

use maud::{html, Markup};

use crate::clock::{format_datetime, Timestamp};
use crate::domain::accounts::{State as AccountState, User};
use crate::domain::base::money::Money;
use crate::domain::market::blocklist::Entry;
use crate::domain::market::catalogue::{Country, Service};
use crate::domain::trust::abuse::{Appeal, Kind, NewReport, Note, NumberLookup, Report, State};
use crate::domain::trust::legal::{Outcome, Request as LegalRequest, Year};
use crate::domain::trust::signals::{Chargeback, Flag};
use crate::views::trust::admin::tabs;
use crate::views::{csrf, flash, form_mark, opt_time, page, time, Flash, Kept, Nav};

// ---------------------------------------------------------------------------------------
// Public

pub fn report_form(nav: &Nav, token: &str, r: &NewReport, f: &Option<Flash>) -> Markup {
    page(
        "Report abuse",
        nav,
        html! {
            section.card.narrow {
                h1 { "Report abuse" }
                p { "Did a number from this service take part in fraud, harassment or another abuse? Tell us which number, where it was used and what happened. We look at every report; the orders that used the number are checked by an administrator." }
                (flash(f))
                form method="post" action="/abuse" #abuse {
                    (csrf(token))
                    label { "Phone number (with country code)" input type="tel" name="number" value=(r.phone) required placeholder="+62 812 3456 7890" maxlength="30"; }
                    label { "Service it was used for" input type="text" name="service" value=(r.service) required placeholder="e.g. Telegram" maxlength="100"; }
                    label { "What happened" textarea name="description" rows="6" required minlength="10" maxlength="5000" { (r.description) } }
                    label { "Your e-mail (optional, if you want an answer)" input type="email" name="contact" value=(r.contact) maxlength="254"; }
                    button type="submit" { "Send report" }
                }
                p.muted { "We store your address only as a keyed hash, to limit floods, and clear it after a week." }
            }
        },
    )
}

pub fn report_sent(nav: &Nav) -> Markup {
    page(
        "Report received",
        nav,
        html! {
            section.card.narrow {
                h1 { "Thank you" }
                p #sent { "Your report was received. An administrator will look at it." }
                p { a href="/" { "Home" } }
            }
        },
    )
}

pub fn transparency(nav: &Nav, operator: &str, years: &[Year]) -> Markup {
    page(
        "Transparency report",
        nav,
        html! {
            article.prose {
                h1 { "Transparency report" }
                p { "Requests for user data from law enforcement and other authorities that " (operator) " received, per year, and how each was answered. The counts are computed from the register the operator keeps in this software." }
                @if years.is_empty() {
                    p #none { "No requests have been received." }
                } @else {
                    table #transparency {
                        thead { tr { th { "Year" } th { "Requests" } @for o in Outcome::ALL { th { (o.label()) } } } }
                        tbody {
                            @for y in years {
                                tr data-year=(y.year) {
                                    td { (y.year) }
                                    td.total { (y.total) }
                                    @for (o, n) in &y.by_outcome { td class=(o.as_str()) { (n) } }
                                }
                            }
                        }
                    }
                }
                p { "What we hold is described in the " a href="/privacy" { "privacy policy" } ": message texts are deleted minutes after an order ends, so they usually cannot be disclosed at all." }
            }
        },
    )
}

/// What a terminated person sees after logging in with the right password.
pub fn terminated(
    nav: &Nav,
    user: &User,
    terminated_at: Option<Timestamp>,
    appeal: &Appeal,
    link: Option<&str>,
) -> Markup {
    page(
        "Account terminated",
        nav,
        html! {
            section.card.narrow #terminated {
                h1 { "This account is terminated" }
                p { "The account " strong { (user.email) } " was terminated"
                    @if let Some(t) = terminated_at { " on " (time(t)) }
                    @if !user.state_reason.is_empty() { " for this reason: " em { (user.state_reason) } }
                    "." }
                (appeal_state(appeal, link))
            }
        },
    )
}

fn appeal_state(appeal: &Appeal, link: Option<&str>) -> Markup {
    html! {
        @match appeal {
            Appeal::Open { deadline, .. } => {
                p { "You can appeal once, until " (time(*deadline)) "." }
                @if let Some(l) = link { p { a.button href=(l) #appeal-link { "Appeal the termination" } } }
            }
            Appeal::Made { at, state, .. } => {
                p #appealed { "Your appeal of " (time(*at)) " was received (" (state) "). You can appeal only once." }
            }
            Appeal::Expired { deadline, .. } => {
                p #expired { "The 30 days to appeal ended on " (time(*deadline)) "." }
            }
            Appeal::NotTerminated => { p { "This account is not terminated." } }
        }
    }
}

pub fn appeal_form(
    nav: &Nav,
    token: &str,
    action: &str,
    email: &str,
    appeal: &Appeal,
    text: &str,
    f: &Option<Flash>,
) -> Markup {
    page(
        "Appeal",
        nav,
        html! {
            section.card.narrow {
                h1 { "Appeal the termination" }
                (flash(f))
                p { "Account: " strong { (email) } }
                @if let Appeal::Open { deadline, .. } = appeal {
                    p { "You can appeal once, until " (time(*deadline)) ". Explain why the termination should be lifted; an administrator reviews every appeal and answers by e-mail." }
                    form method="post" action=(action) #appeal {
                        (csrf(token))
                        label { "Your appeal" textarea name="appeal" rows="8" required minlength="10" maxlength="5000" { (text) } }
                        button type="submit" { "Send the appeal" }
                    }
                } @else {
                    (appeal_state(appeal, None))
                }
            }
        },
    )
}

pub fn appeal_info(nav: &Nav, sent: bool) -> Markup {
    page(
        "Appeal",
        nav,
        html! {
            section.card.narrow {
                @if sent {
                    h1 { "Appeal received" }
                    p #sent { "Your appeal was received. An administrator will review it and answer by e-mail." }
                } @else {
                    h1 { "Appeal a termination" }
                    p { "Open the link in the e-mail that told you about the termination, or " a href="/login" { "log in" } " with your e-mail address and password: the page that says the account is terminated links to the appeal form." }
                }
            }
        },
    )
}

// ---------------------------------------------------------------------------------------
// Admin: the queue

fn state_badge(s: State) -> Markup {
    html! { span class=(format!("badge state-{}", s.as_str())) { (s.as_str()) } }
}

pub fn queue(
    nav: &Nav,
    filter: Option<State>,
    counts: &[(State, i64)],
    reports: &[Report],
    f: &Option<Flash>,
) -> Markup {
    page(
        "Abuse reports",
        nav,
        html! {
            h1 { "Abuse reports and appeals" }
            (tabs())
            (flash(f))
            nav.tabs #filter {
                a href="/admin/abuse" { "All" }
                @for (st, n) in counts {
                    a href=(format!("/admin/abuse?state={}", st.as_str())) class=[(filter == Some(*st)).then_some("current")] { (st.as_str()) " (" (n) ")" }
                }
            }
            div.scroll {
                table #reports {
                    thead { tr { th { "#" } th { "Kind" } th { "Received" } th { "Number" } th { "Service / account" } th { "State" } } }
                    tbody {
                        @for r in reports {
                            tr data-id=(r.id) {
                                td { a href=(format!("/admin/abuse/{}", r.id)) { "#" (r.id) } }
                                td { (r.kind.as_str()) }
                                td { (time(r.created_at)) }
                                td { (if r.phone.is_empty() { "—" } else { r.phone.as_str() }) }
                                td { @if r.kind == Kind::Appeal { (r.user_email.as_deref().unwrap_or("")) } @else { (r.service) } }
                                td { (state_badge(r.state)) }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub fn report(
    nav: &Nav,
    token: &str,
    r: &Report,
    notes: &[Note],
    lookup: Option<&NumberLookup>,
    f: &Option<Flash>,
    kept: &Kept,
) -> Markup {
    page(
        &format!("Report #{}", r.id),
        nav,
        html! {
            h1 { (if r.kind == Kind::Appeal { "Appeal" } else { "Abuse report" }) " #" (r.id) }
            (tabs())
            (flash(f))
            section.card {
                dl {
                    dt { "State" } dd #state { (r.state.as_str()) }
                    dt { "Received" } dd { (time(r.created_at)) }
                    dt { "Last change" } dd { (time(r.updated_at)) }
                    @if r.kind == Kind::Appeal {
                        dt { "Account" } dd { @if let Some(uid) = r.user_id { a href=(format!("/admin/users/{uid}")) { (r.user_email.as_deref().unwrap_or("")) } } }
                    } @else {
                        dt { "Number" } dd #phone { (r.phone) }
                        dt { "Service" } dd { (r.service) }
                        dt { "Reporter's contact" } dd { (if r.contact.is_empty() { "—" } else { r.contact.as_str() }) }
                    }
                }
                h2 { (if r.kind == Kind::Appeal { "The appeal" } else { "What happened" }) }
                p.pre-wrap #description { (r.description) }
            }
            @if r.kind == Kind::Report {
                section.card #lookup {
                    h2 { "Orders on this number" }
                    @match lookup {
                        None => {
                            p.muted { "Looking up which accounts used the number reads their data and is recorded in the audit log." }
                            p { a.button href=(format!("/admin/abuse/{}/orders", r.id)) { "Look up orders on this number" } }
                        }
                        Some(l) => {
                            p #held { @if l.held { "This is one of our numbers." } @else { "This number is not (or no longer) one of ours." } }
                            @if l.orders.is_empty() {
                                p #no-orders { "No order used it from 30 days before the report until now." }
                            } @else {
                                table #orders {
                                    thead { tr { th { "Order" } th { "Account" } th { "Service" } th { "Status" } th { "Created" } th { "Ended" } } }
                                    tbody {
                                        @for o in &l.orders {
                                            tr {
                                                td { (o.kind) " #" (o.id) }
                                                td { a href=(format!("/admin/users/{}", o.user_id)) { (o.email) } }
                                                td { (o.service) }
                                                td { (o.status) }
                                                td { (time(o.created_at)) }
                                                td { (opt_time(o.ended_at)) }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            section.card {
                h2 { "State" }
                @if r.state.next().is_empty() {
                    p { "Final." }
                } @else {
                    form method="post" action=(format!("/admin/abuse/{}/state", r.id)) #state-form {
                        (csrf(token))
                        select name="state" {
                            @for st in r.state.next() { option value=(st.as_str()) selected[kept.get("state") == Some(st.as_str())] { (st.as_str()) } }
                        }
                        label { "Note (optional, kept with the report)" textarea name="note" rows="2" maxlength="5000" { (kept.or("note", "")) } }
                        button type="submit" { "Change state" }
                    }
                }
            }
            section.card {
                h2 { "Notes" }
                @if notes.is_empty() { p.muted { "No notes yet." } }
                ol #notes {
                    @for n in notes {
                        li { p.muted { (time(n.at)) " · " (n.author.as_deref().unwrap_or("—")) } p.pre-wrap { (n.text) } }
                    }
                }
                form method="post" action=(format!("/admin/abuse/{}/note", r.id)) #note-form {
                    (csrf(token))
                    label { "Add a note (notes cannot be edited or removed)" textarea name="text" rows="3" required maxlength="5000" { (kept.or("text", "")) } }
                    button type="submit" { "Add note" }
                }
            }
        },
    )
}

// ---------------------------------------------------------------------------------------
// Admin: flags

fn flag_rows(token: &str, flags: &[Flag], back: &str) -> Markup {
    html! {
        table.flags {
            thead { tr { th { "Raised" } th { "Account" } th { "Signal" } th { "Evidence" } th { "State" } th {} } }
            tbody {
                @for fl in flags {
                    tr data-kind=(fl.kind) data-state=(fl.state) {
                        td { (time(fl.created_at)) }
                        td { a href=(format!("/admin/users/{}", fl.user_id)) { (fl.email) } }
                        td { code { (fl.kind) } }
                        td { (fl.summary()) details { summary { "data" } code { (fl.evidence) } } }
                        td { (fl.state) @if let Some(by) = &fl.reviewed_by { br; small.muted { "by " (by) " " (opt_time(fl.reviewed_at)) } } }
                        td {
                            @if fl.state == "open" {
                                form method="post" action=(format!("/admin/flags/{}/review", fl.id)) {
                                    (csrf(token))
                                    input type="hidden" name="back" value=(back);
                                    button type="submit" { "Mark reviewed" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn flags(
    nav: &Nav,
    token: &str,
    state: Option<&str>,
    flags: &[Flag],
    f: &Option<Flash>,
) -> Markup {
    page(
        "Flags",
        nav,
        html! {
            h1 { "Anomaly flags" }
            (tabs())
            (flash(f))
            p.muted { "Raised by the " code { "abuse" } " job from order patterns and sign-ins, and by chargebacks recorded on a user's page. A flag is evidence for you to look at; nothing happens to an account by itself." }
            nav.tabs {
                a href="/admin/flags" class=[state.is_none().then_some("current")] { "All" }
                a href="/admin/flags?state=open" class=[(state == Some("open")).then_some("current")] { "Open" }
                a href="/admin/flags?state=reviewed" class=[(state == Some("reviewed")).then_some("current")] { "Reviewed" }
            }
            (flag_rows(token, flags, "/admin/flags"))
        },
    )
}

// ---------------------------------------------------------------------------------------
// Admin: blocked services and countries

pub fn blocked(
    nav: &Nav,
    token: &str,
    entries: &[Entry],
    countries: &[Country],
    services: &[Service],
    f: &Option<Flash>,
    kept: &Kept,
) -> Markup {
    let country_name = |id: i64| {
        countries
            .iter()
            .find(|c| c.id == id)
            .map(|c| format!("{} ({id})", c.name))
            .unwrap_or_else(|| id.to_string())
    };
    let service_name = |code: &str| {
        services
            .iter()
            .find(|s| s.code == code)
            .map(|s| format!("{} ({code})", s.name))
            .unwrap_or_else(|| code.to_string())
    };
    page(
        "Blocked",
        nav,
        html! {
            h1 { "Blocked services and countries" }
            (tabs())
            (flash(f))
            p.muted { "Orders for a blocked service, country or pair are refused at once on the web form and on all three APIs, and the pair disappears from the catalogue and price lists. Changes take effect immediately and are audited." }
            section.card {
                h2 { "Block" }
                form method="post" action="/admin/blocked" #block-form {
                    (csrf(token))
                    label { "Service"
                        select name="service" {
                            option value="" { "— every service —" }
                            @for s in services { option value=(s.code) selected[kept.get("service") == Some(s.code.as_str())] { (s.name) " (" (s.code) ")" } }
                        }
                    }
                    label { "Country"
                        select name="country" {
                            option value="" { "— every country —" }
                            @for c in countries { option value=(c.id) selected[kept.get("country") == Some(c.id.to_string().as_str())] { (c.name) " (" (c.id) ")" } }
                        }
                    }
                    label { "Reason (recorded)" input type="text" name="reason" maxlength="200" value=(kept.or("reason", "")); }
                    button type="submit" { "Block" }
                }
            }
            div.scroll {
                table #blocked {
                    thead { tr { th { "Service" } th { "Country" } th { "Reason" } th { "By" } th { "Since" } th {} } }
                    tbody {
                        @for e in entries {
                            tr data-id=(e.id) {
                                td { (e.service.as_deref().map(service_name).unwrap_or_else(|| "every service".into())) }
                                td { (e.country_id.map(country_name).unwrap_or_else(|| "every country".into())) }
                                td { (e.reason) }
                                td { (e.created_by.as_deref().unwrap_or("—")) }
                                td { (time(e.created_at)) }
                                td {
                                    form method="post" action=(format!("/admin/blocked/{}/remove", e.id)) {
                                        (csrf(token))
                                        button type="submit" { "Remove" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

// ---------------------------------------------------------------------------------------
// Admin: law-enforcement register

fn outcome_select(current: &str) -> Markup {
    html! {
        select name="outcome" {
            @for o in Outcome::ALL { option value=(o.as_str()) selected[o.as_str() == current] { (o.label()) } }
        }
    }
}

/// The fields of a register form marked `mark`: `values` (date, agency, scope, outcome,
/// notes) or, when this form failed, what was typed.
fn legal_fields(mark: &str, scope_label: &str, values: [&str; 5], kept: &Kept) -> Markup {
    let names = ["received_on", "agency", "scope", "outcome", "notes"];
    let [received_on, agency, scope, outcome, notes] =
        std::array::from_fn(|i| kept.of(mark, names[i]).unwrap_or(values[i]));
    html! {
        (form_mark(mark))
        label { "Date received" input type="date" name="received_on" value=(received_on) required; }
        label { "Agency" input type="text" name="agency" value=(agency) required maxlength="200"; }
        label { (scope_label) textarea name="scope" rows="3" required maxlength="2000" { (scope) } }
        label { "Outcome" (outcome_select(outcome)) }
        label { "Notes" textarea name="notes" rows="2" maxlength="5000" { (notes) } }
    }
}

pub fn legal(
    nav: &Nav,
    token: &str,
    today: &str,
    requests: &[LegalRequest],
    f: &Option<Flash>,
    kept: &Kept,
) -> Markup {
    page(
        "Legal requests",
        nav,
        html! {
            h1 { "Law-enforcement requests" }
            (tabs())
            (flash(f))
            p.muted { "Every request for user data from an authority, and what was done with it. Only the yearly counts per outcome are public, on " a href="/transparency" { "the transparency page" } "." }
            section.card {
                h2 { "Register a request" }
                form method="post" action="/admin/legal" #legal-form {
                    (csrf(token))
                    @let blank = [today, "", "", Outcome::Pending.as_str(), ""];
                    (legal_fields("legal-new", "Scope (what they asked for)", blank, kept))
                    button type="submit" { "Register" }
                }
            }
            div.scroll {
                table #legal {
                    thead { tr { th { "Received" } th { "Agency" } th { "Scope" } th { "Outcome" } th { "Notes" } th { "Updated" } } }
                    tbody {
                        @for r in requests {
                            tr data-id=(r.id) {
                                td { (r.received_on) }
                                td { (r.agency) }
                                td.pre-wrap { (r.scope) }
                                td { (r.outcome.label()) }
                                td.pre-wrap { (r.notes)
                                    @let mark = format!("legal-{}", r.id);
                                    details open[kept.get("form") == Some(mark.as_str())] { summary { "Edit" }
                                        form method="post" action=(format!("/admin/legal/{}", r.id)) {
                                            (csrf(token))
                                            @let saved = [r.received_on.as_str(), r.agency.as_str(), r.scope.as_str(), r.outcome.as_str(), r.notes.as_str()];
                                            (legal_fields(&mark, "Scope", saved, kept))
                                            button type="submit" { "Save" }
                                        }
                                    }
                                }
                                td { (time(r.updated_at)) }
                            }
                        }
                    }
                }
            }
        },
    )
}

// ---------------------------------------------------------------------------------------
// Admin: the enforcement part of a user's page

pub struct UserEnforcement<'a> {
    pub user: &'a User,
    pub flags: &'a [Flag],
    pub chargebacks: &'a [Chargeback],
    pub appeal: &'a Appeal,
    pub currency: &'a str,
    pub digits: u32,
}

/// The enforcement sections; `kept` refills the one whose form failed.
pub fn user_section(token: &str, e: &UserEnforcement<'_>, kept: &Kept) -> Markup {
    let u = e.user;
    let back = format!("/admin/users/{}", u.id);
    html! {
        section.card #flags {
            h2 { "Flags" }
            @if e.flags.is_empty() { p.muted { "No anomaly flags." } } @else { (flag_rows(token, e.flags, &back)) }
        }
        section.card #chargebacks {
            h2 { "Chargebacks" }
            @if !e.chargebacks.is_empty() {
                table {
                    thead { tr { th { "Recorded" } th { "Amount" } th { "Reference" } th { "By" } th { "Debited" } } }
                    tbody {
                        @for c in e.chargebacks {
                            tr {
                                td { (time(c.created_at)) }
                                td { (Money(c.amount_minor).decimal(e.digits)) " " (e.currency) }
                                td { (c.reference) }
                                td { (c.recorded_by.as_deref().unwrap_or("—")) }
                                td { @if c.ledger_id.is_some() { "yes" } @else { "no" } }
                            }
                        }
                    }
                }
            }
            form method="post" action=(format!("/admin/users/{}/chargeback", u.id)) #chargeback-form {
                (csrf(token))
                (form_mark("chargeback"))
                label { "Amount (" (e.currency) ")" input type="text" name="amount" inputmode="decimal" required value=(kept.of("chargeback", "amount").unwrap_or("")); }
                label { "Payment reference" input type="text" name="reference" required maxlength="100" value=(kept.of("chargeback", "reference").unwrap_or("")); }
                label.check { input type="checkbox" name="debit" value="1" checked[kept.of("chargeback", "debit").is_some()]; " Also debit the balance (an adjustment in the ledger)" }
                button type="submit" { "Record chargeback" }
            }
        }
        section.card #termination {
            h2 { "Termination" }
            @if u.state == AccountState::Terminated {
                p { "Terminated: " (u.state_reason) }
                (appeal_admin(e.appeal))
                form method="post" action=(format!("/admin/users/{}/reinstate", u.id)) #reinstate-form {
                    (csrf(token))
                    (form_mark("reinstate"))
                    label { "Reason for reinstating (recorded)" input type="text" name="reason" maxlength="200" value=(kept.of("reinstate", "reason").unwrap_or("")); }
                    button type="submit" { "Reinstate the account" }
                }
                p.muted { "The forfeited balance is not restored by reinstating; credit it by hand if the appeal succeeded." }
            } @else if u.state == AccountState::Deleted {
                p { "The account is deleted." }
            } @else {
                p { "Terminating ends the account's live orders (refunding those without a code), forfeits the remaining balance, revokes every session, API key, webhook and device, and mails the person the reason with a link to appeal once within 30 days." }
                form method="post" action=(format!("/admin/users/{}/terminate", u.id)) #terminate-form {
                    (csrf(token))
                    (form_mark("terminate"))
                    label { "Reason (required; sent to the person)" input type="text" name="reason" required maxlength="200" value=(kept.of("terminate", "reason").unwrap_or("")); }
                    button.danger type="submit" { "Terminate the account" }
                }
            }
        }
    }
}

fn appeal_admin(appeal: &Appeal) -> Markup {
    html! {
        @match appeal {
            Appeal::Open { deadline, .. } => p { "No appeal yet; the person can appeal until " (format_datetime(*deadline)) " UTC." },
            Appeal::Made { id, state, .. } => p { "Appealed: " a href=(format!("/admin/abuse/{id}")) { "appeal #" (id) } " (" (state) ")." },
            Appeal::Expired { .. } => p { "The appeal period ended without an appeal." },
            Appeal::NotTerminated => {},
        }
    }
}
