//! `${...}` references: finding them in text, resolving them against a task environment or a
//! node, and the variable name sanitising Nomad applies.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::structs::Node;

use super::names::CLEANED_PREFIXES;
use super::TaskEnv;

/// What a `${...}` refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reference<'t> {
    /// `${NOMAD_TASK_DIR}`, `${attr.kernel.name}`, `${meta.rack}`, `${node.class}`, ...: a
    /// name made of letters, digits, `_`, `-` and `.`.
    Name(&'t str),
    /// `${env["X"]}`: the task environment variable named exactly `X`.
    Env(String),
}

/// Replaces every `${...}` reference in `text` with the value `env` gives it.
///
/// A reference is `${name}`, where the name is made of ASCII letters, digits, `_`, `-` and
/// `.`, or `${env["name"]}` for any variable name; blanks are allowed just inside the braces.
/// Names are looked up as [`TaskEnv::lookup`] describes. What is left as written:
///
/// * a reference nothing resolves (Nomad does the same, so that text meant for another tool,
///   such as a shell, passes through);
/// * text that is not a well-formed reference (`${}`, `${a b}`, an unclosed `${`).
///
/// `$${` is an escape for a literal `${` (as in HCL): `$${NOMAD_TASK_DIR}` becomes the text
/// `${NOMAD_TASK_DIR}`. A job file written in HCL has already had that escape applied by the
/// parser, so the escape matters for jobs submitted as JSON.
///
/// Substituted values are not scanned again: a value that itself contains `${...}` is
/// inserted as it is.
///
/// ```
/// use std::collections::BTreeMap;
/// use nomad_core::env::{interpolate, TaskEnv};
///
/// let env = TaskEnv::from_parts(
///     BTreeMap::from([("NOMAD_TASK_DIR".to_string(), "/local".to_string())]),
///     BTreeMap::from([("attr.kernel.name".to_string(), "linux".to_string())]),
/// );
/// assert_eq!(interpolate("${NOMAD_TASK_DIR}/${attr.kernel.name}", &env), "/local/linux");
/// assert_eq!(interpolate("${HOME} $${NOMAD_TASK_DIR}", &env), "${HOME} ${NOMAD_TASK_DIR}");
/// ```
pub fn interpolate(text: &str, env: &TaskEnv) -> String {
    env.interpolate(text)
}

/// Replaces the references in `text`, asking `resolve` for each one; `None` keeps it as
/// written. See [`interpolate`] for the syntax.
pub(crate) fn expand(
    text: &str,
    resolve: &mut dyn FnMut(&Reference<'_>) -> Option<String>,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            match parse_reference(after) {
                Some((reference, len)) => {
                    match resolve(&reference) {
                        Some(value) => out.push_str(&value),
                        None => out.push_str(&tail[..2 + len]),
                    }
                    rest = &after[len..];
                }
                None => {
                    out.push_str("${");
                    rest = after;
                }
            }
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Parses the reference at the start of `s` (the text after `${`): the reference and how many
/// bytes it takes up to and including the closing `}`.
fn parse_reference(s: &str) -> Option<(Reference<'_>, usize)> {
    let bytes = s.as_bytes();
    let start = skip_blanks(bytes, 0);
    let mut end = start;
    while bytes.get(end).is_some_and(|b| is_name_byte(*b)) {
        end += 1;
    }
    if end == start {
        return None;
    }
    let name = &s[start..end];
    let next = skip_blanks(bytes, end);
    match bytes.get(next) {
        Some(b'}') => Some((Reference::Name(name), next + 1)),
        Some(b'[') if name == "env" => {
            let open = skip_blanks(bytes, next + 1);
            if bytes.get(open) != Some(&b'"') {
                return None;
            }
            let (key, after) = parse_quoted(s, open + 1)?;
            let close = skip_blanks(bytes, after);
            if bytes.get(close) != Some(&b']') {
                return None;
            }
            let brace = skip_blanks(bytes, close + 1);
            if bytes.get(brace) != Some(&b'}') {
                return None;
            }
            Some((Reference::Env(key), brace + 1))
        }
        _ => None,
    }
}

/// Parses a double-quoted string whose opening quote is just before `from`; `\"` and `\\`
/// are the only escapes. Returns the string and the offset after the closing quote.
fn parse_quoted(s: &str, from: usize) -> Option<(String, usize)> {
    let mut key = String::new();
    let mut chars = s.get(from..)?.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((key, from + i + 1)),
            '\\' => match chars.next() {
                Some((_, e @ ('"' | '\\'))) => key.push(e),
                _ => return None,
            },
            c => key.push(c),
        }
    }
    None
}

