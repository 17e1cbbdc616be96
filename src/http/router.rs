//! A small router: method + path pattern (`/api/v1/activations/{id}/cancel`) → handler.
//! Routes registered with [`Router::form`] are web forms: their unsafe methods require the
//! session's CSRF token, checked here before the handler runs, so no form can forget it.

use super::request::{percent_decode, Method, Request};
use super::response::Response;
use super::Ctx;

pub type Handler = fn(&mut Ctx<'_>, &Request) -> Response;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    Param(String),
    /// `{*name}`: the rest of the path (only last).
    Rest(String),
}

struct Route {
    method: Method,
    pattern: String,
    segs: Vec<Seg>,
    handler: Handler,
    csrf: bool,
}

#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
}

pub enum Match<'r> {
    Route {
        handler: Handler,
        csrf: bool,
        params: Vec<(String, String)>,
        _marker: std::marker::PhantomData<&'r ()>,
    },
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

fn parse_pattern(pattern: &str) -> Vec<Seg> {
    pattern
        .trim_start_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            if let Some(name) = s.strip_prefix("{*").and_then(|s| s.strip_suffix('}')) {
                Seg::Rest(name.to_string())
            } else if let Some(name) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Seg::Param(name.to_string())
            } else {
                Seg::Lit(s.to_string())
            }
        })
        .collect()
}

impl Router {
    pub fn new() -> Router {
        Router::default()
    }

    fn add(&mut self, method: Method, pattern: &str, handler: Handler, csrf: bool) {
        self.routes.push(Route {
            method,
            pattern: pattern.to_string(),
            segs: parse_pattern(pattern),
            handler,
            csrf,
        });
    }

    /// A read-only route (also answers HEAD).
    pub fn get(&mut self, pattern: &str, handler: Handler) {
        self.add(Method::Get, pattern, handler, false);
    }

    /// An API route: authenticated by key or session in the handler, no CSRF token.
    pub fn post(&mut self, pattern: &str, handler: Handler) {
        self.add(Method::Post, pattern, handler, false);
    }

    pub fn put(&mut self, pattern: &str, handler: Handler) {
        self.add(Method::Put, pattern, handler, false);
    }

    pub fn delete(&mut self, pattern: &str, handler: Handler) {
        self.add(Method::Delete, pattern, handler, false);
    }

    /// A web form POST: refused with 403 unless it carries the session's CSRF token.
    pub fn form(&mut self, pattern: &str, handler: Handler) {
        self.add(Method::Post, pattern, handler, true);
    }

    /// Every registered route as (method, pattern), in registration order.
    pub fn routes(&self) -> Vec<(Method, &str)> {
        self.routes
            .iter()
            .map(|r| (r.method, r.pattern.as_str()))
            .collect()
    }

    pub fn find(&self, method: Method, path: &str) -> Match<'_> {
        let parts: Vec<&str> = path
            .trim_start_matches('/')
            .split('/')
            .filter(|s| !s.is_empty())
            .collect();
        let mut allowed = Vec::new();
        for route in &self.routes {
            let Some(params) = match_segs(&route.segs, &parts) else {
                continue;
            };
            let method_ok =
                route.method == method || (method == Method::Head && route.method == Method::Get);
            if method_ok {
                return Match::Route {
                    handler: route.handler,
                    csrf: route.csrf,
                    params,
                    _marker: std::marker::PhantomData,
                };
            }
            allowed.push(route.method);
        }
        if allowed.is_empty() {
            Match::NotFound
        } else {
            Match::MethodNotAllowed(allowed)
        }
    }
}

fn match_segs(segs: &[Seg], parts: &[&str]) -> Option<Vec<(String, String)>> {
    let mut params = Vec::new();
    for (i, seg) in segs.iter().enumerate() {
        match seg {
            Seg::Rest(name) => {
                if i >= parts.len() {
                    return None;
                }
                let rest: Vec<String> = parts[i..]
                    .iter()
                    .map(|p| percent_decode(p, false))
                    .collect();
                params.push((name.clone(), rest.join("/")));
                return Some(params);
            }
            Seg::Lit(lit) => {
                if parts.get(i) != Some(&lit.as_str()) {
                    return None;
                }
            }
            Seg::Param(name) => {
                let part = parts.get(i)?;
                params.push((name.clone(), percent_decode(part, false)));
            }
        }
    }
    (segs.len() == parts.len()).then_some(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(_: &mut Ctx<'_>, _: &Request) -> Response {
        Response::text(200, "a")
    }
    fn b(_: &mut Ctx<'_>, _: &Request) -> Response {
        Response::text(200, "b")
    }

    type Found = (Handler, bool, Vec<(String, String)>);

    fn handler_of(f: Match<'_>) -> Option<Found> {
        match f {
            Match::Route {
                handler,
                csrf,
                params,
                ..
            } => Some((handler, csrf, params)),
            _ => None,
        }
    }

    fn router() -> Router {
        let mut r = Router::new();
        r.get("/", a);
        r.get("/api/v1/activations/{id}", a);
        r.post("/api/v1/activations/{id}/cancel", b);
        r.form("/login", b);
        r.get("/login", a);
        r.get("/assets/{*path}", b);
        r
    }

    #[test]
    fn literal_and_parameter_routes() {
        let r = router();
        let (_, csrf, params) = handler_of(r.find(Method::Get, "/api/v1/activations/42")).unwrap();
        assert!(!csrf);
        assert_eq!(params, vec![("id".to_string(), "42".to_string())]);
        assert!(handler_of(r.find(Method::Get, "/")).is_some());
        assert!(handler_of(r.find(Method::Head, "/")).is_some());
    }

    #[test]
    fn forms_are_marked_for_csrf() {
        let r = router();
        let (_, csrf, _) = handler_of(r.find(Method::Post, "/login")).unwrap();
        assert!(csrf);
    }

    #[test]
    fn wrong_method_and_unknown_path() {
        let r = router();
        assert!(matches!(
            r.find(Method::Delete, "/login"),
            Match::MethodNotAllowed(_)
        ));
        assert!(matches!(r.find(Method::Get, "/nope"), Match::NotFound));
        assert!(matches!(
            r.find(Method::Get, "/api/v1/activations/1/cancel/x"),
            Match::NotFound
        ));
    }

    #[test]
    fn rest_parameters_take_the_tail() {
        let r = router();
        let (_, _, params) = handler_of(r.find(Method::Get, "/assets/css/app%20x.css")).unwrap();
        assert_eq!(params[0].1, "css/app x.css");
        assert!(matches!(r.find(Method::Get, "/assets"), Match::NotFound));
    }

    #[test]
    fn routes_are_listed_with_their_patterns() {
        let r = router();
        let list = r.routes();
        assert_eq!(list.len(), 6);
        assert!(list.contains(&(Method::Post, "/api/v1/activations/{id}/cancel")));
        assert!(list.contains(&(Method::Get, "/assets/{*path}")));
    }
}
