//! Client of the 5sim REST API v1 (protocols.md §2): `Authorization: Bearer «token»`, GET
//! for everything, errors as non-2xx statuses with a short text (`no free phones`, `not
//! enough user balance`, `order not found`). Countries and products are 5sim names, mapped
//! onto our catalogue through its `fivesim_name` columns.

use std::collections::HashMap;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{Answer, Fault, Http, Names, RawBought, RawOffer};
use crate::domain::supply::providers;
use crate::domain::supply::routing::{Ended, Polled, UpstreamSms};
use crate::url::percent_encode;

pub struct Client {
    http: Http,
    /// Ends in `/v1`.
    base: String,
    auth: String,
}

#[derive(Deserialize)]
struct Order {
    id: Box<RawValue>,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    operator: String,
    price: Option<Box<RawValue>>,
    #[serde(default)]
    status: String,
    #[serde(default)]
    sms: Option<Vec<Sms>>,
}

#[derive(Deserialize)]
struct Sms {
    #[serde(default)]
    created_at: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    sender: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    code: String,
}

impl Client {
    /// `base` is the API root (`https://5sim.net/v1`); without `/v1` it is added.
    pub fn new(http: Http, base: &str, key: &str) -> Client {
        let base = base.trim().trim_end_matches('/');
        let base = if base.ends_with("/v1") {
            base.to_string()
        } else {
            format!("{base}/v1")
        };
        Client {
            http,
            base,
            auth: format!("Bearer {}", key.trim()),
        }
    }

    /// GET `path`: the body of a 2xx answer; 401/403 and 5xx fail, other statuses are the
    /// provider's refusal with its text.
    fn get(&self, path: &str, long: bool) -> Answer<String> {
        let url = format!("{}{path}", self.base);
        let headers = [
            ("Authorization", self.auth.as_str()),
            ("Accept", "application/json"),
        ];
        let (status, body) = self.http.get(&url, &headers, long)?;
        match status {
            200..=299 => Ok(body),
            401 | 403 => Err(Fault::Failed(format!(
                "HTTP {status}: the provider refused the token"
            ))),
            429 | 500.. => Err(Fault::Failed(format!(
                "HTTP {status}: {}",
                self.http.excerpt(&body)
            ))),
            _ => Err(refusal(&self.http.scrub(body.trim()))),
        }
    }

    fn garbage(&self, body: &str) -> Fault {
        Fault::Failed(format!("unexpected answer {}", self.http.excerpt(body)))
    }

    /// `/user/profile` → its `balance`.
    pub fn balance(&self) -> Answer<String> {
        let body = self.get("/user/profile", false)?;
        #[derive(Deserialize)]
        struct Profile {
            balance: Box<RawValue>,
        }
        let p: Profile = serde_json::from_str(&body).map_err(|_| self.garbage(&body))?;
        Ok(p.balance.get().trim_matches('"').to_string())
    }

    /// `/guest/prices`: country → product → operator → `{cost, count}`. Per pair, the
    /// cheapest operator with stock gives the cost, and the count is summed over operators.
    pub fn prices(&self, names: &Names) -> Answer<Vec<RawOffer>> {
        let body = self.get("/guest/prices", true)?;
        type Ops = HashMap<String, Box<RawValue>>;
        let parsed: HashMap<String, HashMap<String, Ops>> =
            serde_json::from_str(&body).map_err(|_| self.garbage(&body))?;
        #[derive(Deserialize)]
        struct Cell {
            cost: Box<RawValue>,
            count: Box<RawValue>,
        }
        let mut out = Vec::new();
        for (country, products) in parsed {
            let Some(&country_id) = names.countries_5sim.get(&country) else {
                continue;
            };
            for (product, ops) in products {
                let Some(service) = names.services_5sim.get(&product) else {
                    continue;
                };
                let mut total = 0i64;
                // (the cost in billionths, exact enough to compare without floats; its text)
                let mut best: Option<(i64, String)> = None;
                for cell in ops.values() {
                    let Ok(cell) = serde_json::from_str::<Cell>(cell.get()) else {
                        continue;
                    };
                    let count = cell
                        .count
                        .get()
                        .trim_matches('"')
                        .parse::<i64>()
                        .unwrap_or(0);
                    if count <= 0 {
                        continue;
                    }
                    total = total.saturating_add(count);
                    let text = cell.cost.get().trim_matches('"').to_string();
                    let Some(exact) = providers::cost_minor(&text, 1_000_000_000) else {
                        continue;
                    };
                    if best.as_ref().is_none_or(|(b, _)| exact < *b) {
                        best = Some((exact, text));
                    }
                }
                if let Some((_, cost)) = best {
                    out.push(RawOffer {
                        country: country_id,
                        service: service.clone(),
                        cost,
                        count: total,
                    });
                }
            }
        }
        Ok(out)
    }

