//! Which hosts data sources may be registered on.
//!
//! Registering a data source makes the server open a connection wherever the client says,
//! so the operator decides where that may be. Rules are host names, `*.suffix` patterns,
//! IP addresses and CIDR ranges. They are checked against every place the driver will
//! connect to, as the driver's own factory reads the options (a `?host=` in a URL
//! included), and deny rules also against every address a name resolves to and every
//! address an address stands for (`::ffff:169.254.169.254` is `169.254.169.254`, `0.0.0.0`
//! is this machine), so neither a DNS name nor another spelling can smuggle in a denied
//! address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::time::Duration;

use manifold_core::data_source::ConnectTarget;
use manifold_core::{Error, Result};

/// More hosts than this in one source's options is refused: each is resolved in turn,
/// so a long seed list would hold the request for minutes.
const MAX_TARGETS: usize = 32;

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`) or NAT64 (`64:ff9b::a.b.c.d`)
/// IPv6 address: the kernel, or a NAT64 gateway, delivers the connection there.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let nat64 = || {
        let s = ip.segments();
        (s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]).then(|| Ipv4Addr::from(u128::from(ip) as u32))
    };
    ip.to_ipv4_mapped().or_else(nat64)
}

/// Every address a connection to `ip` can end up at: itself, the IPv4 address it embeds,
/// and for the unspecified addresses (`0.0.0.0`, `::`), which the kernel connects to this
/// machine, both loopback addresses.
fn reaches(ip: IpAddr) -> Vec<IpAddr> {
    let mut out = vec![ip];
    if let IpAddr::V6(v6) = ip {
        if let Some(v4) = embedded_v4(v6) {
            out.push(IpAddr::V4(v4));
        }
        // The deprecated IPv4-compatible form (`::a.b.c.d`): a tunnel may still route it
        // to the IPv4 address, so a deny rule sees that too (never an allow rule).
        let compatible = v6.segments()[..6] == [0; 6] && !v6.is_loopback();
        if compatible && !v6.is_unspecified() {
            out.push(IpAddr::V4(Ipv4Addr::from(u128::from(v6) as u32)));
        }
    }
    if out.iter().any(IpAddr::is_unspecified) {
        out.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
        out.push(IpAddr::V6(Ipv6Addr::LOCALHOST));
    }
    out
}

/// The one address `ip` means, for allow rules: the embedded IPv4 address, and loopback
/// for an unspecified address.
fn canonical(ip: IpAddr) -> IpAddr {
    let ip = match ip {
        IpAddr::V6(v6) => embedded_v4(v6).map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        other => other,
    }
}

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
            return Ok(Rule::net(ip, bits));
        }
        if let Ok(ip) = raw.parse::<IpAddr>() {
            let bits = if ip.is_ipv4() { 32 } else { 128 };
            return Ok(Rule::net(ip, bits));
        }
        if raw.is_empty() {
            return Err("empty host rule".into());
        }
        Ok(Rule::Name(raw))
    }

    /// A range, an IPv4-mapped IPv6 range written as the IPv4 range it is.
    fn net(ip: IpAddr, bits: u8) -> Self {
        match ip {
            IpAddr::V6(v6) if bits >= 96 => match v6.to_ipv4_mapped() {
                Some(v4) => Rule::Net(IpAddr::V4(v4), bits - 96),
                None => Rule::Net(ip, bits),
            },
            _ => Rule::Net(ip, bits),
        }
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
    unix_sockets: bool,
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
            unix_sockets: false,
        })
    }

    /// Also lets sources connect through Unix-domain sockets (refused by default: a
    /// socket is this machine, reached past every address rule, often as a trusted peer).
    pub fn allowing_unix_sockets(mut self, allow: bool) -> Self {
        self.unix_sockets = allow;
        self
    }

    /// Checks every place a source's driver will connect to.
    pub async fn check_targets(&self, targets: &[ConnectTarget]) -> Result<()> {
        if targets.len() > MAX_TARGETS {
            return Err(Error::bad_request(format!(
                "options: {} hosts is more than the {MAX_TARGETS} a data source may name",
                targets.len()
            )));
        }
        for target in targets {
            match target {
                ConnectTarget::Tcp { host, port } => self.check(host, *port).await?,
                ConnectTarget::UnixSocket(path) => self.check_socket(path)?,
            }
        }
        Ok(())
    }

    fn check_socket(&self, path: &Path) -> Result<()> {
        if self.unix_sockets {
            return Ok(());
        }
        Err(Error::forbidden(format!(
            "Unix socket {} is not allowed for data sources (connect over TCP, or see MANIFOLD_ALLOW_UNIX_SOCKETS)",
            path.display()
        )))
    }

    /// Checks `host` (a name or an address) against the lists, resolving names.
    pub async fn check(&self, host: &str, port: u16) -> Result<()> {
        let name = host
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        // `localhost.` is `localhost` to the resolver, so to the name rules too.
        let bare = name.strip_suffix('.').unwrap_or(&name);
        let denied = |why: &str| {
            Err(Error::forbidden(format!(
                "host {name} is not allowed for data sources ({why}; see MANIFOLD_ALLOWED_HOSTS and MANIFOLD_DENIED_HOSTS)"
            )))
        };
        if self.deny.iter().any(|r| r.matches_name(bare)) {
            return denied("denied by name");
        }
        let literal = name.parse::<IpAddr>().ok();
        let addresses: Vec<IpAddr> = match literal {
            Some(ip) => vec![ip],
            None => {
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
            .flat_map(|ip| reaches(*ip))
            .any(|ip| self.deny.iter().any(|r| r.matches_ip(ip)))
        {
            return denied("it resolves to a denied address");
        }
        if self.allow.is_empty() {
            return Ok(());
        }
        // A literal address is allowed by what it means, never by its name.
        let allowed_by_name = literal.is_none() && self.allow.iter().any(|r| r.matches_name(bare));
        let allowed_by_address = !addresses.is_empty()
            && addresses
                .iter()
                .all(|ip| self.allow.iter().any(|r| r.matches_ip(canonical(*ip))));
        if allowed_by_name || allowed_by_address {
            Ok(())
        } else {
            denied("not in the allow list")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[tokio::test]
    async fn other_spellings_of_a_denied_address_are_denied() {
        let p = policy(&[], &["169.254.0.0/16", "fe80::/10"]);
        for host in [
            "::ffff:169.254.169.254",
            "[::ffff:a9fe:a9fe]",
            "64:ff9b::169.254.169.254",
            "::169.254.169.254",
        ] {
            assert!(p.check(host, 80).await.is_err(), "{host}");
        }
        let p = policy(&[], &["127.0.0.0/8", "::1/128", "localhost"]);
        for host in [
            "::ffff:127.0.0.1",
            "0.0.0.0",
            "::",
            "::ffff:0.0.0.0",
            "LOCALHOST.",
        ] {
            assert!(p.check(host, 5432).await.is_err(), "{host}");
        }
        assert!(p.check("10.0.0.1", 5432).await.is_ok());
    }

    #[tokio::test]
    async fn allow_rules_see_what_an_address_means() {
        let p = policy(&["10.0.0.0/8", "*.0.1"], &[]);
        assert!(p.check("::ffff:10.1.2.3", 5432).await.is_ok());
        assert!(
            p.check("0.0.0.0", 5432).await.is_err(),
            "0.0.0.0 is loopback"
        );
        assert!(
            p.check("127.0.0.1", 5432).await.is_err(),
            "a name pattern never admits a literal address"
        );
        let p = policy(&["::ffff:10.0.0.0/104"], &[]);
        assert!(p.check("10.9.9.9", 5432).await.is_ok());
    }

    #[tokio::test]
    async fn unix_sockets_need_the_operators_consent() {
        let socket = [ConnectTarget::UnixSocket("/var/run/postgresql".into())];
        let err = policy(&[], &[])
            .check_targets(&socket)
            .await
            .expect_err("refused by default");
        assert_eq!(err.kind(), manifold_core::error::ErrorKind::Forbidden);
        assert!(
            err.message().contains("MANIFOLD_ALLOW_UNIX_SOCKETS"),
            "{}",
            err.message()
        );
        let open = policy(&[], &[]).allowing_unix_sockets(true);
        assert!(open.check_targets(&socket).await.is_ok());
    }

    #[tokio::test]
    async fn every_target_is_checked() {
        let p = policy(&[], &["169.254.0.0/16"]);
        let tcp = |host: &str| ConnectTarget::Tcp {
            host: host.into(),
            port: 27017,
        };
        assert!(
            p.check_targets(&[tcp("127.0.0.1"), tcp("10.0.0.2")])
                .await
                .is_ok()
        );
        assert!(
            p.check_targets(&[tcp("127.0.0.1"), tcp("169.254.169.254")])
                .await
                .is_err()
        );
        let many = vec![tcp("127.0.0.1"); MAX_TARGETS + 1];
        let err = p.check_targets(&many).await.expect_err("too many");
        assert_eq!(err.kind(), manifold_core::error::ErrorKind::BadRequest);
    }
}
