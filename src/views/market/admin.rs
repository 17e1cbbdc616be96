//! Admin pages of the marketplace: vouchers, credit, simulator,
//! numbers (with the forms to add them), operators' payouts.

use maud::{html, Markup};

use crate::domain::market::catalogue::Country;
use crate::domain::market::simulator::{Mode, Odds};
use crate::domain::market::vouchers::VoucherRow;
use crate::domain::supply::numbers::Report;
use crate::domain::supply::payouts::{Payout, State as PayoutState};
use crate::views::market::orders::Cur;
use crate::views::trust::admin::tabs;
use crate::views::{csrf, flash, form_mark, opt_time, page, time, Flash, Kept, Nav};

pub fn vouchers(
    nav: &Nav,
    token: &str,
    cur: &Cur,
    rows: &[VoucherRow],
    new_codes: &[String],
    f: &Option<Flash>,
    kept: &Kept,
) -> Markup {
    page(
        "Vouchers",
        nav,
        html! {
            h1 { "Vouchers" }
            (tabs())
            (flash(f))
            @if !new_codes.is_empty() {
                div.notice #new-codes {
                    p { "New codes. Copy them now: they are not shown again." }
                    pre { @for c in new_codes { (c) "\n" } }
                }
            }
            section.card {
                form method="post" action="/admin/vouchers" {
                    (csrf(token))
                    label { "How many" input type="number" name="count" value=(kept.or("count", "10")) min="1" max="1000"; }
                    label { "Amount each (" (cur.code) ")" input type="text" name="amount" inputmode="decimal" required value=(kept.or("amount", "")); }
                    label { "Valid for (days)" input type="number" name="days" value=(kept.or("days", "365")) min="1" max="3650"; }
                    button type="submit" { "Create vouchers" }
                }
            }
            div.scroll {
                table #vouchers {
                    thead { tr { th { "Batch" } th { "Code ends" } th { "Amount" } th { "Expires" } th { "Redeemed" } } }
                    tbody {
                        @for v in rows {
                            tr {
                                td { (v.batch) } td { "…" (v.hint) } td { (cur.fmt(v.amount_minor)) } td { (time(v.expires_at)) }
                                td { @if let Some(who) = &v.redeemed_by { (who) " " @if let Some(t) = v.redeemed_at { (time(t)) } } @else { "—" } }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub struct NumberRow {
    pub phone: String,
    pub country: i64,
    pub operator: String,
    pub source: String,
    pub state: String,
    pub last_used_at: Option<i64>,
    /// The operator who owns it (e-mail).
    pub owner: Option<String>,
    pub on_sale: bool,
}

pub struct NumbersPage<'a> {
    pub sim_on: bool,
    /// The odds in force, and whether they are the admin's own (else the settings').
    pub sim_odds: (Odds, bool),
    pub countries: &'a [Country],
    pub rows: &'a [NumberRow],
    /// What the last add did, line by line.
    pub report: Option<&'a Report>,
}

fn country_select(
    countries: &[Country],
    name: &str,
    blank: Option<&str>,
    chosen: Option<&str>,
) -> Markup {
    html! {
        select name=(name) {
            @if let Some(b) = blank { option value="" { (b) } }
            @for c in countries { option value=(c.id) selected[chosen == Some(c.id.to_string().as_str())] { (c.name) " (" (c.id) ", +" (c.prefix) ")" } }
        }
    }
}

/// `kept` refills the add form that failed.
pub fn numbers(
    nav: &Nav,
    token: &str,
    p: &NumbersPage<'_>,
    f: &Option<Flash>,
    kept: &Kept,
) -> Markup {
    let typed = |form: &str, name: &str| kept.of(form, name).unwrap_or("").to_string();
    page(
        "Numbers",
        nav,
        html! {
            h1 { "Numbers" }
            (tabs())
            (flash(f))
            @if let Some(r) = p.report {
                section.card #report {
                    h2 { "Result" }
                    @if !r.added.is_empty() {
                        p { "Added (" (r.added.len()) "): " @for (line, phone) in &r.added { span.ok { "line " (line) ": +" (phone) } " " } }
                    }
                    @if !r.refused.is_empty() {
                        div.scroll {
                            table #refused {
                                thead { tr { th { "Line" } th { "Text" } th { "Refused because" } } }
                                tbody { @for (line, text, why) in &r.refused { tr { td { (line) } td { code { (text) } } td.err { (why) } } } }
                            }
                        }
                    }
                }
            }
            section.card #add-number {
                h2 { "Add a number" }
                p.muted { "Numbers added here are on sale at once (source “manual”). Give an operator's e-mail to let that operator earn on them and deliver their SMS from its devices." }
                form method="post" action="/admin/numbers/add" {
                    (csrf(token))
                    (form_mark("number"))
                    label { "Phone number (with country code)" input type="text" name="phone" inputmode="tel" required placeholder="+62 811 0000 001" value=(typed("number", "phone")); }
                    label { "Country" (country_select(p.countries, "country", None, kept.of("number", "country"))) }
                    label { "Mobile operator (optional)" input type="text" name="operator" maxlength="40" value=(typed("number", "operator")); }
                    label { "Owner: operator's e-mail (optional)" input type="email" name="owner" value=(typed("number", "owner")); }
                    button type="submit" { "Add number" }
                }
            }
            section.card #bulk {
                h2 { "Paste numbers" }
                p.muted { "One number a line: " code { "PHONE[,COUNTRY_ID[,OPERATOR]]" } ", e.g. " code { "+628110000001,6,telkomsel" } ". Lines without a country use the default below; empty lines and lines starting with # are skipped. At most 1000 lines." }
                form method="post" action="/admin/numbers/bulk" {
                    (csrf(token))
                    (form_mark("bulk"))
                    label { "Numbers" textarea name="lines" rows="8" required { (typed("bulk", "lines")) } }
                    label { "Default country" (country_select(p.countries, "country", Some("— none —"), kept.of("bulk", "country"))) }
                    label { "Owner: operator's e-mail (optional)" input type="email" name="owner" value=(typed("bulk", "owner")); }
                    button type="submit" { "Add numbers" }
                }
            }
            section.card #simulator {
                h2 { "Simulator" }
                p { "The simulator issues virtual numbers and delivers a realistic SMS a few seconds after each order. Use it for demos and tests, never for real customers." }
                p.muted { "Each order draws its fate once: the odds below, in percent of orders (together at most 100); the rest get one normal SMS. With a seed, the same order id always draws the same fate, so a QA run repeats." }
                @let (odds, own) = p.sim_odds;
                form method="post" action="/admin/simulator" {
                    (csrf(token))
                    (form_mark("simulator"))
                    label.check { input type="checkbox" name="on" value="1" checked[p.sim_on]; " Simulator on" }
                    div.grid2 {
                        @for m in Mode::FAILURES {
                            @let name = m.as_str();
                            @let label = match m { Mode::NoCode => "No code (%)", Mode::LateCode => "Late code, after the order ended (%)", Mode::Duplicate => "Duplicate SMS (%)", _ => "Code in a wrong format (%)" };
                            @let value = kept.of("simulator", name).map(str::to_string).unwrap_or_else(|| odds.of(m).to_string());
                            label { (label) input type="number" name=(name) min="0" max="100" step="1" inputmode="numeric" value=(value); }
                        }
                        label { "Seed (optional)" input type="text" name="seed" inputmode="numeric" maxlength="20" value=(kept.of("simulator", "seed").map(str::to_string).unwrap_or_else(|| odds.seed.map(|s| s.to_string()).unwrap_or_default())); }
                    }
                    p.muted #sim-odds-source { @if own { "These odds were set here; they win over the settings." } @else { "These odds come from the settings (sim_no_code, sim_late_code, sim_duplicate, sim_wrong_format, sim_seed)." } }
                    label.check { input type="checkbox" name="defaults" value="1"; " Use the settings' odds instead" }
                    button type="submit" { "Save" }
                }
            }
            div.scroll {
                table #numbers {
                    thead { tr { th { "Number" } th { "Country" } th { "Operator" } th { "Source" } th { "Owner" } th { "State" } th { "On sale" } th { "Last used" } } }
                    tbody {
                        @for n in p.rows {
                            tr { td { "+" (n.phone) } td { (n.country) } td { (n.operator) } td { (n.source) }
                                 td { (n.owner.as_deref().unwrap_or("—")) } td { (n.state) } td { @if n.on_sale { "yes" } @else { "no" } }
                                 td { @if let Some(t) = n.last_used_at { (time(t)) } @else { "—" } } }
                        }
                    }
                }
            }
        },
    )
}

