//! Value types of the configuration file: durations (`10s`), sizes (`64M`), octal modes
//! (`"0660"`) and anything written as a string the command line also parses (listen
//! addresses, forward targets). Each rejects a bad value with a message saying what is expected.

use serde::{de, Deserialize, Deserializer};
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration written `30s`, `5m`, `2h`, `180d`, `1w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dur(pub Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        parse_duration(&s).map(Dur).map_err(de::Error::custom)
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs();
        for (unit, n) in [("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)] {
            if s >= n && s.is_multiple_of(n) {
                return write!(f, "{}{unit}", s / n);
            }
        }
        write!(f, "{s}s")
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::log::time::parse_duration(s)
        .filter(|&n| n >= 0)
        .map(|n| Duration::from_secs(n as u64))
        .ok_or_else(|| format!("{s:?} is not a duration (write it like 30s, 5m, 2h, 180d)"))
}

/// A size in bytes: an integer, or a string with a unit, `512K`, `64M`, `1G` (powers of 1024;
/// `KiB`, `MiB`, `GiB` and `KB`, `MB`, `GB` are read the same way).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub usize);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl de::Visitor<'_> for V {
            type Value = Size;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size in bytes, or a string like \"64M\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Size, E> {
                usize::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom(format!("{v} is not a size")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Size, E> {
                usize::try_from(v)
                    .map(Size)
                    .map_err(|_| E::custom(format!("{v} is too large")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Size, E> {
                parse_size(v).map(Size).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (unit, m) in [("G", 1usize << 30), ("M", 1 << 20), ("K", 1 << 10)] {
            if n >= m && n.is_multiple_of(m) {
                return write!(f, "{}{unit}", n / m);
            }
        }
        write!(f, "{n}")
    }
}

pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let bad = || format!("{s:?} is not a size (write it like 65536, \"512K\", \"64M\", \"1G\")");
    let n: usize = num.parse().map_err(|_| bad())?;
    let mult: usize = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(mult).ok_or_else(bad)
}

/// A unix socket mode written as an octal string, `"0660"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)
            .map_err(|_| de::Error::custom("write the mode as an octal string, like \"0660\""))?;
        match crate::serve::listen::parse_mode(&s) {
            Ok(m) if m <= 0o777 => Ok(Mode(m)),
            Ok(_) => Err(de::Error::custom(format!("{s:?} is not a file mode"))),
            Err(e) => Err(de::Error::custom(e)),
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

/// Anything the command line parses from a string (`FromStr`), read from a TOML string.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed<T>(pub T);

impl<'de, T> Deserialize<'de> for Parsed<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map(Parsed).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("64X").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
        assert_eq!(Size(64 << 20).to_string(), "64M");
        assert_eq!(Size(1000).to_string(), "1000");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(
            parse_duration("180d"),
            Ok(Duration::from_secs(180 * 86_400))
        );
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("ten seconds").is_err());
        assert_eq!(Dur(Duration::from_secs(300)).to_string(), "5m");
        assert_eq!(Dur(Duration::from_secs(90)).to_string(), "90s");
    }
}
