//! Serves the static files of [`crate::assets`]. ETag from the content hash; revalidation
//! answers 304.

use super::router::Router;
use super::{Ctx, Method, Request, Response};

pub fn routes(r: &mut Router) {
    use Method::Get;
    r.publics(&[
        (Get, "/assets/{*path}", serve),
        (Get, "/favicon.ico", favicon),
    ]);
}

fn favicon(ctx: &mut Ctx<'_>, req: &Request) -> Response {
    let mut req = req.clone();
    req.params = vec![("path".into(), "favicon.svg".into())];
    serve(ctx, &req)
}

fn serve(_: &mut Ctx<'_>, req: &Request) -> Response {
    let path = req.param("path").unwrap_or("");
    let Some(file) = crate::assets::get(path) else {
        return super::error_page(req, 404, "No such file.");
    };
    let etag = format!(
        "\"{}\"",
        crate::domain::base::crypto::hex(&file.metadata.sha256_hash()[..12])
    );
    if req.header("if-none-match") == Some(etag.as_str()) {
        return Response::empty(304)
            .with_header("ETag", &etag)
            .with_header("Cache-Control", "public, max-age=3600");
    }
    let mime = file.metadata.mimetype();
    let content_type = if mime.starts_with("text/") || mime.contains("javascript") {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    };
    Response::new(200, &content_type, file.data.into_owned())
        .with_header("ETag", &etag)
        .with_header("Cache-Control", "public, max-age=3600")
}
