//! Valid login events: the `original` feed and the `realistic` user population.
//!
//! Both render in the original Python generator's format (`json.dumps` with its default `", "`
//! and `": "` separators, keys in the order `user_id, app_version, ip, locale, device_id,
//! timestamp, device_type`), so the pipeline sees the bytes it will see in production.
//!
//! The realistic population is derived, not stored: every attribute of user `u` (its id, home
//! state, home address, devices) comes from a generator seeded with `mix(seed, u)`, so a million
//! users cost no memory beyond the activity table, and a user looks the same wherever it occurs.

use std::io::Write;

use super::rng::{mix, Rng};
use crate::transform::IpClass;

/// The 50 US states with their approximate populations (2020 census, thousands). The locale of
/// the original feed is a state code; `IN`, `DE` and `CO` are states here, not countries.
pub const STATES: [(&str, u32); 50] = [
    ("AL", 5024),
    ("AK", 733),
    ("AZ", 7152),
    ("AR", 3012),
    ("CA", 39538),
    ("CO", 5774),
    ("CT", 3606),
    ("DE", 990),
    ("FL", 21538),
    ("GA", 10712),
    ("HI", 1455),
    ("ID", 1839),
    ("IL", 12813),
    ("IN", 6786),
    ("IA", 3190),
    ("KS", 2938),
    ("KY", 4506),
    ("LA", 4658),
    ("ME", 1362),
    ("MD", 6177),
    ("MA", 7030),
    ("MI", 10077),
    ("MN", 5706),
    ("MS", 2961),
    ("MO", 6155),
    ("MT", 1084),
    ("NE", 1962),
    ("NV", 3105),
    ("NH", 1378),
    ("NJ", 9289),
    ("NM", 2118),
    ("NY", 20201),
    ("NC", 10439),
    ("ND", 779),
    ("OH", 11799),
    ("OK", 3959),
    ("OR", 4237),
    ("PA", 13003),
    ("RI", 1097),
    ("SC", 5119),
    ("SD", 887),
    ("TN", 6911),
    ("TX", 29146),
    ("UT", 3272),
    ("VT", 643),
    ("VA", 8631),
    ("WA", 7705),
    ("WV", 1794),
    ("WI", 5894),
    ("WY", 577),
];

/// Versions already installed when the stream starts, with their shares.
const INSTALLED: [(&str, f64); 4] = [
    ("2.1.0", 0.10),
    ("2.2.0", 0.20),
    ("2.2.1", 0.25),
    ("2.3.0", 0.45),
];

/// Releases during the stream and the event index at which each ships. A device picks a release
/// up after its own upgrade delay, so the share of newer versions grows with the event index.
const RELEASES: [(&str, u64); 4] = [
    ("2.4.0", 0),
    ("2.4.1", 150_000),
    ("2.5.0", 400_000),
    ("3.0.0", 1_000_000),
];

/// Mean delay, in events, between a release and a device's upgrade to it.
const MEAN_UPGRADE_DELAY: f64 = 50_000.0;

/// Label of the population's sub-seed, so users do not share a stream with the event sequence.
const POPULATION_STREAM: u64 = 0x0075_7365_7273; // "users"

/// Exponent of the Zipf law of user activity: a few users log in very often, most rarely.
pub const ZIPF_EXPONENT: f64 = 1.1;

/// An IP address field value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4(pub [u8; 4]);

/// One login event's fields before rendering.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// `user_id`, a UUID.
    pub user_id: [u8; 36],
    /// `app_version`.
    pub app_version: &'static str,
    /// `ip`.
    pub ip: Ipv4,
    /// `locale`, two ASCII letters (usually uppercase).
    pub locale: [u8; 2],
    /// `device_id`, a UUID.
    pub device_id: [u8; 36],
    /// `timestamp`, Unix seconds.
    pub timestamp: u64,
    /// Write the timestamp as a numeric string (`"1694479551"`), as an older feed did.
    pub timestamp_as_string: bool,
    /// `device_type`; `None` leaves the field out.
    pub device_type: Option<&'static str>,
}

