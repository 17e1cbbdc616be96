//! Seed catalogue: countries (SMS-Activate numeric ids), services (SMS-Activate short codes) with their
//! 5sim names, operators per country, and default prices, so a fresh install can sell at once.
//! Names and ids follow protocols.md §1.7–1.8; the admin can edit everything after seeding.
//!
//! Plain data, no I/O: the first-run code inserts these rows, and the price functions fill the
//! price list. Every price is integer minor units (US cents); no floats anywhere.

/// One country in SMS-Activate numbering (protocols.md §1.8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedCountry {
    /// SMS-Activate numeric id (`country=` in `handler_api`).
    pub id: i64,
    /// ISO 3166-1 alpha-2, lowercase.
    pub iso: &'static str,
    /// Dialing digits, no '+'.
    pub prefix: &'static str,
    /// English name.
    pub name: &'static str,
    /// 5sim country name (path segment of `/user/buy/activation/{country}/…`).
    pub fivesim: &'static str,
}

/// One service in SMS-Activate short-code numbering (protocols.md §1.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedService {
    /// SMS-Activate short code (`service=` in `handler_api`), 2–4 lowercase letters.
    pub code: &'static str,
    pub name: &'static str,
    /// 5sim product name (path segment of `/user/buy/activation/…/{product}`).
    pub fivesim: &'static str,
    /// Activation lifetime; `None` = the install default (20 minutes).
    pub lifetime_mins: Option<u32>,
}

/// One mobile operator of a country, as listed by getOperators and 5sim.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeedOperator {
    /// [`SeedCountry::id`].
    pub country: i64,
    /// Lowercase slug (`operator=` in `handler_api`, `{operator}` on 5sim).
    pub code: &'static str,
    pub name: &'static str,
}

const fn country(
    id: i64,
    iso: &'static str,
    prefix: &'static str,
    name: &'static str,
    fivesim: &'static str,
) -> SeedCountry {
    SeedCountry {
        id,
        iso,
        prefix,
        name,
        fivesim,
    }
}

const fn service(code: &'static str, name: &'static str, fivesim: &'static str) -> SeedService {
    SeedService {
        code,
        name,
        fivesim,
        lifetime_mins: None,
    }
}

const fn service_long(
    code: &'static str,
    name: &'static str,
    fivesim: &'static str,
    lifetime_mins: u32,
) -> SeedService {
    SeedService {
        code,
        name,
        fivesim,
        lifetime_mins: Some(lifetime_mins),
    }
}

const fn op(country: i64, code: &'static str, name: &'static str) -> SeedOperator {
    SeedOperator {
        country,
        code,
        name,
    }
}

/// Every country id of protocols.md §1.8, in id order.
pub const COUNTRIES: &[SeedCountry] = &[
    country(0, "ru", "7", "Russia", "russia"),
    country(1, "ua", "380", "Ukraine", "ukraine"),
    country(2, "kz", "7", "Kazakhstan", "kazakhstan"),
    country(3, "cn", "86", "China", "china"),
    country(4, "ph", "63", "Philippines", "philippines"),
    country(5, "mm", "95", "Myanmar", "myanmar"),
    country(6, "id", "62", "Indonesia", "indonesia"),
    country(7, "my", "60", "Malaysia", "malaysia"),
    country(8, "ke", "254", "Kenya", "kenya"),
    country(10, "vn", "84", "Vietnam", "vietnam"),
    country(11, "kg", "996", "Kyrgyzstan", "kyrgyzstan"),
    // 5sim has no separate "virtual USA" country; this name only keeps the 5sim names unique.
    country(12, "us", "1", "USA (virtual)", "usavirtual"),
    country(13, "il", "972", "Israel", "israel"),
    country(14, "hk", "852", "Hong Kong", "hongkong"),
    country(15, "pl", "48", "Poland", "poland"),
    country(16, "gb", "44", "United Kingdom", "england"),
    country(19, "ng", "234", "Nigeria", "nigeria"),
    country(20, "mo", "853", "Macao", "macau"),
    country(21, "eg", "20", "Egypt", "egypt"),
    country(22, "in", "91", "India", "india"),
    country(31, "za", "27", "South Africa", "southafrica"),
    country(32, "ro", "40", "Romania", "romania"),
    country(33, "co", "57", "Colombia", "colombia"),
    country(36, "ca", "1", "Canada", "canada"),
    country(39, "ar", "54", "Argentina", "argentina"),
    country(43, "de", "49", "Germany", "germany"),
    country(48, "nl", "31", "Netherlands", "netherlands"),
    country(52, "th", "66", "Thailand", "thailand"),
    country(54, "mx", "52", "Mexico", "mexico"),
    country(55, "tw", "886", "Taiwan", "taiwan"),
    country(56, "es", "34", "Spain", "spain"),
    country(60, "bd", "880", "Bangladesh", "bangladesh"),
    country(62, "tr", "90", "Turkey", "turkey"),
    country(63, "cz", "420", "Czech Republic", "czech"),
    country(66, "pk", "92", "Pakistan", "pakistan"),
    country(73, "br", "55", "Brazil", "brazil"),
    country(78, "fr", "33", "France", "france"),
    country(86, "it", "39", "Italy", "italy"),
    country(117, "pt", "351", "Portugal", "portugal"),
    country(128, "ge", "995", "Georgia", "georgia"),
    country(151, "cl", "56", "Chile", "chile"),
    country(175, "au", "61", "Australia", "australia"),
    country(187, "us", "1", "USA", "usa"),
];

