//! Durations as the API carries them: whole nanoseconds.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A span of time, carried in JSON as an integer number of nanoseconds (as Nomad's API does)
/// and written in job files as Go duration text (`"30s"`, `"1h30m"`, `"250ms"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(u64);

const NANOS_PER_SEC: u64 = 1_000_000_000;

impl Duration {
    /// No time at all.
    pub const ZERO: Duration = Duration(0);

    /// A duration of `nanos` nanoseconds.
    pub const fn from_nanos(nanos: u64) -> Self {
        Duration(nanos)
    }

    /// A duration of `ms` milliseconds.
    pub const fn from_millis(ms: u64) -> Self {
        Duration(ms.saturating_mul(1_000_000))
    }

    /// A duration of `secs` seconds.
    pub const fn from_secs(secs: u64) -> Self {
        Duration(secs.saturating_mul(NANOS_PER_SEC))
    }

    /// A duration of `mins` minutes.
    pub const fn from_mins(mins: u64) -> Self {
        Duration::from_secs(mins.saturating_mul(60))
    }

    /// A duration of `hours` hours.
    pub const fn from_hours(hours: u64) -> Self {
        Duration::from_secs(hours.saturating_mul(3600))
    }

    /// The whole nanoseconds.
    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    /// True for a zero duration.
    pub const fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// The same span as a [`std::time::Duration`].
    pub const fn to_std(self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.0)
    }

    /// Parses Go duration text: a sequence of decimal numbers, each with an optional fraction
    /// and a unit (`ns`, `us`, `µs`, `ms`, `s`, `m`, `h`), such as `"300ms"` or `"2h45m"`. A bare
    /// `"0"` is accepted. Negative durations are refused.
    pub fn parse(text: &str) -> Result<Self, String> {
        let s = text.trim();
        if s.is_empty() {
            return Err("empty duration".to_string());
        }
        if s == "0" {
            return Ok(Duration::ZERO);
        }
        if s.starts_with('-') {
            return Err(format!("duration {text:?} is negative"));
        }
        let s = s.strip_prefix('+').unwrap_or(s);
        let mut total: f64 = 0.0;
        let mut rest = s;
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            if num_len == 0 {
                return Err(format!("invalid duration {text:?}"));
            }
            let (num, after) = rest.split_at(num_len);
            let value: f64 = num
                .parse()
                .map_err(|_| format!("invalid duration {text:?}"))?;
            let unit_len = after
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(after.len());
            let (unit, next) = after.split_at(unit_len);
            let scale = match unit {
                "ns" => 1.0,
                "us" | "µs" | "μs" => 1e3,
                "ms" => 1e6,
                "s" => 1e9,
                "m" => 60e9,
                "h" => 3600e9,
                "" => return Err(format!("missing unit in duration {text:?}")),
                other => return Err(format!("unknown unit {other:?} in duration {text:?}")),
            };
            total += value * scale;
            rest = next;
        }
        if !total.is_finite() || total > u64::MAX as f64 {
            return Err(format!("duration {text:?} is too long"));
        }
        Ok(Duration(total.round() as u64))
    }
}

impl From<std::time::Duration> for Duration {
    fn from(d: std::time::Duration) -> Self {
        Duration(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

impl From<Duration> for std::time::Duration {
    fn from(d: Duration) -> Self {
        d.to_std()
    }
}

impl fmt::Display for Duration {
    /// Go's formatting: `1h30m0s`, `5s`, `250ms`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if n == 0 {
            return f.write_str("0s");
        }
        if n < NANOS_PER_SEC {
            return if n.is_multiple_of(1_000_000) {
                write!(f, "{}ms", n / 1_000_000)
            } else if n.is_multiple_of(1_000) {
                write!(f, "{}µs", n / 1_000)
            } else {
                write!(f, "{n}ns")
            };
        }
        let secs = n / NANOS_PER_SEC;
        let frac = n % NANOS_PER_SEC;
        let (h, m, s) = (secs / 3600, (secs / 60) % 60, secs % 60);
        if h > 0 {
            write!(f, "{h}h{m}m")?;
        } else if m > 0 {
            write!(f, "{m}m")?;
        }
        if frac == 0 {
            write!(f, "{s}s")
        } else {
            let digits = format!("{frac:09}");
            write!(f, "{s}.{}s", digits.trim_end_matches('0'))
        }
    }
}

impl Serialize for Duration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(self.0)
    }
}

impl<'de> Deserialize<'de> for Duration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Duration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration in nanoseconds or as text such as \"30s\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Duration, E> {
                Ok(Duration(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Duration, E> {
                u64::try_from(v)
                    .map(Duration)
                    .map_err(|_| E::custom(format!("duration {v} is negative")))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Duration, E> {
                if v.is_finite() && v >= 0.0 && v <= u64::MAX as f64 {
                    Ok(Duration(v as u64))
                } else {
                    Err(E::custom(format!("duration {v} is out of range")))
                }
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Duration, E> {
                Duration::parse(v).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(Duration::parse("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(Duration::parse("1h30m"), Ok(Duration::from_mins(90)));
        assert_eq!(Duration::parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(Duration::parse("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(Duration::parse("0"), Ok(Duration::ZERO));
        assert_eq!(Duration::parse("10us"), Ok(Duration::from_nanos(10_000)));
        assert!(Duration::parse("10").is_err());
        assert!(Duration::parse("-1s").is_err());
        assert!(Duration::parse("5 parsecs").is_err());
        assert!(Duration::parse("").is_err());
        assert!(Duration::parse("99999999999999999999h").is_err());
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(Duration::from_mins(90).to_string(), "1h30m0s");
        assert_eq!(Duration::from_secs(5).to_string(), "5s");
        assert_eq!(Duration::from_millis(250).to_string(), "250ms");
        assert_eq!(Duration::from_millis(1500).to_string(), "1.5s");
        assert_eq!(Duration::ZERO.to_string(), "0s");
    }

    #[test]
    fn json_is_nanoseconds_and_accepts_text() {
        assert_eq!(
            serde_json::to_string(&Duration::from_secs(1)).unwrap(),
            "1000000000"
        );
        let d: Duration = serde_json::from_str("\"2m\"").unwrap();
        assert_eq!(d, Duration::from_mins(2));
        assert!(serde_json::from_str::<Duration>("-5").is_err());
    }
}
