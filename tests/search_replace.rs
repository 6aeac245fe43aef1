//! The serialized-safe URL search-replace of the PHP helper (`pressluft_replace_in_value`, behind
//! `search-replace`), through its `replace-string` command, against a model written here: values
//! serialized in PHP's `serialize()` format by this file must come back with every occurrence of the
//! old URL replaced - also JSON-escaped (`http:\/\/...`) and URL-encoded, also in array keys, object
//! properties and serialized values nested in strings - with the `s:N:` byte lengths recomputed,
//! nothing else changed, still valid for PHP's `unserialize`, and the replacements counted.
//!
//! The property test draws its cases from a seeded generator (`rand`: `proptest` is a
//! dev-dependency of `reconcilers` only, not of this package). `SEARCH_REPLACE_SEED` and
//! `SEARCH_REPLACE_CASES` explore further; a failure prints the seed and the case.
//!
//! Needs `php` on PATH; without it the tests are skipped with a note on stderr.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use base64::Engine;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;

const OLD: &str = "http://old.example.test";
const NEW: &str = "https://new.example.test";

// ------------------------------------------------------------------ running the helper -----------

fn helper() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ansible/files/pressluft-helper.php")
}

fn php_available() -> bool {
    Command::new("php")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

macro_rules! require_php {
    () => {
        if !php_available() {
            eprintln!("search_replace: `php` is not on PATH, test skipped");
            return;
        }
    };
}

/// Runs `php script args...` with `stdin`, returns stdout; panics on a non-zero exit.
fn php(args: &[&str], stdin: &[u8]) -> Vec<u8> {
    let mut child = Command::new("php")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run php");
    // PHP reads all of stdin before it writes anything: no deadlock on large values.
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write to php");
    let out = child.wait_with_output().expect("wait for php");
    assert!(
        out.status.success(),
        "php {args:?} failed ({}): stdout {} stderr {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[derive(Debug)]
struct Replaced {
    value: Vec<u8>,
    replacements: u64,
}

fn replace_string_with(input: &[u8], old: &str, new: &str) -> Replaced {
    let helper = helper();
    let out = php(
        &[
            helper.to_str().expect("utf-8 path"),
            "replace-string",
            &format!("--old={old}"),
            &format!("--new={new}"),
        ],
        input,
    );
    let json: Value = serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!(
            "helper printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out)
        )
    });
    assert_eq!(json["ok"], true, "helper failed: {json}");
    let value = match (&json["value"], &json["value_base64"]) {
        (Value::String(s), _) => s.clone().into_bytes(),
        (Value::Null, Value::String(b)) => base64::engine::general_purpose::STANDARD
            .decode(b)
            .expect("value_base64"),
        _ => panic!("no value in {json}"),
    };
    let replacements = json["replacements"].as_u64().expect("replacements");
    Replaced {
        value,
        replacements,
    }
}

fn replace_string(input: &str) -> Replaced {
    replace_string_with(input.as_bytes(), OLD, NEW)
}

/// For each value, whether PHP's `unserialize` accepts it (one php process for all).
fn php_unserializes(values: &[&str]) -> Vec<bool> {
    const SCRIPT: &str = r#"
        $out = array();
        foreach (json_decode(stream_get_contents(STDIN), true) as $v) {
            $out[] = $v === 'b:0;' || @unserialize($v, array('allowed_classes' => false)) !== false;
        }
        echo json_encode($out);
    "#;
    let input = serde_json::to_vec(values).expect("json");
    let out = php(&["-r", SCRIPT], &input);
    serde_json::from_slice(&out).expect("php answer")
}

// ------------------------------------------------------------------ PHP values and serialize() ---

#[derive(Clone, Debug)]
enum Php {
    Null,
    Bool(bool),
    Int(i64),
    Str(Text),
    Array(Vec<(Key, Php)>),
    /// Class name and properties: unserialized as `__PHP_Incomplete_Class` by the helper.
    Object(String, Vec<(Key, Php)>),
}

#[derive(Clone, Debug)]
enum Text {
    Plain(String),
    /// A serialized value stored in a string (with surrounding whitespace, which WordPress'
    /// maybe_unserialize() tolerates).
    Serialized(String, Box<Php>, String),
}

#[derive(Clone, Debug)]
enum Key {
    Int(i64),
    Str(String),
}

fn ser_str(s: &str, out: &mut String) {
    // PHP counts bytes, not characters.
    out.push_str(&format!("s:{}:\"{s}\";", s.len()));
}

fn ser_members(members: &[(Key, Php)], out: &mut String) {
    out.push_str(&format!("{}:{{", members.len()));
    for (key, value) in members {
        match key {
            Key::Int(i) => out.push_str(&format!("i:{i};")),
            Key::Str(s) => ser_str(s, out),
        }
        ser_into(value, out);
    }
    out.push('}');
}

fn ser_into(value: &Php, out: &mut String) {
    match value {
        Php::Null => out.push_str("N;"),
        Php::Bool(b) => out.push_str(if *b { "b:1;" } else { "b:0;" }),
        Php::Int(i) => out.push_str(&format!("i:{i};")),
        Php::Str(text) => ser_str(&text.to_text(), out),
        Php::Array(members) => {
            out.push_str("a:");
            ser_members(members, out);
        }
        Php::Object(class, members) => {
            out.push_str(&format!("O:{}:\"{class}\":", class.len()));
            ser_members(members, out);
        }
    }
}

fn serialize(value: &Php) -> String {
    let mut out = String::new();
    ser_into(value, &mut out);
    out
}

impl Text {
    fn to_text(&self) -> String {
        match self {
            Text::Plain(s) => s.clone(),
            Text::Serialized(lead, inner, trail) => format!("{lead}{}{trail}", serialize(inner)),
        }
    }
}

// ------------------------------------------------------------------ the model --------------------

fn json_escaped(s: &str) -> String {
    s.replace('/', "\\/")
}

/// PHP's rawurlencode(): everything but RFC 3986 unreserved characters as %XX.
fn rawurlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

struct Model {
    /// (searched form, replacement), longest first.
    forms: Vec<(String, String)>,
}

impl Model {
    fn new(old: &str, new: &str) -> Model {
        let mut forms: Vec<(String, String)> = Vec::new();
        for (f, r) in [
            (old.to_string(), new.to_string()),
            (json_escaped(old), json_escaped(new)),
            (rawurlencode(old), rawurlencode(new)),
        ] {
            if !forms.iter().any(|(g, _)| *g == f) {
                forms.push((f, r));
            }
        }
        forms.sort_by_key(|(f, _)| std::cmp::Reverse(f.len()));
        Model { forms }
    }

    /// One left-to-right pass: a replacement is never searched again.
    fn text(&self, s: &str, count: &mut u64) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        'scan: while i < bytes.len() {
            for (form, replacement) in &self.forms {
                if bytes[i..].starts_with(form.as_bytes()) {
                    out.extend_from_slice(replacement.as_bytes());
                    i += form.len();
                    *count += 1;
                    continue 'scan;
                }
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8(out).expect("only ASCII forms are replaced")
    }

    fn members(&self, members: &[(Key, Php)], count: &mut u64) -> Vec<(Key, Php)> {
        members
            .iter()
            .map(|(k, v)| {
                let k = match k {
                    Key::Int(i) => Key::Int(*i),
                    Key::Str(s) => Key::Str(self.text(s, count)),
                };
                (k, self.value(v, count))
            })
            .collect()
    }

    fn value(&self, value: &Php, count: &mut u64) -> Php {
        match value {
            Php::Null | Php::Bool(_) | Php::Int(_) => value.clone(),
            Php::Str(Text::Plain(s)) => Php::Str(Text::Plain(self.text(s, count))),
            Php::Str(Text::Serialized(lead, inner, trail)) => Php::Str(Text::Serialized(
                lead.clone(),
                Box::new(self.value(inner, count)),
                trail.clone(),
            )),
            Php::Array(m) => Php::Array(self.members(m, count)),
            Php::Object(class, m) => Php::Object(class.clone(), self.members(m, count)),
        }
    }
}

// ------------------------------------------------------------------ the generator ----------------

/// PHP's trim() character set.
fn php_trim(s: &str) -> &str {
    s.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r' | '\0' | '\x0B'))
}

/// Plain text never looks like serialized data (the helper would take it for malformed
/// serialized text and leave it alone): every serialized form has ':' as its second byte.
fn plain(s: String) -> String {
    let t = php_trim(&s).as_bytes();
    if t == b"N;" || (t.len() >= 2 && t[1] == b':') {
        format!("~{s}")
    } else {
        s
    }
}

fn pick<'a, T: ?Sized>(rng: &mut StdRng, items: &[&'a T]) -> &'a T {
    items[rng.gen_range(0..items.len())]
}