/// Every service code of protocols.md §1.7 except `full` (whole-number rental, not an SMS
/// service), in the table's order.
pub const SERVICES: &[SeedService] = &[
    service("tg", "Telegram", "telegram"),
    service("wa", "WhatsApp", "whatsapp"),
    service("vi", "Viber", "viber"),
    service("wb", "WeChat", "wechat"),
    service("go", "Google / YouTube / Gmail", "google"),
    service("fb", "Facebook", "facebook"),
    service_long("ig", "Instagram", "instagram", 40),
    service("tw", "Twitter / X", "twitter"),
    service("ds", "Discord", "discord"),
    service("lf", "TikTok / Douyin", "tiktok"),
    service("fu", "Snapchat", "snapchat"),
    service("me", "Line messenger", "line"),
    service("kt", "KakaoTalk", "kakaotalk"),
    service("nv", "Naver", "naver"),
    service("qq", "Tencent QQ", "tencentqq"),
    service("mj", "Zalo", "zalo"),
    service("mm", "Microsoft", "microsoft"),
    service("mb", "Yahoo", "yahoo"),
    service("tn", "LinkedIn", "linkedin"),
    service("oi", "Tinder", "tinder"),
    service("nf", "Netflix", "netflix"),
    service("am", "Amazon", "amazon"),
    service("dh", "eBay", "ebay"),
    service("ka", "Shopee", "shopee"),
    service("ab", "Alibaba", "alibaba"),
    service("hw", "Alipay / Alibaba", "alipay"),
    service("ts", "PayPal", "paypal"),
    service("re", "Coinbase", "coinbase"),
    service("mt", "Steam", "steam"),
    service("bl", "BIGO LIVE", "bigolive"),
    service("ub", "Uber", "uber"),
    service("jg", "Grab", "grabtaxi"),
    service("tx", "Bolt", "bolt"),
    service("xk", "DiDi", "didi"),
    service("rr", "Wolt", "wolt"),
    service("gp", "Ticketmaster", "ticketmaster"),
    service("cq", "Mercado", "mercado"),
    service("pr", "Trendyol", "trendyol"),
    service("vk", "vk.com (VKontakte)", "vkontakte"),
    service("ok", "ok.ru", "odnoklassniki"),
    service_long("ya", "Yandex", "yandex", 40),
    service("ma", "Mail.ru", "mailru"),
    service("av", "Avito", "avito"),
    service("sn", "OLX", "olx"),
    service("ot", "Any other", "other"),
    service("dr", "OpenAI / ChatGPT", "openai"),
    service("acz", "Claude", "claude"),
    service_long("wx", "Apple", "apple", 40),
];