fn skip_blanks(bytes: &[u8], mut i: usize) -> usize {
    while matches!(bytes.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    i
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// Sanitises an environment variable name as Nomad does: every byte other than an ASCII
/// letter, `_`, `.` or (after the first byte) an ASCII digit becomes `_`. Dots are kept;
/// dashes, slashes, spaces and each byte of a non-ASCII character become `_`.
///
/// ```
/// assert_eq!(nomad_core::env::clean_env_name("NOMAD_PORT_my-port"), "NOMAD_PORT_my_port");
/// assert_eq!(nomad_core::env::clean_env_name("NOMAD_META_a.b/c"), "NOMAD_META_a.b_c");
/// ```
pub fn clean_env_name(name: &str) -> String {
    name.bytes()
        .enumerate()
        .map(|(i, b)| match b {
            b'_' | b'.' | b'a'..=b'z' | b'A'..=b'Z' => char::from(b),
            b'0'..=b'9' if i > 0 => char::from(b),
            _ => '_',
        })
        .collect()
}

/// The name a variable is stored under: sanitised when it starts with one of
/// [`CLEANED_PREFIXES`], as written otherwise.
pub(crate) fn env_key(name: &str) -> Cow<'_, str> {
    if CLEANED_PREFIXES.iter().any(|p| name.starts_with(p)) {
        Cow::Owned(clean_env_name(name))
    } else {
        Cow::Borrowed(name)
    }
}

/// Looks `name` up in node variables: `node.*`, `attr.*`, `meta.*`, and `node.attr.*` /
/// `node.meta.*` as other spellings of the last two.
pub(crate) fn lookup_node<'m>(node: &'m BTreeMap<String, String>, name: &str) -> Option<&'m str> {
    if let Some(v) = node.get(name) {
        return Some(v);
    }
    let rest = name.strip_prefix("node.")?;
    if rest.starts_with("attr.") || rest.starts_with("meta.") {
        node.get(rest).map(String::as_str)
    } else {
        None
    }
}

/// Looks `name` up in an environment map: as written, then under its sanitised name (so
/// `NOMAD_PORT_my-port` finds `NOMAD_PORT_my_port`).
pub(crate) fn lookup_env<'m>(env: &'m BTreeMap<String, String>, name: &str) -> Option<&'m str> {
    if let Some(v) = env.get(name) {
        return Some(v);
    }
    match env_key(name) {
        Cow::Owned(clean) => env.get(&clean).map(String::as_str),
        Cow::Borrowed(_) => None,
    }
}

/// The node variables a task can interpolate: `node.unique.id`, `node.unique.name`,
/// `node.datacenter`, `node.class`, `node.pool`, `node.region` (when `region` is not empty),
/// `attr.<name>` for each attribute and `meta.<key>` for each metadata key.
pub(crate) fn node_variables(node: &Node, region: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    if !region.is_empty() {
        vars.insert("node.region".to_owned(), region.to_owned());
    }
    vars.insert("node.unique.id".to_owned(), node.id.to_string());
    vars.insert("node.unique.name".to_owned(), node.name.to_string());
    vars.insert("node.class".to_owned(), node.node_class.clone());
    vars.insert("node.datacenter".to_owned(), node.datacenter.clone());
    vars.insert("node.pool".to_owned(), node.node_pool.clone());
    for (k, v) in &node.attributes {
        vars.insert(format!("attr.{k}"), v.clone());
    }
    for (k, v) in &node.meta {
        vars.insert(format!("meta.{k}"), v.clone());
    }
    vars
}