fn word(rng: &mut StdRng, alphabet: &[char]) -> String {
    (0..rng.gen_range(1..8))
        .map(|_| alphabet[rng.gen_range(0..alphabet.len())])
        .collect()
}

const ASCII: &[char] = &[
    'a', 'b', 'e', 'o', 'r', 's', 't', 'x', 'Z', '0', '7', ' ', '-', '_', '.', '/',
];
const UNICODE: &[char] = &[
    'ä', 'ö', 'ß', 'é', 'ñ', 'Ω', '€', '中', '文', 'ض', '😀', '🎉', '\u{200b}', '\u{0301}', 'a',
];

fn fragment(rng: &mut StdRng) -> String {
    match rng.gen_range(0..16) {
        0..=2 => OLD.to_string(),
        3 => json_escaped(OLD),
        4 => rawurlencode(OLD),
        5 => format!("{OLD}/wp-content/uploads/2024/{}.jpg", rng.gen_range(1..99)),
        6 => format!(
            r#"{{"url":"{}\/page\/","n":{}}}"#,
            json_escaped(OLD),
            rng.gen_range(0..9)
        ),
        // Near misses: nothing to replace.
        7 => pick(
            rng,
            &[
                "http://old.example.tes",
                "HTTP://OLD.EXAMPLE.TEST",
                "http:/old.example.test",
                "http%3a%2f%2fold.example.test",
                "http:\\\\/\\\\/old.example.test",
                "ttp://old.example.test",
            ],
        )
        .to_string(),
        // Serialization syntax inside strings: lengths, not quotes, delimit strings.
        8 => pick(
            rng,
            &[
                "\";s:5:\"",
                "s:23:\"",
                "a:1:{",
                "}",
                ";",
                "\"",
                "\\",
                ":",
                "i:0;",
                "\";}",
            ],
        )
        .to_string(),
        9 | 10 => word(rng, UNICODE),
        11 | 12 => word(rng, ASCII),
        13 => pick(rng, &[" ", "\n", "\t", "\r\n"]).to_string(),
        14 => NEW.to_string(),
        _ => "\0".to_string(),
    }
}