/// The main operators of the larger markets. Countries not listed sell with operator "any".
pub const OPERATORS: &[SeedOperator] = &[
    // Russia
    op(0, "beeline", "Beeline"),
    op(0, "megafon", "MegaFon"),
    op(0, "mts", "MTS"),
    op(0, "tele2", "Tele2"),
    op(0, "yota", "Yota"),
    // Ukraine
    op(1, "kyivstar", "Kyivstar"),
    op(1, "lifecell", "lifecell"),
    op(1, "vodafone", "Vodafone"),
    // Kazakhstan
    op(2, "activ", "Activ"),
    op(2, "altel", "Altel"),
    op(2, "beeline", "Beeline"),
    op(2, "kcell", "Kcell"),
    op(2, "tele2", "Tele2"),
    // China
    op(3, "chinamobile", "China Mobile"),
    op(3, "chinaunicom", "China Unicom"),
    op(3, "chinatelecom", "China Telecom"),
    // Philippines
    op(4, "globe", "Globe"),
    op(4, "smart", "Smart"),
    op(4, "sun", "Sun Cellular"),
    op(4, "tnt", "TNT"),
    // Myanmar
    op(5, "mpt", "MPT"),
    op(5, "mytel", "Mytel"),
    op(5, "ooredoo", "Ooredoo"),
    op(5, "telenor", "Telenor"),
    // Indonesia
    op(6, "axis", "AXIS"),
    op(6, "indosat", "Indosat"),
    op(6, "smartfren", "Smartfren"),
    op(6, "telkomsel", "Telkomsel"),
    op(6, "three", "Three"),
    op(6, "xl", "XL"),
    // Malaysia
    op(7, "celcom", "Celcom"),
    op(7, "digi", "Digi"),
    op(7, "maxis", "Maxis"),
    op(7, "umobile", "U Mobile"),
    // Kenya
    op(8, "airtel", "Airtel"),
    op(8, "safaricom", "Safaricom"),
    op(8, "telkom", "Telkom"),
    // Vietnam
    op(10, "mobifone", "MobiFone"),
    op(10, "vietnamobile", "Vietnamobile"),
    op(10, "viettel", "Viettel"),
    op(10, "vinaphone", "VinaPhone"),
    // Kyrgyzstan
    op(11, "beeline", "Beeline"),
    op(11, "megacom", "MegaCom"),
    op(11, "o", "O!"),
    // Israel
    op(13, "cellcom", "Cellcom"),
    op(13, "hotmobile", "Hot Mobile"),
    op(13, "partner", "Partner"),
    op(13, "pelephone", "Pelephone"),
    // Hong Kong
    op(14, "csl", "csl"),
    op(14, "cmhk", "China Mobile Hong Kong"),
    op(14, "smartone", "SmarTone"),
    op(14, "three", "3"),
    // Poland
    op(15, "orange", "Orange"),
    op(15, "play", "Play"),
    op(15, "plus", "Plus"),
    op(15, "tmobile", "T-Mobile"),
    // United Kingdom
    op(16, "ee", "EE"),
    op(16, "o2", "O2"),
    op(16, "three", "Three"),
    op(16, "vodafone", "Vodafone"),
    // Nigeria
    op(19, "airtel", "Airtel"),
    op(19, "glo", "Glo"),
    op(19, "mtn", "MTN"),
    op(19, "9mobile", "9mobile"),
    // Egypt
    op(21, "etisalat", "Etisalat"),
    op(21, "orange", "Orange"),
    op(21, "vodafone", "Vodafone"),
    op(21, "we", "WE"),
    // India
    op(22, "airtel", "Airtel"),
    op(22, "bsnl", "BSNL"),
    op(22, "jio", "Jio"),
    op(22, "vodafone", "Vi (Vodafone Idea)"),
    // South Africa
    op(31, "cellc", "Cell C"),
    op(31, "mtn", "MTN"),
    op(31, "telkom", "Telkom"),
    op(31, "vodacom", "Vodacom"),
    // Romania
    op(32, "digi", "Digi"),
    op(32, "orange", "Orange"),
    op(32, "telekom", "Telekom"),
    op(32, "vodafone", "Vodafone"),
    // Colombia
    op(33, "claro", "Claro"),
    op(33, "movistar", "Movistar"),
    op(33, "tigo", "Tigo"),
    // Canada
    op(36, "bell", "Bell"),
    op(36, "rogers", "Rogers"),
    op(36, "telus", "Telus"),
    // Argentina
    op(39, "claro", "Claro"),
    op(39, "movistar", "Movistar"),
    op(39, "personal", "Personal"),
    // Germany
    op(43, "o2", "O2"),
    op(43, "telekom", "Telekom"),
    op(43, "vodafone", "Vodafone"),
    // Netherlands
    op(48, "kpn", "KPN"),
    op(48, "odido", "Odido"),
    op(48, "vodafone", "Vodafone"),
    // Thailand
    op(52, "ais", "AIS"),
    op(52, "dtac", "dtac"),
    op(52, "truemove", "TrueMove H"),
    // Mexico
    op(54, "att", "AT&T"),
    op(54, "movistar", "Movistar"),
    op(54, "telcel", "Telcel"),
    // Taiwan
    op(55, "chunghwa", "Chunghwa Telecom"),
    op(55, "fareastone", "Far EasTone"),
    op(55, "taiwanmobile", "Taiwan Mobile"),
    // Spain
    op(56, "movistar", "Movistar"),
    op(56, "orange", "Orange"),
    op(56, "vodafone", "Vodafone"),
    op(56, "yoigo", "Yoigo"),
    // Bangladesh
    op(60, "banglalink", "Banglalink"),
    op(60, "grameenphone", "Grameenphone"),
    op(60, "robi", "Robi"),
    op(60, "teletalk", "Teletalk"),
    // Turkey
    op(62, "turkcell", "Turkcell"),
    op(62, "turktelekom", "Türk Telekom"),
    op(62, "vodafone", "Vodafone"),
    // Czech Republic
    op(63, "o2", "O2"),
    op(63, "tmobile", "T-Mobile"),
    op(63, "vodafone", "Vodafone"),
    // Pakistan
    op(66, "jazz", "Jazz"),
    op(66, "telenor", "Telenor"),
    op(66, "ufone", "Ufone"),
    op(66, "zong", "Zong"),
    // Brazil
    op(73, "claro", "Claro"),
    op(73, "oi", "Oi"),
    op(73, "tim", "TIM"),
    op(73, "vivo", "Vivo"),
    // France
    op(78, "bouygues", "Bouygues Telecom"),
    op(78, "free", "Free Mobile"),
    op(78, "orange", "Orange"),
    op(78, "sfr", "SFR"),
    // Italy
    op(86, "iliad", "Iliad"),
    op(86, "tim", "TIM"),
    op(86, "vodafone", "Vodafone"),
    op(86, "windtre", "WindTre"),
    // Portugal
    op(117, "meo", "MEO"),
    op(117, "nos", "NOS"),
    op(117, "vodafone", "Vodafone"),
    // Georgia
    op(128, "beeline", "Beeline"),
    op(128, "magti", "Magti"),
    op(128, "silknet", "Silknet"),
    // Chile
    op(151, "claro", "Claro"),
    op(151, "entel", "Entel"),
    op(151, "movistar", "Movistar"),
    op(151, "wom", "WOM"),
    // Australia
    op(175, "lebara", "Lebara"),
    op(175, "optus", "Optus"),
    op(175, "telstra", "Telstra"),
    op(175, "vodafone", "Vodafone"),
    // USA
    op(187, "att", "AT&T"),
    op(187, "tmobile", "T-Mobile"),
    op(187, "verizon", "Verizon"),
];

