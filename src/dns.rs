//! "Does this host name point at the node?" — asked before any ACME request, so that a domain
//! whose DNS is not set up yet costs no certificate order (and no rate limit).
//!
//! With the `dns_resolver` setting (`IP:PORT`) the question goes straight to that server as a
//! minimal A/AAAA query over UDP (test DNS servers, split-horizon setups); without it, to the
//! system resolver.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;

const TIMEOUT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub addresses: Vec<IpAddr>,
    /// Why nothing was found, when nothing was.
    pub error: Option<String>,
}

impl Answer {
    /// Whether `node` is among the addresses; the human detail either way.
    pub fn verdict(&self, host: &str, node: Option<&str>) -> (bool, String) {
        let listed = if self.addresses.is_empty() {
            self.error
                .clone()
                .unwrap_or_else(|| "no A/AAAA record".into())
        } else {
            self.addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        let Some(node) = node.and_then(|n| n.parse::<IpAddr>().ok()) else {
            return (
                false,
                format!("{host} resolves to {listed}; the node has no public IP to compare with"),
            );
        };
        if self.addresses.contains(&node) {
            (true, format!("{host} resolves to {listed} (the node)"))
        } else {
            (
                false,
                format!(
                    "{host} resolves to {listed}, not to the node's {node}: create an A record \
                     pointing {host} to {node}, then wait for DNS to propagate"
                ),
            )
        }
    }
}

/// The A and AAAA addresses of `host`.
pub async fn resolve(host: &str, resolver: Option<SocketAddr>) -> Answer {
    match resolver {
        Some(server) => {
            let mut addresses = Vec::new();
            let mut error = None;
            for qtype in [1u16, 28] {
                match query(server, host, qtype).await {
                    Ok(mut a) => addresses.append(&mut a),
                    Err(e) => error = Some(e),
                }
            }
            Answer {
                error: addresses.is_empty().then_some(error).flatten(),
                addresses,
            }
        }
        None => match tokio::time::timeout(TIMEOUT, tokio::net::lookup_host((host, 0))).await {
            Ok(Ok(it)) => Answer {
                addresses: it.map(|a| a.ip()).collect(),
                error: None,
            },
            Ok(Err(e)) => Answer {
                addresses: vec![],
                error: Some(format!("lookup failed: {e}")),
            },
            Err(_) => Answer {
                addresses: vec![],
                error: Some("lookup timed out".into()),
            },
        },
    }
}

async fn query(server: SocketAddr, host: &str, qtype: u16) -> Result<Vec<IpAddr>, String> {
    let id: u16 = rand::random();
    let packet = encode_query(id, host, qtype)?;
    let bind: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
    sock.connect(server).await.map_err(|e| e.to_string())?;
    sock.send(&packet).await.map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1500];
    let n = tokio::time::timeout(TIMEOUT, sock.recv(&mut buf))
        .await
        .map_err(|_| format!("no answer from {server}"))?
        .map_err(|e| e.to_string())?;
    decode_answer(&buf[..n], id, qtype)
}

/// A standard query with recursion desired for one name.
pub fn encode_query(id: u16, host: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut p = Vec::with_capacity(32 + host.len());
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in host.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err(format!("bad host name {host}"));
        }
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    Ok(p)
}

/// The addresses of type `qtype` in the answer section.
pub fn decode_answer(b: &[u8], id: u16, qtype: u16) -> Result<Vec<IpAddr>, String> {
    let short = || "truncated DNS answer".to_string();
    if b.len() < 12 || u16::from_be_bytes([b[0], b[1]]) != id {
        return Err("unexpected DNS answer".into());
    }
    let rcode = b[3] & 0x0f;
    if rcode == 3 {
        return Ok(vec![]); // NXDOMAIN
    }
    if rcode != 0 {
        return Err(format!("DNS error code {rcode}"));
    }
    let qd = u16::from_be_bytes([b[4], b[5]]) as usize;
    let an = u16::from_be_bytes([b[6], b[7]]) as usize;
    let mut i = 12;
    for _ in 0..qd {
        i = skip_name(b, i).ok_or_else(short)? + 4;
    }
    let mut out = Vec::new();
    for _ in 0..an {
        i = skip_name(b, i).ok_or_else(short)?;
        let h = b.get(i..i + 10).ok_or_else(short)?;
        let (t, len) = (
            u16::from_be_bytes([h[0], h[1]]),
            u16::from_be_bytes([h[8], h[9]]) as usize,
        );
        let data = b.get(i + 10..i + 10 + len).ok_or_else(short)?;
        match (t, len) {
            (1, 4) if qtype == 1 => out.push(IpAddr::from([data[0], data[1], data[2], data[3]])),
            (28, 16) if qtype == 28 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(data);
                out.push(IpAddr::from(a));
            }
            _ => {}
        }
        i += 10 + len;
    }
    Ok(out)
}

/// The index after a (possibly compressed) name.
fn skip_name(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let len = *b.get(i)? as usize;
        if len == 0 {
            return Some(i + 1);
        }
        if len & 0xc0 == 0xc0 {
            return Some(i + 2);
        }
        i += 1 + len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_compressed_answer() {
        let q = encode_query(7, "shop.example.test", 1).unwrap();
        let mut r = q.clone();
        r[2] = 0x81;
        r[3] = 0x80;
        r[7] = 2; // two answers
        for ip in [[127, 0, 0, 1], [192, 0, 2, 1]] {
            r.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4]);
            r.extend_from_slice(&ip);
        }
        let got = decode_answer(&r, 7, 1).unwrap();
        assert_eq!(
            got,
            vec![
                "127.0.0.1".parse::<IpAddr>().unwrap(),
                "192.0.2.1".parse().unwrap()
            ]
        );
        assert!(decode_answer(&r, 8, 1).is_err(), "another query's answer");
        assert!(decode_answer(&r[..r.len() - 3], 7, 1).is_err());
    }

    #[test]
    fn verdicts_name_the_record_to_create() {
        let a = Answer {
            addresses: vec!["192.0.2.1".parse().unwrap()],
            error: None,
        };
        let (ok, detail) = a.verdict("shop.example.test", Some("203.0.113.5"));
        assert!(!ok);
        assert!(detail.contains("A record pointing shop.example.test to 203.0.113.5"));
        assert!(a.verdict("shop.example.test", Some("192.0.2.1")).0);
        assert!(!a.verdict("shop.example.test", None).0);
    }
}
