//! Which hosts data sources may be registered on.
//!
//! Registering a data source makes the server open a connection wherever the client says,
//! so the operator decides where that may be. Rules are host names, `*.suffix` patterns,
//! IP addresses and CIDR ranges. Deny rules are also checked against every address the
//! name resolves to, so a DNS name cannot smuggle in a denied address.

use std::net::IpAddr;
use std::time::Duration;

use manifold_core::{Error, Result};
use serde_json::Value as Json;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Rule {
    Name(String),
    Suffix(String),
    Net(IpAddr, u8),
}

impl Rule {
    fn parse(raw: &str) -> std::result::Result<Self, String> {
        let raw = raw.trim().to_ascii_lowercase();
        if let Some(suffix) = raw.strip_prefix("*.") {
            return Ok(Rule::Suffix(format!(".{suffix}")));
        }
        if let Some((ip, bits)) = raw.split_once('/') {
            let ip: IpAddr = ip.parse().map_err(|_| format!("bad CIDR range {raw:?}"))?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits: u8 = bits
                .parse()
                .ok()
                .filter(|b| *b <= max)
                .ok_or_else(|| format!("bad prefix length in {raw:?}"))?;
            return Ok(Rule::Net(ip, bits));
        }
        if let Ok(ip) = raw.parse::<IpAddr>() {
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            return Ok(Rule::Net(ip, bits));
        }
        if raw.is_empty() {
            return Err("empty host rule".into());
        }
        Ok(Rule::Name(raw))
    }

    fn matches_name(&self, name: &str) -> bool {
        match self {
            Rule::Name(n) => n == name,
            Rule::Suffix(s) => name.ends_with(s.as_str()),
            Rule::Net(..) => false,
        }
    }

    fn matches_ip(&self, ip: IpAddr) -> bool {
        let Rule::Net(net, bits) = self else {
            return false;
        };
        match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(*bits)).unwrap_or(0);
                u32::from(*n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(*bits)).unwrap_or(0);
                u128::from(*n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// The operator's allow and deny lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostPolicy {
    allow: Vec<Rule>,
    deny: Vec<Rule>,
}

impl HostPolicy {
    /// Parses the configured lists; a malformed rule is a startup error.
    pub fn parse(allow: &[String], deny: &[String]) -> std::result::Result<Self, String> {
        let rules = |list: &[String]| {
            list.iter()
                .filter(|r| !r.trim().is_empty())
                .map(|r| Rule::parse(r))
                .collect::<std::result::Result<Vec<_>, _>>()
        };
        Ok(Self {
            allow: rules(allow)?,
            deny: rules(deny)?,
        })
    }