/// Smallest default activation price, in minor units.
const MIN_PRICE_MINOR: i64 = 5;
/// Smallest default hourly rental price, in minor units.
const MIN_RENT_HOUR_MINOR: i64 = 3;

/// Base price of a service not in [`SERVICES`] (added later by the admin): the cheap tier.
const UNKNOWN_SERVICE_BASE_MINOR: i64 = 20;

/// Base activation price of a seeded service in minor units, before the country factor.
/// Premium (messengers, big platforms, payments, AI): 80–150; mid: 30–60; the rest: 10–25.
fn service_base_minor(service: &str) -> Option<i64> {
    let base = match service {
        "wa" => 150,
        "ts" => 140,
        "dr" => 130,
        "tg" | "re" | "acz" => 120,
        "go" | "wx" => 100,
        "ig" | "fb" => 90,
        "tw" => 80,
        "wb" => 60,
        "ds" | "lf" | "mm" | "am" | "kt" | "nv" => 50,
        "oi" => 45,
        "vi" | "fu" | "me" | "qq" | "tn" | "nf" | "ub" | "mt" => 40,
        "ya" | "vk" | "dh" => 35,
        "mb" | "mj" | "ab" | "hw" | "ka" => 30,
        "ok" | "gp" => 25,
        "ma" | "av" | "tx" | "jg" | "cq" => 20,
        "xk" | "rr" | "pr" | "bl" | "sn" => 15,
        "ot" => 10,
        _ => return None,
    };
    Some(base)
}

