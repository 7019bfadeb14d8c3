//! Feasibility: constraint operators, targets (`${attr.*}`, `${meta.*}`, `${node.*}`),
//! datacenter globs, drivers, network modes, host volumes and devices.

use std::collections::HashMap;

use nomad_core::job::{Constraint, RequestedDevice};
use nomad_core::structs::version::version_matches;
use nomad_core::structs::{Node, NodeDeviceResource};
use regex::Regex;

/// A constraint or affinity side, parsed once per evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TargetRef {
    /// A literal value.
    Lit(String),
    /// `${node.unique.id}`.
    NodeId,
    /// `${node.unique.name}`.
    NodeName,
    /// `${node.datacenter}`.
    Datacenter,
    /// `${node.class}`.
    Class,
    /// `${node.pool}`.
    Pool,
    /// `${attr.<key>}`.
    Attr(String),
    /// `${meta.<key>}`.
    Meta(String),
    /// An interpolation this scheduler does not know: never set.
    Unknown,
}

impl TargetRef {
    pub(crate) fn parse(text: &str) -> TargetRef {
        let Some(inner) = text.strip_prefix("${").and_then(|t| t.strip_suffix('}')) else {
            return TargetRef::Lit(text.to_string());
        };
        match inner {
            "node.unique.id" => TargetRef::NodeId,
            "node.unique.name" => TargetRef::NodeName,
            "node.datacenter" => TargetRef::Datacenter,
            "node.class" => TargetRef::Class,
            "node.pool" => TargetRef::Pool,
            _ => {
                if let Some(k) = inner.strip_prefix("attr.") {
                    TargetRef::Attr(k.to_string())
                } else if let Some(k) = inner.strip_prefix("meta.") {
                    TargetRef::Meta(k.to_string())
                } else {
                    TargetRef::Unknown
                }
            }
        }
    }

    /// The value on `node`, `None` when not set.
    pub(crate) fn get<'a>(&'a self, node: &'a Node) -> Option<&'a str> {
        match self {
            TargetRef::Lit(s) => Some(s),
            TargetRef::NodeId => Some(&node.id),
            TargetRef::NodeName => Some(&node.name),
            TargetRef::Datacenter => Some(&node.datacenter),
            TargetRef::Class => Some(&node.node_class),
            TargetRef::Pool => Some(&node.node_pool),
            TargetRef::Attr(k) => node.attributes.get(k).map(String::as_str),
            TargetRef::Meta(k) => node.meta.get(k).map(String::as_str),
            TargetRef::Unknown => None,
        }
    }
}

/// True when a constraint reads something the computed class leaves out (`unique.*`), so
/// its result cannot be cached per class.
pub(crate) fn escapes_class(c: &Constraint) -> bool {
    let uniq = |t: &str| {
        t.contains("${node.unique.") || t.contains("${attr.unique.") || t.contains("${meta.unique.")
    };
    uniq(&c.l_target) || uniq(&c.r_target)
}

/// A constraint compiled for repeated checks.
#[derive(Debug, Clone)]
pub(crate) struct CompiledConstraint {
    pub(crate) l: TargetRef,
    pub(crate) r: TargetRef,
    pub(crate) op: String,
    /// How metrics name it: `${attr.kernel.name} = linux`.
    pub(crate) label: String,
}

impl CompiledConstraint {
    pub(crate) fn new(c: &Constraint) -> Self {
        let op = if c.operand.is_empty() {
            "=".to_string()
        } else {
            c.operand.clone()
        };
        CompiledConstraint {
            l: TargetRef::parse(&c.l_target),
            r: TargetRef::parse(&c.r_target),
            label: format!("{} {} {}", c.l_target, op, c.r_target)
                .trim()
                .to_string(),
            op,
        }
    }

    pub(crate) fn check(&self, node: &Node, regexes: &mut RegexCache) -> bool {
        check_operator(&self.op, self.l.get(node), self.r.get(node), regexes)
    }
}

