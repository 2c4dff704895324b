//! Name and number conversions ipvsadm gets from libc, reimplemented without `unsafe`.
//!
//! - `inet_aton`, `strtol` and `atoi` with glibc's acceptance rules (ipvsadm's `-t 10.1:80`,
//!   `-w +5` and `-M 64junk` behave the same).
//! - Host names: forward (`-t www:80`) looks in the hosts file first, then asks the system
//!   resolver (`getaddrinfo` through `std::net::ToSocketAddrs`), keeping the first IPv4 answer
//!   as `gethostbyname` does. Reverse (`-L` without `-n`) reads only the hosts file: the first
//!   line with the address gives its first name, as glibc's `files` backend answers
//!   `gethostbyaddr`; no DNS PTR query is made (documented difference: ipvsadm would also ask
//!   DNS when nsswitch says so).
//! - Service names: the services file, first matching line (`getservbyname`/`getservbyport`).
//!
//! The files are /etc/hosts and /etc/services, or `$XVS_HOSTS_FILE` / `$XVS_SERVICES_FILE`
//! when set (tests use these to be independent of the machine).
//! Never: panic on any file content.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, ToSocketAddrs};

/// glibc `inet_aton`: 1 to 4 dot-separated parts, each decimal, octal (leading 0) or hex (0x);
/// the last part fills the remaining bytes; trailing whitespace ends the address.
#[must_use]
pub fn inet_aton(s: &str) -> Option<Ipv4Addr> {
    let b = s.as_bytes();
    let mut i = 0;
    let mut parts: Vec<u64> = Vec::with_capacity(4);
    let val;
    loop {
        if i >= b.len() || !b[i].is_ascii_digit() {
            return None;
        }
        let mut v: u64 = 0;
        let mut base = 10;
        let mut digit = false;
        if b[i] == b'0' {
            i += 1;
            if i < b.len() && (b[i] == b'x' || b[i] == b'X') {
                base = 16;
                i += 1;
            } else {
                base = 8;
                digit = true;
            }
        }
        while i < b.len() {
            let c = b[i];
            if c.is_ascii_digit() {
                if base == 8 && (c == b'8' || c == b'9') {
                    return None;
                }
                v = v * base + u64::from(c - b'0');
            } else if base == 16 && c.is_ascii_hexdigit() {
                v = (v << 4) | u64::from(c.to_ascii_lowercase() - b'a' + 10);
            } else {
                break;
            }
            if v > 0xffff_ffff {
                return None;
            }
            digit = true;
            i += 1;
        }
        if !digit {
            return None;
        }
        if i < b.len() && b[i] == b'.' {
            if parts.len() > 2 || v > 0xff {
                return None;
            }
            parts.push(v);
            i += 1;
        } else {
            val = v;
            break;
        }
    }
    if i < b.len() && !b[i].is_ascii_whitespace() {
        return None;
    }
    let n = parts.len();
    let max = [0xffff_ffff, 0x00ff_ffff, 0xffff, 0xff][n];
    if val > max {
        return None;
    }
    let mut addr = val;
    for (k, p) in parts.iter().enumerate() {
        addr |= p << (24 - 8 * k);
    }
    u32::try_from(addr).ok().map(Ipv4Addr::from)
}

/// glibc `strtol(s, &end, 10)` where the whole string must be consumed: leading whitespace, an
/// optional sign, at least one digit. `None` on no digits, trailing garbage or overflow.
#[must_use]
pub fn strtol_full(s: &str) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let mut v: i64 = 0;
    for c in digits.bytes() {
        v = v.checked_mul(10)?.checked_add(i64::from(c - b'0'))?;
    }
    Some(if neg { -v } else { v })
}

/// ipvsadm's `string_to_number(s, min, max)`: the number if `s` is entirely one in range.
#[must_use]
pub fn string_to_number(s: &str, min: i64, max: i64) -> Option<i64> {
    strtol_full(s).filter(|n| (min..=max).contains(n))
}

/// glibc `atoi`: leading whitespace, sign, digits up to the first non-digit; 0 if none.
#[must_use]
pub fn atoi(s: &str) -> i64 {
    let t = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (neg, rest) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let mut v: i64 = 0;
    for c in rest.bytes() {
        if !c.is_ascii_digit() {
            break;
        }
        v = v.wrapping_mul(10).wrapping_add(i64::from(c - b'0'));
    }
    // atoi is (int)strtol: truncate like C does on the usual platforms.
    #[allow(clippy::cast_possible_truncation)]
    let r = if neg { -v } else { v } as i32;
    i64::from(r)
}

/// Host and service name tables.
#[derive(Debug, Default, Clone)]
pub struct Names {
    hosts: Vec<(IpAddr, Vec<String>)>,
    /// (proto, name or alias) -> port.
    services_by_name: HashMap<(String, String), u16>,
    /// (proto, port) -> official name (first line wins).
    services_by_port: HashMap<(String, u16), String>,
    use_resolver: bool,
}

impl Names {
    /// The system's tables (or the files named by `$XVS_HOSTS_FILE` / `$XVS_SERVICES_FILE`).
    #[must_use]
    pub fn system() -> Self {
        let hosts_override = std::env::var("XVS_HOSTS_FILE").ok();
        let hosts_path = hosts_override
            .clone()
            .unwrap_or_else(|| "/etc/hosts".into());
        let services_path =
            std::env::var("XVS_SERVICES_FILE").unwrap_or_else(|_| "/etc/services".into());
        let hosts = std::fs::read_to_string(hosts_path).unwrap_or_default();
        let services = std::fs::read_to_string(services_path).unwrap_or_default();
        let mut n = Self::from_texts(&hosts, &services);
        n.use_resolver = hosts_override.is_none();
        n
    }

