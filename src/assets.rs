//! The static files of `assets/` (CSS, JavaScript, icons), compiled into the binary by
//! rust-embed (read from disk in debug builds). The pages link them through [`url`];
//! `http::assets` serves them.

use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// The file at `path` under `assets/`, if there is one.
pub fn get(path: &str) -> Option<rust_embed::EmbeddedFile> {
    Assets::get(path)
}

/// URL of an asset with a content-hash query so browsers refetch it after an upgrade.
pub fn url(path: &str) -> String {
    match Assets::get(path) {
        Some(f) => format!(
            "/assets/{path}?v={}",
            crate::domain::base::crypto::hex(&f.metadata.sha256_hash()[..4])
        ),
        None => format!("/assets/{path}"),
    }
}