    /// Checks `host` (a name or an address) against the lists, resolving names.
    pub async fn check(&self, host: &str, port: u16) -> Result<()> {
        let name = host
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        let denied = |why: &str| {
            Err(Error::forbidden(format!(
                "host {name} is not allowed for data sources ({why}; see MANIFOLD_ALLOWED_HOSTS and MANIFOLD_DENIED_HOSTS)"
            )))
        };
        if self.deny.iter().any(|r| r.matches_name(&name)) {
            return denied("denied by name");
        }
        let addresses: Vec<IpAddr> = match name.parse::<IpAddr>() {
            Ok(ip) => vec![ip],
            Err(_) => {
                let lookup = tokio::net::lookup_host((name.as_str(), port));
                match tokio::time::timeout(Duration::from_secs(5), lookup).await {
                    Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
                    _ => {
                        return Err(Error::bad_request(format!(
                            "host {name} cannot be resolved"
                        )));
                    }
                }
            }
        };
        if addresses
            .iter()
            .any(|ip| self.deny.iter().any(|r| r.matches_ip(*ip)))
        {
            return denied("it resolves to a denied address");
        }
        if self.allow.is_empty() {
            return Ok(());
        }
        let allowed_by_name = self.allow.iter().any(|r| r.matches_name(&name));
        let allowed_by_address = !addresses.is_empty()
            && addresses
                .iter()
                .all(|ip| self.allow.iter().any(|r| r.matches_ip(*ip)));
        if allowed_by_name || allowed_by_address {
            Ok(())
        } else {
            denied("not in the allow list")
        }
    }
}

/// The host and port a network data source's options point at: `host`/`port`, or the
/// authority of `url`. `None` for sources that are not on the network (SQLite).
pub fn target(kind: &str, options: &Json) -> Option<(String, u16)> {
    let default_port = match kind {
        "postgres" => 5432,
        "mysql" | "mariadb" => 3306,
        "mssql" => 1433,
        "mongodb" => 27017,
        _ => return None,
    };
    if let Some(url) = options.get("url").and_then(Json::as_str) {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = match host_port.strip_prefix('[') {
            Some(v6) => {
                let (h, p) = v6.split_once(']').unwrap_or((v6, ""));
                (
                    h.to_owned(),
                    p.strip_prefix(':').and_then(|p| p.parse().ok()),
                )
            }
            None => match host_port.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), p.parse().ok()),
                None => (host_port.to_owned(), None),
            },
        };
        return Some((host, port.unwrap_or(default_port)));
    }
    let host = options
        .get("host")
        .and_then(Json::as_str)
        .unwrap_or("localhost");
    // A socket path is this machine.
    let host = if host.starts_with('/') {
        "localhost"
    } else {
        host
    };
    let port = options
        .get("port")
        .and_then(|p| p.as_u64().or_else(|| p.as_str()?.parse().ok()))
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(default_port);
    Some((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn policy(allow: &[&str], deny: &[&str]) -> HostPolicy {
        let s = |l: &[&str]| l.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        HostPolicy::parse(&s(allow), &s(deny)).expect("valid rules")
    }

    #[tokio::test]
    async fn the_default_denies_link_local_metadata_addresses() {
        let p = policy(&[], &["169.254.0.0/16", "fe80::/10"]);
        assert!(p.check("169.254.169.254", 80).await.is_err());
        assert!(p.check("fe80::1", 5432).await.is_err());
        assert!(p.check("127.0.0.1", 5432).await.is_ok());
        assert!(p.check("localhost", 5432).await.is_ok());
    }

    #[tokio::test]
    async fn names_are_checked_by_what_they_resolve_to() {
        let p = policy(&[], &["127.0.0.0/8"]);
        let err = p
            .check("localhost", 5432)
            .await
            .expect_err("resolves to loopback");
        assert!(
            err.message().contains("resolves to a denied address"),
            "{}",
            err.message()
        );
    }

    #[tokio::test]
    async fn an_allow_list_admits_only_what_it_names() {
        let p = policy(&["*.db.internal", "10.0.0.0/8", "localhost"], &[]);
        assert!(p.check("10.1.2.3", 5432).await.is_ok());
        assert!(p.check("localhost", 5432).await.is_ok());
        assert!(p.check("192.168.1.1", 5432).await.is_err());
        assert!(p.check("127.0.0.2", 5432).await.is_err());
    }

    #[test]
    fn bad_rules_are_refused() {
        let s = |v: &str| vec![v.to_string()];
        assert!(HostPolicy::parse(&s("10.0.0.0/40"), &[]).is_err());
        assert!(HostPolicy::parse(&[], &s("x.y/8")).is_err());
    }

    #[test]
    fn targets_come_from_host_or_url() {
        assert_eq!(
            target(
                "postgres",
                &json!({"url": "postgres://u:p@db.example:6543/x"})
            ),
            Some(("db.example".into(), 6543))
        );
        assert_eq!(
            target("mysql", &json!({"url": "mysql://u:p%40ss@[::1]/x"})),
            Some(("::1".into(), 3306))
        );
        assert_eq!(
            target("postgres", &json!({"host": "10.0.0.5", "port": "5433"})),
            Some(("10.0.0.5".into(), 5433))
        );
        assert_eq!(target("sqlite", &json!({"path": "x"})), None);
    }
}