    /// `/user/buy/activation/{country}/any/{product}` → the order.
    pub fn buy(&self, country: &str, product: &str) -> Answer<RawBought> {
        let path = format!(
            "/user/buy/activation/{}/any/{}",
            percent_encode(country),
            percent_encode(product)
        );
        let body = self.get(&path, false)?;
        // An old server behaviour: 200 with the refusal as the body.
        if body.trim() == "no free phones" {
            return Err(Fault::NoNumbers);
        }
        let o: Order = serde_json::from_str(&body).map_err(|_| self.garbage(&body))?;
        let id = o.id.get().trim_matches('"').to_string();
        let digits: String = o.phone.chars().filter(|c| c.is_ascii_digit()).collect();
        if id.is_empty() || digits.len() < 6 {
            return Err(self.garbage(&body));
        }
        Ok(RawBought {
            id,
            phone: digits,
            operator: o.operator.trim().to_ascii_lowercase(),
            cost: o.price.map(|p| p.get().trim_matches('"').to_string()),
        })
    }

    /// `/user/check/{id}` → its SMS and whether it ended.
    pub fn check(&self, id: &str) -> Answer<Polled> {
        let body = self.get(&format!("/user/check/{}", percent_encode(id)), false)?;
        let o: Order = serde_json::from_str(&body).map_err(|_| self.garbage(&body))?;
        let mut polled = Polled::default();
        for s in o.sms.unwrap_or_default() {
            let code = s.code.trim().to_string();
            if code.is_empty() && s.text.trim().is_empty() {
                continue;
            }
            let when = if s.created_at.is_empty() {
                s.date
            } else {
                s.created_at
            };
            polled.sms.push(UpstreamSms {
                key: format!("{when}/{code}"),
                sender: if s.sender.is_empty() {
                    "upstream".into()
                } else {
                    s.sender
                },
                text: if s.text.trim().is_empty() {
                    format!("Code: {code}")
                } else {
                    s.text
                },
                code: (!code.is_empty()).then_some(code),
            });
        }
        polled.ended = match o.status.as_str() {
            "CANCELED" | "TIMEOUT" | "BANNED" => Some(Ended::Canceled),
            "FINISHED" => Some(Ended::Finished),
            _ => None,
        };
        Ok(polled)
    }

    /// `/user/{finish|cancel|ban}/{id}`.
    pub fn order_action(&self, action: &str, id: &str) -> Answer<()> {
        self.get(&format!("/user/{action}/{}", percent_encode(id)), false)
            .map(|_| ())
    }
}

/// A 4xx text of 5sim as a fault.
fn refusal(text: &str) -> Fault {
    match text {
        "no free phones" => Fault::NoNumbers,
        "not enough user balance" => Fault::NoBalance,
        t => Fault::Refused(t.chars().take(100).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn base_urls_end_in_v1() {
        let h = || Http::new(Duration::from_secs(1), "T");
        assert_eq!(
            Client::new(h(), "https://5sim.net", "T").base,
            "https://5sim.net/v1"
        );
        assert_eq!(
            Client::new(h(), "https://5sim.net/v1/", "T").base,
            "https://5sim.net/v1"
        );
    }

    #[test]
    fn refusals_map_to_faults() {
        assert_eq!(refusal("no free phones"), Fault::NoNumbers);
        assert_eq!(refusal("not enough user balance"), Fault::NoBalance);
        assert_eq!(
            refusal("order not found"),
            Fault::Refused("order not found".into())
        );
    }
}
