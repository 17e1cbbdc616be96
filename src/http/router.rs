//! A small router: method + path pattern (`/api/v1/activations/{id}/cancel`) → the access
//! the route needs and its handler. Access is data: every route declares an [`Access`], the
//! handler's type says what the check hands it, and `super::route` runs the check (and the
//! CSRF check of browser forms) before any handler runs.

use super::auth::{Page, Visitor};
use super::protocols::ingest::Sender;
use super::request::{percent_decode, Method, Request};
use super::response::Response;
use super::Ctx;
use crate::domain::accounts::{Role, User};

/// Who may enter a route. Every route is registered with one; the router checks it before
/// the handler runs and hands the handler the checked caller, answering a refusal in the
/// caller's own protocol (see [`super::auth`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone; no session is looked up (assets, health, guest catalogues).
    Public,
    /// Anyone; the handler gets the [`Visitor`] (the page header of a signed-in visitor, the
    /// session of a form).
    Visitor,
    /// A signed-in account in good standing with at least this role; the handler gets a
    /// [`Page`]. Anonymous page views go to the login form, other anonymous requests get
    /// 401, a lower role 403.
    Page(Role),
    /// The native API with at least this role: an API key (`Authorization: Bearer`) or a
    /// signed-in session (unsafe methods also need `X-CSRF-Token`); the handler gets the
    /// [`User`]. Refusals are JSON 401/403.
    Api(Role),
    /// The 5sim protocol's `/v1/user/` calls: an API key as bearer token; the handler gets the
    /// [`User`]. Refusals are 5sim's plain-text 401/403.
    FiveSimKey,
    /// The SMS-Activate protocol: one path for every action. Its action table
    /// (`handler_api::ACTIONS`) says which actions need `api_key`, and the protocol's
    /// dispatcher checks the key with [`super::auth::action_key`] before running them.
    ActionKey,
    /// A gateway's delivery to `/ingest/{kind}/{device_id}`, signed with the device's secret;
    /// the handler gets the verified [`Sender`].
    Gateway,
    /// Test hooks, registered only when the movable dev clock is on.
    Dev,
}

