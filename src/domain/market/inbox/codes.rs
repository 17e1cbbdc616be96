//! One-time-code extraction from incoming SMS texts.
//!
//! This module owns the rules that turn an SMS body such as "G-123456 is your Google
//! verification code." into the bare code ("123456") that is shown to the customer and returned
//! by the SMS-Activate-compatible API. It is pure text processing: no I/O, no regex crate.
//!
//! The approach, in order:
//! 1. normalise the text to chars (Arabic-Indic, Devanagari, Thai and full-width digits become
//!    ASCII) and split it into words, URL-like chunks and code keywords ("code", "код", "验证码");
//! 2. build digit candidates, single groups ("482913") and split pairs ("123-456", "123 456"),
//!    rejecting phone numbers, dates, times, amounts, durations, order numbers and years;
//! 3. take the candidate nearest a keyword, or the first plausible group when there is none;
//! 4. when nothing outside links qualifies, read a `code=` parameter of a link.

/// Shorter groups are counters, prices or durations; longer ones are phone or order numbers.
const MIN_LEN: usize = 4;
const MAX_LEN: usize = 8;

/// A year-like group ("2026") counts as a code only this close to a keyword ("code: 2019").
const YEAR_MAX_DISTANCE: usize = 6;

/// Extracts the one-time code from an SMS text. `service` is the SMS-Activate short code of the
/// order (e.g. "tg", "wa", "go", "fb", "ig", "tw", "ds", "mm", "am", "ub", "vk", "ya", "ot"), used to
/// prefer service-specific patterns; unknown services use the generic rules.
pub fn extract(service: &str, text: &str) -> Option<String> {
    let profile = Profile::for_service(service);
    let sms = Sms::parse(text);
    let keywords = sms.keywords();
    let mut candidates = sms.digit_candidates();
    // Letter-bearing codes are only believed next to a keyword: on their own, words such as
    // "B2B" or "iPhone15" would be taken for codes.
    if profile.alnum && !keywords.is_empty() {
        candidates.extend(sms.alnum_candidates());
    }
    choose(&sms, candidates, &keywords, profile).or_else(|| sms.code_in_links(profile))
}

// ---------------------------------------------------------------------------------------------
// Services

/// What we know about one service's codes. Only ever used to break ties between candidates,
/// never to reject a code: services change their templates without notice.
struct Profile {
    service: &'static str,
    /// Sender prefixes glued to the code ("G-123456"); a candidate right after one wins.
    prefixes: &'static [&'static str],
    /// Usual code length, preferred when two candidates are otherwise equal.
    lengths: (usize, usize),
    /// Codes may contain letters (X sends "abcd1234"); they are returned as written.
    alnum: bool,
}

const fn profile(service: &'static str, lengths: (usize, usize)) -> Profile {
    Profile {
        service,
        prefixes: &[],
        lengths,
        alnum: false,
    }
}

const PROFILES: &[Profile] = &[
    profile("tg", (5, 6)),
    profile("wa", (6, 6)),
    Profile {
        prefixes: &["g-"],
        ..profile("go", (6, 6))
    },
    Profile {
        prefixes: &["fb-"],
        ..profile("fb", (5, 8))
    },
    profile("ig", (6, 6)),
    Profile {
        alnum: true,
        ..profile("tw", (6, 8))
    },
    profile("ds", (6, 6)),
    profile("mm", (4, 7)),
    profile("am", (6, 6)),
    profile("ub", (4, 4)),
    profile("vk", (5, 6)),
    profile("ya", (4, 6)),
];

const GENERIC: Profile = profile("", (MIN_LEN, MAX_LEN));

impl Profile {
    fn for_service(service: &str) -> &'static Profile {
        let service = service.trim();
        PROFILES
            .iter()
            .find(|p| p.service.eq_ignore_ascii_case(service))
            .unwrap_or(&GENERIC)
    }

    fn usual_length(&self, len: usize) -> bool {
        (self.lengths.0..=self.lengths.1).contains(&len)
    }

    /// Whether a bare string (a link parameter) has the shape of this service's codes.
    fn is_code_text(&self, value: &str) -> bool {
        let len_ok = (MIN_LEN..=MAX_LEN).contains(&value.len());
        let digits = value.bytes().all(|b| b.is_ascii_digit());
        let alnum = self.alnum
            && value.bytes().all(|b| b.is_ascii_alphanumeric())
            && value.bytes().any(|b| b.is_ascii_digit())
            && value.bytes().any(|b| b.is_ascii_alphabetic());
        len_ok && (digits || alnum)
    }
}

// ---------------------------------------------------------------------------------------------
// Word lists

/// How a listed word must sit in the text or match a word.
#[derive(Clone, Copy)]
enum Fit {
    /// The whole word.
    Word,
    /// The start of a word: inflections ("кода", "kodunuz", "verification").
    Prefix,
    /// The start or the end of a word: compounds ("Bestätigungscode", "passcode").
    Affix,
    /// Anywhere: scripts written without spaces ("您的验证码是") or with glued articles ("الرمز").
    Anywhere,
}