fn payout_state(s: PayoutState) -> Markup {
    html! {
        @match s {
            PayoutState::Requested => strong { "requested" },
            PayoutState::Paid => span.ok { "paid" },
            PayoutState::Rejected => span.err { "rejected" },
            PayoutState::Withdrawn => span.muted { "withdrawn" },
        }
    }
}

/// `kept` refills the rejection note whose form failed.
pub fn payouts(
    nav: &Nav,
    token: &str,
    cur: &Cur,
    list: &[Payout],
    f: &Option<Flash>,
    kept: &Kept,
) -> Markup {
    page(
        "Payouts",
        nav,
        html! {
            h1 { "Operators' payouts" }
            (tabs())
            (flash(f))
            p.muted { "Pay the operator outside otpbox first, then mark the request paid: that debits the operator's balance and is audited. Waiting requests come first." }
            @if list.is_empty() {
                p.muted { "No payout requests." }
            } @else {
                div.scroll {
                    table #payouts {
                        thead { tr { th { "#" } th { "Operator" } th { "Amount" } th { "Pay to" } th { "Requested" } th { "State" } th {} } }
                        tbody {
                            @for p in list {
                                tr {
                                    td { (p.id) }
                                    td { a href=(format!("/admin/users/{}", p.user_id)) { (p.email) } }
                                    td { (cur.fmt(p.amount_minor)) }
                                    td { code.key { (p.destination) } }
                                    td { (time(p.created_at)) }
                                    td { (payout_state(p.state)) " " (opt_time(p.decided_at)) @if !p.note.is_empty() { br; span.muted { (p.note) } } }
                                    td {
                                        @if p.state == PayoutState::Requested {
                                            form.inline method="post" action=(format!("/admin/payouts/{}/paid", p.id)) {
                                                (csrf(token)) button type="submit" { "Mark paid" }
                                            }
                                            form method="post" action=(format!("/admin/payouts/{}/reject", p.id)) {
                                                (csrf(token))
                                                @let mark = format!("reject-{}", p.id);
                                                (form_mark(&mark))
                                                input type="text" name="note" maxlength="200" placeholder="Why (shown to the operator)" value=(kept.of(&mark, "note").unwrap_or(""));
                                                button.secondary type="submit" { "Reject" }
                                            }
                                        }
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
