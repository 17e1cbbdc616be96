//! Client of an SMS-Activate compatible `handler_api.php` (protocols.md §1): the key and the
//! action travel in the query string; answers are text tokens (`ACCESS_NUMBER:id:phone`,
//! `STATUS_OK:code`, `NO_NUMBERS`) or JSON (`getPrices`). Countries are SMS-Activate's
//! numeric ids and services its short codes: the numbering of our own catalogue.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Answer, Fault, Http, RawBought, RawOffer};
use crate::domain::supply::routing::{Ended, Polled, UpstreamSms};
use crate::url::percent_encode;

pub struct Client {
    http: Http,
    endpoint: String,
    key: String,
}

/// Tokens meaning the account or the server is broken: the call counts as failed (and
/// moves the circuit breaker), unlike refusals of one request.
const BROKEN: &[&str] = &[
    "BAD_KEY",
    "NO_KEY",
    "BANNED",
    "ACCOUNT_INACTIVE",
    "ERROR_SQL",
    "SQL_ERROR",
    "SERVER_ERROR",
    "BAD_ACTION",
    "WRONG ACTION",
    "API_KEY_NOT_VALID",
];

/// A token is uppercase letters, digits and underscores (perhaps with `:` values after).
fn is_token(text: &str) -> bool {
    let head = text.split(':').next().unwrap_or("");
    !head.is_empty()
        && head
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b' ')
}

fn head(text: &str) -> &str {
    text.split(':').next().unwrap_or("").trim()
}

impl Client {
    /// `base` is the provider's `handler_api.php` URL; a bare host gets the usual path.
    pub fn new(http: Http, base: &str, key: &str) -> Client {
        let base = base.trim().trim_end_matches('/');
        let path_ends_php = base
            .split('?')
            .next()
            .unwrap_or(base)
            .to_ascii_lowercase()
            .ends_with(".php");
        let endpoint = if path_ends_php {
            base.to_string()
        } else {
            format!("{base}/stubs/handler_api.php")
        };
        Client {
            http,
            endpoint,
            key: key.to_string(),
        }
    }