/// Words that announce a code. Matched on the lowercased text.
const KEYWORDS: &[(&str, Fit)] = &[
    ("code", Fit::Affix),
    ("otp", Fit::Prefix),
    ("pin", Fit::Word),
    ("password", Fit::Prefix),
    ("passwort", Fit::Prefix),
    ("token", Fit::Word),
    ("verif", Fit::Prefix), // verification, verify, verifikasi, verificación, verifizierung
    ("vérif", Fit::Prefix),
    ("códig", Fit::Prefix), // código (es, pt)
    ("codig", Fit::Prefix),
    ("codic", Fit::Prefix), // codice (it)
    ("kod", Fit::Prefix),   // kode (id, ms), kodunuz (tr), kod (pl)
    ("senha", Fit::Prefix),
    ("şifre", Fit::Prefix),
    ("mã", Fit::Word), // vi: "Mã xác thực"
    ("xác thực", Fit::Word),
    ("xac thuc", Fit::Word),
    ("код", Fit::Prefix), // ru, uk: код, кода, кодом
    ("парол", Fit::Prefix),
    ("码", Fit::Anywhere), // 验证码, 校验码, 动态码, 密码
    ("碼", Fit::Anywhere),
    ("コード", Fit::Anywhere),
    ("認証番号", Fit::Anywhere),
    ("인증", Fit::Anywhere), // 인증번호, 인증코드
    ("코드", Fit::Anywhere),
    ("รหัส", Fit::Anywhere),
    ("رمز", Fit::Anywhere),
    ("كود", Fit::Anywhere),
    ("कोड", Fit::Anywhere),
    ("ओटीपी", Fit::Anywhere),
];

/// Words right before a number that make it an order, reference or card number.
const REFERENCE_WORDS: &[(&str, Fit)] = &[
    ("order", Fit::Affix),
    ("заказ", Fit::Prefix),
    ("pedido", Fit::Prefix),
    ("commande", Fit::Prefix),
    ("bestell", Fit::Prefix),
    ("sipariş", Fit::Prefix),
    ("pesanan", Fit::Prefix),
    ("invoice", Fit::Prefix),
    ("ticket", Fit::Prefix),
    ("tracking", Fit::Prefix),
    ("booking", Fit::Prefix),
    ("ref", Fit::Prefix),
    ("ending", Fit::Word), // "card ending 1234"
    ("订单", Fit::Anywhere),
    ("单号", Fit::Anywhere),
    ("尾号", Fit::Anywhere), // "您尾号1234的卡": the last digits of a bank card
    ("อ้างอิง", Fit::Anywhere),
];

/// Abbreviations that end in a dot before a reference number ("Order No. 12345").
const REFERENCE_ABBREVIATIONS: &[(&str, Fit)] =
    &[("no", Fit::Word), ("nr", Fit::Word), ("ref", Fit::Word)];

/// Currency codes and abbreviations written before an amount ("Rp 150000", "Rs. 1500").
const CURRENCIES_BEFORE: &[(&str, Fit)] = &[
    ("rp", Fit::Word),
    ("rs", Fit::Word),
    ("usd", Fit::Word),
    ("eur", Fit::Word),
    ("gbp", Fit::Word),
    ("rub", Fit::Word),
    ("руб", Fit::Word),
    ("inr", Fit::Word),
    ("idr", Fit::Word),
    ("brl", Fit::Word),
    ("cny", Fit::Word),
    ("rmb", Fit::Word),
    ("vnd", Fit::Word),
    ("thb", Fit::Word),
    ("myr", Fit::Word),
    ("php", Fit::Word),
    ("kzt", Fit::Word),
    ("uah", Fit::Word),
];

/// Currency words written after an amount ("1500 руб", "100 USD", "1000元").
const CURRENCIES_AFTER: &[(&str, Fit)] = &[
    ("руб", Fit::Prefix),
    ("р", Fit::Word),
    ("грн", Fit::Prefix),
    ("тенге", Fit::Prefix),
    ("rub", Fit::Prefix),
    ("usd", Fit::Word),
    ("eur", Fit::Prefix),
    ("dollar", Fit::Prefix),
    ("rupee", Fit::Prefix),
    ("rs", Fit::Word),
    ("inr", Fit::Word),
    ("idr", Fit::Word),
    ("rp", Fit::Word),
    ("tl", Fit::Word),
    ("lira", Fit::Word),
    ("vnd", Fit::Word),
    ("đồng", Fit::Word),
    ("reais", Fit::Word),
    ("real", Fit::Word),
    ("yuan", Fit::Word),
    ("baht", Fit::Word),
    ("元", Fit::Prefix),
    ("円", Fit::Prefix),
    ("원", Fit::Prefix),
    ("บาท", Fit::Prefix),
    ("ريال", Fit::Prefix),
    ("درهم", Fit::Prefix),
    ("रुपये", Fit::Prefix),
];

/// Units after a number that make it a validity period ("valid for 10 minutes", "5分钟内有效").
const DURATIONS: &[(&str, Fit)] = &[
    ("min", Fit::Prefix), // min, mins, minutes, minuten, minutos, minuti
    ("sec", Fit::Prefix),
    ("seg", Fit::Prefix),
    ("hour", Fit::Prefix),
    ("hr", Fit::Prefix),
    ("h", Fit::Word),
    ("hora", Fit::Prefix),
    ("heure", Fit::Prefix),
    ("stund", Fit::Prefix),
    ("day", Fit::Prefix),
    ("día", Fit::Prefix),
    ("dia", Fit::Prefix),
    ("jour", Fit::Prefix),
    ("tag", Fit::Prefix),
    ("мин", Fit::Prefix),
    ("сек", Fit::Prefix),
    ("час", Fit::Prefix),
    ("дн", Fit::Prefix),
    ("сут", Fit::Prefix),
    ("menit", Fit::Word),
    ("jam", Fit::Word),
    ("detik", Fit::Word),
    ("hari", Fit::Word),
    ("dakika", Fit::Prefix),
    ("saat", Fit::Word),
    ("saniye", Fit::Prefix),
    ("gün", Fit::Prefix),
    ("phút", Fit::Word),
    ("phut", Fit::Word),
    ("giờ", Fit::Word),
    ("giây", Fit::Word),
    ("ngày", Fit::Word),
    ("分", Fit::Prefix), // 分钟, 分間
    ("小时", Fit::Prefix),
    ("秒", Fit::Prefix),
    ("天", Fit::Prefix),
    ("時間", Fit::Prefix),
    ("분", Fit::Prefix),
    ("시간", Fit::Prefix),
    ("초", Fit::Prefix),
    ("นาที", Fit::Prefix),
    ("ชั่วโมง", Fit::Prefix),
    ("วินาที", Fit::Prefix),
    ("دقيق", Fit::Prefix),
    ("دقائق", Fit::Prefix),
    ("ساع", Fit::Prefix),
    ("ثاني", Fit::Prefix),
    ("मिनट", Fit::Prefix),
    ("घंट", Fit::Prefix),
    ("सेकंड", Fit::Prefix),
];