fn text(rng: &mut StdRng, max_fragments: usize) -> String {
    let n = rng.gen_range(0..=max_fragments);
    plain((0..n).map(|_| fragment(rng)).collect())
}

fn int(rng: &mut StdRng) -> i64 {
    match rng.gen_range(0..5) {
        0 => 0,
        1 | 2 => rng.gen_range(-1000..1000),
        3 => rng.gen(),
        _ => *pick(rng, &[&i64::MAX, &i64::MIN, &-1]),
    }
}

const CLASSES: &[&str] = &[
    "stdClass",
    "WP_Post",
    "Unknown_Plugin_Settings",
    "Vendor\\Package\\Link",
];

fn members(rng: &mut StdRng, depth: u32, object: bool) -> Vec<(Key, Php)> {
    let n = rng.gen_range(0..5);
    (0..n)
        .map(|i| {
            let key = if object {
                Key::Str(match rng.gen_range(0..4) {
                    0 => "url".to_string(),
                    1 => "\0*\0link".to_string(),
                    2 => "\0Unknown_Plugin_Settings\0target".to_string(),
                    _ => format!("p{i}{}", text(rng, 2)),
                })
            } else {
                match rng.gen_range(0..4) {
                    0 | 1 => Key::Int(i as i64),
                    2 => Key::Int(int(rng)),
                    _ => Key::Str(text(rng, 3)),
                }
            };
            (key, value(rng, depth + 1))
        })
        .collect()
}

