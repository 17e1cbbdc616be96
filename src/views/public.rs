//! Public pages: landing, privacy policy, acceptable-use policy, terms.

use maud::{html, Markup};

use super::{page, Nav};

pub struct Operator<'a> {
    pub name: &'a str,
    pub contact: &'a str,
    pub min_age: u32,
}

pub fn landing(nav: &Nav, op: &Operator<'_>) -> Markup {
    page(
        "Receive SMS codes",
        nav,
        html! {
            section.hero {
                h1 { "Temporary numbers for one-time codes" }
                p.lead {
                    "Order a number for a country and a service, see the code arrive in seconds, "
                    "and get your money back when none comes."
                }
                p {
                    @if nav.email.is_some() {
                        a.button href="/dashboard" { "Go to your dashboard" }
                    } @else {
                        a.button href="/signup" { "Create an account" }
                        " "
                        a href="/login" { "Log in" }
                    }
                    " · "
                    a #see-prices href="/prices" { "See prices" }
                }
            }
            section.grid3 {
                div.card { h2 { "Pay only for codes" } p { "An order that receives no code is refunded in full, automatically." } }
                div.card { h2 { "Works with your tools" } p { "Existing SMS-Activate and 5sim clients work by changing only the base URL." } }
                div.card { h2 { "Private by design" } p { "Message texts are deleted minutes after your order ends. No trackers, no third-party scripts." } }
            }
            p.muted { "Operated by " (op.name) " · " a href=(format!("mailto:{}", op.contact)) { (op.contact) } }
        },
    )
}

/// One retention rule as the privacy page states it.
pub struct Retention {
    pub what: String,
    pub period: String,
}

pub fn privacy(
    nav: &Nav,
    op: &Operator<'_>,
    rules: &[Retention],
    deletion_cooldown: &str,
    processors: &[&str],
) -> Markup {
    page(
        "Privacy policy",
        nav,
        html! {
            article.prose {
                h1 { "Privacy policy" }
                p { "This service is run by " strong { (op.name) } ". Contact: " a href=(format!("mailto:{}", op.contact)) { (op.contact) } "." }
                h2 { "What we keep, and for how long" }
                p { "Every period below is enforced by a scheduled job in the software; the numbers on this page are read from its live settings." }
                table #retention {
                    thead { tr { th { "Data" } th { "Kept for" } } }
                    tbody {
                        @for r in rules {
                            tr { td { (r.what) } td.period { (r.period) } }
                        }
                    }
                }
                h2 { "Payments" }
                @if processors.is_empty() {
                    p #processors { "Balances are topped up with vouchers or by the operator; no payment processor is used." }
                } @else {
                    ul #processors { @for line in processors { li { (line) } } }
                }
                h2 { "Who can read your messages" }
                p { "Only the account that ordered a number can read the messages it received. Administrators can see them only through an audited action." }
                h2 #notifications { "Notifications you choose" }
                p { "When you add a notification channel (an ntfy topic, a Telegram chat or your e-mail address), what it is told leaves this server to that channel's service: for a code, the code and the service it is for; for a rented number, the SMS. E-mail carries the code or the SMS too, but only when this server sends its mail through an SMTP server; the copy of such a mail kept here loses the code or text once it is sent, or after the SMS retention above if it could not be sent, and the administrator never sees it. Nothing is sent to a channel you did not set up, and nothing about anyone else is ever in it. Delete a channel and nothing more is sent to it; delete your account and all of them go at once." }
                p { "Sign-in with another provider (OpenID Connect), when this site offers it, asks that provider only for your account identifier and your verified e-mail address." }
                h2 { "Cookies" }
                p { "One cookie, " code { "__session" } ", keeps you signed in. It is HttpOnly and holds only a random token. There are no tracking cookies, no third-party scripts and no telemetry." }
                h2 { "Addresses" }
                p { "IP addresses are never stored as such: logs keep only a keyed hash of them." }
                h2 { "Your rights" }
                p { "From the settings page you can:" }
                ul #rights {
                    li { strong { "Export" } " everything held about your account as one JSON file: profile, orders, rentals, ledger, top-ups, API keys (names and dates), webhooks, devices, the messages still kept, sessions and security events." }
                    li { strong { "Correct" } " your name, and your e-mail address: the change is confirmed by a link sent to the new address, and the old address is told." }
                    li { strong { "Restrict processing" } ": we send no marketing; with the restriction on, your data is used only to run your orders, keep the books and prevent fraud, and optional processing such as scoring your usage patterns is skipped." }
                    li #deletion { strong { "Delete" } " your account. Deletion is immediate: your live orders end (those without a code are refunded), your remaining balance is forfeited, and every session, API key, webhook and device stops working at once. For " span.cooldown { (deletion_cooldown) } " the e-mail address cannot be used for a new account; then the deletion is final: the address, password, name and any linked sign-in with another provider are erased. Billing records stay for the period above, no longer linked to you." }
                }
            }
        },
    )
}

pub fn aup(nav: &Nav, op: &Operator<'_>) -> Markup {
    page(
        "Acceptable-use policy",
        nav,
        html! {
            article.prose {
                h1 { "Acceptable-use policy" }
                p { "You must be at least " (op.min_age) " years old to use this service." }
                p { "Numbers are for receiving verification codes for accounts you are entitled to create. You must not use them:" }
                ul {
                    li { "for fraud, phishing, impersonation or evading a ban imposed on you;" }
                    li { "to harass anyone or to send or receive unlawful content;" }
                    li { "to break the terms of the service whose code you receive where that is unlawful;" }
                    li { "to attack, overload or probe this service." }
                }
                p { "Accounts that break these rules are suspended or terminated. A terminated account's balance is forfeited; you may appeal within 30 days." }
                p { "Report abuse of a number through " a href="/abuse" { "the abuse report form" } "; for anything else write to " a href=(format!("mailto:{}", op.contact)) { (op.contact) } "." }
                p { "We publish how many requests for data we receive from authorities, and how we answer them, on " a href="/transparency" { "the transparency page" } "." }
            }
        },
    )
}

pub fn terms(nav: &Nav, op: &Operator<'_>) -> Markup {
    page(
        "Terms of service",
        nav,
        html! {
            article.prose {
                h1 { "Terms of service" }
                p { "This service is provided by " (op.name) "." }
                h2 { "Orders and refunds" }
                p { "The price of a number is taken from your balance when the number is issued. If no code arrives before the order ends, or you cancel it before a code arrives, the full price is returned to your balance. After a code has arrived there is no refund." }
                h2 { "Balance" }
                p { "Your balance can only be spent on this service. It is not a bank account and earns no interest." }
                h2 { "Availability" }
                p { "Numbers come from a limited stock and may not be available for every country and service at all times." }
                h2 { "Contact" }
                p { a href=(format!("mailto:{}", op.contact)) { (op.contact) } }
            }
        },
    )
}
