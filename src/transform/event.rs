//! The normalized login event, and the classifications it carries (IP class, locale).

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use super::json::{write_decimal, write_json_str, write_plain_json_str};
use super::time::Rfc3339;

/// A valid, normalized login event. Strings borrow from the transformer's parse buffer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LoginEvent<'a> {
    /// The user, also the output record's key.
    pub user_id: Cow<'a, str>,
    /// The device.
    pub device_id: Cow<'a, str>,
    /// Lowercased device type (`ios`, `android`, or whatever lowercase value arrived).
    pub device_type: Cow<'a, str>,
    /// Dotted version.
    pub app_version: Cow<'a, str>,
    /// Uppercase two-letter code.
    pub locale: LocaleCode,
    /// The address as it arrived (trimmed).
    pub ip: Cow<'a, str>,
    /// What kind of address `ip` is.
    pub ip_class: IpClass,
    /// Event time, Unix seconds.
    pub timestamp: u64,
    /// Event time as RFC 3339 UTC (`2024-07-10T05:34:57Z`).
    pub event_time: Rfc3339,
    /// Which fields were missing and filled from `--optional-field` defaults.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filled: Vec<&'static str>,
}

impl LoginEvent<'_> {
    /// Appends the `processed_data` JSON record to `out`: the same bytes as serializing the
    /// struct with serde_json (a test holds them equal), written directly, because serde_json's
    /// byte-by-byte string escaping was the largest single cost of a worker (15 % in a profile)
    /// and our strings almost never need escaping.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"user_id\":");
        write_json_str(out, &self.user_id);
        out.extend_from_slice(b",\"device_id\":");
        write_json_str(out, &self.device_id);
        out.extend_from_slice(b",\"device_type\":");
        write_json_str(out, &self.device_type);
        // Validated as digits and dots, two letters, and an IP address: nothing to escape.
        out.extend_from_slice(b",\"app_version\":");
        write_plain_json_str(out, &self.app_version);
        out.extend_from_slice(b",\"locale\":");
        write_plain_json_str(out, self.locale.as_str());
        out.extend_from_slice(b",\"ip\":");
        write_plain_json_str(out, &self.ip);
        out.extend_from_slice(b",\"ip_class\":\"");
        out.extend_from_slice(self.ip_class.as_str().as_bytes());
        out.extend_from_slice(b"\",\"timestamp\":");
        write_decimal(out, self.timestamp);
        out.extend_from_slice(b",\"event_time\":\"");
        out.extend_from_slice(self.event_time.as_bytes());
        out.push(b'"');
        if !self.filled.is_empty() {
            out.extend_from_slice(b",\"filled\":[");
            for (i, name) in self.filled.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_json_str(out, name);
            }
            out.push(b']');
        }
        out.push(b'}');
    }
}

/// A two-letter locale code, stored inline.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LocaleCode(pub [u8; 2]);

/// Every two-letter uppercase code, `AA` to `ZZ`, in one string: [`LocaleCode::as_str`] slices
/// it instead of validating two bytes as UTF-8 (a library call, per event, in the insights).
const LOCALE_CODES: &str = {
    const fn table() -> [u8; 26 * 26 * 2] {
        let mut t = [0u8; 26 * 26 * 2];
        let mut i = 0;
        while i < 26 * 26 {
            t[2 * i] = b'A' + (i / 26) as u8;
            t[2 * i + 1] = b'A' + (i % 26) as u8;
            i += 1;
        }
        t
    }
    const BYTES: [u8; 26 * 26 * 2] = table();
    match std::str::from_utf8(&BYTES) {
        Ok(s) => s,
        Err(_) => panic!("ASCII letters are UTF-8"),
    }
};

impl LocaleCode {
    /// The code as a string.
    #[inline]
    pub fn as_str(&self) -> &str {
        match self.0 {
            [a @ b'A'..=b'Z', b @ b'A'..=b'Z'] => {
                let i = 2 * (usize::from(a - b'A') * 26 + usize::from(b - b'A'));
                &LOCALE_CODES[i..i + 2]
            }
            // Only ever built from two ASCII letters, uppercased.
            _ => std::str::from_utf8(&self.0).unwrap_or("??"),
        }
    }
}

impl Serialize for LocaleCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Classes of IP addresses, from the IANA special-purpose registries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IpClass {
    /// Globally routable unicast.
    Public,
    /// RFC 1918 private ranges, IPv6 unique-local (fc00::/7).
    Private,
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 169.254.0.0/16, fe80::/10.
    LinkLocal,
    /// 100.64.0.0/10 carrier-grade NAT.
    Shared,
    /// 224.0.0.0/4, ff00::/8.
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 0.0.0.0/8, ::.
    Unspecified,
    /// TEST-NET ranges and 2001:db8::/32.
    Documentation,
    /// 198.18.0.0/15.
    Benchmarking,
    /// 240.0.0.0/4 and other reserved blocks.
    Reserved,
}

impl IpClass {
    /// Every class, in a stable order.
    pub const ALL: [IpClass; 11] = [
        IpClass::Public,
        IpClass::Private,
        IpClass::Loopback,
        IpClass::LinkLocal,
        IpClass::Shared,
        IpClass::Multicast,
        IpClass::Broadcast,
        IpClass::Unspecified,
        IpClass::Documentation,
        IpClass::Benchmarking,
        IpClass::Reserved,
    ];

    /// Classifies an address.
    pub fn of(ip: IpAddr) -> IpClass {
        match ip {
            IpAddr::V4(v4) => Self::of_v4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self::of_v4(v4),
                None => Self::of_v6(v6),
            },
        }
    }

    fn of_v4(ip: Ipv4Addr) -> IpClass {
        let [a, b, c, _] = ip.octets();
        match (a, b, c) {
            _ if ip.is_broadcast() => IpClass::Broadcast,
            (0, _, _) => IpClass::Unspecified,
            (10, _, _) | (172, 16..=31, _) | (192, 168, _) => IpClass::Private,
            (127, _, _) => IpClass::Loopback,
            (169, 254, _) => IpClass::LinkLocal,
            (100, 64..=127, _) => IpClass::Shared,
            (224..=239, _, _) => IpClass::Multicast,
            (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => IpClass::Documentation,
            (198, 18..=19, _) => IpClass::Benchmarking,
            (240..=255, _, _) | (192, 0, 0) => IpClass::Reserved,
            _ => IpClass::Public,
        }
    }

    fn of_v6(ip: Ipv6Addr) -> IpClass {
        let seg = ip.segments();
        match seg[0] {
            _ if ip.is_unspecified() => IpClass::Unspecified,
            _ if ip.is_loopback() => IpClass::Loopback,
            0xff00..=0xffff => IpClass::Multicast,
            0xfe80..=0xfebf => IpClass::LinkLocal,
            0xfc00..=0xfdff => IpClass::Private,
            0x2001 if seg[1] == 0x0db8 => IpClass::Documentation,
            0x2000..=0x3fff => IpClass::Public,
            _ => IpClass::Reserved,
        }
    }

    /// The class as written in records and insights.
    pub fn as_str(self) -> &'static str {
        match self {
            IpClass::Public => "public",
            IpClass::Private => "private",
            IpClass::Loopback => "loopback",
            IpClass::LinkLocal => "link_local",
            IpClass::Shared => "shared",
            IpClass::Multicast => "multicast",
            IpClass::Broadcast => "broadcast",
            IpClass::Unspecified => "unspecified",
            IpClass::Documentation => "documentation",
            IpClass::Benchmarking => "benchmarking",
            IpClass::Reserved => "reserved",
        }
    }
}