/// The handler of an open route (public, SMS-Activate actions, dev hooks).
pub type OpenFn = fn(&mut Ctx<'_>, &Request) -> Response;
/// The handler of a public page that shows the visitor's header or session.
pub type VisitorFn = fn(&mut Ctx<'_>, &Request, &Visitor) -> Response;
/// The handler of a signed-in page.
pub type PageFn = fn(&mut Ctx<'_>, &Request, &Page) -> Response;
/// The handler of a keyed API call (native or 5sim).
pub type UserFn = fn(&mut Ctx<'_>, &Request, &User) -> Response;

/// A handler receives what its route's [`Access`] checked.
#[derive(Clone, Copy)]
pub enum Handler {
    /// [`Access::Public`], [`Access::ActionKey`] and [`Access::Dev`].
    Open(fn(&mut Ctx<'_>, &Request) -> Response),
    Visitor(fn(&mut Ctx<'_>, &Request, &Visitor) -> Response),
    Page(fn(&mut Ctx<'_>, &Request, &Page) -> Response),
    /// [`Access::Api`] and [`Access::FiveSimKey`].
    User(fn(&mut Ctx<'_>, &Request, &User) -> Response),
    Gateway(fn(&mut Ctx<'_>, &Request, &Sender) -> Response),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    Param(String),
    /// `{*name}`: the rest of the path (only last).
    Rest(String),
}

pub struct Route {
    pub method: Method,
    pub pattern: String,
    pub access: Access,
    segs: Vec<Seg>,
    pub handler: Handler,
}

impl Route {
    /// Unsafe methods of browser routes need the session's CSRF token (form field `csrf` or
    /// header `X-CSRF-Token`), checked by the router before the handler runs, so no form can
    /// forget it. The native API checks it for session callers in its own guard.
    pub fn needs_csrf(&self) -> bool {
        self.method.is_unsafe() && matches!(self.access, Access::Visitor | Access::Page(_))
    }
}

#[derive(Default)]
pub struct Router {
    routes: Vec<Route>,
}

pub enum Match<'r> {
    Route {
        route: &'r Route,
        params: Vec<(String, String)>,
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

    fn add(&mut self, method: Method, pattern: &str, access: Access, handler: Handler) {
        let consistent = matches!(
            (access, handler),
            (
                Access::Public | Access::ActionKey | Access::Dev,
                Handler::Open(_)
            ) | (Access::Visitor, Handler::Visitor(_))
                | (Access::Page(_), Handler::Page(_))
                | (Access::Api(_) | Access::FiveSimKey, Handler::User(_))
                | (Access::Gateway, Handler::Gateway(_))
        );
        assert!(
            consistent,
            "{pattern}: the handler does not take what {access:?} checks"
        );
        self.routes.push(Route {
            method,
            pattern: pattern.to_string(),
            access,
            segs: parse_pattern(pattern),
            handler,
        });
    }

    /// For anyone, without looking up a session.
    pub fn public(
        &mut self,
        method: Method,
        pattern: &str,
        h: fn(&mut Ctx<'_>, &Request) -> Response,
    ) {
        self.add(method, pattern, Access::Public, Handler::Open(h));
    }

    /// For anyone; the handler gets the visitor (session and account, if any).
    pub fn visitor(
        &mut self,
        method: Method,
        pattern: &str,
        h: fn(&mut Ctx<'_>, &Request, &Visitor) -> Response,
    ) {
        self.add(method, pattern, Access::Visitor, Handler::Visitor(h));
    }

    /// A page or form for signed-in accounts with at least `role`.
    pub fn page(
        &mut self,
        method: Method,
        pattern: &str,
        role: Role,
        h: fn(&mut Ctx<'_>, &Request, &Page) -> Response,
    ) {
        self.add(method, pattern, Access::Page(role), Handler::Page(h));
    }

    /// A native API call for accounts with at least `role`.
    pub fn api(
        &mut self,
        method: Method,
        pattern: &str,
        role: Role,
        h: fn(&mut Ctx<'_>, &Request, &User) -> Response,
    ) {
        self.add(method, pattern, Access::Api(role), Handler::User(h));
    }

    /// A 5sim call authenticated by its bearer key.
    pub fn fivesim(
        &mut self,
        method: Method,
        pattern: &str,
        h: fn(&mut Ctx<'_>, &Request, &User) -> Response,
    ) {
        self.add(method, pattern, Access::FiveSimKey, Handler::User(h));
    }

    /// The SMS-Activate protocol's one path; its action table declares each action's access.
    pub fn actions(
        &mut self,
        method: Method,
        pattern: &str,
        h: fn(&mut Ctx<'_>, &Request) -> Response,
    ) {
        self.add(method, pattern, Access::ActionKey, Handler::Open(h));
    }

    /// A gateway's signed delivery.
    pub fn gateway(
        &mut self,
        method: Method,
        pattern: &str,
        h: fn(&mut Ctx<'_>, &Request, &Sender) -> Response,
    ) {
        self.add(method, pattern, Access::Gateway, Handler::Gateway(h));
    }

    /// A table of routes for anyone, in order.
    pub fn publics(&mut self, routes: &[(Method, &str, OpenFn)]) {
        for &(method, pattern, h) in routes {
            self.public(method, pattern, h);
        }
    }

    /// A table of routes for anyone that get the visitor, in order.
    pub fn visitors(&mut self, routes: &[(Method, &str, VisitorFn)]) {
        for &(method, pattern, h) in routes {
            self.visitor(method, pattern, h);
        }
    }

    /// A table of pages and forms for signed-in accounts with at least `role`, in order.
    pub fn pages(&mut self, role: Role, routes: &[(Method, &str, PageFn)]) {
        for &(method, pattern, h) in routes {
            self.page(method, pattern, role, h);
        }
    }

    /// A table of native API calls for accounts with at least `role`, in order.
    pub fn apis(&mut self, role: Role, routes: &[(Method, &str, UserFn)]) {
        for &(method, pattern, h) in routes {
            self.api(method, pattern, role, h);
        }
    }

    /// A table of 5sim calls authenticated by the bearer key, in order.
    pub fn fivesims(&mut self, routes: &[(Method, &str, UserFn)]) {
        for &(method, pattern, h) in routes {
            self.fivesim(method, pattern, h);
        }
    }

    /// A test hook (only registered with the dev clock).
    pub fn dev(
        &mut self,
        method: Method,
        pattern: &str,
        h: fn(&mut Ctx<'_>, &Request) -> Response,
    ) {
        self.add(method, pattern, Access::Dev, Handler::Open(h));
    }

    /// Every registered route, in registration order.
    pub fn routes(&self) -> &[Route] {
        &self.routes
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
                return Match::Route { route, params };
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
    fn b(_: &mut Ctx<'_>, _: &Request, _: &Page) -> Response {
        Response::text(200, "b")
    }
    fn c(_: &mut Ctx<'_>, _: &Request, _: &User) -> Response {
        Response::text(200, "c")
    }
    fn v(_: &mut Ctx<'_>, _: &Request, _: &Visitor) -> Response {
        Response::text(200, "v")
    }

    fn found(m: Match<'_>) -> Option<(&Route, Vec<(String, String)>)> {
        match m {
            Match::Route { route, params } => Some((route, params)),
            _ => None,
        }
    }

    fn router() -> Router {
        let mut r = Router::new();
        r.public(Method::Get, "/", a);
        r.api(Method::Get, "/api/v1/activations/{id}", Role::User, c);
        r.api(
            Method::Post,
            "/api/v1/activations/{id}/cancel",
            Role::User,
            c,
        );
        r.visitor(Method::Post, "/login", v);
        r.visitor(Method::Get, "/login", v);
        r.page(Method::Post, "/admin/users/{id}/role", Role::Admin, b);
        r.public(Method::Get, "/assets/{*path}", a);
        r
    }

    #[test]
    fn literal_and_parameter_routes() {
        let r = router();
        let (route, params) = found(r.find(Method::Get, "/api/v1/activations/42")).unwrap();
        assert_eq!(route.access, Access::Api(Role::User));
        assert_eq!(params, vec![("id".to_string(), "42".to_string())]);
        assert!(found(r.find(Method::Get, "/")).is_some());
        assert!(found(r.find(Method::Head, "/")).is_some());
    }

    #[test]
    fn browser_posts_need_csrf_and_api_posts_do_not() {
        let r = router();
        assert!(found(r.find(Method::Post, "/login"))
            .unwrap()
            .0
            .needs_csrf());
        assert!(!found(r.find(Method::Get, "/login")).unwrap().0.needs_csrf());
        let (admin, _) = found(r.find(Method::Post, "/admin/users/1/role")).unwrap();
        assert!(admin.needs_csrf());
        assert_eq!(admin.access, Access::Page(Role::Admin));
        let (api, _) = found(r.find(Method::Post, "/api/v1/activations/1/cancel")).unwrap();
        assert!(!api.needs_csrf());
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
        let (_, params) = found(r.find(Method::Get, "/assets/css/app%20x.css")).unwrap();
        assert_eq!(params[0].1, "css/app x.css");
        assert!(matches!(r.find(Method::Get, "/assets"), Match::NotFound));
    }

    #[test]
    fn routes_are_listed_with_their_patterns_and_access() {
        let r = router();
        let list: Vec<_> = r
            .routes()
            .iter()
            .map(|r| (r.method, r.pattern.as_str(), r.access))
            .collect();
        assert_eq!(list.len(), 7);
        assert!(list.contains(&(
            Method::Post,
            "/api/v1/activations/{id}/cancel",
            Access::Api(Role::User)
        )));
        assert!(list.contains(&(Method::Get, "/assets/{*path}", Access::Public)));
    }

    #[test]
    #[should_panic(expected = "does not take what")]
    fn a_handler_must_take_what_its_access_checks() {
        let mut r = Router::new();
        r.add(
            Method::Get,
            "/x",
            Access::Page(Role::User),
            Handler::Open(a),
        );
    }
}