/// Country price factor in percent. High-income markets cost 1.5–3×, the CIS and
/// central/eastern Europe 1.0–1.5×, low-cost markets 0.5–0.7×, everything else 1×.
fn country_factor_pct(country: i64) -> i64 {
    match country {
        187 => 300,                          // USA
        16 | 43 | 78 | 48 | 175 | 36 => 250, // UK, Germany, France, Netherlands, Australia, Canada
        12 | 13 | 86 | 56 => 200,            // USA (virtual), Israel, Italy, Spain
        117 => 180,                          // Portugal
        15 | 63 | 14 | 20 | 55 => 150,       // Poland, Czechia, Hong Kong, Macao, Taiwan
        32 => 130,                           // Romania
        62 => 120,                           // Turkey
        2 => 110,                            // Kazakhstan
        0 | 1 | 128 => 100,                  // Russia, Ukraine, Georgia
        19 | 8 => 70,                        // Nigeria, Kenya
        22 | 4 | 21 | 11 => 60,              // India, Philippines, Egypt, Kyrgyzstan
        6 | 10 | 60 | 66 | 5 => 50,          // Indonesia, Vietnam, Bangladesh, Pakistan, Myanmar
        _ => 100,
    }
}

/// Default price in minor units (cents of USD) for a (country, service) pair.
pub fn default_price_minor(country: i64, service: &str) -> i64 {
    let base = service_base_minor(service).unwrap_or(UNKNOWN_SERVICE_BASE_MINOR);
    let scaled = base * country_factor_pct(country);
    // Round half up to whole cents; both factors are positive.
    let price = (scaled + 50) / 100;
    price.max(MIN_PRICE_MINOR)
}

