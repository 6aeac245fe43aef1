//! Redaction of secret values from Ansible output.
//!
//! Playbooks mark secret-touching tasks `no_log: true` (spec §8.6), but a single forgotten flag or a
//! module echoing its arguments in an error would leak a password into the job log, which operators
//! read through the API. So the runner also scrubs every known secret value from every line before
//! anything else sees it. Besides the raw value it scrubs the JSON-escaped form (Ansible prints
//! results as JSON/YAML, where `"` or `\n` inside a secret appear escaped) and, for multi-line
//! secrets such as private keys, each of their lines (output is processed line by line).

/// What replaces a secret in the log.
pub const MASK: &str = "********";

/// A set of secret strings to scrub, longest first so that a secret containing another one is
/// masked whole.
#[derive(Clone, Default)]
pub struct Redactor {
    needles: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} needles)", self.needles.len())
    }
}

impl Redactor {
    pub fn new<S: AsRef<str>>(secrets: &[S]) -> Self {
        let mut needles: Vec<String> = Vec::new();
        for s in secrets.iter().map(AsRef::as_ref) {
            if s.is_empty() {
                continue;
            }
            needles.push(s.to_string());
            if let Ok(json) = serde_json::to_string(s) {
                let escaped = &json[1..json.len() - 1];
                if escaped != s {
                    needles.push(escaped.to_string());
                }
            }
            if s.contains('\n') {
                needles.extend(
                    s.lines()
                        .map(|l| l.trim())
                        .filter(|l| !l.is_empty())
                        .map(str::to_string),
                );
            }
        }
        needles.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        needles.dedup();
        Self { needles }
    }

    /// The line with every secret replaced by [`MASK`].
    pub fn redact(&self, line: &str) -> String {
        let mut out = line.to_string();
        for n in &self.needles {
            if out.contains(n.as_str()) {
                out = out.replace(n.as_str(), MASK);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_raw_escaped_and_multiline_secrets() {
        let r = Redactor::new(&["hunter2", "", "a\"b", "line-one-secret\nline-two-secret"]);
        assert_eq!(
            r.redact("pw=hunter2 and hunter2"),
            "pw=******** and ********"
        );
        assert_eq!(r.redact(r#"{"p": "a\"b"}"#), r#"{"p": "********"}"#);
        assert_eq!(r.redact("  line-two-secret"), "  ********");
        assert_eq!(
            r.redact(r#""k": "line-one-secret\nline-two-secret""#),
            r#""k": "********""#
        );
        assert_eq!(r.redact("nothing here"), "nothing here");
    }

    #[test]
    fn longest_secret_wins() {
        let r = Redactor::new(&["abc", "abcdef"]);
        assert_eq!(r.redact("xabcdefx"), "x********x");
    }
}
