//! Two-factor sign-in pages: the settings page (set up with a QR code and the secret for
//! typing in, confirm, recovery codes shown once, turn off, new recovery codes), the code
//! step of the login, and the QR code itself drawn as inline SVG.

use maud::{html, Markup};

use crate::clock::Timestamp;
use crate::qr::QrCode;
use crate::views::accounts::account::{form_card, FormCard};
use crate::views::{csrf, flash, page, time, Flash, Nav};

/// Light modules around the symbol, as the standard asks.
const QUIET_ZONE: usize = 4;

/// A QR code as an inline SVG: one path of dark runs on a white square (white even in dark
/// mode, so phones can read it). No script, no image request.
pub fn qr_svg(q: &QrCode, label: &str) -> Markup {
    let side = q.size + 2 * QUIET_ZONE;
    let mut d = String::new();
    for y in 0..q.size {
        let mut x = 0;
        while x < q.size {
            if !q.dark(x, y) {
                x += 1;
                continue;
            }
            let start = x;
            while x < q.size && q.dark(x, y) {
                x += 1;
            }
            let len = x - start;
            d.push_str(&format!(
                "M{} {}h{len}v1h-{len}z",
                start + QUIET_ZONE,
                y + QUIET_ZONE
            ));
        }
    }
    let view_box = format!("0 0 {side} {side}");
    html! {
        svg.qr xmlns="http://www.w3.org/2000/svg" viewBox=(view_box) width="240" height="240"
            role="img" aria-label=(label) shape-rendering="crispEdges" {
            rect width=(side) height=(side) fill="#ffffff" {}
            path d=(d) fill="#000000" {}
        }
    }
}

/// What the settings page shows.
pub enum State<'a> {
    Off,
    /// Set-up started: scan or type the secret, then confirm.
    Enrolling {
        qr: &'a QrCode,
        uri: &'a str,
        secret_b32: &'a str,
    },
    On {
        since: Timestamp,
        recovery_left: i64,
    },
}

/// `ABCD EFGH …`: the secret in groups of four, easier to type.
fn grouped(secret: &str) -> String {
    secret
        .as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn code_field() -> Markup {
    html! {
        label { "Code from the app, or a recovery code"
            input type="text" name="code" required autocomplete="one-time-code"
                spellcheck="false" autocapitalize="off" maxlength="20";
        }
    }
}

/// The password asked before a change; nothing for an account without one (it signs in
/// with a provider, and its session is the proof).
fn password_field(has_password: bool) -> Markup {
    html! {
        @if has_password {
            label { "Password" input type="password" name="password" required autocomplete="current-password"; }
        }
    }
}

pub fn settings(
    nav: &Nav,
    has_password: bool,
    token: &str,
    state: &State<'_>,
    new_codes: Option<&[String]>,
    f: &Option<Flash>,
) -> Markup {
    page(
        "Two-factor sign-in",
        nav,
        html! {
            p { a href="/settings" { "← Settings" } }
            h1 { "Two-factor sign-in" }
            (flash(f))
            @if let Some(codes) = new_codes {
                section.card.notice #recovery-codes {
                    h2 { "Your recovery codes" }
                    p { "Each code signs you in once if you lose your phone. Keep them somewhere safe, away from the phone: they are shown only now." }
                    ul.codes {
                        @for c in codes { li { code.recovery { (c) } } }
                    }
                    p { button.link type="button" data-copy=(codes.join("\n")) { "Copy all" } }
                }
            }
            @match state {
                State::Off => {
                    section.card #two-factor {
                        p { "Two-factor sign-in is " strong { "off" } "." }
                        p { "When it is on, signing in asks for a six-digit code from an authenticator app (such as Aegis, FreeOTP, Google Authenticator or 1Password) after your password, so a stolen password alone is not enough." }
                        form method="post" action="/settings/2fa/start" {
                            (csrf(token))
                            button type="submit" { "Set up two-factor sign-in" }
                        }
                    }
                }
                State::Enrolling { qr, uri, secret_b32 } => {
                    section.card #enrol {
                        h2 { "1. Add this account to your app" }
                        p { "Scan the code with the authenticator app:" }
                        p { (qr_svg(qr, "QR code of the two-factor secret")) }
                        p { "Or type this key into the app (time-based, six digits, 30 seconds):" }
                        p { code.key #secret { (grouped(secret_b32)) } }
                        details {
                            summary { "The link inside the QR code" }
                            p { code.key { (uri) } }
                        }
                        h2 { "2. Confirm with a code" }
                        form method="post" action="/settings/2fa/enable" {
                            (csrf(token))
                            label { "Current code from the app"
                                input type="text" name="code" required inputmode="numeric"
                                    autocomplete="one-time-code" pattern="[0-9 ]{6,7}" maxlength="7";
                            }
                            (password_field(has_password))
                            button type="submit" { "Turn on" }
                        }
                    }
                }
                State::On { since, recovery_left } => {
                    section.card #two-factor {
                        p { "Two-factor sign-in is " strong { "on" } " since " (time(*since)) "." }
                        p #recovery-left { (recovery_left) " unused recovery code" @if *recovery_left != 1 { "s" } "." }
                    }
                    section.card {
                        h2 { "New recovery codes" }
                        p.muted { "Makes ten new codes; the old ones stop working." }
                        form method="post" action="/settings/2fa/recovery" {
                            (csrf(token))
                            (code_field())
                            (password_field(has_password))
                            button type="submit" { "Make new recovery codes" }
                        }
                    }
                    section.card {
                        h2 { "Turn off" }
                        form method="post" action="/settings/2fa/disable" {
                            (csrf(token))
                            (code_field())
                            (password_field(has_password))
                            button.danger type="submit" { "Turn off two-factor sign-in" }
                        }
                    }
                }
            }
        },
    )
}

/// The second step of the login.
pub fn login_code(nav: &Nav, token: &str, next: &str, f: &Option<Flash>) -> Markup {
    let card = FormCard {
        title: "Two-factor sign-in",
        heading: "Enter your code",
        action: "/login/2fa",
        submit: "Sign in",
    };
    let fields = html! {
        input type="hidden" name="next" value=(next);
        label { "Six-digit code from your authenticator app"
            input type="text" name="code" required autofocus autocomplete="one-time-code"
                spellcheck="false" autocapitalize="off" maxlength="20";
        }
    };
    let after = html! {
        p.muted { "Lost your phone? Type one of your recovery codes instead." }
        p.muted { a href="/login" { "Start again" } }
    };
    form_card(nav, &card, token, f, fields, after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_svg_draws_every_dark_module_inside_the_quiet_zone() {
        let q = QrCode::encode(b"otpauth://totp/x:y?secret=AAAA").unwrap();
        let svg = qr_svg(&q, "QR").into_string();
        let side = q.size + 8;
        assert!(
            svg.contains(&format!("viewBox=\"0 0 {side} {side}\"")),
            "{svg}"
        );
        // Sum of the run lengths = dark modules.
        let dark = (0..q.size)
            .flat_map(|y| (0..q.size).map(move |x| (x, y)))
            .filter(|&(x, y)| q.dark(x, y))
            .count();
        let d = svg
            .split(" d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let drawn: usize = d
            .split('h')
            .skip(1)
            .step_by(2)
            .map(|n| n.split('v').next().unwrap().parse::<usize>().unwrap())
            .sum();
        assert_eq!(drawn, dark);
        // The top-left finder starts at the quiet zone's edge.
        assert!(d.starts_with("M4 4h7v1h-7z"), "{}", &d[..20]);
    }
}