/// Default hourly rental price (minor units) for a (country, service) pair.
pub fn default_rent_hour_minor(country: i64, service: &str) -> i64 {
    let price = default_price_minor(country, service);
    // Ceiling of price / 4; price is positive.
    let quarter = (price + 3) / 4;
    quarter.max(MIN_RENT_HOUR_MINOR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn country_by_id(id: i64) -> &'static SeedCountry {
        COUNTRIES
            .iter()
            .find(|c| c.id == id)
            .expect("country in seed")
    }

    fn service_by_code(code: &str) -> &'static SeedService {
        SERVICES
            .iter()
            .find(|s| s.code == code)
            .expect("service in seed")
    }

    fn is_lower_letters(s: &str) -> bool {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase())
    }

    #[test]
    fn country_ids_match_protocols_table() {
        let ids: Vec<i64> = COUNTRIES.iter().map(|c| c.id).collect();
        let expected = [
            0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 19, 20, 21, 22, 31, 32, 33, 36,
            39, 43, 48, 52, 54, 55, 56, 60, 62, 63, 66, 73, 78, 86, 117, 128, 151, 175, 187,
        ];
        assert_eq!(ids, expected);
        let unique: HashSet<i64> = ids.iter().copied().collect();
        assert_eq!(unique.len(), COUNTRIES.len());
    }

    #[test]
    fn country_fields_are_well_formed() {
        for c in COUNTRIES {
            assert!(
                c.iso.len() == 2 && is_lower_letters(c.iso),
                "iso of {}: {:?}",
                c.id,
                c.iso
            );
            assert!(
                !c.prefix.is_empty()
                    && c.prefix.len() <= 4
                    && c.prefix.bytes().all(|b| b.is_ascii_digit())
                    && !c.prefix.starts_with('0'),
                "prefix of {}: {:?}",
                c.id,
                c.prefix
            );
            assert!(!c.name.trim().is_empty(), "name of {}", c.id);
            assert!(is_lower_letters(c.fivesim), "5sim name of {}", c.id);
        }
    }

    #[test]
    fn country_fivesim_names_unique() {
        let names: HashSet<&str> = COUNTRIES.iter().map(|c| c.fivesim).collect();
        assert_eq!(names.len(), COUNTRIES.len());
    }

    #[test]
    fn country_spot_checks() {
        let id = country_by_id(6);
        assert_eq!(
            (id.name, id.iso, id.prefix, id.fivesim),
            ("Indonesia", "id", "62", "indonesia")
        );
        let ru = country_by_id(0);
        assert_eq!((ru.iso, ru.prefix, ru.fivesim), ("ru", "7", "russia"));
        let kz = country_by_id(2);
        assert_eq!((kz.iso, kz.prefix), ("kz", "7"));
        let uk = country_by_id(16);
        assert_eq!(
            (uk.name, uk.iso, uk.prefix, uk.fivesim),
            ("United Kingdom", "gb", "44", "england")
        );
        let usv = country_by_id(12);
        assert_eq!(
            (usv.name, usv.iso, usv.prefix),
            ("USA (virtual)", "us", "1")
        );
        let us = country_by_id(187);
        assert_eq!(
            (us.name, us.iso, us.prefix, us.fivesim),
            ("USA", "us", "1", "usa")
        );
        assert_eq!(country_by_id(14).iso, "hk");
        assert_eq!(country_by_id(20).iso, "mo");
        assert_eq!(country_by_id(20).prefix, "853");
        assert_eq!(country_by_id(22).prefix, "91");
        assert_eq!(country_by_id(63).fivesim, "czech");
        assert_eq!(country_by_id(175).prefix, "61");
    }

    #[test]
    fn service_codes_unique_and_well_formed() {
        let codes: HashSet<&str> = SERVICES.iter().map(|s| s.code).collect();
        assert_eq!(codes.len(), SERVICES.len());
        for s in SERVICES {
            assert!(
                (2..=4).contains(&s.code.len()) && is_lower_letters(s.code),
                "code {:?}",
                s.code
            );
            assert!(!s.name.trim().is_empty(), "name of {}", s.code);
            assert!(is_lower_letters(s.fivesim), "5sim name of {}", s.code);
        }
        assert!(!codes.contains("full"), "full is not an SMS service");
        for code in [
            "tg", "wa", "vi", "wb", "go", "fb", "ig", "tw", "ds", "lf", "fu", "me", "kt", "nv",
            "qq", "mj", "mm", "mb", "tn", "oi", "nf", "am", "dh", "ka", "ab", "hw", "ts", "re",
            "mt", "bl", "ub", "jg", "tx", "xk", "rr", "gp", "cq", "pr", "vk", "ok", "ya", "ma",
            "av", "sn", "ot", "dr", "acz", "wx",
        ] {
            assert!(codes.contains(code), "missing {code}");
        }
        assert_eq!(SERVICES.len(), 48);
    }

    #[test]
    fn service_fivesim_names_unique() {
        let names: HashSet<&str> = SERVICES.iter().map(|s| s.fivesim).collect();
        assert_eq!(names.len(), SERVICES.len());
    }

    #[test]
    fn service_spot_checks_and_lifetimes() {
        let tg = service_by_code("tg");
        assert_eq!(
            (tg.name, tg.fivesim, tg.lifetime_mins),
            ("Telegram", "telegram", None)
        );
        assert_eq!(service_by_code("wa").fivesim, "whatsapp");
        assert_eq!(service_by_code("vk").fivesim, "vkontakte");
        assert_eq!(service_by_code("ok").fivesim, "odnoklassniki");
        for s in SERVICES {
            let expected = match s.code {
                "ya" | "ig" | "wx" => Some(40),
                _ => None,
            };
            assert_eq!(s.lifetime_mins, expected, "lifetime of {}", s.code);
        }
    }

    #[test]
    fn operators_are_well_formed() {
        let ids: HashSet<i64> = COUNTRIES.iter().map(|c| c.id).collect();
        let mut seen = HashSet::new();
        for o in OPERATORS {
            assert!(
                ids.contains(&o.country),
                "operator {} country {}",
                o.code,
                o.country
            );
            assert!(
                !o.code.is_empty()
                    && o.code != "any"
                    && o.code
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "operator slug {:?}",
                o.code
            );
            assert!(!o.name.trim().is_empty(), "operator name {}", o.code);
            assert!(
                seen.insert((o.country, o.code)),
                "duplicate {}/{}",
                o.country,
                o.code
            );
        }
    }

    #[test]
    fn operators_cover_required_markets() {
        let required: &[(i64, &[&str])] = &[
            (0, &["beeline", "megafon", "mts", "tele2", "yota"]),
            (1, &["kyivstar", "lifecell", "vodafone"]),
            (2, &["activ", "altel", "beeline", "kcell", "tele2"]),
            (
                6,
                &["axis", "indosat", "smartfren", "telkomsel", "three", "xl"],
            ),
            (22, &["airtel", "bsnl", "jio", "vodafone"]),
            (16, &["ee", "o2", "three", "vodafone"]),
            (187, &["att", "tmobile", "verizon"]),
            (43, &["o2", "telekom", "vodafone"]),
            (175, &["optus", "telstra", "vodafone", "lebara"]),
            (73, &["claro", "oi", "tim", "vivo"]),
            (4, &["globe", "smart", "sun", "tnt"]),
            (10, &["mobifone", "vietnamobile", "viettel", "vinaphone"]),
            (15, &["orange", "play", "plus", "tmobile"]),
        ];
        for (country, codes) in required {
            for code in *codes {
                assert!(
                    OPERATORS
                        .iter()
                        .any(|o| o.country == *country && o.code == *code),
                    "missing operator {country}/{code}"
                );
            }
        }
        let tmo = OPERATORS
            .iter()
            .find(|o| o.country == 187 && o.code == "tmobile")
            .expect("T-Mobile US");
        assert_eq!(tmo.name, "T-Mobile");
    }

    #[test]
    fn prices_positive_for_every_pair() {
        for c in COUNTRIES {
            for s in SERVICES {
                let price = default_price_minor(c.id, s.code);
                let rent = default_rent_hour_minor(c.id, s.code);
                assert!(price >= MIN_PRICE_MINOR, "{}/{}: {price}", c.id, s.code);
                assert!(rent >= MIN_RENT_HOUR_MINOR, "{}/{}: {rent}", c.id, s.code);
                assert_eq!(rent, ((price + 3) / 4).max(3), "{}/{}", c.id, s.code);
            }
        }
        // Unknown country and service fall back to defaults, still positive.
        assert!(default_price_minor(9999, "zz") > 0);
        assert!(default_rent_hour_minor(9999, "zz") > 0);
    }

    #[test]
    fn price_spot_checks() {
        // Telegram: base 120; Russia ×1.0, USA ×3.0, Indonesia ×0.5.
        assert_eq!(default_price_minor(0, "tg"), 120);
        assert_eq!(default_price_minor(187, "tg"), 360);
        assert_eq!(default_price_minor(6, "tg"), 60);
        // "Any other" in the cheapest market hits the floor exactly.
        assert_eq!(default_price_minor(6, "ot"), 5);
        // Rounding: 15 × 1.1 = 16.5 → 17.
        assert_eq!(default_price_minor(2, "sn"), 17);
        // Rent: ceil(120 / 4) = 30; ceil(5 / 4) = 2 → floor 3.
        assert_eq!(default_rent_hour_minor(0, "tg"), 30);
        assert_eq!(default_rent_hour_minor(6, "ot"), 3);
        // Premium costs more than cheap in the same country.
        assert!(default_price_minor(16, "wa") > default_price_minor(16, "av"));
        // Deterministic.
        assert_eq!(default_price_minor(43, "go"), default_price_minor(43, "go"));
    }

    #[test]
    fn every_seed_service_has_a_tier() {
        for s in SERVICES {
            let base = service_base_minor(s.code).expect("tier for every seeded code");
            assert!((10..=150).contains(&base), "{}: {base}", s.code);
        }
        assert_eq!(service_base_minor("full"), None);
    }
}
