//! The generators: hostile strings, raw JSON text (valid and not), random JSON values of
//! every shape, query strings with percent-encoding junk, and random bytes. All draw from
//! one seeded `StdRng`, so a run is reproducible from its seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value};

/// The seed of a run: `RTCHAT_FUZZ_SEED`, or a fixed default so CI is reproducible.
pub fn base_seed() -> u64 {
    std::env::var("RTCHAT_FUZZ_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0x7274_6368_6174) // "rtchat"
}

/// Random cases per generator: `RTCHAT_FUZZ_CASES`, default `default`. The default keeps
/// the whole module under a minute on a 2-core box; raise it for a longer hunt.
pub fn cases(default: usize) -> usize {
    std::env::var("RTCHAT_FUZZ_CASES")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(default)
}

/// Characters that break naive parsers: controls, invisible and bidi marks, non-BMP,
/// noncharacters, combining marks, and the JSON and SQL specials.
const NASTY_CHARS: &[char] = &[
    '\0',
    '\u{1}',
    '\u{8}',
    '\t',
    '\n',
    '\r',
    '\u{1b}',
    '\u{7f}',
    '\u{85}',
    '\u{a0}',
    '\u{ad}',
    '\u{200b}',
    '\u{200d}',
    '\u{2028}',
    '\u{202e}',
    '\u{3000}',
    '\u{feff}',
    '\u{fffd}',
    '\u{ffff}',
    '\u{e000}',
    '\u{10ffff}',
    '\u{301}',
    'é',
    'Я',
    '中',
    '🦀',
    '"',
    '\\',
    '\'',
    '%',
    '_',
    '`',
    '/',
    '<',
    '&',
    '=',
    '+',
    '?',
    '#',
    ';',
    '@',
    ' ',
    '.',
    '{',
    '[',
];

/// Strings with a known edge: empty, blank, boundaries of every length limit, injections.
fn special_strings() -> Vec<String> {
    vec![
        String::new(),
        " ".into(),
        "\t\n".into(),
        "\0".into(),
        "a\0b".into(),
        "\u{feff}".into(),
        "\u{202e}evil".into(),
        "' OR 1=1 --".into(),
        "%00".into(),
        "%s%n%x".into(),
        "${jndi:ldap://x}".into(),
        "<script>alert(1)</script>".into(),
        "null".into(),
        "-1".into(),
        "9223372036854775808".into(),
        "e\u{301}".repeat(70),
        "🦀".repeat(65),
        "x".repeat(64),
        "x".repeat(65),
        "x".repeat(128),
        "x".repeat(129),
        "x".repeat(254),
        "x".repeat(255),
        "x".repeat(4096),
        "x".repeat(4097),
        "я".repeat(4097),
        "a@b".into(),
        " a@b.c ".into(),
        "A@B.C".into(),
        "@".into(),
        "a@@b".into(),
        "correct horse".into(),
    ]
}

/// Raw JSON texts that are valid JSON but sit on a parser's edge.
pub const EDGE_VALUES: &[&str] = &[
    "null",
    "true",
    "0",
    "-0",
    "-1",
    "1.0",
    "1.5",
    "1e3",
    "1E+2",
    "-0.0",
    "1e400",
    "-1e400",
    "1e-400",
    "4.9e-324",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775809",
    "18446744073709551616",
    "123456789012345678901234567890123456789",
    "\"\"",
    "\"\\u0000\"",
    "\"a\\u0000b\"",
    "\"\\ud800\"",
    "\"\\udc00\"",
    "\"\\ud800\\u0041\"",
    "\"\\udbff\\udfff\"",
    "\"\\uFEFF\"",
    "[]",
    "{}",
    "[null]",
    "[1,\"2\",3]",
    "{\"\":null}",
];

/// Raw bytes that are not JSON, or not UTF-8, in the place of a value.
pub const BROKEN_VALUES: &[&[u8]] = &[
    b"NaN",
    b"Infinity",
    b"-Infinity",
    b"01",
    b"+1",
    b".5",
    b"1.",
    b"0x10",
    b"1e",
    b"'str'",
    b"tru",
    b"nul",
    b"undefined",
    b"\"unterminated",
    b"\"a\x00b\"",
    b"\"\x01\"",
    b"\"\\x41\"",
    b"\"\\u00\"",
    b"\"\\uZZZZ\"",
    b"\"\xff\xfe\"",
    b"\"\xc0\x80\"",
    b"\"\xed\xa0\x80\"",
    b"\"\xf4\x90\x80\x80\"",
    b"\"\xe2\x82\"",
    b"\xef\xbb\xbf\"bom\"",
    b"[1,]",
    b"{\"a\":1,}",
    b"{,}",
    b"[",
    b"}",
    b"\"a\" \"b\"",
];

/// A seeded source of hostile input.
pub struct Gen {
    pub rng: StdRng,
}

impl Gen {
    /// A generator for one test: the run's seed mixed with the test's name, so tests do not
    /// share a stream and adding one does not change the others.
    pub fn new(test: &str) -> Gen {
        let mut seed = base_seed();
        for b in test.bytes() {
            seed = seed.rotate_left(7) ^ u64::from(b);
            seed = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        }
        Gen {
            rng: StdRng::seed_from_u64(seed),
        }
    }

    pub fn below(&mut self, n: usize) -> usize {
        self.rng.gen_range(0..n.max(1))
    }

    pub fn rng_byte(&mut self) -> u8 {
        self.rng.gen()
    }

    pub fn chance(&mut self, p: f64) -> bool {
        self.rng.gen_bool(p)
    }

    pub fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }

    /// A hostile string: a special one, or random characters mixing ASCII and nasties.
    pub fn string(&mut self) -> String {
        if self.chance(0.4) {
            let specials = special_strings();
            return self.pick(&specials);
        }
        let len = match self.below(10) {
            0 => 0,
            1..=6 => self.below(16),
            7 | 8 => self.below(300),
            _ => self.below(5000),
        };
        (0..len)
            .map(|_| match self.below(4) {
                0 => self.pick(NASTY_CHARS),
                1 => char::from_u32(self.rng.gen_range(0x80..0x3000)).unwrap_or('?'),
                _ => char::from(self.rng.gen_range(b' '..=b'~')),
            })
            .collect()
    }

    /// An integer on or around an edge.
    pub fn int(&mut self) -> i64 {
        let edges = [0, 1, 2, 3, -1, i64::MAX, i64::MIN, i32::MAX as i64, 1 << 53];
        if self.chance(0.6) {
            self.pick(&edges)
        } else {
            self.rng.gen_range(-1000..100_000)
        }
    }

    /// A random JSON value of any shape, at most `depth` levels deep.
    pub fn value(&mut self, depth: usize) -> Value {
        let kinds = if depth == 0 { 5 } else { 7 };
        match self.below(kinds) {
            0 => Value::Null,
            1 => Value::Bool(self.chance(0.5)),
            2 => Value::from(self.int()),
            3 => match self.below(3) {
                0 => Value::from(self.rng.gen::<f64>() * 1e6 - 5e5),
                1 => Value::from(u64::MAX - self.rng.gen_range(0..3)),
                _ => Value::from(self.rng.gen::<u64>()),
            },
            4 => Value::String(self.string()),
            5 => Value::Array((0..self.below(6)).map(|_| self.value(depth - 1)).collect()),
            _ => {
                let mut map = Map::new();
                for _ in 0..self.below(6) {
                    let key = self.key(&[]);
                    map.insert(key, self.value(depth - 1));
                }
                Value::Object(map)
            }
        }
    }

    /// An object key: one of `known`, or something hostile.
    pub fn key(&mut self, known: &[&str]) -> String {
        if !known.is_empty() && self.chance(0.5) {
            return self.pick(known).to_string();
        }
        match self.below(4) {
            0 => self
                .pick(&["type", "id", "__proto__", "constructor", "", "TEXT"])
                .into(),
            _ => self.string(),
        }
    }

    /// Raw text for one JSON value slot: valid, edge, broken, deeply nested or huge.
    pub fn raw_value(&mut self) -> Vec<u8> {
        match self.below(10) {
            0..=2 => serde_json::to_vec(&self.value(3)).expect("values serialise"),
            3 | 4 => self.pick(EDGE_VALUES).as_bytes().to_vec(),
            5 | 6 => self.pick(BROKEN_VALUES).to_vec(),
            7 => {
                let depth = self.pick(&[129, 1000, 10_000]);
                let (open, close) = if self.chance(0.5) {
                    ("[", "]")
                } else {
                    ("{\"a\":", "}")
                };
                let closed = self.chance(0.7);
                let mut out = open.repeat(depth);
                if open == "[" {
                    out.push('1');
                } else {
                    out.push_str("null");
                }
                if closed {
                    out.push_str(&close.repeat(depth));
                }
                out.into_bytes()
            }
            8 => serde_json::to_vec(&Value::String(self.string())).expect("strings serialise"),
            _ => {
                // Long strings: under and over the 64 KiB body limit.
                let len = self.pick(&[5_000, 60_000, 70_000]);
                format!("\"{}\"", "y".repeat(len)).into_bytes()
            }
        }
    }

    /// Random bytes, sometimes biased towards JSON's punctuation.
    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max + 1);
        let jsonish = self.chance(0.5);
        (0..len)
            .map(|_| {
                if jsonish && self.chance(0.7) {
                    self.pick(b"{}[]\":,\\0e")
                } else {
                    self.rng.gen()
                }
            })
            .collect()
    }

    /// A query-string value as it goes on the wire: numbers on edges, percent-encoding junk
    /// (`%zz`, `%00`, overlong UTF-8), encoded unicode, huge values.
    pub fn query_value(&mut self) -> String {
        let junk = [
            "",
            "0",
            "1",
            "50",
            "100",
            "101",
            "-1",
            "-0",
            "+5",
            "%2B5",
            "%205",
            "5%20",
            "1.5",
            "1e2",
            "0x10",
            "00000000000000000000000000001",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "99999999999999999999999",
            "%zz",
            "%",
            "%%",
            "%2",
            "%00",
            "1%00",
            "%ff%fe",
            "%c0%80",
            "%e0%80%80",
            "%ed%a0%80",
            "%f4%90%80%80",
            "%D0%BF%D1%80",
            "%F0%9F%A6%80",
            "a+b",
            "%26",
            "%3D",
            "%3B",
            "%0d%0a",
            "null",
            "true",
            "NaN",
            "[]",
            "%5B%5D",
            "a%5Cb",
            "%25",
            "_",
            "%5F%25",
        ];
        match self.below(10) {
            0..=6 => self.pick(&junk).to_string(),
            7 => self.rng.gen::<i64>().to_string(),
            8 => percent_encode(&self.string()),
            _ => "9".repeat(self.pick(&[100, 5_000, 20_000])),
        }
    }

    /// A query string (without `?`) of 0..6 parameters drawn from `names` and junk, with
    /// repeats, empty names, missing `=` and odd separators.
    pub fn query(&mut self, names: &[&str]) -> String {
        let mut out = String::new();
        for i in 0..self.below(7) {
            if i > 0 || self.chance(0.1) {
                out.push_str(self.pick(&["&", "&", "&", "&&", ";"]));
            }
            let name = if self.chance(0.75) {
                self.pick(names).to_string()
            } else {
                self.pick(&["", "%zz", "%00", "limit%00", "LIMIT", "a[]", "=", "%3D"])
                    .to_string()
            };
            out.push_str(&name);
            match self.below(10) {
                0 => {}
                1 => out.push_str("=="),
                _ => {
                    out.push('=');
                    out.push_str(&self.query_value());
                }
            }
        }
        out
    }
}

/// Percent-encodes every byte outside the unreserved set.
pub fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A byte string for failure messages: printable ASCII as is, the rest escaped, long ones
/// cut in the middle.
pub fn show(bytes: &[u8]) -> String {
    let escaped: String = bytes.escape_ascii().to_string();
    if escaped.len() <= 400 {
        escaped
    } else {
        format!(
            "{} ...[{} bytes]... {}",
            &escaped[..200],
            bytes.len(),
            &escaped[escaped.len() - 100..]
        )
    }
}