/// Resolves one side of a constraint, affinity or spread against `node`, as the scheduler
/// does: text that does not start with `${` is a literal and comes back as it is; otherwise
/// the whole target must be one of `${node.unique.id}`, `${node.unique.name}`,
/// `${node.datacenter}`, `${node.class}`, `${node.pool}`, `${attr.<name>}` or `${meta.<key>}`.
/// `None` when the node lacks the attribute or metadata key, or the target is none of these
/// (runtime variables such as `${NOMAD_ALLOC_ID}` are unknown before placement).
///
/// ```
/// use std::collections::BTreeMap;
/// use nomad_core::env::resolve_target;
/// use nomad_core::structs::Node;
///
/// let node = Node {
///     attributes: BTreeMap::from([("kernel.name".to_string(), "linux".to_string())]),
///     ..Node::default()
/// };
/// assert_eq!(resolve_target("${attr.kernel.name}", &node), Some("linux"));
/// assert_eq!(resolve_target("linux", &node), Some("linux"));
/// assert_eq!(resolve_target("${attr.cpu.arch}", &node), None);
/// ```
pub fn resolve_target<'a>(target: &'a str, node: &'a Node) -> Option<&'a str> {
    let Some(inner) = target.strip_prefix("${") else {
        return Some(target);
    };
    let inner = inner.strip_suffix('}')?;
    match inner {
        "node.unique.id" => Some(&node.id),
        "node.unique.name" => Some(&node.name),
        "node.datacenter" => Some(&node.datacenter),
        "node.class" => Some(&node.node_class),
        "node.pool" => Some(&node.node_pool),
        _ => {
            if let Some(attr) = inner.strip_prefix("attr.") {
                node.attributes.get(attr).map(String::as_str)
            } else if let Some(key) = inner.strip_prefix("meta.") {
                node.meta.get(key).map(String::as_str)
            } else {
                None
            }
        }
    }
}