/// Letter suffixes that turn digits into a quantity rather than a code ("10min", "2FA", "1st").
const UNIT_SUFFIXES: &[&str] = &[
    "min", "mins", "h", "hr", "hrs", "s", "sec", "secs", "m", "d", "st", "nd", "rd", "th", "am",
    "pm", "fa", "gb", "mb", "kb", "kg", "km", "x", "k",
];

/// Query parameters and path segments that carry a code in a verification link.
const CODE_PATH_SEGMENTS: &[&str] = &["login", "verify", "code", "otp", "confirm"];

fn is_currency_symbol(c: char) -> bool {
    matches!(
        c,
        '$' | '€'
            | '£'
            | '¥'
            | '￥'
            | '₽'
            | '₹'
            | '₩'
            | '₺'
            | '₫'
            | '฿'
            | '₱'
            | '₴'
            | '₸'
            | '¢'
    )
}

/// Horizontal white space; a line break separates things, it never joins "123 456".
fn is_blank(c: char) -> bool {
    c.is_whitespace() && c != '\n' && c != '\r'
}

/// Maps the decimal digits of other scripts to ASCII so "٤٨٢٩١٣" reads as "482913".
fn ascii_digit(c: char) -> char {
    let zero = match c {
        '０'..='９' => '０',
        '٠'..='٩' => '٠',
        '۰'..='۹' => '۰',
        '०'..='९' => '०',
        '๐'..='๙' => '๐',
        _ => return c,
    };
    char::from_digit(c as u32 - zero as u32, 10).unwrap_or(c)
}

fn chars_of(s: &str) -> Vec<char> {
    s.chars().collect()
}

/// Whether `word` (lowercase) matches the listed `pattern` the way `fit` says.
fn fits(word: &[char], pattern: &str, fit: Fit) -> bool {
    let pattern = chars_of(pattern);
    match fit {
        Fit::Word => word == pattern.as_slice(),
        Fit::Prefix => word.starts_with(&pattern),
        Fit::Affix => word.starts_with(&pattern) || word.ends_with(&pattern),
        Fit::Anywhere => word.windows(pattern.len()).any(|w| w == pattern.as_slice()),
    }
}

fn fits_any(word: &[char], list: &[(&str, Fit)]) -> bool {
    list.iter().any(|&(pattern, fit)| fits(word, pattern, fit))
}

fn is_year(code: &str) -> bool {
    code.len() == 4
        && code
            .parse::<u32>()
            .is_ok_and(|y| (1900..=2099).contains(&y))
}

/// "10min", "24h", "2FA": digits followed by a unit, not a code.
fn is_number_with_unit(word: &[char]) -> bool {
    let Some(split) = word.iter().position(|c| !c.is_ascii_digit()) else {
        return false;
    };
    let suffix: String = word[split..].iter().collect::<String>().to_lowercase();
    split > 0 && UNIT_SUFFIXES.contains(&suffix.as_str())
}

// ---------------------------------------------------------------------------------------------
// Parsed message

/// A range of char indices into the message, end exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
}

impl Span {
    fn len(self) -> usize {
        self.end - self.start
    }

    /// Chars between two spans; 0 when they touch or overlap.
    fn distance(self, other: Span) -> usize {
        if self.end <= other.start {
            other.start - self.end
        } else {
            self.start.saturating_sub(other.end)
        }
    }
}

#[derive(Debug)]
struct Candidate {
    span: Span,
    code: String,
}

/// How two neighbouring digit groups relate, judged by the single char between them.
enum Link {
    /// Nothing joins them.
    Apart,
    /// '-' or a space: maybe one split code ("123-456"), maybe a phone or a date.
    Joiner(char),
    /// ':', '/', '.', or a thousands ',': a time, date, decimal or amount.
    Notation,
}

struct Sms {
    /// The message, with digits normalised to ASCII.
    chars: Vec<char>,
    /// `chars` lowercased one for one, so indices agree.
    lower: Vec<char>,
    /// Runs of letters and digits, in order.
    words: Vec<Span>,
    /// White-space delimited chunks that are links; numbers inside are never codes.
    links: Vec<Span>,
}

impl Sms {
    fn parse(text: &str) -> Sms {
        let chars: Vec<char> = text.chars().map(ascii_digit).collect();
        let lower = chars
            .iter()
            .map(|&c| c.to_lowercase().next().unwrap_or(c))
            .collect();
        let words = split_words(&chars);
        let links = find_links(&chars);
        Sms {
            chars,
            lower,
            words,
            links,
        }
    }