/// A random PHP value; arrays, objects and serialized strings nest up to depth 3.
fn value(rng: &mut StdRng, depth: u32) -> Php {
    let nest = depth < 3;
    match rng.gen_range(0..16) {
        0 => Php::Null,
        1 => Php::Bool(rng.gen()),
        2 | 3 => Php::Int(int(rng)),
        4..=8 => Php::Str(Text::Plain(text(rng, 6))),
        9 | 10 if nest => {
            let (lead, trail) = if rng.gen_ratio(1, 5) {
                (
                    pick(rng, &["", " ", "\n"]).to_string(),
                    pick(rng, &["", " ", "\r\n"]).to_string(),
                )
            } else {
                (String::new(), String::new())
            };
            Php::Str(Text::Serialized(
                lead,
                Box::new(value(rng, depth + 1)),
                trail,
            ))
        }
        11..=14 if nest => Php::Array(members(rng, depth, false)),
        15 if nest => Php::Object(pick(rng, CLASSES).to_string(), members(rng, depth, true)),
        _ => Php::Str(Text::Plain(text(rng, 4))),
    }
}

#[derive(Debug)]
enum Case {
    /// A serialized value, as WordPress stores options and meta.
    Serialized(Php),
    /// A column holding plain text.
    Plain(String),
}

impl Case {
    fn input(&self) -> String {
        match self {
            Case::Serialized(v) => serialize(v),
            Case::Plain(s) => s.clone(),
        }
    }

    fn expected(&self, model: &Model) -> (String, u64) {
        let mut count = 0;
        let out = match self {
            Case::Serialized(v) => serialize(&model.value(v, &mut count)),
            Case::Plain(s) => model.text(s, &mut count),
        };
        (out, count)
    }
}