impl Event {
    /// Appends the event as the Python generator wrote it.
    pub fn write_python(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"user_id\": \"");
        out.extend_from_slice(&self.user_id);
        out.extend_from_slice(b"\", \"app_version\": \"");
        out.extend_from_slice(self.app_version.as_bytes());
        out.extend_from_slice(b"\", \"ip\": \"");
        self.ip.write(out);
        out.extend_from_slice(b"\", \"locale\": \"");
        out.extend_from_slice(&self.locale);
        out.extend_from_slice(b"\", \"device_id\": \"");
        out.extend_from_slice(&self.device_id);
        out.extend_from_slice(b"\", \"timestamp\": ");
        self.write_timestamp(out);
        if let Some(device_type) = self.device_type {
            out.extend_from_slice(b", \"device_type\": \"");
            out.extend_from_slice(device_type.as_bytes());
            out.push(b'"');
        }
        out.push(b'}');
    }

    /// The fields in Python order as `(name, raw JSON value)`, for the hostile mutations.
    pub fn members(&self) -> Vec<(&'static str, Vec<u8>)> {
        let quoted = |s: &[u8]| [b"\"", s, b"\""].concat();
        let mut ip = Vec::with_capacity(15);
        self.ip.write(&mut ip);
        let mut timestamp = Vec::with_capacity(12);
        self.write_timestamp(&mut timestamp);
        let mut members = vec![
            ("user_id", quoted(&self.user_id)),
            ("app_version", quoted(self.app_version.as_bytes())),
            ("ip", quoted(&ip)),
            ("locale", quoted(&self.locale)),
            ("device_id", quoted(&self.device_id)),
            ("timestamp", timestamp),
        ];
        if let Some(device_type) = self.device_type {
            members.push(("device_type", quoted(device_type.as_bytes())));
        }
        members
    }

    fn write_timestamp(&self, out: &mut Vec<u8>) {
        // Writing to a Vec cannot fail.
        if self.timestamp_as_string {
            let _ = write!(out, "\"{}\"", self.timestamp);
        } else {
            let _ = write!(out, "{}", self.timestamp);
        }
    }
}

impl Ipv4 {
    /// Appends the dotted form.
    pub fn write(&self, out: &mut Vec<u8>) {
        let [a, b, c, d] = self.0;
        let _ = write!(out, "{a}.{b}.{c}.{d}");
    }

    /// Any four octets, as the original generator drew them.
    pub fn any(rng: &mut Rng) -> Ipv4 {
        Ipv4(
            rng.next_u64().to_le_bytes()[..4]
                .try_into()
                .expect("four bytes"),
        )
    }

    /// A globally routable unicast address.
    pub fn public(rng: &mut Rng) -> Ipv4 {
        loop {
            let ip = Ipv4::any(rng);
            if IpClass::of(std::net::Ipv4Addr::from(ip.0).into()) == IpClass::Public {
                return ip;
            }
        }
    }

    /// An RFC 1918 private address.
    pub fn private(rng: &mut Rng) -> Ipv4 {
        let r = rng.next_u64().to_le_bytes();
        match r[0] % 3 {
            0 => Ipv4([10, r[1], r[2], r[3]]),
            1 => Ipv4([172, 16 + r[1] % 16, r[2], r[3]]),
            _ => Ipv4([192, 168, r[2], r[3]]),
        }
    }
}

/// One event of the original feed: fresh UUIDs, `2.3.0`, any IPv4, a uniform state code, an
/// integer timestamp, `android` or `iOS` (absent in about 5% of events).
pub fn original_event(rng: &mut Rng, timestamp: u64) -> Event {
    let user_id = rng.uuid_v4();
    let ip = Ipv4::any(rng);
    let (locale, _) = rng.pick(&STATES);
    let device_id = rng.uuid_v4();
    let device_type = if rng.chance(0.05) {
        None
    } else {
        Some(*rng.pick(&["android", "iOS"]))
    };
    Event {
        user_id,
        app_version: "2.3.0",
        ip,
        locale: code(locale),
        device_id,
        timestamp,
        timestamp_as_string: false,
        device_type,
    }
}

fn code(state: &str) -> [u8; 2] {
    state.as_bytes().try_into().expect("two-letter state code")
}

/// A cumulative distribution over indices, sampled by binary search.
#[derive(Clone, Debug)]
pub struct Cdf(Vec<f64>);

impl Cdf {
    /// From non-negative weights (at least one positive).
    pub fn new(weights: impl IntoIterator<Item = f64>) -> Cdf {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = weights
            .into_iter()
            .map(|w| {
                acc += w;
                acc
            })
            .collect();
        cdf.iter_mut().for_each(|c| *c /= acc);
        Cdf(cdf)
    }

    /// An index drawn with probability proportional to its weight.
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.f64();
        self.0.partition_point(|&c| c <= u).min(self.0.len() - 1)
    }

    /// The probability of index `i`.
    #[cfg(test)]
    pub fn probability(&self, i: usize) -> f64 {
        self.0[i] - if i == 0 { 0.0 } else { self.0[i - 1] }
    }
}

/// A population of users with Zipf-distributed activity and stable per-user attributes.
#[derive(Clone, Debug)]
pub struct Population {
    seed: u64,
    /// Activity by user index: user 0 is the most active.
    pub activity: Cdf,
    states: Cdf,
}

