//! Domain validation in one place: what a name, slug or hostname may be. The OpenAPI types check
//! shape (required fields, types, enums, unknown fields); these rules check meaning.
use super::error::ApiError;

pub type Result<T> = std::result::Result<T, ApiError>;

/// A display name: 1–200 characters, no control characters, not only white space.
pub fn name(field: &str, v: &str) -> Result<String> {
    let t = v.trim();
    if t.is_empty() {
        return Err(ApiError::invalid(
            field,
            format!("{field} must not be empty"),
        ));
    }
    if t.chars().count() > 200 {
        return Err(ApiError::invalid(
            field,
            format!("{field} is longer than 200 characters"),
        ));
    }
    if t.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(t.to_string())
}

/// A slug: a DNS label (lower-case letters, digits and inner hyphens, 1–63 characters), because
/// slugs end up in paths, database names and host names.
pub fn slug(field: &str, v: &str) -> Result<String> {
    let ok = !v.is_empty()
        && v.len() <= 63
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !v.starts_with('-')
        && !v.ends_with('-');
    if ok {
        Ok(v.to_string())
    } else {
        Err(ApiError::invalid(
            field,
            format!("{field} must be 1-63 lower-case letters, digits or inner hyphens"),
        ))
    }
}

/// A fully qualified host name for a domain (RFC 1123, at least two labels, lower case).
pub fn domain_hostname(field: &str, v: &str) -> Result<String> {
    let h = v.trim_end_matches('.').to_ascii_lowercase();
    if !is_hostname(&h) || !h.contains('.') || h.parse::<std::net::IpAddr>().is_ok() {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be a fully qualified host name such as www.example.com"),
        ));
    }
    Ok(h)
}

/// A domain's host name: a fully qualified, lower-case DNS name (not an IP address); a leading
/// `*.` label only where wildcards are allowed.
pub fn domain_name(field: &str, v: &str, wildcard_allowed: bool) -> Result<String> {
    if v.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be lower case (got '{v}')"),
        ));
    }
    if let Some(rest) = v.strip_prefix("*.") {
        if !wildcard_allowed {
            return Err(ApiError::invalid(
                field,
                "wildcard host names need tls_mode custom (a wildcard certificate cannot be \
                 obtained through HTTP-01)",
            ));
        }
        return domain_hostname(field, rest).map(|h| format!("*.{h}"));
    }
    domain_hostname(field, v)
}

/// A node address: a host name or an IP address.
pub fn node_address(field: &str, v: &str) -> Result<String> {
    if v.parse::<std::net::IpAddr>().is_ok() {
        return Ok(v.to_string());
    }
    let h = v.to_ascii_lowercase();
    if is_hostname(&h) {
        Ok(h)
    } else {
        Err(ApiError::invalid(
            field,
            format!("{field} must be a host name or an IP address"),
        ))
    }
}

pub fn ip(field: &str, v: &str) -> Result<String> {
    v.parse::<std::net::IpAddr>()
        .map(|a| a.to_string())
        .map_err(|_| ApiError::invalid(field, format!("{field} must be an IP address")))
}

pub fn port(field: &str, v: i64) -> Result<i64> {
    if (1..=65535).contains(&v) {
        Ok(v)
    } else {
        Err(ApiError::invalid(
            field,
            format!("{field} must be between 1 and 65535"),
        ))
    }
}

/// A Unix user name Ansible logs in as.
pub fn unix_user(field: &str, v: &str) -> Result<String> {
    let ok = !v.is_empty()
        && v.len() <= 32
        && v.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(v.to_string())
    } else {
        Err(ApiError::invalid(
            field,
            format!("{field} must be a valid Unix user name"),
        ))
    }
}

/// A path id must be a UUID (400 `bad_request` otherwise, before any lookup).
pub fn uuid(field: &str, v: &str) -> Result<String> {
    uuid::Uuid::parse_str(v)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| ApiError::BadRequest(format!("{field} must be a UUID")))
}

pub fn email(field: &str, v: &str) -> Result<String> {
    let v = v.trim();
    let ok = v.len() <= 254
        && v.split_once('@').is_some_and(|(l, d)| {
            !l.is_empty()
                && is_hostname(&d.to_ascii_lowercase())
                && !l.chars().any(|c| c.is_whitespace() || c.is_control())
        });
    if ok {
        Ok(v.to_ascii_lowercase())
    } else {
        Err(ApiError::invalid(
            field,
            format!("{field} must be an e-mail address"),
        ))
    }
}

pub fn timestamp(field: &str, v: &str) -> Result<String> {
    crate::clock::parse(v)
        .map(crate::clock::format)
        .ok_or_else(|| ApiError::invalid(field, format!("{field} must be an RFC 3339 date-time")))
}

fn is_hostname(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 253
        && h.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        for ok in ["a", "my-site", "site1", "a-b-c"] {
            assert!(slug("slug", ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "A",
            "a_b",
            "../etc",
            "a;rm -rf",
            "a'--",
            &"a".repeat(64),
        ] {
            assert!(slug("slug", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hostnames() {
        assert_eq!(
            domain_hostname("h", "WWW.Example.com.").unwrap(),
            "www.example.com"
        );
        for bad in [
            "localhost",
            "1.2.3.4",
            "a..b",
            "exa mple.com",
            "ex$(id).com",
            "-a.com",
        ] {
            assert!(domain_hostname("h", bad).is_err(), "{bad}");
        }
        assert!(node_address("h", "10.0.0.5").is_ok());
        assert!(node_address("h", "localhost").is_ok());
        assert!(node_address("h", "a;b").is_err());
    }

    #[test]
    fn names() {
        assert_eq!(name("name", "  My Site ").unwrap(), "My Site");
        assert!(name("name", "   ").is_err());
        assert!(name("name", "a\u{0}b").is_err());
        assert!(name("name", &"x".repeat(201)).is_err());
    }

    #[test]
    fn users_and_emails() {
        assert!(unix_user("u", "root").is_ok());
        assert!(unix_user("u", "Root").is_err());
        assert!(unix_user("u", "a b").is_err());
        assert_eq!(
            email("e", "Admin@Example.com").unwrap(),
            "admin@example.com"
        );
        assert!(email("e", "nope").is_err());
    }
}
