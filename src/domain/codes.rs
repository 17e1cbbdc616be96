//! TEMPORARY until the extraction module lands.
pub fn extract(_service: &str, text: &str) -> Option<String> {
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| (4..=8).contains(&w.len()))
        .map(str::to_string)
}