/// The stable attributes of one user.
struct User {
    user_id: [u8; 36],
    home_state: usize,
    home_ip: Ipv4,
    devices: u64,
    seed: u64,
}

/// The stable attributes of one device.
struct Device {
    device_id: [u8; 36],
    device_type: &'static str,
    mobile_ip: Ipv4,
    installed: &'static str,
    /// Events between a release and this device's upgrade; `u64::MAX` never upgrades.
    upgrade_delay: u64,
}

impl Population {
    /// `users` users (at least 1) whose activity follows Zipf's law with [`ZIPF_EXPONENT`].
    pub fn new(seed: u64, users: usize) -> Population {
        let users = users.max(1);
        Population {
            seed: mix(seed, POPULATION_STREAM),
            activity: Cdf::new((1..=users).map(|k| (k as f64).powf(-ZIPF_EXPONENT))),
            states: Cdf::new(STATES.iter().map(|&(_, pop)| f64::from(pop))),
        }
    }

    /// One valid event at event index `index` (which drives app upgrades) and event time
    /// `timestamp`; `device_type` is always present (the caller decides to drop it).
    pub fn event(&self, rng: &mut Rng, index: u64, timestamp: u64) -> Event {
        let user = self.user(self.activity.sample(rng));
        // The first device is the one used most.
        let device_no = if user.devices == 1 || rng.chance(0.7) {
            0
        } else {
            rng.range(1, user.devices - 1)
        };
        let device = Device::derive(mix(user.seed, device_no));
        let ip = match rng.f64() {
            r if r < 0.65 => user.home_ip,
            r if r < 0.87 => device.mobile_ip,
            r if r < 0.95 => Ipv4::private(rng),
            r if r < 0.97 => Ipv4([100, 64 + rng.below(64) as u8, rng.below(256) as u8, 1]),
            r if r < 0.98 => Ipv4([127, 0, 0, 1]),
            _ => Ipv4::any(rng),
        };
        let state = if rng.chance(0.95) {
            user.home_state
        } else {
            self.states.sample(rng) // travelling
        };
        let mut locale = code(STATES[state].0);
        if rng.chance(0.01) {
            locale = locale.map(|b| b.to_ascii_lowercase());
        }
        // Most events arrive in order; some a few seconds late, a few minutes late.
        let delay = match rng.f64() {
            r if r < 0.90 => 0,
            r if r < 0.99 => rng.range(1, 5),
            _ => rng.range(30, 600),
        };
        Event {
            user_id: user.user_id,
            app_version: device.version_at(index),
            ip,
            locale,
            device_id: device.device_id,
            timestamp: timestamp.saturating_sub(delay),
            timestamp_as_string: rng.chance(0.10),
            device_type: Some(device.device_type),
        }
    }

    fn user(&self, index: usize) -> User {
        let seed = mix(self.seed, index as u64);
        let mut rng = Rng::new(seed);
        User {
            user_id: rng.uuid_v4(),
            home_state: self.states.sample(&mut rng),
            home_ip: Ipv4::public(&mut rng),
            devices: match rng.f64() {
                r if r < 0.6 => 1,
                r if r < 0.9 => 2,
                _ => 3,
            },
            seed,
        }
    }
}

impl Device {
    fn derive(seed: u64) -> Device {
        let mut rng = Rng::new(seed);
        let device_id = rng.uuid_v4();
        // The case of the type varies by client build; a given device always sends the same.
        let device_type = match rng.f64() {
            r if r < 0.44 => "android",
            r if r < 0.52 => "Android",
            r if r < 0.55 => "ANDROID",
            r if r < 0.90 => "iOS",
            r if r < 0.97 => "ios",
            _ => "IOS",
        };
        let mobile_ip = Ipv4::public(&mut rng);
        let r = rng.f64();
        let mut acc = 0.0;
        let installed = INSTALLED
            .iter()
            .find(|(_, share)| {
                acc += share;
                r < acc
            })
            .map_or(INSTALLED[INSTALLED.len() - 1].0, |(v, _)| v);
        let upgrade_delay = if rng.chance(0.05) {
            u64::MAX // never upgrades
        } else {
            (-(1.0 - rng.f64()).ln() * MEAN_UPGRADE_DELAY) as u64
        };
        Device {
            device_id,
            device_type,
            mobile_ip,
            installed,
            upgrade_delay,
        }
    }

    fn version_at(&self, index: u64) -> &'static str {
        RELEASES
            .iter()
            .rev()
            .find(|(_, at)| at.saturating_add(self.upgrade_delay) <= index)
            .map_or(self.installed, |(v, _)| v)
    }
}
