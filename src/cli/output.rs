//! Rendering for the CLI: tables by default, JSON or YAML on request.
use clap::ValueEnum;
use serde_json::Value;

use super::Kind;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

fn columns(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Sites => &[
            "id",
            "slug",
            "name",
            "status",
            "generation",
            "observed_generation",
            "state_version",
        ],
        Kind::Environments => &[
            "id",
            "slug",
            "environment_type",
            "status",
            "preview_url",
            "state_version",
        ],
        Kind::Nodes => &[
            "id",
            "name",
            "hostname",
            "ssh_port",
            "status",
            "is_local",
            "state_version",
        ],
        Kind::Domains => &[
            "id",
            "hostname",
            "environment_id",
            "tls_status",
            "state_version",
        ],
        Kind::Backups => &[
            "id",
            "environment_id",
            "backup_scope",
            "status",
            "storage_type",
            "retention_until",
        ],
        Kind::Jobs => &[
            "id",
            "job_type",
            "status",
            "resource_type",
            "attempt_count",
            "error_code",
            "created_at",
        ],
        Kind::Events => &[
            "created_at",
            "resource_type",
            "resource_id",
            "reason",
            "message",
        ],
        Kind::Tokens => &["id", "name", "created_at", "last_used_at", "revoked_at"],
        Kind::Promotions => &[
            "id",
            "source_environment_id",
            "promotion_preset",
            "status",
            "error_code",
            "created_at",
        ],
        Kind::Releases => &[
            "id",
            "source_type",
            "health_status",
            "current",
            "created_at",
            "notes",
        ],
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn render_list(kind: Kind, items: &Value, f: Format) -> String {
    match f {
        Format::Json => serde_json::to_string_pretty(items).unwrap_or_default(),
        Format::Yaml => serde_norway::to_string(items).unwrap_or_default(),
        Format::Table => {
            let cols = columns(kind);
            let rows: Vec<Vec<String>> = items
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|i| cols.iter().map(|c| cell(&i[*c])).collect())
                        .collect()
                })
                .unwrap_or_default();
            table(cols, &rows)
        }
    }
}

pub fn render_one(kind: Kind, item: &Value, f: Format) -> String {
    match f {
        Format::Table => render_list(kind, &Value::Array(vec![item.clone()]), Format::Table),
        other => render_list(kind, item, other),
    }
}

fn table(cols: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = cols.iter().map(|c| c.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            width[i] = width[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = width[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(cols.iter().map(|c| c.to_uppercase()).collect())];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn table_aligns_and_marks_nulls() {
        let items = json!([{ "id": "1", "slug": "a", "name": "A", "status": "active", "generation": 1, "observed_generation": 1, "state_version": 1 },
                           { "id": "22", "slug": "bb", "name": null, "status": "provisioning", "generation": 2, "observed_generation": 0, "state_version": 3 }]);
        let t = render_list(Kind::Sites, &items, Format::Table);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("ID  SLUG"));
        assert!(lines[2].contains("provisioning"));
        assert!(lines[2].contains(" - "));
    }

    #[test]
    fn yaml_and_json() {
        let v = json!({"id": "x"});
        assert!(render_one(Kind::Sites, &v, Format::Yaml).contains("id: x"));
        assert!(render_one(Kind::Sites, &v, Format::Json).contains("\"id\": \"x\""));
    }
}