    fn text(&self, span: Span) -> String {
        self.chars[span.start..span.end].iter().collect()
    }

    fn lower(&self, span: Span) -> &[char] {
        &self.lower[span.start..span.end]
    }

    fn between(&self, a: Span, b: Span) -> &[char] {
        &self.chars[a.end..b.start]
    }

    fn is_digits(&self, span: Span) -> bool {
        self.chars[span.start..span.end]
            .iter()
            .all(char::is_ascii_digit)
    }

    fn in_link(&self, span: Span) -> bool {
        self.links
            .iter()
            .any(|l| l.start <= span.start && span.end <= l.end)
    }

    fn word_before(&self, at: usize) -> Option<Span> {
        self.words.iter().rev().find(|w| w.end <= at).copied()
    }

    fn word_after(&self, at: usize) -> Option<Span> {
        self.words.iter().find(|w| w.start >= at).copied()
    }

    /// Non-word chars between the previous word and `at`.
    fn gap_before(&self, at: usize) -> &[char] {
        let from = self.word_before(at).map_or(0, |w| w.end);
        &self.chars[from..at]
    }

    /// Non-word chars between `at` and the next word.
    fn gap_after(&self, at: usize) -> &[char] {
        let to = self.word_after(at).map_or(self.chars.len(), |w| w.start);
        &self.chars[at..to]
    }

    fn starts_word(&self, at: usize) -> bool {
        at == 0 || !self.lower[at - 1].is_alphanumeric()
    }

    fn ends_word(&self, at: usize) -> bool {
        self.lower.get(at).is_none_or(|c| !c.is_alphanumeric())
    }

    // --- keywords ----------------------------------------------------------------------------

    /// Where code keywords occur, outside links (a "code=" in a URL announces nothing).
    fn keywords(&self) -> Vec<Span> {
        let mut found = Vec::new();
        for &(keyword, fit) in KEYWORDS {
            let needle = chars_of(keyword);
            for (start, window) in self.lower.windows(needle.len()).enumerate() {
                let span = Span {
                    start,
                    end: start + needle.len(),
                };
                if window == needle.as_slice() && self.sits(span, fit) && !self.in_link(span) {
                    found.push(span);
                }
            }
        }
        found
    }

    /// Whether a keyword occurrence respects word boundaries as `fit` requires.
    fn sits(&self, span: Span, fit: Fit) -> bool {
        let starts = self.starts_word(span.start);
        let ends = self.ends_word(span.end);
        match fit {
            Fit::Word => starts && ends,
            Fit::Prefix => starts,
            Fit::Affix => starts || ends,
            Fit::Anywhere => true,
        }
    }

    // --- digit candidates --------------------------------------------------------------------

    /// Every digit group, or pair of groups, that could be a code in its context.
    fn digit_candidates(&self) -> Vec<Candidate> {
        let groups: Vec<Span> = self
            .words
            .iter()
            .copied()
            .filter(|&w| self.is_digits(w))
            .collect();
        let mut rejected = vec![false; groups.len()];
        self.reject_phone_numbers(&groups, &mut rejected);

        let links: Vec<Link> = groups.windows(2).map(|p| self.link(p[0], p[1])).collect();
        for (i, link) in links.iter().enumerate() {
            if matches!(link, Link::Notation) {
                rejected[i] = true;
                rejected[i + 1] = true;
            }
        }

        let mut candidates = Vec::new();
        let mut i = 0;
        while i < groups.len() {
            // A run: groups chained by '-' or spaces, e.g. "123-456" or "800 555 0199".
            let mut j = i;
            while j < links.len() && matches!(links[j], Link::Joiner(_)) {
                j += 1;
            }
            candidates.extend(self.run_candidates(&groups[i..=j], &links[i..j], &rejected[i..=j]));
            i = j + 1;
        }
        candidates.retain(|c| (MIN_LEN..=MAX_LEN).contains(&c.code.len()));
        candidates.retain(|c| !self.is_other_number(c.span));
        candidates
    }

    /// Candidates from one run of digit groups chained by '-' or spaces.
    fn run_candidates(&self, run: &[Span], links: &[Link], rejected: &[bool]) -> Vec<Candidate> {
        let single = |g: &Span| Candidate {
            span: *g,
            code: self.text(*g),
        };
        let has_dash = links.iter().any(|l| matches!(l, Link::Joiner('-')));
        match (run, links) {
            // Split codes come in two equal halves: "123-456", "123 456", "1234-5678".
            ([a, b], [Link::Joiner(sep)])
                if a.len() == b.len()
                    && (a.len() == 3 || (a.len() == 4 && *sep == '-'))
                    && !rejected[0]
                    && !rejected[1] =>
            {
                let span = Span {
                    start: a.start,
                    end: b.end,
                };
                vec![Candidate {
                    span,
                    code: self.text(*a) + &self.text(*b),
                }]
            }
            // Any other dashed run is a date (2026-11-21), a phone (555-0199) or a range.
            _ if has_dash => Vec::new(),
            // Space-separated groups that do not form a split code stay separate words.
            _ => run
                .iter()
                .zip(rejected)
                .filter(|(_, &r)| !r)
                .map(|(g, _)| single(g))
                .collect(),
        }
    }

