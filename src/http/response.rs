//! Our own response type and its builders. Security headers are added by the server for
//! every response; handlers only say what is specific to them.

use std::sync::Arc;

use maud::Markup;
use serde::Serialize;

use super::server::longpoll::Wait;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Set by long-poll handlers: hold the answer until the state changes (see
    /// [`super::server::longpoll`]).
    pub wait: Option<Arc<Wait>>,
}

pub const JSON: &str = "application/json";
pub const TEXT: &str = "text/plain; charset=utf-8";
pub const HTML: &str = "text/html; charset=utf-8";

impl Response {
    pub fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
            wait: None,
        }
    }

    pub fn html(markup: Markup) -> Response {
        Response::new(200, HTML, markup.into_string())
    }

    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status, TEXT, body.into())
    }

    /// The Prometheus text exposition format (0.0.4).
    pub fn prometheus(body: String) -> Response {
        Response::new(200, "text/plain; version=0.0.4; charset=utf-8", body)
    }

    /// JSON with the exact header `application/json` (no parameters): some clients compare
    /// the whole header value.
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Response {
        match serde_json::to_vec(value) {
            Ok(body) => Response::new(status, JSON, body),
            Err(e) => {
                log::error!("serialising a reply failed: {e}");
                Response::text(500, "internal error")
            }
        }
    }

    pub fn json_error(status: u16, code: &str, message: &str) -> Response {
        Response::json(
            status,
            &serde_json::json!({"error": {"code": code, "message": message}}),
        )
    }

    /// 303 See Other: the answer to a successful form POST.
    pub fn redirect(location: &str) -> Response {
        Response::new(303, TEXT, format!("See {location}")).with_header("Location", location)
    }

    pub fn empty(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            wait: None,
        }
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Marks the response as a long-poll answer: sent when the state changes or the wait ends.
    pub fn with_wait(mut self, wait: Wait) -> Response {
        self.wait = Some(Arc::new(wait));
        self
    }

    pub fn with_status(mut self, status: u16) -> Response {
        self.status = status;
        self
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

/// Reason phrases for the statuses we send.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        303 => "See Other",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}
