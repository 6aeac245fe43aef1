//! Splitting a text into documents: multi-document YAML (`---`), a JSON object, a JSON array of
//! objects, or a `List` (`kind: List` with `items`). YAML is a superset of JSON, so one parser
//! reads both; values YAML has and JSON has not (non-string keys, tags) are refused.
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::{codes, Problem};

/// The documents of a text, in order; empty documents (a leading `---`, comments only) are
/// skipped. A syntax error stops the reading (nothing after it can be trusted) and is the only
/// problem reported for that text.
pub fn parse(text: &str) -> Result<Vec<Value>, Vec<Problem>> {
    let mut docs = Vec::new();
    let mut problems = Vec::new();
    for (raw_index, de) in serde_norway::Deserializer::from_str(text).enumerate() {
        let value = match Strict::deserialize(de) {
            Ok(Strict(v)) => v,
            Err(e) => {
                problems.push(Problem::new(
                    docs.len(),
                    "",
                    codes::INVALID_SYNTAX,
                    format!("document {} is not valid YAML or JSON: {e}", raw_index + 1),
                ));
                break;
            }
        };
        match value {
            Value::Null => {}
            Value::Array(items) => docs.extend(items),
            Value::Object(ref m) if m.get("kind").and_then(Value::as_str) == Some("List") => {
                match m.get("items") {
                    Some(Value::Array(items)) => docs.extend(items.iter().cloned()),
                    _ => problems.push(Problem::new(
                        docs.len(),
                        "items",
                        codes::MISSING_FIELD,
                        "a List needs `items`: an array of documents",
                    )),
                }
            }
            other => docs.push(other),
        }
    }
    if problems.is_empty() {
        Ok(docs)
    } else {
        Err(problems)
    }
}

/// A JSON value read strictly: a key given twice in one mapping is an error (plain
/// `serde_json::Value` keeps the last one silently, which would hide a mistake).
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON-compatible value")
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("numbers must be finite"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let Strict(v) = map.next_value()?;
            if out.insert(k.clone(), v).is_some() {
                return Err(de::Error::custom(format!("key '{k}' is given twice")));
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_documents_json_arrays_and_lists() {
        let y = "---\n# nothing\n---\nkind: Site\n---\nkind: Node\n...\n";
        let d = parse(y).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d[1]["kind"], "Node");

        let j = r#"[{"kind":"Site"},{"kind":"Node"},{"kind":"Domain"}]"#;
        assert_eq!(parse(j).unwrap().len(), 3);

        let l = r#"{"kind":"List","items":[{"kind":"Site"}]}"#;
        assert_eq!(parse(l).unwrap()[0]["kind"], "Site");
        assert_eq!(parse("").unwrap().len(), 0);
    }

    #[test]
    fn syntax_errors_stop_with_one_problem() {
        let p = parse("kind: Site\n---\nspec: [unclosed\n---\nkind: Node\n").unwrap_err();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].code, codes::INVALID_SYNTAX);
        assert_eq!(p[0].document, 1);
        assert!(parse("{kind: Site, kind: Node}").is_err(), "duplicate keys");
    }
}
