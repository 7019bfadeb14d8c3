//! Version comparison for the `version` and `semver` constraint operators.
//!
//! `version` follows go-version's lenient rules (any number of dot-separated numeric segments,
//! an optional leading `v`, pre-release after `-`, metadata after `+`, and the `~>` operator);
//! `semver` follows Semantic Versioning 2.0 strictly (exactly three segments, pre-release
//! precedence, no `~>`).

use std::cmp::Ordering;

/// A parsed version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    segments: Vec<u64>,
    pre: Vec<String>,
}

impl Version {
    /// Parses a version; with `strict`, exactly `MAJOR.MINOR.PATCH` as semver requires.
    pub fn parse(text: &str, strict: bool) -> Result<Version, String> {
        let t = text.trim();
        let t = if strict {
            t
        } else {
            t.strip_prefix('v').unwrap_or(t)
        };
        let t = t.split('+').next().unwrap_or("");
        let (core, pre) = match t.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (t, None),
        };
        if core.is_empty() {
            return Err(format!("{text:?} is not a version"));
        }
        let mut segments = Vec::new();
        for part in core.split('.') {
            let n: u64 = part
                .parse()
                .map_err(|_| format!("{text:?} is not a version"))?;
            segments.push(n);
        }
        if strict && segments.len() != 3 {
            return Err(format!(
                "{text:?} is not a semantic version (MAJOR.MINOR.PATCH)"
            ));
        }
        let pre = match pre {
            Some("") => return Err(format!("{text:?} has an empty pre-release")),
            Some(p) => p.split('.').map(str::to_string).collect(),
            None => Vec::new(),
        };
        Ok(Version { segments, pre })
    }

    fn segment(&self, i: usize) -> u64 {
        self.segments.get(i).copied().unwrap_or(0)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let n = self.segments.len().max(other.segments.len());
        for i in 0..n {
            match self.segment(i).cmp(&other.segment(i)) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        match (self.pre.is_empty(), other.pre.is_empty()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            (false, false) => {
                for (a, b) in self.pre.iter().zip(other.pre.iter()) {
                    let o = match (a.parse::<u64>(), b.parse::<u64>()) {
                        (Ok(x), Ok(y)) => x.cmp(&y),
                        (Ok(_), Err(_)) => Ordering::Less,
                        (Err(_), Ok(_)) => Ordering::Greater,
                        (Err(_), Err(_)) => a.cmp(b),
                    };
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                self.pre.len().cmp(&other.pre.len())
            }
        }
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    Pessimistic,
}

/// A comma-separated list of version requirements, all of which must hold.
#[derive(Debug, Clone)]
pub struct VersionConstraint {
    parts: Vec<(Op, Version, usize)>,
}

/// Parses `">= 1.2, < 2.0"`; with `strict`, as the `semver` operator does.
pub fn parse_constraint(text: &str, strict: bool) -> Result<VersionConstraint, String> {
    let mut parts = Vec::new();
    for raw in text.split(',') {
        let p = raw.trim();
        if p.is_empty() {
            return Err(format!("{text:?} has an empty requirement"));
        }
        let (op, rest) = if let Some(r) = p.strip_prefix("~>") {
            if strict {
                return Err("~> is not supported by semver constraints".into());
            }
            (Op::Pessimistic, r)
        } else if let Some(r) = p.strip_prefix(">=") {
            (Op::Ge, r)
        } else if let Some(r) = p.strip_prefix("<=") {
            (Op::Le, r)
        } else if let Some(r) = p.strip_prefix("!=") {
            (Op::Ne, r)
        } else if let Some(r) = p.strip_prefix('>') {
            (Op::Gt, r)
        } else if let Some(r) = p.strip_prefix('<') {
            (Op::Lt, r)
        } else if let Some(r) = p.strip_prefix('=') {
            (Op::Eq, r)
        } else {
            (Op::Eq, p)
        };
        let rest = rest.trim();
        let v = Version::parse(rest, strict)?;
        let given = rest
            .split(['-', '+'])
            .next()
            .unwrap_or("")
            .split('.')
            .count();
        parts.push((op, v, given));
    }
    Ok(VersionConstraint { parts })
}

impl VersionConstraint {
    /// True when `v` satisfies every requirement.
    pub fn matches(&self, v: &Version) -> bool {
        self.parts.iter().all(|(op, want, given)| match op {
            Op::Eq => v == want,
            Op::Ne => v != want,
            Op::Gt => v > want,
            Op::Ge => v >= want,
            Op::Lt => v < want,
            Op::Le => v <= want,
            Op::Pessimistic => {
                // ~> 1.2.3 allows >= 1.2.3, < 1.3; ~> 1.2 and ~> 1 allow < 2.
                let fixed = given.saturating_sub(1).max(1);
                v >= want && (0..fixed).all(|i| v.segment(i) == want.segment(i))
            }
        })
    }
}

/// True when the version text `v` satisfies the constraint text `c`; false when either does
/// not parse.
pub fn version_matches(v: &str, c: &str, strict: bool) -> bool {
    match (Version::parse(v, strict), parse_constraint(c, strict)) {
        (Ok(v), Ok(c)) => c.matches(&v),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_version_rules() {
        assert!(version_matches("1.2.3", ">= 1.2, < 2.0", false));
        assert!(!version_matches("2.0.0", ">= 1.2, < 2.0", false));
        assert!(version_matches("v4.19.0", "> 3.10", false));
        assert!(version_matches("1.2.9", "~> 1.2.3", false));
        assert!(!version_matches("1.3.0", "~> 1.2.3", false));
        assert!(version_matches("1.9", "~> 1.2", false));
        assert!(!version_matches("2.0", "~> 1.2", false));
        assert!(version_matches("1.0.0-beta", "< 1.0.0", false));
        assert!(!version_matches("not-a-version", "> 1", false));
    }

    #[test]
    fn semver_is_strict() {
        assert!(version_matches("1.2.3", ">= 1.2.0", true));
        assert!(!version_matches("1.2", ">= 1.2.0", true));
        assert!(parse_constraint("~> 1.2.0", true).is_err());
        assert!(version_matches("1.0.0-rc.10", "> 1.0.0-rc.2", true));
    }
}