    /// Phone numbers come in many shapes ("+1 800 555 0199", "8 (800) 555-35-35"): digit
    /// groups chained by phone punctuation into 10+ digits, or following a '+', are a phone.
    fn reject_phone_numbers(&self, groups: &[Span], rejected: &mut [bool]) {
        let mut i = 0;
        while i < groups.len() {
            let mut j = i;
            while j + 1 < groups.len() && is_phone_gap(self.between(groups[j], groups[j + 1])) {
                j += 1;
            }
            let digits: usize = groups[i..=j].iter().map(|g| g.len()).sum();
            if self.follows_plus(groups[i].start) || (j > i && digits >= 10) {
                rejected[i..=j].fill(true);
            }
            i = j + 1;
        }
    }

    fn follows_plus(&self, at: usize) -> bool {
        matches!(&self.chars[..at], [.., '+'] | [.., '+', '('])
    }

    fn link(&self, a: Span, b: Span) -> Link {
        match self.between(a, b) {
            [':' | '/' | '.'] => Link::Notation,
            // "1,000" is an amount; "123456,5分钟" is a code followed by a duration.
            [','] if a.len() <= 3 && b.len() == 3 => Link::Notation,
            ['-'] => Link::Joiner('-'),
            [c] if is_blank(*c) => Link::Joiner(' '),
            _ => Link::Apart,
        }
    }

    /// Context that makes a digit candidate something other than a code.
    fn is_other_number(&self, span: Span) -> bool {
        self.in_link(span)
            || self.touches_email(span)
            || self.is_reference(span)
            || self.is_amount(span)
            || self.is_duration(span)
    }

    /// "12345678@qq.com", "@user1234".
    fn touches_email(&self, span: Span) -> bool {
        self.chars.get(span.end) == Some(&'@')
            || (span.start > 0 && self.chars[span.start - 1] == '@')
    }

    /// Order, reference and masked card numbers: "Order #123456", "заказ №45678", "*1234",
    /// "Ref: 5521", "Order No. 12345", "您尾号1234的卡".
    fn is_reference(&self, span: Span) -> bool {
        let gap = self.gap_before(span.start);
        if matches!(trim_blanks(gap).last(), Some('#' | '№' | '*')) {
            return true;
        }
        let Some(word) = self.word_before(span.start) else {
            return false;
        };
        let word = self.lower(word);
        if gap.contains(&'.') {
            // Only abbreviations may sit before a dot; otherwise the dot ended a sentence.
            return trim_blanks(gap) == ['.'] && fits_any(word, REFERENCE_ABBREVIATIONS);
        }
        is_tight(gap) && fits_any(word, REFERENCE_WORDS)
    }

    /// "$12", "€ 1500", "Rp 150000", "Rs. 1500", "1500 руб", "1500₽", "50%".
    fn is_amount(&self, span: Span) -> bool {
        let before = self.gap_before(span.start);
        if trim_blanks(before)
            .last()
            .is_some_and(|&c| is_currency_symbol(c))
        {
            return true;
        }
        let code_before = self.word_before(span.start).is_some_and(|w| {
            let gap = trim_blanks(before);
            (gap.is_empty() || gap == ['.']) && fits_any(self.lower(w), CURRENCIES_BEFORE)
        });
        let after = self.gap_after(span.end);
        let symbol_after = trim_blanks(after)
            .first()
            .is_some_and(|&c| is_currency_symbol(c) || c == '%');
        let word_after = after.iter().all(|&c| is_blank(c))
            && self
                .word_after(span.end)
                .is_some_and(|w| fits_any(self.lower(w), CURRENCIES_AFTER));
        code_before || symbol_after || word_after
    }

    /// "valid for 1440 minutes", "5分钟内有效", "3분".
    fn is_duration(&self, span: Span) -> bool {
        self.gap_after(span.end).iter().all(|&c| is_blank(c))
            && self
                .word_after(span.end)
                .is_some_and(|w| fits_any(self.lower(w), DURATIONS))
    }

    // --- letter codes, links, choice ---------------------------------------------------------

    /// Mixed letter-and-digit words standing on their own ("abcd1234"), for services whose
    /// codes contain letters. At least one digit is required so plain words never qualify.
    fn alnum_candidates(&self) -> Vec<Candidate> {
        self.words
            .iter()
            .copied()
            .filter(|&w| self.is_alnum_code(w))
            .map(|w| Candidate {
                span: w,
                code: self.text(w),
            })
            .collect()
    }

    fn is_alnum_code(&self, w: Span) -> bool {
        let word = &self.chars[w.start..w.end];
        (MIN_LEN..=MAX_LEN).contains(&word.len())
            && word.iter().all(char::is_ascii_alphanumeric)
            && word.iter().any(char::is_ascii_digit)
            && word.iter().any(char::is_ascii_alphabetic)
            && !is_number_with_unit(word)
            && self.stands_alone(w)
            && !self.in_link(w)
    }

    /// Bounded by white space or sentence punctuation, not by '+', '/', '=' or '-': pieces of
    /// app hashes ("FA+9qCX9VSu") and identifiers are not codes.
    fn stands_alone(&self, w: Span) -> bool {
        let before = w.start.checked_sub(1).map(|i| self.chars[i]);
        let after = self.chars.get(w.end).copied();
        before.is_none_or(|c| c.is_whitespace() || "\"'([«“".contains(c))
            && after.is_none_or(|c| c.is_whitespace() || ".,;:!?)]\"'»”".contains(c))
    }

    /// Whether the candidate follows one of the service's sender prefixes ("G-123456").
    fn has_prefix(&self, span: Span, profile: &Profile) -> bool {
        let before = &self.lower[..span.start];
        profile.prefixes.iter().any(|p| {
            let p = chars_of(p);
            before.ends_with(&p) && self.starts_word(span.start - p.len())
        })
    }

