//! Which upstream addresses the gateway may connect to, checked where the connection is
//! made: a DNS resolver that hands the HTTP client only the addresses it approved, so a
//! name that resolves to a public address when checked and a private one when connected
//! (DNS rebinding) has no window in which to do so.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// Most CIDR ranges an allow-list may hold (`--ai-gateway-allowed-private-cidrs`): each
/// connection walks the list, so it stays short.
pub const MAX_ALLOWED_PRIVATE_CIDRS: usize = 64;

/// Most addresses one host name may resolve to that the resolver considers; the rest are
/// ignored (a resolver answering thousands of records would otherwise cost a walk each).
pub const MAX_RESOLVED_ADDRESSES: usize = 32;

/// Why an allow-list could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowListError(String);

impl fmt::Display for AllowListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AllowListError {}

/// The addresses the gateway refuses unless allowed: private, loopback, link-local,
/// shared (CGNAT), documentation, benchmarking, multicast, reserved and unspecified
/// ranges, in IPv4 and IPv6, including IPv4 addresses embedded in IPv6 (mapped,
/// compatible, NAT64 and 6to4 forms).
///
/// An empty policy refuses all of them; [`AddressPolicy::allow`] lets chosen ranges
/// through (a model server on the internal network, a mock in tests).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allowed: Vec<IpNet>,
}

impl fmt::Debug for AddressPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.allowed.iter().map(ToString::to_string))
            .finish()
    }
}

impl AddressPolicy {
    /// The policy that refuses every private and reserved address.
    pub fn new() -> Self {
        AddressPolicy::default()
    }

    /// Parses a comma-separated list of CIDR ranges (`10.0.0.0/8, fd00::/8`); a bare
    /// address is its own single-address range. Blank entries are ignored.
    pub fn parse_allow_list(list: &str) -> Result<Self, AllowListError> {
        let mut allowed = Vec::new();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let net = match entry.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => match entry.parse::<IpAddr>() {
                    Ok(ip) => IpNet::from(ip),
                    Err(_) => {
                        return Err(AllowListError(format!(
                            "{entry:?} is not a CIDR range (such as 10.0.0.0/8 or fd00::/8)"
                        )))
                    }
                },
            };
            allowed.push(net.trunc());
            if allowed.len() > MAX_ALLOWED_PRIVATE_CIDRS {
                return Err(AllowListError(format!(
                    "at most {MAX_ALLOWED_PRIVATE_CIDRS} CIDR ranges may be allowed"
                )));
            }
        }
        Ok(AddressPolicy { allowed })
    }

    /// Adds `net` to the allowed ranges.
    pub fn allow(mut self, net: IpNet) -> Self {
        self.allowed.push(net.trunc());
        self
    }

    /// The allowed ranges.
    pub fn allowed(&self) -> &[IpNet] {
        &self.allowed
    }

    /// Whether the gateway may connect to `ip`: a public address, or one in an allowed
    /// range. An IPv4 address in IPv6 clothing is judged as the IPv4 address it carries,
    /// and is allowed when either form is in an allowed range.
    pub fn permits(&self, ip: IpAddr) -> bool {
        if !is_private_or_reserved(ip) {
            return true;
        }
        let embedded = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.allowed
            .iter()
            .any(|net| net.contains(&ip) || embedded.is_some_and(|v4| net.contains(&v4)))
    }
}

/// Whether `ip` is in a private or reserved range (see [`AddressPolicy`]).
pub fn is_private_or_reserved(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4_reserved(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            // 6to4 and NAT64 reach the IPv4 address they carry; mapped and compatible
            // forms are that address.
            Some(v4) => v4_reserved(v4),
            None => v6_reserved(v6),
        },
    }
}

fn v4_reserved(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    ip.is_unspecified()          // 0.0.0.0
        || a == 0                // 0.0.0.0/8 "this network"
        || ip.is_private()       // 10/8, 172.16/12, 192.168/16
        || ip.is_loopback()      // 127/8
        || ip.is_link_local()    // 169.254/16 (cloud metadata lives here)
        || (a == 100 && (64..128).contains(&b)) // 100.64/10 shared address space
        || (a == 192 && b == 0 && c == 0)       // 192.0.0/24 IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)       // 192.0.2/24 TEST-NET-1
        || (a == 192 && b == 88 && c == 99)     // 192.88.99/24 6to4 relay anycast
        || (a == 198 && (b == 18 || b == 19))   // 198.18/15 benchmarking
        || (a == 198 && b == 51 && c == 100)    // 198.51.100/24 TEST-NET-2
        || (a == 203 && b == 0 && c == 113)     // 203.0.113/24 TEST-NET-3
        || a >= 224 // 224/4 multicast, 240/4 reserved, 255.255.255.255 broadcast
}