    /// One action: the body of a 2xx or 4xx answer (some clones send their tokens with 4xx).
    fn action(&self, action: &str, params: &[(&str, &str)], long: bool) -> Answer<String> {
        let mut url = self.endpoint.clone();
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!(
            "api_key={}&action={}",
            percent_encode(&self.key),
            percent_encode(action)
        ));
        for (k, v) in params {
            url.push_str(&format!("&{}={}", percent_encode(k), percent_encode(v)));
        }
        let (status, body) = self.http.get(&url, &[], long)?;
        if status >= 500 {
            return Err(Fault::Failed(format!(
                "HTTP {status}: {}",
                self.http.excerpt(&body)
            )));
        }
        let text = body.trim().to_string();
        if status >= 400 && !is_token(&text) {
            return Err(Fault::Failed(format!(
                "HTTP {status}: {}",
                self.http.excerpt(&body)
            )));
        }
        Ok(text)
    }

    /// A token that is not the answer expected: broken account, a refusal, or garbage.
    fn unexpected(&self, text: &str) -> Fault {
        let h = head(text);
        if BROKEN.contains(&h) {
            let what = if matches!(h, "BAD_KEY" | "NO_KEY" | "API_KEY_NOT_VALID") {
                format!("{h}: the provider refused the API key")
            } else {
                h.to_string()
            };
            Fault::Failed(what)
        } else if is_token(text) && text.len() <= 100 {
            Fault::Refused(self.http.scrub(text))
        } else {
            Fault::Failed(format!("unexpected answer {}", self.http.excerpt(text)))
        }
    }

    /// `ACCESS_BALANCE:12.50` → `12.50`.
    pub fn balance(&self) -> Answer<String> {
        let text = self.action("getBalance", &[], false)?;
        match text.strip_prefix("ACCESS_BALANCE:") {
            Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            _ => Err(self.unexpected(&text)),
        }
    }

    /// `{"«country»":{"«service»":{"cost":0.5,"count":10}}}` (numbers or strings).
    pub fn prices(&self) -> Answer<Vec<RawOffer>> {
        let text = self.action("getPrices", &[], true)?;
        let parsed: HashMap<String, HashMap<String, Box<RawValue>>> =
            match serde_json::from_str(&text) {
                Ok(p) => p,
                Err(_) => return Err(self.unexpected(&text)),
            };
        #[derive(Deserialize)]
        struct Cell {
            cost: Option<Box<RawValue>>,
            price: Option<Box<RawValue>>,
            count: Option<Box<RawValue>>,
        }
        let mut out = Vec::new();
        for (country, services) in parsed {
            let Ok(country) = country.trim().parse::<i64>() else {
                continue;
            };
            for (service, cell) in services {
                let Ok(cell) = serde_json::from_str::<Cell>(cell.get()) else {
                    continue;
                };
                let (Some(cost), Some(count)) = (cell.cost.or(cell.price), cell.count) else {
                    continue;
                };
                let Some(count) = int(count.get()) else {
                    continue;
                };
                out.push(RawOffer {
                    country,
                    service: service.trim().to_ascii_lowercase(),
                    cost: cost.get().trim_matches('"').to_string(),
                    count,
                });
            }
        }
        Ok(out)
    }

    /// getNumber → `ACCESS_NUMBER:«id»:«phone»`.
    pub fn buy(&self, country: i64, service: &str) -> Answer<RawBought> {
        let country = country.to_string();
        let text = self.action(
            "getNumber",
            &[("service", service), ("country", &country)],
            false,
        )?;
        if let Some(rest) = text.strip_prefix("ACCESS_NUMBER:") {
            let (id, phone) = rest.split_once(':').unwrap_or((rest, ""));
            let digits: String = phone.chars().filter(|c| c.is_ascii_digit()).collect();
            if id.trim().is_empty() || digits.len() < 6 {
                return Err(Fault::Failed(format!(
                    "unexpected answer {}",
                    self.http.excerpt(&text)
                )));
            }
            return Ok(RawBought {
                id: id.trim().to_string(),
                phone: digits,
                operator: String::new(),
                cost: None,
            });
        }
        Err(match head(&text) {
            "NO_NUMBERS" => Fault::NoNumbers,
            "NO_BALANCE" => Fault::NoBalance,
            _ => self.unexpected(&text),
        })
    }

    /// getStatus → what the order shows now.
    pub fn status(&self, id: &str) -> Answer<Polled> {
        let text = self.action("getStatus", &[("id", id)], false)?;
        let mut polled = Polled::default();
        match head(&text) {
            "STATUS_WAIT_CODE" | "STATUS_WAIT_RETRY" | "STATUS_WAIT_RESEND" => {}
            "STATUS_OK" => {
                let code = text.split_once(':').map(|x| x.1).unwrap_or("").trim();
                if code.is_empty() {
                    return Err(Fault::Failed(format!(
                        "unexpected answer {}",
                        self.http.excerpt(&text)
                    )));
                }
                polled.sms.push(UpstreamSms {
                    key: code.to_string(),
                    sender: "upstream".into(),
                    text: format!("Code: {code}"),
                    code: Some(code.to_string()),
                });
            }
            "STATUS_CANCEL" | "NO_ACTIVATION" => polled.ended = Some(Ended::Canceled),
            _ => return Err(self.unexpected(&text)),
        }
        Ok(polled)
    }

    /// setStatus 6 (finish), 8 (cancel / number used) or 3 (another code).
    pub fn set_status(&self, id: &str, status: &str) -> Answer<()> {
        let text = self.action("setStatus", &[("id", id), ("status", status)], false)?;
        match head(&text) {
            h if h.starts_with("ACCESS_") => Ok(()),
            "EARLY_CANCEL_DENIED" => Err(Fault::TooEarly),
            _ => Err(self.unexpected(&text)),
        }
    }
}

/// A whole number written as a JSON number or string.
fn int(raw: &str) -> Option<i64> {
    let t = raw.trim().trim_matches('"').trim();
    t.parse::<i64>().ok().or_else(|| {
        t.split_once('.').and_then(|(i, f)| {
            (f.bytes().all(|b| b == b'0'))
                .then(|| i.parse().ok())
                .flatten()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn client(base: &str) -> Client {
        Client::new(Http::new(Duration::from_secs(1), "KEY"), base, "KEY")
    }

    #[test]
    fn endpoints_get_the_usual_path() {
        assert_eq!(
            client("https://x.example").endpoint,
            "https://x.example/stubs/handler_api.php"
        );
        assert_eq!(
            client("https://x.example/stubs/handler_api.php").endpoint,
            "https://x.example/stubs/handler_api.php"
        );
    }

    #[test]
    fn tokens_are_told_apart() {
        let c = client("http://x");
        assert!(matches!(c.unexpected("BAD_KEY"), Fault::Failed(m) if m.contains("API key")));
        assert!(matches!(
            c.unexpected("BANNED:'2026-1-1 10-00-00'"),
            Fault::Failed(_)
        ));
        assert_eq!(
            c.unexpected("BAD_SERVICE"),
            Fault::Refused("BAD_SERVICE".into())
        );
        assert!(
            matches!(c.unexpected("<html>oops</html>"), Fault::Failed(m) if m.contains("unexpected"))
        );
        assert_eq!(int("10"), Some(10));
        assert_eq!(int("\"7\""), Some(7));
        assert_eq!(int("3.0"), Some(3));
        assert_eq!(int("3.5"), None);
    }
}