    /// The code carried by a link when the message text itself has none.
    fn code_in_links(&self, profile: &Profile) -> Option<String> {
        self.links
            .iter()
            .find_map(|&link| code_in_url(&self.text(link), profile))
    }
}

/// Picks the best candidate: after a service prefix, then nearest a keyword, then of the
/// service's usual length, then the earliest. Years only count right next to a keyword.
fn choose(
    sms: &Sms,
    candidates: Vec<Candidate>,
    keywords: &[Span],
    profile: &Profile,
) -> Option<String> {
    candidates
        .into_iter()
        .filter_map(|c| {
            let distance = keywords.iter().map(|k| k.distance(c.span)).min();
            if is_year(&c.code) && distance.is_none_or(|d| d > YEAR_MAX_DISTANCE) {
                return None;
            }
            // `false` sorts first, so each flag is phrased as "is worse".
            let rank = (
                !sms.has_prefix(c.span, profile),
                distance.unwrap_or(0),
                !profile.usual_length(c.code.len()),
                c.span.start,
            );
            Some((rank, c.code))
        })
        .min_by_key(|(rank, _)| *rank)
        .map(|(_, code)| code)
}

/// "https://example.com/verify?code=482913" or "https://t.me/login/12345": the value of a
/// code-like query parameter, or the path segment right after "login"/"verify"/….
fn code_in_url(url: &str, profile: &Profile) -> Option<String> {
    let url = url.trim_end_matches(|c: char| ".,;:!?)]\"'".contains(c));
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let from_query = query
        .split(['&', '#'])
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, value)| is_code_param(key) && profile.is_code_text(value))
        .map(|(_, value)| value);
    let path = path.split('#').next().unwrap_or(path);
    let segments: Vec<&str> = path.split('/').collect();
    let from_path = segments
        .windows(2)
        .find(|pair| {
            CODE_PATH_SEGMENTS.contains(&pair[0].to_ascii_lowercase().as_str())
                && profile.is_code_text(pair[1])
        })
        .map(|pair| pair[1]);
    from_query.or(from_path).map(str::to_string)
}

fn is_code_param(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.ends_with("code") || key == "otp" || key == "pin"
}

// ---------------------------------------------------------------------------------------------
// Scanning helpers

/// Runs of letters and digits. A run also breaks where an ASCII digit meets a non-ASCII
/// letter, because CJK, Korean and Cyrillic texts glue numbers to words ("是123456", "5分钟").
fn split_words(chars: &[char]) -> Vec<Span> {
    let mut words = Vec::new();
    let mut start: Option<usize> = None;
    for (i, &c) in chars.iter().enumerate() {
        let breaks = i > 0 && glued_boundary(chars[i - 1], c);
        if let Some(s) = start {
            if !c.is_alphanumeric() || breaks {
                words.push(Span { start: s, end: i });
                start = None;
            }
        }
        if start.is_none() && c.is_alphanumeric() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        words.push(Span {
            start: s,
            end: chars.len(),
        });
    }
    words
}

fn glued_boundary(a: char, b: char) -> bool {
    (a.is_ascii_digit() && b.is_alphabetic() && !b.is_ascii())
        || (b.is_ascii_digit() && a.is_alphabetic() && !a.is_ascii())
}

/// White-space delimited chunks that look like links: a scheme, "www.", or "domain.tld/".
fn find_links(chars: &[char]) -> Vec<Span> {
    let mut links = Vec::new();
    let mut start = 0;
    for end in (0..=chars.len()).filter(|&i| i == chars.len() || chars[i].is_whitespace()) {
        let chunk = &chars[start..end];
        if !chunk.is_empty() && looks_like_link(chunk) {
            links.push(Span { start, end });
        }
        start = end + 1;
    }
    links
}

fn looks_like_link(chunk: &[char]) -> bool {
    let text: String = chunk.iter().collect::<String>().to_lowercase();
    let text = text.trim_start_matches(|c: char| !c.is_alphanumeric());
    text.contains("://") || text.starts_with("www.") || has_domain_path(text)
}

/// "x.com/a/1": a dot, two or more letters, then a slash. Dates ("21/11") have no dot.
fn has_domain_path(text: &str) -> bool {
    text.match_indices('/').any(|(slash, _)| {
        let head = &text[..slash];
        let tld_len = head
            .chars()
            .rev()
            .take_while(char::is_ascii_alphabetic)
            .count();
        tld_len >= 2 && head[..head.len() - tld_len].ends_with('.')
    })
}

fn is_phone_gap(gap: &[char]) -> bool {
    match gap {
        ['-' | '.' | '(' | ')'] | [' ', '('] | [')', ' ' | '-'] => true,
        [c] => is_blank(*c),
        _ => false,
    }
}

fn trim_blanks(s: &[char]) -> &[char] {
    let start = s.iter().position(|&c| !is_blank(c)).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&c| !is_blank(c))
        .map_or(start, |p| p + 1);
    &s[start..end]
}