/// Compiled regular expressions, by pattern; a pattern that does not compile never matches.
#[derive(Default)]
pub(crate) struct RegexCache {
    map: HashMap<String, Option<Regex>>,
}

impl RegexCache {
    fn is_match(&mut self, pattern: &str, text: &str) -> bool {
        let re = self
            .map
            .entry(pattern.to_string())
            .or_insert_with(|| Regex::new(pattern).ok());
        re.as_ref().is_some_and(|r| r.is_match(text))
    }
}

/// Applies a constraint operator as Nomad documents it.
pub(crate) fn check_operator(
    op: &str,
    l: Option<&str>,
    r: Option<&str>,
    regexes: &mut RegexCache,
) -> bool {
    match op {
        "=" | "==" | "is" => matches!((l, r), (Some(a), Some(b)) if a == b),
        "!=" | "not" => l != r,
        "<" | "<=" | ">" | ">=" => match (l, r) {
            (Some(a), Some(b)) => check_order(op, a, b),
            _ => false,
        },
        "is_set" => l.is_some(),
        "is_not_set" => l.is_none(),
        "version" => matches!((l, r), (Some(a), Some(b)) if version_matches(a, b, false)),
        "semver" => matches!((l, r), (Some(a), Some(b)) if version_matches(a, b, true)),
        "regexp" => matches!((l, r), (Some(a), Some(b)) if regexes.is_match(b, a)),
        "set_contains" | "set_contains_all" => match (l, r) {
            (Some(a), Some(b)) => {
                let have: Vec<&str> = a.split(',').map(str::trim).collect();
                b.split(',').map(str::trim).all(|x| have.contains(&x))
            }
            _ => false,
        },
        "set_contains_any" => match (l, r) {
            (Some(a), Some(b)) => {
                let have: Vec<&str> = a.split(',').map(str::trim).collect();
                b.split(',').map(str::trim).any(|x| have.contains(&x))
            }
            _ => false,
        },
        // Handled by their own checks.
        "distinct_hosts" | "distinct_property" => true,
        _ => false,
    }
}

fn check_order(op: &str, a: &str, b: &str) -> bool {
    use std::cmp::Ordering;
    let ord = match (a.trim().parse::<i64>(), b.trim().parse::<i64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        _ => match (a.trim().parse::<f64>(), b.trim().parse::<f64>()) {
            (Ok(x), Ok(y)) => match x.partial_cmp(&y) {
                Some(o) => o,
                None => return false,
            },
            _ => a.cmp(b),
        },
    };
    match op {
        "<" => ord == Ordering::Less,
        "<=" => ord != Ordering::Greater,
        ">" => ord == Ordering::Greater,
        ">=" => ord != Ordering::Less,
        _ => false,
    }
}

/// Glob matching of datacenter names: `*` is any run of characters, `?` one character.
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// True when a network mode is usable on the node: `host` and `none` always, `bridge` with
/// the CNI bridge plugin fingerprinted, `cni/<name>` with that CNI network configured.
pub(crate) fn network_mode_supported(node: &Node, mode: &str) -> bool {
    match mode {
        "" | "host" | "none" => true,
        "bridge" => node.attributes.contains_key("plugins.cni.version.bridge"),
        m => match m.strip_prefix("cni/") {
            Some(name) => node
                .attributes
                .contains_key(&format!("plugins.cni.config.{name}")),
            None => false,
        },
    }
}

/// The value a device constraint or affinity reads.
fn device_target<'a>(t: &'a str, d: &'a NodeDeviceResource) -> Option<&'a str> {
    let Some(inner) = t.strip_prefix("${").and_then(|x| x.strip_suffix('}')) else {
        return Some(t);
    };
    match inner {
        "device.vendor" => Some(&d.vendor),
        "device.type" => Some(&d.device_type),
        "device.model" => Some(&d.name),
        _ => inner
            .strip_prefix("device.attr.")
            .and_then(|k| d.attributes.get(k))
            .map(|v| v.split_whitespace().next().unwrap_or(v.as_str())),
    }
}