fn v6_reserved(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let first = s[0];
    ip.is_unspecified()                          // ::
        || ip.is_loopback()                      // ::1
        || (first & 0xfe00) == 0xfc00            // fc00::/7 unique local
        || (first & 0xffc0) == 0xfe80            // fe80::/10 link-local
        || (first & 0xffc0) == 0xfec0            // fec0::/10 site-local (deprecated)
        || (first & 0xff00) == 0xff00            // ff00::/8 multicast
        || (first == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0) // 100::/64 discard
        || (first == 0x2001 && s[1] < 0x0200)    // 2001::/23 IETF protocol assignments
        || (first == 0x2001 && s[1] == 0x0db8)   // 2001:db8::/32 documentation
        || (first == 0x3fff && s[1] < 0x1000)    // 3fff::/20 documentation
        || (first == 0x5f00)                     // 5f00::/16 segment routing
        || (s[..6] == [0, 0, 0, 0, 0, 0]) // ::/96 IPv4-compatible, reserved
}

/// The IPv4 address an IPv6 address carries in its mapped (`::ffff:a.b.c.d`), compatible
/// (`::a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) or 6to4 (`2002:aabb:ccdd::`) form.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if s[..5] == [0, 0, 0, 0, 0] && s[5] == 0xffff {
        return Some(tail());
    }
    // `::` and `::1` are IPv6's own; other `::a.b.c.d` are the deprecated compatible form.
    if s[..6] == [0, 0, 0, 0, 0, 0] && (s[6] != 0 || s[7] > 1) {
        return Some(tail());
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail());
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

/// The error of a refused upstream address. Its text names the host, never a path or a
/// credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedAddress {
    host: String,
}

impl RefusedAddress {
    /// A refusal of `host`.
    pub fn new(host: impl Into<String>) -> Self {
        RefusedAddress { host: host.into() }
    }

    /// The refused host.
    pub fn host(&self) -> &str {
        &self.host
    }
}

impl fmt::Display for RefusedAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "upstream host {} resolves only to private or reserved addresses, which the \
             gateway refuses unless allow-listed (--ai-gateway-allowed-private-cidrs)",
            self.host
        )
    }
}

impl std::error::Error for RefusedAddress {}

/// The resolver the gateway's HTTP client uses: the system resolver, then the policy.
/// reqwest connects to exactly the addresses returned here, so what was checked is what
/// is connected to. Refused addresses are dropped; a name left with none is an error.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: Arc<AddressPolicy>,
}

impl GuardedResolver {
    /// A resolver applying `policy`.
    pub fn new(policy: Arc<AddressPolicy>) -> Self {
        GuardedResolver { policy }
    }

    /// The approved addresses among `resolved` (at most [`MAX_RESOLVED_ADDRESSES`]
    /// considered), or the refusal of `host` when none is.
    pub fn approve(
        &self,
        host: &str,
        resolved: impl IntoIterator<Item = SocketAddr>,
    ) -> Result<Vec<SocketAddr>, RefusedAddress> {
        let approved: Vec<SocketAddr> = resolved
            .into_iter()
            .take(MAX_RESOLVED_ADDRESSES)
            .filter(|a| self.policy.permits(a.ip()))
            .collect();
        if approved.is_empty() {
            return Err(RefusedAddress::new(host));
        }
        Ok(approved)
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let this = self.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port on the addresses it is handed.
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let approved = this.approve(&host, resolved)?;
            let addrs: reqwest::dns::Addrs = Box::new(approved.into_iter());
            Ok(addrs)
        })
    }
}