/// A short gap of spaces and separators between a label and its number ("Order: 12345").
fn is_tight(gap: &[char]) -> bool {
    gap.len() <= 3 && gap.iter().all(|&c| is_blank(c) || matches!(c, ':' | '-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (service, SMS text, expected code). Every expectation is exact.
    const CORPUS: &[(&str, &str, Option<&str>)] = &[
        // --- Service templates ---
        ("go", "G-123456 is your Google verification code.", Some("123456")),
        ("go", "G-482913 is your Google verification code. Don't share it with anyone.", Some("482913")),
        ("wa", "Your WhatsApp code: 123-456", Some("123456")),
        ("wa", "Your WhatsApp code: 482-913\nYou can also tap on this link to verify your phone: v.whatsapp.com/482913\nDon't share this code with others", Some("482913")),
        ("wa", "<#> WhatsApp code 731-044\nDon't share this code with others\n4sgLq1p5sV6", Some("731044")),
        ("tg", "Telegram code: 12345", Some("12345")),
        ("tg", "Login code: 12345. Do not give this code to anyone, even if they say they are from Telegram!", Some("12345")),
        ("tg", "Telegram code 61234\n\nYou can also tap on this link to log in:\nhttps://t.me/login/61234", Some("61234")),
        ("fb", "FB-12345 is your Facebook confirmation code", Some("12345")),
        ("fb", "12345 is your Facebook code", Some("12345")),
        ("ig", "123 456 is your Instagram code. Don't share it.", Some("123456")),
        ("mm", "Use 1234567 as Microsoft account security code", Some("1234567")),
        ("ds", "Your Discord verification code is: 482913", Some("482913")),
        ("tw", "Your X confirmation code is abcd1234", Some("abcd1234")),
        ("tw", "Your Twitter confirmation code is 482913.", Some("482913")),
        ("tw", "<#> Your X code is 8f3kq2m1\nFA+9qCX9VSu", Some("8f3kq2m1")),
        ("am", "123456 is your Amazon OTP. Do not share it with anyone.", Some("123456")),
        ("ub", "Your Uber code: 1234. Never share this code. Reply STOP ALL to 89203 to unsubscribe.", Some("1234")),
        ("ot", "Your Apple ID Code is: 123456. Don't share it with anyone.", Some("123456")),
        ("ot", "Your Apple Account code is: 482913. Do not share it with anyone.\n\n@apple.com #482913 %apple.com", Some("482913")),
        ("ot", "Your OpenAI verification code is: 123456", Some("123456")),
        ("ot", "Your Tinder code is 482913 - don't share it with anyone.", Some("482913")),
        ("ot", "Viber code: 3356. Don't share it with anyone.", Some("3356")),
        ("ot", "[WeChat] Verification code: 123456. Do not share it.", Some("123456")),
        ("ot", "【支付宝】验证码：482913，您正在登录支付宝，切勿告知他人。", Some("482913")),
        ("ot", "Your Shopee OTP is 482913. DO NOT share this code with anyone.", Some("482913")),
        ("ot", "<#> 1234 is your Grab verification code. It is valid for 5 minutes. Do not share it. vXrGXPe5HqP", Some("1234")),
        ("ot", "LINEの認証番号：4821", Some("4821")),
        ("ot", "[카카오톡] 인증번호 [123456]", Some("123456")),
        ("ot", "[Web발신]\n[네이버] 인증번호[482913]를 입력해주세요.", Some("482913")),
        ("vk", "VK: 33708 — код для регистрации", Some("33708")),
        ("ya", "Код подтверждения: 482913. Никому не говорите его. Яндекс", Some("482913")),
        // --- Languages ---
        ("ot", "Ваш код: 1234", Some("1234")),
        ("ot", "【腾讯科技】验证码：123456，5分钟内有效", Some("123456")),
        ("ot", "【美团】验证码:482913,5分钟内有效,请勿泄露", Some("482913")),
        ("ot", "您的验证码是736421，请勿泄露给他人。", Some("736421")),
        ("ot", "Tu código de verificación es 123456", Some("123456")),
        ("ot", "Seu código é 123456", Some("123456")),
        ("ot", "Kode verifikasi Anda adalah 123456", Some("123456")),
        ("ot", "Doğrulama kodunuz: 123456", Some("123456")),
        ("ot", "Dein Bestätigungscode lautet 123456", Some("123456")),
        ("ot", "Votre code de vérification est 123456", Some("123456")),
        ("ot", "رمز التحقق الخاص بك هو 482913. لا تشاركه مع أحد.", Some("482913")),
        ("ot", "رمز التحقق: ٤٨٢٩١٣", Some("482913")),
        ("ot", "आपका OTP 482913 है। इसे किसी के साथ साझा न करें।", Some("482913")),
        ("ot", "आपका सत्यापन कोड 482913 है", Some("482913")),
        ("ot", "Ma xac thuc cua ban la 123456", Some("123456")),
        ("ot", "Mã OTP của bạn là 482913, hiệu lực trong 5 phút.", Some("482913")),
        ("ot", "รหัส OTP ของคุณคือ 482913 (Ref: KQPX) ใช้ได้ภายใน 5 นาที", Some("482913")),
        ("ot", "รหัส OTP: ๔๘๒๙๑๓", Some("482913")),
        ("ot", "Il tuo codice di verifica è 482913", Some("482913")),
        // --- Separators and formats ---
        ("ot", "Your code: 123 456", Some("123456")),
        ("ot", "Your code is 1234", Some("1234")),
        ("ot", "Your code is 123-456", Some("123456")),
        ("ot", "Your PIN is 4821", Some("4821")),
        ("ot", "482913 - Lazada", Some("482913")),
        ("ot", "Your verification code is 482913.\n\n@example.com #482913", Some("482913")),
        ("ot", "Tap https://example.com/verify?code=482913 to sign in", Some("482913")),
        ("tg", "https://t.me/login/61234", Some("61234")),
        // --- Codes next to other numbers ---
        ("ot", "Your code is 4821. Questions? Call +1 800 555 0199", Some("4821")),
        ("am", "123456 is your Amazon OTP. If you didn't request it, call 1800 3000 9009.", Some("123456")),
        ("ot", "Код: 4821. Никому не сообщайте. Служба поддержки 8 800 555-35-35", Some("4821")),
        ("ot", "Kode OTP: 482913. JANGAN BERIKAN kode ini kpd siapapun. Info hub 1500-989", Some("482913")),
        ("ot", "Your code 482913 for login on 21.11.2026 at 12:30", Some("482913")),
        ("ot", "Dear customer, OTP for login is 482913 valid till 21/11/2026 12:30 PM. Ref 88123", Some("482913")),
        ("ot", "Tu código de verificación es 482913. Válido hasta el 21/11.", Some("482913")),
        ("ot", "© 2026 Acme. Your code: 5521", Some("5521")),
        ("ot", "Your code is 2019", Some("2019")),
        ("ot", "Order #123456: use code 7788 at pickup", Some("7788")),
        ("ot", "Заказ №45678 готов. Код для получения: 3321", Some("3321")),
        ("ot", "Payment of $12.50 to Shop. OTP: 918273", Some("918273")),
        ("ot", "Покупка 1500р. Карта *1234. Код: 5678", Some("5678")),
        ("ot", "482913 is your OTP for transaction of INR 1,500.00 at Amazon. Valid for 10 mins.", Some("482913")),
        ("ot", "Kode OTP 482913 untuk transaksi Rp 150000", Some("482913")),
        ("ot", "【招商银行】验证码：482913，您尾号1234的卡正在支付100.00元", Some("482913")),
        ("ot", "Your code 1234 expires in 1440 minutes", Some("1234")),
        ("ot", "Your code: 482913. Valid for 10 minutes.", Some("482913")),
        ("ot", "Your number +7 999 123-45-67 is verified. Code: 4590", Some("4590")),
        // --- No code ---
        ("tg", "Welcome to Telegram!", None),
        ("ot", "Your order has shipped", None),
        ("ot", "Call us at +1 800 555 0199", None),
        ("ot", "Your number 08123456789 is active", None),
        ("ot", "Your payment of $12.50 was received on 21.11.2026", None),
        ("ot", "Meeting moved to 12:30 on 2026-11-21", None),
        ("ot", "Order #123456 has shipped", None),
        ("ot", "Order 12345 shipped", None),
        ("ot", "Ваш заказ №45678 доставлен", None),
        ("ot", "Balance: 1,000.00 RUB", None),
        ("ot", "Скидка 100 руб до 11/21", None),
        ("ot", "Списано 1500 руб", None),
        ("ot", "Check https://x.com/a/123456789?c=1", None),
        ("ot", "Open example.com/reset#482913", None),
        ("ot", "Happy New Year 2026!", None),
        ("ot", "Your session expires in 10 minutes", None),
        ("ot", "Valid for 1440 minutes", None),
        ("ot", "Your code will arrive shortly", None),
        ("tw", "Your X confirmation code is below", None),
        ("ot", "Your code is 123456789", None),
        ("ot", "Send 12345678@qq.com your résumé", None),
    ];

    #[test]
    fn corpus() {
        assert!(CORPUS.len() >= 60);
        let failures: Vec<String> = CORPUS
            .iter()
            .filter_map(|&(service, text, expected)| {
                let got = extract(service, text);
                (got.as_deref() != expected)
                    .then(|| format!("{service} {text:?}: expected {expected:?}, got {got:?}"))
            })
            .collect();
        assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    }

    #[test]
    fn corpus_has_enough_negatives() {
        assert!(CORPUS.iter().filter(|c| c.2.is_none()).count() >= 8);
    }

    #[test]
    fn codes_are_plain_alphanumerics() {
        // Clients split API replies on ':'; a code must never carry one, nor any separator.
        for &(service, text, _) in CORPUS {
            if let Some(code) = extract(service, text) {
                assert!(code.chars().all(|c| c.is_ascii_alphanumeric()), "{code:?}");
            }
        }
    }

    #[test]
    fn unknown_and_odd_services_use_generic_rules() {
        assert_eq!(extract("", "Your code is 1234").as_deref(), Some("1234"));
        assert_eq!(extract("zz", "G-123456").as_deref(), Some("123456"));
        assert_eq!(extract(" GO ", "G-123456").as_deref(), Some("123456"));
        // Letters are only accepted for services that use them.
        assert_eq!(extract("ot", "Your X confirmation code is abcd1234"), None);
    }

    #[test]
    fn service_prefix_beats_distance() {
        let text = "Code 5555 for your device. G-123456";
        assert_eq!(extract("go", text).as_deref(), Some("123456"));
        assert_eq!(extract("ot", text).as_deref(), Some("5555"));
    }

    #[test]
    fn empty_and_odd_input() {
        assert_eq!(extract("ot", ""), None);
        assert_eq!(extract("ot", "   \n"), None);
        assert_eq!(extract("ot", "+"), None);
        assert_eq!(extract("ot", "code"), None);
        assert_eq!(extract("ot", "１２３４５６"), Some("123456".to_string()));
    }

    #[test]
    fn helpers() {
        assert!(has_domain_path("x.com/a/1"));
        assert!(!has_domain_path("11/21"));
        assert!(is_number_with_unit(&chars_of("10min")));
        assert!(!is_number_with_unit(&chars_of("8f3kq2m1")));
        assert_eq!(ascii_digit('٤'), '4');
        assert_eq!(trim_blanks(&chars_of("  # ")), ['#']);
    }
}