fn case(rng: &mut StdRng) -> Case {
    if rng.gen_ratio(1, 8) {
        Case::Plain(text(rng, 10))
    } else if rng.gen_ratio(1, 2) {
        // Mostly containers at the top, like options and meta values.
        Case::Serialized(Php::Array(members(rng, 0, false)))
    } else {
        Case::Serialized(value(rng, 0))
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ------------------------------------------------------------------ the property -----------------

#[test]
fn random_nested_values_keep_valid_serialization_and_every_occurrence_is_replaced() {
    require_php!();
    let seed: u64 = env_or("SEARCH_REPLACE_SEED", 0x5EED_2026);
    let n: usize = env_or("SEARCH_REPLACE_CASES", 160);
    let mut rng = StdRng::seed_from_u64(seed);
    let cases: Vec<Case> = (0..n).map(|_| case(&mut rng)).collect();
    let inputs: Vec<String> = cases.iter().map(Case::input).collect();

    // One helper process per case (its CLI is the contract), a few at a time.
    let results: Mutex<Vec<Option<Replaced>>> = Mutex::new((0..n).map(|_| None).collect());
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism()
        .map(|p| p.get())
        .unwrap_or(2)
        .clamp(2, 4);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let r = replace_string(&inputs[i]);
                results.lock().unwrap()[i] = Some(r);
            });
        }
    });
    let results: Vec<Replaced> = results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|r| r.expect("every case ran"))
        .collect();

    let model = Model::new(OLD, NEW);
    let mut failures = Vec::new();
    let mut total = 0;
    let mut serialized = Vec::new();
    for (i, (case, got)) in cases.iter().zip(&results).enumerate() {
        let (expected, count) = case.expected(&model);
        total += count;
        let value = String::from_utf8_lossy(&got.value);
        if got.value != expected.as_bytes() || got.replacements != count {
            failures.push(format!(
                "case {i}: {case:?}\n  input:    {:?}\n  expected: {expected:?} ({count} replacements)\n  got:      {value:?} ({} replacements)",
                inputs[i], got.replacements
            ));
        }
        if matches!(case, Case::Serialized(_)) {
            serialized.push(i);
        }
    }

    // The inputs (this file's serializer) and the outputs are serialized data PHP accepts.
    let mut check: Vec<&str> = Vec::new();
    for &i in &serialized {
        check.push(&inputs[i]);
        check.push(std::str::from_utf8(&results[i].value).expect("utf-8 output"));
    }
    let valid = php_unserializes(&check);
    for (j, &i) in serialized.iter().enumerate() {
        if !valid[2 * j] {
            failures.push(format!(
                "case {i}: the test's own serialization is invalid: {:?}",
                inputs[i]
            ));
        }
        if !valid[2 * j + 1] {
            failures.push(format!(
                "case {i}: output does not unserialize: {:?}",
                String::from_utf8_lossy(&results[i].value)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} cases failed (SEARCH_REPLACE_SEED={seed}):\n{}",
        failures.len(),
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The generator does produce occurrences (the property is not vacuous).
    assert!(total > n as u64, "only {total} occurrences in {n} cases");
}

// ------------------------------------------------------------------ examples ---------------------

#[test]
fn widget_text_option_keeps_its_lengths() {
    require_php!();
    let text = format!(
        "<p>Über uns: <a href=\"{OLD}/about/\">About</a></p>\n<img src=\"{OLD}/wp-content/uploads/logo.png\" alt=\"Grüße\">"
    );
    let widget = Php::Array(vec![
        (
            Key::Int(2),
            Php::Array(vec![
                (
                    Key::Str("title".into()),
                    Php::Str(Text::Plain("Hello".into())),
                ),
                (Key::Str("text".into()), Php::Str(Text::Plain(text.clone()))),
                (Key::Str("filter".into()), Php::Bool(true)),
                (Key::Str("visual".into()), Php::Bool(true)),
            ]),
        ),
        (Key::Str("_multiwidget".into()), Php::Int(1)),
    ]);
    let input = serialize(&widget);
    assert!(input.contains(&format!("s:{}:\"<p>", text.len())));
    let got = replace_string(&input);
    let new_text = text.replace(OLD, NEW);
    let expected = format!(
        "a:2:{{i:2;a:4:{{s:5:\"title\";s:5:\"Hello\";s:4:\"text\";s:{}:\"{new_text}\";s:6:\"filter\";b:1;s:6:\"visual\";b:1;}}s:12:\"_multiwidget\";i:1;}}",
        new_text.len()
    );
    assert_eq!(String::from_utf8(got.value).unwrap(), expected);
    assert_eq!(got.replacements, 2);
}

#[test]
fn objects_of_unknown_classes_are_rewritten_in_their_serialized_form() {
    require_php!();
    let got = replace_string(r#"O:8:"stdClass":1:{s:3:"url";s:23:"http://old.example.test";}"#);
    assert_eq!(
        String::from_utf8(got.value).unwrap(),
        r#"O:8:"stdClass":1:{s:3:"url";s:24:"https://new.example.test";}"#
    );
    assert_eq!(got.replacements, 1);

    // Protected and private properties, a class that does not exist, an object in a nested
    // serialized string, and a reference.
    let input = "a:3:{s:4:\"link\";O:12:\"Unknown_Link\":2:{s:6:\"\0*\0url\";s:28:\"http://old.example.test/page\";s:18:\"\0Unknown_Link\0text\";s:4:\"Home\";}s:6:\"nested\";s:60:\"O:8:\"stdClass\":1:{s:3:\"url\";s:23:\"http://old.example.test\";}\";s:4:\"same\";R:3;}";
    let got = replace_string(input);
    let expected = "a:3:{s:4:\"link\";O:12:\"Unknown_Link\":2:{s:6:\"\0*\0url\";s:29:\"https://new.example.test/page\";s:18:\"\0Unknown_Link\0text\";s:4:\"Home\";}s:6:\"nested\";s:61:\"O:8:\"stdClass\":1:{s:3:\"url\";s:24:\"https://new.example.test\";}\";s:4:\"same\";R:3;}";
    assert_eq!(String::from_utf8(got.value).unwrap(), expected);
    assert_eq!(got.replacements, 2);
    assert_eq!(php_unserializes(&[input, expected]), vec![true, true]);

    let got = replace_string(r#"a:2:{i:0;s:23:"http://old.example.test";i:1;R:2;}"#);
    assert_eq!(
        String::from_utf8(got.value).unwrap(),
        r#"a:2:{i:0;s:24:"https://new.example.test";i:1;R:2;}"#
    );
}

#[test]
fn plain_text_json_and_url_encoded_forms() {
    require_php!();
    let got = replace_string("Visit http://old.example.test/shop or http://old.example.test.");
    assert_eq!(
        String::from_utf8(got.value).unwrap(),
        "Visit https://new.example.test/shop or https://new.example.test."
    );
    assert_eq!(got.replacements, 2);

    let json = r#"{"home":"http:\/\/old.example.test","logo":"http:\/\/old.example.test\/wp-content\/a.png","n":1}"#;
    let got = replace_string(json);
    assert_eq!(
        String::from_utf8(got.value).unwrap(),
        r#"{"home":"https:\/\/new.example.test","logo":"https:\/\/new.example.test\/wp-content\/a.png","n":1}"#
    );
    assert_eq!(got.replacements, 2);

    let got = replace_string("redirect_to=http%3A%2F%2Fold.example.test%2Fwp-admin%2F");
    assert_eq!(
        String::from_utf8(got.value).unwrap(),
        "redirect_to=https%3A%2F%2Fnew.example.test%2Fwp-admin%2F"
    );
    assert_eq!(got.replacements, 1);

    let got = replace_string("nothing to see at http://old.example.org");
    assert_eq!(
        String::from_utf8(got.value).unwrap(),
        "nothing to see at http://old.example.org"
    );
    assert_eq!(got.replacements, 0);
}

#[test]
fn malformed_serialized_text_is_left_alone() {
    require_php!();
    for input in [
        // Wrong length.
        r#"a:1:{s:3:"url";s:30:"http://old.example.test";}"#,
        // Truncated.
        r#"a:2:{s:3:"url";s:23:"http://old.example.test";"#,
        // Element count does not match.
        r#"a:2:{s:3:"url";s:23:"http://old.example.test";}"#,
        // Top-level string with a wrong length.
        r#"s:22:"http://old.example.test";"#,
    ] {
        let got = replace_string(input);
        assert_eq!(String::from_utf8(got.value).unwrap(), input);
        assert_eq!(got.replacements, 0, "{input}");
    }
}

#[test]
fn surrounding_whitespace_multibyte_and_non_utf8_bytes() {
    require_php!();
    let got = replace_string("\n a:1:{i:0;s:31:\"Grüße http://old.example.test\";} \n");
    assert_eq!(
        String::from_utf8(got.value).unwrap(),
        "\n a:1:{i:0;s:32:\"Grüße https://new.example.test\";} \n"
    );
    assert_eq!(got.replacements, 1);

    // Binary column data: the helper answers in base64; lengths are byte lengths.
    let mut input = b"a:1:{i:0;s:25:\"\xff ".to_vec();
    input.extend_from_slice(OLD.as_bytes());
    input.extend_from_slice(b"\";}");
    let got = replace_string_with(&input, OLD, NEW);
    let mut expected = b"a:1:{i:0;s:26:\"\xff ".to_vec();
    expected.extend_from_slice(NEW.as_bytes());
    expected.extend_from_slice(b"\";}");
    assert_eq!(got.value, expected);
    assert_eq!(got.replacements, 1);
}

#[test]
fn a_replacement_containing_the_old_url_is_not_replaced_again() {
    require_php!();
    let old = "https://example.test";
    let new = "https://example.test/blog";
    let input = r#"a:2:{i:0;s:20:"https://example.test";i:1;s:25:"https://example.test/page";}"#;
    let got = replace_string_with(input.as_bytes(), old, new);
    assert_eq!(
        String::from_utf8(got.value).unwrap(),
        r#"a:2:{i:0;s:25:"https://example.test/blog";i:1;s:30:"https://example.test/blog/page";}"#
    );
    assert_eq!(got.replacements, 2);
}