/// [`resolve_target`] with an owned result, for callers that keep the value.
pub fn interpolate_constraint_target(target: &str, node: &Node) -> Option<String> {
    resolve_target(target, node).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> TaskEnv {
        let env = BTreeMap::from([
            ("NOMAD_TASK_DIR".to_string(), "/local".to_string()),
            ("NOMAD_PORT_my_port".to_string(), "8080".to_string()),
            ("odd...name".to_string(), "odd".to_string()),
            ("WITH_REF".to_string(), "${NOMAD_TASK_DIR}".to_string()),
            ("NOMAD_HOST_IP_my-port".to_string(), "10.0.0.1".to_string()),
        ]);
        let node = BTreeMap::from([
            ("node.unique.id".to_string(), "n-1".to_string()),
            ("node.unique.name".to_string(), "client-1".to_string()),
            ("node.datacenter".to_string(), "dc1".to_string()),
            ("node.region".to_string(), "eu".to_string()),
            ("node.class".to_string(), "large".to_string()),
            ("node.pool".to_string(), "prod".to_string()),
            ("attr.kernel.name".to_string(), "linux".to_string()),
            (
                "attr.unique.network.ip-address".to_string(),
                "10.0.0.5".to_string(),
            ),
            ("meta.rack".to_string(), "r1".to_string()),
        ]);
        TaskEnv::from_parts(env, node)
    }

    #[test]
    fn every_reference_kind_resolves() {
        let env = env();
        let cases = [
            ("${NOMAD_TASK_DIR}", "/local"),
            ("${attr.kernel.name}", "linux"),
            ("${attr.unique.network.ip-address}", "10.0.0.5"),
            ("${meta.rack}", "r1"),
            ("${node.unique.id}", "n-1"),
            ("${node.unique.name}", "client-1"),
            ("${node.datacenter}", "dc1"),
            ("${node.region}", "eu"),
            ("${node.class}", "large"),
            ("${node.pool}", "prod"),
            ("${node.attr.kernel.name}", "linux"),
            ("${node.meta.rack}", "r1"),
            (r#"${env["odd...name"]}"#, "odd"),
            (r#"${ env [ "NOMAD_TASK_DIR" ] }"#, "/local"),
            ("${ NOMAD_TASK_DIR }", "/local"),
            ("${NOMAD_PORT_my_port}", "8080"),
            ("${NOMAD_PORT_my-port}", "8080"),
            ("${NOMAD_HOST_IP_my-port}", "10.0.0.1"),
        ];
        for (text, want) in cases {
            assert_eq!(interpolate(text, &env), want, "{text}");
        }
    }

    #[test]
    fn text_around_references_is_kept() {
        let env = env();
        assert_eq!(
            interpolate("dc=${node.datacenter}, dir=${NOMAD_TASK_DIR}/x $5 $", &env),
            "dc=dc1, dir=/local/x $5 $"
        );
        assert_eq!(interpolate("ünï ${meta.rack} çø", &env), "ünï r1 çø");
    }

    #[test]
    fn unknown_and_malformed_references_are_kept() {
        let env = env();
        for text in [
            "${UNKNOWN}",
            "${attr.cpu.arch}",
            "${meta.nope}",
            "${node.attr.nope}",
            r#"${env["UNKNOWN"]}"#,
            r#"${env["NOMAD_TASK_DIR"}"#,
            r#"${env[NOMAD_TASK_DIR]}"#,
            "${}",
            "${a b}",
            "${NOMAD_TASK_DIR",
            "${env}",
            "${{x}}",
            "${\"x\"}",
        ] {
            assert_eq!(interpolate(text, &env), text);
        }
        // An unclosed reference does not hide the ones after it.
        assert_eq!(
            interpolate("${oops ${NOMAD_TASK_DIR}", &env),
            "${oops /local"
        );
        // A reference to a variable that is not in the env map is not taken from the node.
        assert_eq!(
            interpolate(r#"${env["attr.kernel.name"]}"#, &env),
            r#"${env["attr.kernel.name"]}"#
        );
    }

    #[test]
    fn dollar_dollar_brace_escapes() {
        let env = env();
        assert_eq!(interpolate("$${NOMAD_TASK_DIR}", &env), "${NOMAD_TASK_DIR}");
        assert_eq!(
            interpolate("$$${NOMAD_TASK_DIR}", &env),
            "$${NOMAD_TASK_DIR}"
        );
        assert_eq!(interpolate("$$ ${NOMAD_TASK_DIR}", &env), "$$ /local");
    }

    #[test]
    fn substituted_values_are_not_scanned_again() {
        assert_eq!(interpolate("${WITH_REF}", &env()), "${NOMAD_TASK_DIR}");
    }

    #[test]
    fn quoted_env_names_take_escapes() {
        let env = TaskEnv::from_parts(
            BTreeMap::from([("a\"b\\c".to_string(), "yes".to_string())]),
            BTreeMap::new(),
        );
        assert_eq!(interpolate(r#"${env["a\"b\\c"]}"#, &env), "yes");
        assert_eq!(interpolate(r#"${env["a\nb"]}"#, &env), r#"${env["a\nb"]}"#);
    }

    #[test]
    fn names_are_cleaned_as_nomad_does() {
        assert_eq!(clean_env_name("NOMAD_ADDR_web-ui"), "NOMAD_ADDR_web_ui");
        assert_eq!(clean_env_name("NOMAD_META_a.b"), "NOMAD_META_a.b");
        assert_eq!(clean_env_name("NOMAD_META_x y/z"), "NOMAD_META_x_y_z");
        assert_eq!(clean_env_name("NOMAD_META_é"), "NOMAD_META___");
        assert_eq!(clean_env_name("9lives"), "_lives");
        assert_eq!(env_key("NOMAD_HOST_ADDR_a-b"), "NOMAD_HOST_ADDR_a-b");
        assert_eq!(env_key("NOMAD_HOST_PORT_a-b"), "NOMAD_HOST_PORT_a_b");
        assert_eq!(env_key("MY-VAR"), "MY-VAR");
    }

    #[test]
    fn constraint_targets_resolve_against_the_node() {
        let node = Node {
            id: "9afa5da1-8f39-25a2-48dc-ba31fd7c0023".into(),
            name: "client-1".into(),
            datacenter: "dc1".into(),
            node_class: "large".into(),
            node_pool: "prod".into(),
            attributes: BTreeMap::from([("kernel.name".into(), "linux".into())]),
            meta: BTreeMap::from([("rack".into(), "r1".into())]),
            ..Node::default()
        };
        let cases = [
            (
                "${node.unique.id}",
                Some("9afa5da1-8f39-25a2-48dc-ba31fd7c0023"),
            ),
            ("${node.unique.name}", Some("client-1")),
            ("${node.datacenter}", Some("dc1")),
            ("${node.class}", Some("large")),
            ("${node.pool}", Some("prod")),
            ("${attr.kernel.name}", Some("linux")),
            ("${meta.rack}", Some("r1")),
            ("${attr.cpu.arch}", None),
            ("${meta.zone}", None),
            ("${NOMAD_ALLOC_ID}", None),
            ("${attr.kernel.name", None),
            ("linux", Some("linux")),
            ("", Some("")),
        ];
        for (target, want) in cases {
            assert_eq!(resolve_target(target, &node), want, "{target}");
            assert_eq!(
                interpolate_constraint_target(target, &node),
                want.map(str::to_owned),
                "{target}"
            );
        }
    }
}
