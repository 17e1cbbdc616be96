//! Money: an integer number of minor units of the install's one currency.

use std::fmt;

/// Minor units (cents). Never a float; formatting and parsing happen only at the edges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Money(pub i64);

/// Supported currencies: code, ISO 4217 numeric, minor-unit digits.
const CURRENCIES: &[(&str, u16, u32)] = &[
    ("USD", 840, 2),
    ("EUR", 978, 2),
    ("GBP", 826, 2),
    ("RUB", 643, 2),
    ("CNY", 156, 2),
    ("INR", 356, 2),
    ("IDR", 360, 2),
    ("BRL", 986, 2),
    ("TRY", 949, 2),
    ("UAH", 980, 2),
    ("KZT", 398, 2),
    ("CHF", 756, 2),
    ("JPY", 392, 0),
];

pub fn currency_numeric(code: &str) -> Option<u16> {
    CURRENCIES.iter().find(|c| c.0 == code).map(|c| c.1)
}

pub fn currency_digits(code: &str) -> u32 {
    CURRENCIES
        .iter()
        .find(|c| c.0 == code)
        .map(|c| c.2)
        .unwrap_or(2)
}

impl Money {
    /// Decimal text with exactly `digits` fraction digits and always a point when digits > 0
    /// (`ACCESS_BALANCE:100.50`; clients regex for `\d+\.\d+`).
    pub fn decimal(self, digits: u32) -> String {
        if digits == 0 {
            return self.0.to_string();
        }
        let scale = 10i64.pow(digits);
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        format!(
            "{sign}{}.{:0width$}",
            abs / scale as u64,
            abs % scale as u64,
            width = digits as usize
        )
    }

    /// Parses `12`, `12.5`, `12.50` (also with a comma) into minor units; rejects more
    /// fraction digits than the currency has, signs when `allow_negative` is false, and junk.
    pub fn parse(text: &str, digits: u32, allow_negative: bool) -> Option<Money> {
        let t = text.trim().replace(',', ".");
        let (neg, t) = match t.strip_prefix('-') {
            Some(rest) if allow_negative => (true, rest.to_string()),
            Some(_) => return None,
            None => (false, t.trim_start_matches('+').to_string()),
        };
        let (int, frac) = t.split_once('.').unwrap_or((&t, ""));
        if int.is_empty() && frac.is_empty()
            || !int.chars().all(|c| c.is_ascii_digit())
            || !frac.chars().all(|c| c.is_ascii_digit())
            || frac.len() > digits as usize
        {
            return None;
        }
        // In i128, so that the most negative amount (whose magnitude is no i64) reads back.
        let scale = 10i128.checked_pow(digits)?;
        let int: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let frac_val: i128 = if frac.is_empty() {
            0
        } else {
            frac.parse::<i128>().ok()? * 10i128.pow(digits - frac.len() as u32)
        };
        let v = int.checked_mul(scale)?.checked_add(frac_val)?;
        i64::try_from(if neg { -v } else { v }).ok().map(Money)
    }

    /// The value as a JSON number in major units, for protocols that demand a number
    /// (`activationCost: 12.5`). Exact for every amount below 2^53 minor units.
    pub fn as_major_f64(self, digits: u32) -> f64 {
        self.0 as f64 / 10f64.powi(digits as i32)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.decimal(2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_always_has_a_point() {
        assert_eq!(Money(10050).decimal(2), "100.50");
        assert_eq!(Money(10000).decimal(2), "100.00");
        assert_eq!(Money(5).decimal(2), "0.05");
        assert_eq!(Money(-125).decimal(2), "-1.25");
        assert_eq!(Money(7).decimal(0), "7");
    }

    #[test]
    fn parse_accepts_usual_forms_and_rejects_junk() {
        assert_eq!(Money::parse("12.50", 2, false), Some(Money(1250)));
        assert_eq!(Money::parse("12.5", 2, false), Some(Money(1250)));
        assert_eq!(Money::parse("12", 2, false), Some(Money(1200)));
        assert_eq!(Money::parse("0,25", 2, false), Some(Money(25)));
        assert_eq!(Money::parse(".5", 2, false), Some(Money(50)));
        assert_eq!(Money::parse("1.234", 2, false), None);
        assert_eq!(Money::parse("-1", 2, false), None);
        assert_eq!(Money::parse("-1", 2, true), Some(Money(-100)));
        assert_eq!(Money::parse("abc", 2, false), None);
        assert_eq!(Money::parse("", 2, false), None);
        assert_eq!(Money::parse("1e5", 2, false), None);
        assert_eq!(Money::parse("99999999999999999999", 2, false), None);
    }

    #[test]
    fn currencies_have_numeric_codes() {
        assert_eq!(currency_numeric("USD"), Some(840));
        assert_eq!(currency_numeric("RUB"), Some(643));
        assert_eq!(currency_numeric("XXX"), None);
    }
}