/// Checks the host of an upstream URL that is an IP literal (which no resolver sees):
/// `Ok` for a name (the [`GuardedResolver`] checks it at connect time) or a permitted
/// address.
pub fn check_literal_host(url: &url::Url, policy: &AddressPolicy) -> Result<(), RefusedAddress> {
    let ip = match url.host() {
        Some(url::Host::Ipv4(v4)) => IpAddr::V4(v4),
        Some(url::Host::Ipv6(v6)) => IpAddr::V6(v6),
        Some(url::Host::Domain(_)) => return Ok(()),
        None => return Err(RefusedAddress::new("")),
    };
    if policy.permits(ip) {
        Ok(())
    } else {
        Err(RefusedAddress::new(ip.to_string()))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn private_and_reserved_ranges_are_refused_and_public_ones_allowed() {
        let policy = AddressPolicy::new();
        for refused in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.1.2.3",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "100::1",
            "2001::1",
            "2001:db8::1",
            "3fff::1",
            // IPv4 in IPv6: mapped, compatible, NAT64 and 6to4 forms of private addresses.
            "::ffff:127.0.0.1",
            "::ffff:10.1.2.3",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "2002:c0a8:0101::1",
        ] {
            assert!(!policy.permits(ip(refused)), "{refused} should be refused");
            assert!(is_private_or_reserved(ip(refused)), "{refused}");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "192.169.0.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:0808:0808::1",
        ] {
            assert!(policy.permits(ip(public)), "{public} should be allowed");
        }
    }

    #[test]
    fn the_allow_list_lets_chosen_ranges_through_in_either_form() {
        let policy = AddressPolicy::parse_allow_list(" 127.0.0.1 , 10.0.0.0/8,,fd00::/8").unwrap();
        assert_eq!(policy.allowed().len(), 3);
        assert!(policy.permits(ip("127.0.0.1")));
        assert!(
            policy.permits(ip("::ffff:127.0.0.1")),
            "mapped form of an allowed v4"
        );
        assert!(!policy.permits(ip("127.0.0.2")));
        assert!(policy.permits(ip("10.200.3.4")));
        assert!(policy.permits(ip("fd00::5")));
        assert!(!policy.permits(ip("fc00::5")));
        assert!(!policy.permits(ip("192.168.0.1")));
        // Host bits are dropped: 10.1.2.3/8 is 10.0.0.0/8.
        let truncated = AddressPolicy::parse_allow_list("10.1.2.3/8").unwrap();
        assert!(truncated.permits(ip("10.9.9.9")));
    }

    #[test]
    fn bad_allow_lists_are_refused_and_the_count_is_bounded() {
        assert!(AddressPolicy::parse_allow_list("")
            .unwrap()
            .allowed()
            .is_empty());
        for bad in ["10.0.0.0/33", "localhost", "10.0.0/8", "fd00::/129"] {
            let err = AddressPolicy::parse_allow_list(bad).unwrap_err();
            assert!(err.to_string().contains("CIDR"), "{bad}: {err}");
        }
        let at_limit = (0..MAX_ALLOWED_PRIVATE_CIDRS)
            .map(|i| format!("10.{i}.0.0/16"))
            .collect::<Vec<_>>()
            .join(",");
        assert_eq!(
            AddressPolicy::parse_allow_list(&at_limit)
                .unwrap()
                .allowed()
                .len(),
            MAX_ALLOWED_PRIVATE_CIDRS
        );
        let over = format!("{at_limit},11.0.0.0/8");
        assert!(AddressPolicy::parse_allow_list(&over).is_err());
    }

    #[test]
    fn the_resolver_hands_on_only_approved_addresses() {
        let resolver = GuardedResolver::new(Arc::new(AddressPolicy::new()));
        let addr = |s: &str| SocketAddr::new(ip(s), 0);
        let approved = resolver
            .approve(
                "mixed.example",
                [addr("10.0.0.1"), addr("1.1.1.1"), addr("::1")],
            )
            .unwrap();
        assert_eq!(approved, vec![addr("1.1.1.1")]);
        let refused = resolver
            .approve(
                "rebind.example",
                [addr("127.0.0.1"), addr("169.254.169.254")],
            )
            .unwrap_err();
        assert_eq!(refused.host(), "rebind.example");
        assert!(refused
            .to_string()
            .contains("--ai-gateway-allowed-private-cidrs"));
        assert!(resolver.approve("empty.example", []).is_err());
        // Only the first MAX_RESOLVED_ADDRESSES answers are considered.
        let many =
            std::iter::repeat_n(addr("10.0.0.1"), MAX_RESOLVED_ADDRESSES).chain([addr("1.1.1.1")]);
        assert!(resolver.approve("many.example", many).is_err());
    }

    #[tokio::test]
    async fn a_name_resolving_to_loopback_is_refused_at_resolution() {
        use reqwest::dns::Resolve;
        let resolver = GuardedResolver::new(Arc::new(AddressPolicy::new()));
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let err = resolver.resolve(name).await.err().unwrap();
        assert!(err.to_string().contains("localhost"), "{err}");
        let allowing = GuardedResolver::new(Arc::new(
            AddressPolicy::parse_allow_list("127.0.0.0/8,::1/128").unwrap(),
        ));
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let addrs: Vec<SocketAddr> = allowing.resolve(name).await.unwrap().collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }

    #[test]
    fn literal_hosts_are_checked_without_a_resolver() {
        let policy = AddressPolicy::new();
        let url = |s: &str| url::Url::parse(s).unwrap();
        assert!(check_literal_host(&url("http://127.0.0.1:8080/v1"), &policy).is_err());
        assert!(check_literal_host(&url("http://[::ffff:7f00:1]/"), &policy).is_err());
        assert!(check_literal_host(&url("http://[fe80::1]/"), &policy).is_err());
        assert!(check_literal_host(&url("https://8.8.8.8/"), &policy).is_ok());
        assert!(check_literal_host(&url("https://api.openai.com/v1"), &policy).is_ok());
        let allowing = AddressPolicy::parse_allow_list("127.0.0.1/32").unwrap();
        assert!(check_literal_host(&url("http://127.0.0.1:8080/v1"), &allowing).is_ok());
    }
}