    /// Tables from file contents (no system resolver).
    #[must_use]
    pub fn from_texts(hosts: &str, services: &str) -> Self {
        let mut n = Self::default();
        for line in hosts.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut it = line.split_whitespace();
            let (Some(a), Some(_)) = (it.next(), line.split_whitespace().nth(1)) else {
                continue;
            };
            let Ok(addr) = a.parse::<IpAddr>() else {
                continue;
            };
            n.hosts.push((addr, it.map(str::to_owned).collect()));
        }
        for line in services.lines() {
            let line = line.split('#').next().unwrap_or("");
            let mut it = line.split_whitespace();
            let (Some(name), Some(pp)) = (it.next(), it.next()) else {
                continue;
            };
            let Some((port, proto)) = pp.split_once('/') else {
                continue;
            };
            let Ok(port) = port.parse::<u16>() else {
                continue;
            };
            n.services_by_port
                .entry((proto.to_owned(), port))
                .or_insert_with(|| name.to_owned());
            for alias in std::iter::once(name).chain(it) {
                n.services_by_name
                    .entry((proto.to_owned(), alias.to_owned()))
                    .or_insert(port);
            }
        }
        n
    }

    /// `gethostbyname` for IPv4 (ipvsadm's `host_to_addr`).
    #[must_use]
    pub fn host_to_addr(&self, name: &str) -> Option<Ipv4Addr> {
        for (addr, names) in &self.hosts {
            if let IpAddr::V4(a) = addr
                && names.iter().any(|n| n.eq_ignore_ascii_case(name))
            {
                return Some(*a);
            }
        }
        if !self.use_resolver || name.is_empty() {
            return None;
        }
        (name, 0u16)
            .to_socket_addrs()
            .ok()?
            .find_map(|sa| match sa.ip() {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            })
    }

    /// `gethostbyaddr` from the hosts file: the first name of the first matching line.
    #[must_use]
    pub fn addr_to_host(&self, addr: &IpAddr) -> Option<&str> {
        self.hosts
            .iter()
            .find(|(a, _)| a == addr)
            .and_then(|(_, names)| names.first())
            .map(String::as_str)
    }

    /// `getservbyname(name, proto)`.
    #[must_use]
    pub fn service_to_port(&self, name: &str, proto: u8) -> Option<u16> {
        let p = proto_name(proto)?;
        self.services_by_name
            .get(&(p.to_owned(), name.to_owned()))
            .copied()
    }

    /// `getservbyport(port, proto)`.
    #[must_use]
    pub fn port_to_service(&self, port: u16, proto: u8) -> Option<&str> {
        let p = proto_name(proto)?;
        self.services_by_port
            .get(&(p.to_owned(), port))
            .map(String::as_str)
    }
}

fn proto_name(proto: u8) -> Option<&'static str> {
    match proto {
        6 => Some("tcp"),
        17 => Some("udp"),
        132 => Some("sctp"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aton_forms() {
        assert_eq!(inet_aton("10.1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(inet_aton("10.1.2"), Some(Ipv4Addr::new(10, 1, 0, 2)));
        assert_eq!(inet_aton("0x0a.010.0.1"), Some(Ipv4Addr::new(10, 8, 0, 1)));
        assert_eq!(inet_aton("167772161"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(inet_aton("1.2.3.4 junk"), Some(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(inet_aton("256.1.1.1"), None);
        assert_eq!(inet_aton("1.2.3.4.5"), None);
        assert_eq!(inet_aton("09.1.1.1"), None);
        assert_eq!(inet_aton("a.b.c.d"), None);
        assert_eq!(inet_aton("1..2"), None);
        assert_eq!(inet_aton("1.2.65536"), None);
    }

    #[test]
    fn numbers() {
        assert_eq!(string_to_number(" +5", 0, 10), Some(5));
        assert_eq!(string_to_number("-0", 0, 10), Some(0));
        assert_eq!(string_to_number("5x", 0, 10), None);
        assert_eq!(string_to_number("", 0, 10), None);
        assert_eq!(string_to_number("11", 0, 10), None);
        assert_eq!(string_to_number("99999999999999999999", 0, 10), None);
        assert_eq!(atoi("64junk"), 64);
        assert_eq!(atoi("junk"), 0);
        assert_eq!(atoi(" -3"), -3);
    }

    #[test]
    fn tables() {
        let n = Names::from_texts(
            "127.0.0.1 localhost lh\n10.0.0.1 web web.example # c\n10.0.0.1 other\n",
            "http 80/tcp www\nhttp 80/udp\nfoo 80/tcp\n# x\nbad\n",
        );
        assert_eq!(n.addr_to_host(&"10.0.0.1".parse().unwrap()), Some("web"));
        assert_eq!(n.host_to_addr("LH"), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(n.host_to_addr("nope"), None);
        assert_eq!(n.service_to_port("www", 6), Some(80));
        assert_eq!(n.service_to_port("www", 17), None);
        assert_eq!(n.port_to_service(80, 6), Some("http"));
        assert_eq!(n.port_to_service(80, 132), None);
    }
}