/// True when a device group satisfies a request's name and constraints.
pub(crate) fn device_group_matches(
    group: &NodeDeviceResource,
    ask: &RequestedDevice,
    regexes: &mut RegexCache,
) -> bool {
    group.matches_request(&ask.name)
        && ask.constraints.iter().all(|c| {
            let op = if c.operand.is_empty() {
                "="
            } else {
                &c.operand
            };
            check_operator(
                op,
                device_target(&c.l_target, group),
                device_target(&c.r_target, group),
                regexes,
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node() -> Node {
        let mut n = Node {
            id: "n1".into(),
            datacenter: "dc1".into(),
            ..Node::default()
        };
        n.attributes.insert("kernel.name".into(), "linux".into());
        n.attributes.insert("cpu.numcores".into(), "8".into());
        n.attributes.insert("os.version".into(), "22.04".into());
        n.attributes.insert("nomad.version".into(), "1.7.3".into());
        n.meta.insert("tags".into(), "a,b, c".into());
        n
    }

    fn ok(l: &str, op: &str, r: &str) -> bool {
        let c = CompiledConstraint::new(&Constraint::new(l, op, r));
        c.check(&node(), &mut RegexCache::default())
    }

    #[test]
    fn every_operator() {
        assert!(ok("${attr.kernel.name}", "=", "linux"));
        assert!(ok("${attr.kernel.name}", "", "linux"));
        assert!(!ok("${attr.kernel.name}", "!=", "linux"));
        assert!(ok("${attr.missing}", "!=", "linux"));
        assert!(ok("${attr.cpu.numcores}", ">", "4"));
        assert!(ok("${attr.cpu.numcores}", ">=", "8"));
        assert!(!ok("${attr.cpu.numcores}", "<", "8"));
        assert!(
            ok("${attr.cpu.numcores}", "<=", "10"),
            "numeric, not lexical"
        );
        assert!(ok("${attr.os.version}", ">", "20.10"));
        assert!(ok("${attr.kernel.name}", "regexp", "^lin"));
        assert!(!ok("${attr.kernel.name}", "regexp", "(["));
        assert!(ok("${meta.tags}", "set_contains", "a,c"));
        assert!(!ok("${meta.tags}", "set_contains", "a,d"));
        assert!(ok("${meta.tags}", "set_contains_any", "d,b"));
        assert!(ok("${attr.nomad.version}", "version", ">= 1.6, < 2.0"));
        assert!(ok("${attr.nomad.version}", "semver", ">= 1.7.0"));
        assert!(ok("${attr.kernel.name}", "is_set", ""));
        assert!(ok("${attr.nope}", "is_not_set", ""));
        assert!(!ok("${attr.nope}", "=", ""));
        assert!(ok("${node.unique.id}", "=", "n1"));
        assert!(ok("${node.datacenter}", "=", "dc1"));
        assert!(!ok("${whatever.x}", "is_set", ""));
        assert!(!ok("${attr.kernel.name}", "bogus", "linux"));
    }

    #[test]
    fn globs() {
        assert!(glob_match("*", "dc1"));
        assert!(glob_match("dc*", "dc12"));
        assert!(glob_match("d?1", "dc1"));
        assert!(!glob_match("dc2", "dc1"));
        assert!(glob_match("*-east-*", "us-east-1"));
        assert!(!glob_match("us-*-2", "us-east-1"));
    }

    #[test]
    fn unique_targets_escape_the_class() {
        assert!(escapes_class(&Constraint::new(
            "${node.unique.id}",
            "=",
            "x"
        )));
        assert!(escapes_class(&Constraint::new(
            "${attr.unique.hostname}",
            "=",
            "x"
        )));
        assert!(!escapes_class(&Constraint::new(
            "${attr.kernel.name}",
            "=",
            "x"
        )));
    }
}
