//! The values the customer protocols (SMS-Activate's `handler_api.php`, the 5sim API) read from
//! their parameters, parsed one strict way for both: a value that is present but not what the
//! parameter takes is refused (each protocol answers in its own words), never read as its
//! default. Pure text functions, so the fuzz target `protocol_params` reaches them all.

use crate::domain::base::money::Money;

/// A whole number: optional `-`, ASCII digits, within `i64` (no `+`, spaces, or decimals).
pub fn int(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// A yes/no flag as clients write it: `true`, `1`, `yes` or `false`, `0`, `no`, any case.
pub fn flag(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

/// A `maxPrice` in major units (`0.5`, `12`) → minor units, rounded down to whole minor units
/// (`0.1299` allows 12 cents): a ceiling is never raised by rounding. Not negative.
pub fn max_price(text: &str, digits: u32) -> Option<i64> {
    let t = text.trim();
    let (int, frac) = t.split_once('.').unwrap_or((t, ""));
    let frac: String = frac.chars().take(digits as usize).collect();
    let cut = if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    };
    Money::parse(&cut, digits, false).map(|m| m.0)
}

/// `phoneException=7918,7900111`: prefixes (country code included, `+` allowed) the number
/// must avoid; each 1 to 15 digits. `None` when one is not.
pub fn prefixes(list: &str) -> Option<Vec<String>> {
    list.split(',')
        .map(|p| p.trim().trim_start_matches('+'))
        .filter(|p| !p.is_empty())
        .map(|p| (p.len() <= 15 && p.chars().all(|c| c.is_ascii_digit())).then(|| p.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_are_strict() {
        assert_eq!(int("12"), Some(12));
        assert_eq!(int("-3"), Some(-3));
        for bad in [
            "",
            "-",
            "+1",
            " 1",
            "1.0",
            "1e3",
            "abc",
            "99999999999999999999",
        ] {
            assert_eq!(int(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn flags_are_yes_or_no() {
        assert_eq!(flag("TRUE"), Some(true));
        assert_eq!(flag("0"), Some(false));
        assert_eq!(flag("maybe"), None);
    }

    #[test]
    fn max_price_rounds_down_and_prefixes_are_digits() {
        assert_eq!(max_price("0.5", 2), Some(50));
        assert_eq!(max_price("0.1299", 2), Some(12));
        assert_eq!(max_price("3", 2), Some(300));
        assert_eq!(max_price("abc", 2), None);
        assert_eq!(max_price("-1", 2), None);
        assert_eq!(
            prefixes("7918, +7900111,").unwrap(),
            vec!["7918".to_string(), "7900111".to_string()]
        );
        assert_eq!(prefixes("79a"), None);
        assert_eq!(prefixes(&"1".repeat(16)), None);
    }
}
