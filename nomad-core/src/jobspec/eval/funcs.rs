//! The functions a job file may call, following the semantics of Nomad's HCL2 function
//! reference. `can`, `try` and `convert` need their arguments unevaluated and live in the
//! evaluator itself.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;

use hcl::{Map, Number, Value};
use regex::Regex;

use super::types::{describe, make_set, size_of, to_bool, to_number, to_string, Type};
use super::{MAX_SIZE, MAX_STRING, MAX_VALUE_DEPTH};

/// What functions may use beside their arguments.
pub(super) struct FuncEnv<'a> {
    /// Where `file` and `fileexists` resolve relative paths; `None` makes them fail.
    pub(super) base_dir: Option<&'a Path>,
}

/// Every function [`call`] knows.
const FUNCTIONS: &[&str] = &[
    // numeric
    "abs",
    "ceil",
    "floor",
    "log",
    "max",
    "min",
    "parseint",
    "pow",
    "signum",
    // string
    "chomp",
    "endswith",
    "format",
    "formatlist",
    "indent",
    "join",
    "lower",
    "regex",
    "regex_replace",
    "regexall",
    "replace",
    "split",
    "startswith",
    "strrev",
    "substr",
    "title",
    "trim",
    "trimprefix",
    "trimspace",
    "trimsuffix",
    "upper",
    // collection
    "alltrue",
    "anytrue",
    "chunklist",
    "coalesce",
    "coalescelist",
    "compact",
    "concat",
    "contains",
    "distinct",
    "element",
    "flatten",
    "index",
    "keys",
    "length",
    "lookup",
    "merge",
    "range",
    "reverse",
    "setintersection",
    "setproduct",
    "setsubtract",
    "setunion",
    "slice",
    "sort",
    "sum",
    "transpose",
    "values",
    "zipmap",
    // encoding
    "base64decode",
    "base64encode",
    "csvdecode",
    "jsondecode",
    "jsonencode",
    "urlencode",
    // type conversion
    "tobool",
    "tolist",
    "tomap",
    "tonumber",
    "toset",
    "tostring",
    // filesystem
    "basename",
    "dirname",
    "file",
    "fileexists",
    // IP networks
    "cidrhost",
    "cidrnetmask",
    "cidrsubnet",
    "cidrsubnets",
];

/// Whether `name` is a function [`call`] implements.
pub(super) fn is_supported(name: &str) -> bool {
    FUNCTIONS.contains(&name)
}

type FnResult = Result<Value, String>;

/// Calls the function `name` with evaluated arguments. Errors are prefixed with the name.
pub(super) fn call(name: &str, args: Vec<Value>, env: &FuncEnv<'_>) -> FnResult {
    let a = Args { name, vals: args };
    dispatch(&a, env).map_err(|e| format!("{name}: {e}"))
}

fn dispatch(a: &Args<'_>, env: &FuncEnv<'_>) -> FnResult {
    match a.name {
        // -- numeric -------------------------------------------------------------------------
        "abs" => {
            a.arity(1, 1)?;
            let n = a.number(0)?;
            match n.as_i64().and_then(i64::checked_abs) {
                Some(i) => Ok(Value::from(i)),
                None => float_value(a.float(0)?.abs()),
            }
        }
        "ceil" => {
            a.arity(1, 1)?;
            float_value(a.float(0)?.ceil())
        }
        "floor" => {
            a.arity(1, 1)?;
            float_value(a.float(0)?.floor())
        }
        "log" => {
            a.arity(2, 2)?;
            let (n, base) = (a.float(0)?, a.float(1)?);
            float_value(n.ln() / base.ln())
        }
        "max" | "min" => {
            a.arity(1, usize::MAX)?;
            let mut best = a.number(0)?;
            for i in 1..a.vals.len() {
                let n = a.number(i)?;
                let better = if a.name == "max" { n > best } else { n < best };
                if better {
                    best = n;
                }
            }
            Ok(Value::Number(best))
        }
        "parseint" => {
            a.arity(2, 2)?;
            parse_int(&a.string(0)?, a.int(1)?)
        }
        "pow" => {
            a.arity(2, 2)?;
            let (base, exp) = (a.number(0)?, a.number(1)?);
            let exact = match (
                base.as_i64(),
                exp.as_u64().and_then(|e| u32::try_from(e).ok()),
            ) {
                (Some(b), Some(e)) => b.checked_pow(e),
                _ => None,
            };
            match exact {
                Some(n) => Ok(Value::from(n)),
                None => float_value(a.float(0)?.powf(a.float(1)?)),
            }
        }
        "signum" => {
            a.arity(1, 1)?;
            let n = a.float(0)?;
            Ok(Value::from(if n > 0.0 {
                1
            } else if n < 0.0 {
                -1
            } else {
                0
            }))
        }

        // -- string --------------------------------------------------------------------------
        "chomp" => {
            a.arity(1, 1)?;
            Ok(Value::String(
                a.string(0)?.trim_end_matches(['\r', '\n']).to_string(),
            ))
        }
        "startswith" | "endswith" => {
            a.arity(2, 2)?;
            let (s, affix) = (a.string(0)?, a.string(1)?);
            Ok(Value::Bool(if a.name == "startswith" {
                s.starts_with(&affix)
            } else {
                s.ends_with(&affix)
            }))
        }
        "format" => {
            a.arity(1, usize::MAX)?;
            let spec = a.string(0)?;
            format_values(&spec, a.vals.get(1..).unwrap_or_default()).map(Value::String)
        }
        "formatlist" => {
            a.arity(1, usize::MAX)?;
            formatlist(&a.string(0)?, a.vals.get(1..).unwrap_or_default())
        }
        "indent" => {
            a.arity(2, 2)?;
            let n = usize::try_from(a.int(0)?).map_err(|_| "the indent must not be negative")?;
            let s = a.string(1)?;
            let lines = s.matches('\n').count();
            if n.saturating_mul(lines).saturating_add(s.len()) > MAX_STRING {
                return Err(too_long());
            }
            let pad = format!("\n{}", " ".repeat(n));
            Ok(Value::String(s.replace('\n', &pad)))
        }
        "join" => {
            a.arity(2, usize::MAX)?;
            let sep = a.string(0)?;
            let mut parts = Vec::new();
            for i in 1..a.vals.len() {
                for item in a.list(i)? {
                    parts.push(to_string(&item).ok_or_else(|| {
                        format!("list elements must be strings, got {}", describe(&item))
                    })?);
                }
            }
            let total: usize = parts
                .iter()
                .map(String::len)
                .fold(sep.len().saturating_mul(parts.len()), usize::saturating_add);
            if total > MAX_STRING {
                return Err(too_long());
            }
            Ok(Value::String(parts.join(&sep)))
        }
        "lower" => {
            a.arity(1, 1)?;
            Ok(Value::String(a.string(0)?.to_lowercase()))
        }
        "upper" => {
            a.arity(1, 1)?;
            Ok(Value::String(a.string(0)?.to_uppercase()))
        }
        "regex" => {
            a.arity(2, 2)?;
            let re = compile(&a.string(0)?)?;
            let s = a.string(1)?;
            match re.captures(&s) {
                Some(caps) => regex_match(&re, &caps),
                None => Err("the pattern did not match the string".to_string()),
            }
        }
        "regexall" => {
            a.arity(2, 2)?;
            let re = compile(&a.string(0)?)?;
            let s = a.string(1)?;
            let mut out = Vec::new();
            for caps in re.captures_iter(&s) {
                out.push(regex_match(&re, &caps)?);
            }
            Ok(Value::Array(out))
        }
        "replace" => {
            a.arity(3, 3)?;
            let (s, search, replacement) = (a.string(0)?, a.string(1)?, a.string(2)?);
            match search
                .strip_prefix('/')
                .and_then(|rest| rest.strip_suffix('/'))
            {
                Some(pattern) if search.len() >= 2 => {
                    regex_replace(&s, &compile(pattern)?, &replacement)
                }
                _ => plain_replace(&s, &search, &replacement),
            }
        }
        "regex_replace" => {
            a.arity(3, 3)?;
            let (s, pattern, replacement) = (a.string(0)?, a.string(1)?, a.string(2)?);
            regex_replace(&s, &compile(&pattern)?, &replacement)
        }
        "split" => {
            a.arity(2, 2)?;
            let (sep, s) = (a.string(0)?, a.string(1)?);
            let parts: Vec<Value> = if sep.is_empty() {
                s.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                s.split(sep.as_str()).map(Value::from).collect()
            };
            Ok(Value::Array(parts))
        }
        "strrev" => {
            a.arity(1, 1)?;
            Ok(Value::String(a.string(0)?.chars().rev().collect()))
        }
        "substr" => {
            a.arity(3, 3)?;
            substr(&a.string(0)?, a.int(1)?, a.int(2)?)
        }
        "title" => {
            a.arity(1, 1)?;
            Ok(Value::String(title(&a.string(0)?)))
        }
        "trim" => {
            a.arity(2, 2)?;
            let (s, cutset) = (a.string(0)?, a.string(1)?);
            Ok(Value::String(
                s.trim_matches(|c| cutset.contains(c)).to_string(),
            ))
        }
        "trimprefix" => {
            a.arity(2, 2)?;
            let (s, prefix) = (a.string(0)?, a.string(1)?);
            Ok(Value::String(
                s.strip_prefix(prefix.as_str()).unwrap_or(&s).to_string(),
            ))
        }
        "trimsuffix" => {
            a.arity(2, 2)?;
            let (s, suffix) = (a.string(0)?, a.string(1)?);
            Ok(Value::String(
                s.strip_suffix(suffix.as_str()).unwrap_or(&s).to_string(),
            ))
        }
        "trimspace" => {
            a.arity(1, 1)?;
            Ok(Value::String(a.string(0)?.trim().to_string()))
        }

        // -- collection ----------------------------------------------------------------------
        "alltrue" | "anytrue" => {
            a.arity(1, 1)?;
            let mut all = true;
            let mut any = false;
            for item in a.list(0)? {
                let b = match item {
                    Value::Null => false,
                    other => to_bool(&other).ok_or_else(|| {
                        format!("list elements must be bools, got {}", describe(&other))
                    })?,
                };
                all &= b;
                any |= b;
            }
            Ok(Value::Bool(if a.name == "alltrue" { all } else { any }))
        }
        "chunklist" => {
            a.arity(2, 2)?;
            let list = a.list(0)?;
            let size =
                usize::try_from(a.int(1)?).map_err(|_| "the chunk size must not be negative")?;
            if size == 0 {
                return Ok(Value::Array(vec![Value::Array(list)]));
            }
            Ok(Value::Array(
                list.chunks(size)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            ))
        }
        "coalesce" => {
            a.arity(1, usize::MAX)?;
            a.vals
                .iter()
                .find(|v| !v.is_null() && v.as_str() != Some(""))
                .cloned()
                .ok_or_else(|| "all arguments are null or empty strings".to_string())
        }
        "coalescelist" => {
            a.arity(1, usize::MAX)?;
            for i in 0..a.vals.len() {
                let list = a.list(i)?;
                if !list.is_empty() {
                    return Ok(Value::Array(list));
                }
            }
            Err("all arguments are empty lists".to_string())
        }
        "compact" => {
            a.arity(1, 1)?;
            let mut out = Vec::new();
            for item in a.list(0)? {
                if item.is_null() {
                    continue;
                }
                let s = to_string(&item).ok_or_else(|| {
                    format!("list elements must be strings, got {}", describe(&item))
                })?;
                if !s.is_empty() {
                    out.push(Value::String(s));
                }
            }
            Ok(Value::Array(out))
        }
        "concat" => {
            let mut out = Vec::new();
            for i in 0..a.vals.len() {
                out.extend(a.list(i)?);
            }
            Ok(Value::Array(out))
        }
        "contains" => {
            a.arity(2, 2)?;
            let wanted = a.get(1)?;
            Ok(Value::Bool(a.list(0)?.iter().any(|v| v == wanted)))
        }
        "distinct" => {
            a.arity(1, 1)?;
            let mut out: Vec<Value> = Vec::new();
            for item in a.list(0)? {
                if !out.contains(&item) {
                    out.push(item);
                }
            }
            Ok(Value::Array(out))
        }
        "element" => {
            a.arity(2, 2)?;
            let list = a.list(0)?;
            let i = a.int(1)?;
            if list.is_empty() {
                return Err("cannot take an element of an empty list".to_string());
            }
            let i = usize::try_from(i).map_err(|_| "the index must not be negative")?;
            list.get(i % list.len())
                .cloned()
                .ok_or_else(|| "index out of range".to_string())
        }
        "flatten" => {
            a.arity(1, 1)?;
            let mut out = Vec::new();
            flatten_into(a.list(0)?, &mut out);
            Ok(Value::Array(out))
        }
        "index" => {
            a.arity(2, 2)?;
            let wanted = a.get(1)?;
            a.list(0)?
                .iter()
                .position(|v| v == wanted)
                .map(Value::from)
                .ok_or_else(|| format!("{} is not in the list", describe(wanted)))
        }
        "keys" => {
            a.arity(1, 1)?;
            let mut keys: Vec<String> = a.object(0)?.into_keys().collect();
            keys.sort();
            Ok(Value::Array(keys.into_iter().map(Value::String).collect()))
        }
        "values" => {
            a.arity(1, 1)?;
            let mut pairs: Vec<(String, Value)> = a.object(0)?.into_iter().collect();
            pairs.sort_by(|x, y| x.0.cmp(&y.0));
            Ok(Value::Array(pairs.into_iter().map(|(_, v)| v).collect()))
        }
        "length" => {
            a.arity(1, 1)?;
            match a.get(0)? {
                Value::String(s) => Ok(Value::from(s.chars().count())),
                Value::Array(items) => Ok(Value::from(items.len())),
                Value::Object(fields) => Ok(Value::from(fields.len())),
                other => Err(format!(
                    "a string, list or map is required, got {}",
                    describe(other)
                )),
            }
        }
        "lookup" => {
            a.arity(2, 3)?;
            let map = a.object(0)?;
            let key = a.string(1)?;
            match map.get(&key) {
                Some(v) => Ok(v.clone()),
                None => match a.vals.get(2) {
                    Some(default) => Ok(default.clone()),
                    None => Err(format!(
                        "the map has no key \"{key}\" and no default was given"
                    )),
                },
            }
        }
        "merge" => {
            let mut out = Map::new();
            for (i, v) in a.vals.iter().enumerate() {
                match v {
                    Value::Null => {}
                    Value::Object(fields) => {
                        for (k, v) in fields {
                            out.insert(k.clone(), v.clone());
                        }
                    }
                    other => {
                        return Err(format!(
                            "argument {} must be a map or object, got {}",
                            i + 1,
                            describe(other)
                        ))
                    }
                }
            }
            Ok(Value::Object(out))
        }
        "range" => {
            a.arity(1, 3)?;
            let (start, limit, step) = match a.vals.len() {
                1 => (0.0, a.float(0)?, 1.0),
                2 => {
                    let (s, l) = (a.float(0)?, a.float(1)?);
                    (s, l, if l < s { -1.0 } else { 1.0 })
                }
                _ => (a.float(0)?, a.float(1)?, a.float(2)?),
            };
            range(start, limit, step)
        }
        "reverse" => {
            a.arity(1, 1)?;
            let mut list = a.list(0)?;
            list.reverse();
            Ok(Value::Array(list))
        }
        "setintersection" => {
            a.arity(1, usize::MAX)?;
            let mut acc = make_set(a.list(0)?);
            for i in 1..a.vals.len() {
                let other = a.list(i)?;
                acc.retain(|v| other.contains(v));
            }
            Ok(Value::Array(make_set(acc)))
        }
        "setsubtract" => {
            a.arity(2, 2)?;
            let remove = a.list(1)?;
            let mut acc = make_set(a.list(0)?);
            acc.retain(|v| !remove.contains(v));
            Ok(Value::Array(acc))
        }
        "setunion" => {
            a.arity(1, usize::MAX)?;
            let mut acc = Vec::new();
            for i in 0..a.vals.len() {
                acc.extend(a.list(i)?);
            }
            Ok(Value::Array(make_set(acc)))
        }
        "setproduct" => {
            a.arity(2, usize::MAX)?;
            let lists: Vec<Vec<Value>> = (0..a.vals.len())
                .map(|i| a.list(i))
                .collect::<Result<_, _>>()?;
            setproduct(&lists)
        }
        "slice" => {
            a.arity(3, 3)?;
            let list = a.list(0)?;
            let (start, end) = (a.int(1)?, a.int(2)?);
            let start =
                usize::try_from(start).map_err(|_| "the start index must not be negative")?;
            let end = usize::try_from(end).map_err(|_| "the end index must not be negative")?;
            if start > end || end > list.len() {
                return Err(format!(
                    "cannot slice [{start}, {end}) out of a list of {} elements",
                    list.len()
                ));
            }
            Ok(Value::Array(
                list.get(start..end).unwrap_or_default().to_vec(),
            ))
        }
        "sort" => {
            a.arity(1, 1)?;
            let mut items = Vec::new();
            for item in a.list(0)? {
                items.push(to_string(&item).ok_or_else(|| {
                    format!("list elements must be strings, got {}", describe(&item))
                })?);
            }
            items.sort();
            Ok(Value::Array(items.into_iter().map(Value::String).collect()))
        }
        "sum" => {
            a.arity(1, 1)?;
            let list = a.list(0)?;
            if list.is_empty() {
                return Err("cannot sum an empty list".to_string());
            }
            let mut total = Number::from(0);
            for item in &list {
                let n = to_number(item).ok_or_else(|| {
                    format!("list elements must be numbers, got {}", describe(item))
                })?;
                total = add(total, n)?;
            }
            Ok(Value::Number(total))
        }
        "transpose" => {
            a.arity(1, 1)?;
            let mut pairs: Vec<(String, Value)> = a.object(0)?.into_iter().collect();
            pairs.sort_by(|x, y| x.0.cmp(&y.0));
            let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
            for (key, list) in pairs {
                let Value::Array(items) = list else {
                    return Err(format!("the value of \"{key}\" must be a list of strings"));
                };
                for item in items {
                    let s = to_string(&item).ok_or_else(|| {
                        format!("the value of \"{key}\" must be a list of strings")
                    })?;
                    out.entry(s).or_default().push(Value::String(key.clone()));
                }
            }
            Ok(Value::Object(
                out.into_iter().map(|(k, v)| (k, Value::Array(v))).collect(),
            ))
        }
        "zipmap" => {
            a.arity(2, 2)?;
            let (keys, values) = (a.list(0)?, a.list(1)?);
            if keys.len() != values.len() {
                return Err(format!(
                    "{} keys but {} values; the lists must be as long as each other",
                    keys.len(),
                    values.len()
                ));
            }
            let mut out = Map::new();
            for (k, v) in keys.into_iter().zip(values) {
                let k = to_string(&k)
                    .ok_or_else(|| format!("keys must be strings, got {}", describe(&k)))?;
                out.insert(k, v);
            }
            Ok(Value::Object(out))
        }

        // -- encoding ------------------------------------------------------------------------
        "base64encode" => {
            a.arity(1, 1)?;
            Ok(Value::String(base64_encode(a.string(0)?.as_bytes())))
        }
        "base64decode" => {
            a.arity(1, 1)?;
            let bytes = base64_decode(&a.string(0)?)?;
            String::from_utf8(bytes)
                .map(Value::String)
                .map_err(|_| "the decoded bytes are not valid UTF-8".to_string())
        }
        "csvdecode" => {
            a.arity(1, 1)?;
            csv_decode(&a.string(0)?)
        }
        "jsondecode" => {
            a.arity(1, 1)?;
            let v: Value =
                serde_json::from_str(&a.string(0)?).map_err(|e| format!("invalid JSON: {e}"))?;
            if super::types::deeper_than(&v, MAX_VALUE_DEPTH) {
                return Err("the JSON nests too deeply".to_string());
            }
            Ok(v)
        }
        "jsonencode" => {
            a.arity(1, 1)?;
            serde_json::to_string(a.get(0)?)
                .map(Value::String)
                .map_err(|e| e.to_string())
        }
        "urlencode" => {
            a.arity(1, 1)?;
            Ok(Value::String(url_encode(&a.string(0)?)))
        }

        // -- type conversion -----------------------------------------------------------------
        "tobool" | "tonumber" | "tostring" | "tolist" | "toset" | "tomap" => {
            a.arity(1, 1)?;
            let ty = match a.name {
                "tobool" => Type::Bool,
                "tonumber" => Type::Number,
                "tostring" => Type::String,
                "tolist" => Type::List(Box::new(Type::Any)),
                "toset" => Type::Set(Box::new(Type::Any)),
                _ => Type::Map(Box::new(Type::Any)),
            };
            ty.convert(a.get(0)?.clone())
        }

        // -- filesystem ----------------------------------------------------------------------
        "basename" => {
            a.arity(1, 1)?;
            let p = a.string(0)?;
            let trimmed = p.trim_end_matches('/');
            Ok(Value::String(if trimmed.is_empty() && !p.is_empty() {
                "/".to_string()
            } else {
                trimmed.rsplit('/').next().unwrap_or_default().to_string()
            }))
        }
        "dirname" => {
            a.arity(1, 1)?;
            let p = a.string(0)?;
            Ok(Value::String(match p.rfind('/') {
                Some(0) => "/".to_string(),
                Some(i) => p.get(..i).unwrap_or_default().to_string(),
                None => ".".to_string(),
            }))
        }
        "file" => {
            a.arity(1, 1)?;
            let rel = a.string(0)?;
            let path = resolve_path(env, &rel)?;
            let meta =
                std::fs::metadata(&path).map_err(|e| format!("cannot read \"{rel}\": {e}"))?;
            if meta.len() > MAX_STRING as u64 {
                return Err(format!("\"{rel}\" is larger than {MAX_STRING} bytes"));
            }
            std::fs::read_to_string(&path)
                .map(Value::String)
                .map_err(|e| format!("cannot read \"{rel}\": {e}"))
        }
        "fileexists" => {
            a.arity(1, 1)?;
            let rel = a.string(0)?;
            let path = resolve_path(env, &rel)?;
            match std::fs::metadata(&path) {
                Ok(meta) => Ok(Value::Bool(meta.is_file())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Value::Bool(false)),
                Err(e) => Err(format!("cannot check \"{rel}\": {e}")),
            }
        }

        // -- IP networks ---------------------------------------------------------------------
        "cidrhost" => {
            a.arity(2, 2)?;
            let net = Cidr::parse(&a.string(0)?)?;
            let host = net.offset(a.int(1)?, net.bits - net.prefix)?;
            Ok(Value::String(net.format_addr(net.network() | host)?))
        }
        "cidrnetmask" => {
            a.arity(1, 1)?;
            let net = Cidr::parse(&a.string(0)?)?;
            if net.bits != 32 {
                return Err("only IPv4 prefixes have a netmask".to_string());
            }
            net.format_addr(net.mask()).map(Value::String)
        }
        "cidrsubnet" => {
            a.arity(3, 3)?;
            let net = Cidr::parse(&a.string(0)?)?;
            let newbits = u32::try_from(a.int(1)?).map_err(|_| "newbits must not be negative")?;
            let prefix = net.prefix.saturating_add(newbits);
            if prefix > net.bits {
                return Err(format!(
                    "cannot add {newbits} bits to a /{} prefix of a {}-bit address",
                    net.prefix, net.bits
                ));
            }
            let num = a.int(2)?;
            if num < 0 {
                return Err("netnum must not be negative".to_string());
            }
            let sub = net.offset(num, newbits)?;
            let shifted = sub.checked_shl(net.bits - prefix).unwrap_or(0);
            Ok(Value::String(format!(
                "{}/{prefix}",
                net.format_addr(net.network() | shifted)?
            )))
        }
        "cidrsubnets" => {
            a.arity(1, usize::MAX)?;
            let net = Cidr::parse(&a.string(0)?)?;
            let end = net.network().saturating_add(net.size().saturating_sub(1));
            let mut next = net.network();
            let mut out = Vec::new();
            for i in 1..a.vals.len() {
                let newbits =
                    u32::try_from(a.int(i)?).map_err(|_| "newbits must not be negative")?;
                let prefix = net.prefix.saturating_add(newbits);
                if prefix > net.bits {
                    return Err(format!(
                        "cannot add {newbits} bits to a /{} prefix",
                        net.prefix
                    ));
                }
                let size = 1u128.checked_shl(net.bits - prefix).unwrap_or(0);
                let start = if size == 0 {
                    next
                } else {
                    next.div_ceil(size).saturating_mul(size)
                };
                let last = start.saturating_add(size.saturating_sub(1));
                if size == 0 || last > end || start < next {
                    return Err(format!(
                        "not enough room left in {} for a /{prefix}",
                        a.string(0)?
                    ));
                }
                out.push(Value::String(format!(
                    "{}/{prefix}",
                    net.format_addr(start)?
                )));
                next = last.saturating_add(1);
            }
            Ok(Value::Array(out))
        }
        other => Err(format!("function \"{other}\" is not supported")),
    }
}

/// The evaluated arguments of one call, with typed accessors.
struct Args<'n> {
    name: &'n str,
    vals: Vec<Value>,
}

impl Args<'_> {
    fn arity(&self, min: usize, max: usize) -> Result<(), String> {
        let n = self.vals.len();
        if n < min || n > max {
            let wanted = if min == max {
                format!("{min}")
            } else if max == usize::MAX {
                format!("at least {min}")
            } else {
                format!("{min} to {max}")
            };
            return Err(format!("takes {wanted} arguments, got {n}"));
        }
        Ok(())
    }

    fn get(&self, i: usize) -> Result<&Value, String> {
        self.vals
            .get(i)
            .ok_or_else(|| format!("argument {} is missing", i + 1))
    }

    fn wrong(&self, i: usize, wanted: &str) -> String {
        match self.vals.get(i) {
            Some(v) => format!("argument {} must be {wanted}, got {}", i + 1, describe(v)),
            None => format!("argument {} is missing", i + 1),
        }
    }

    fn string(&self, i: usize) -> Result<String, String> {
        self.get(i)
            .ok()
            .and_then(to_string)
            .ok_or_else(|| self.wrong(i, "a string"))
    }

    fn number(&self, i: usize) -> Result<Number, String> {
        self.get(i)
            .ok()
            .and_then(to_number)
            .ok_or_else(|| self.wrong(i, "a number"))
    }

    fn float(&self, i: usize) -> Result<f64, String> {
        self.number(i)?
            .as_f64()
            .ok_or_else(|| self.wrong(i, "a number"))
    }

    /// A whole number: `2` or `2.0`, not `2.5`.
    fn int(&self, i: usize) -> Result<i64, String> {
        let n = self.number(i)?;
        if let Some(v) = n.as_i64() {
            return Ok(v);
        }
        match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
            _ => Err(self.wrong(i, "a whole number")),
        }
    }

    fn list(&self, i: usize) -> Result<Vec<Value>, String> {
        match self.get(i)? {
            Value::Array(items) => Ok(items.clone()),
            _ => Err(self.wrong(i, "a list")),
        }
    }

    fn object(&self, i: usize) -> Result<Map<String, Value>, String> {
        match self.get(i)? {
            Value::Object(fields) => Ok(fields.clone()),
            _ => Err(self.wrong(i, "a map or object")),
        }
    }
}

fn too_long() -> String {
    format!("the result would be longer than {MAX_STRING} bytes")
}

fn float_value(f: f64) -> FnResult {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| "the result is not a finite number".to_string())
}

fn add(a: Number, b: Number) -> Result<Number, String> {
    if let Some(sum) = a
        .as_i64()
        .zip(b.as_i64())
        .and_then(|(x, y)| x.checked_add(y))
    {
        return Ok(Number::from(sum));
    }
    let (x, y) = (
        a.as_f64().unwrap_or(f64::NAN),
        b.as_f64().unwrap_or(f64::NAN),
    );
    Number::from_f64(x + y).ok_or_else(|| "the sum is not a finite number".to_string())
}

fn parse_int(s: &str, base: i64) -> FnResult {
    if !(2..=62).contains(&base) {
        return Err(format!("the base must be between 2 and 62, got {base}"));
    }
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    if digits.is_empty() {
        return Err(format!("cannot parse {s:?} as a base {base} integer"));
    }
    let mut acc: i128 = 0;
    for c in digits.chars() {
        let d = match c {
            '0'..='9' => c as i64 - '0' as i64,
            'a'..='z' => c as i64 - 'a' as i64 + 10,
            'A'..='Z' if base <= 36 => c as i64 - 'A' as i64 + 10,
            'A'..='Z' => c as i64 - 'A' as i64 + 36,
            _ => return Err(format!("cannot parse {s:?} as a base {base} integer")),
        };
        if d >= base {
            return Err(format!("cannot parse {s:?} as a base {base} integer"));
        }
        acc = acc
            .checked_mul(i128::from(base))
            .and_then(|v| v.checked_add(i128::from(d)))
            .ok_or_else(|| format!("{s:?} is too large"))?;
    }
    if negative {
        acc = -acc;
    }
    match i64::try_from(acc) {
        Ok(v) => Ok(Value::from(v)),
        Err(_) => u64::try_from(acc)
            .map(Value::from)
            .map_err(|_| format!("{s:?} is too large")),
    }
}

fn substr(s: &str, offset: i64, length: i64) -> FnResult {
    let chars: Vec<char> = s.chars().collect();
    let len = i64::try_from(chars.len()).unwrap_or(i64::MAX);
    let start = if offset < 0 {
        (len + offset).max(0)
    } else {
        offset.min(len)
    };
    let end = match length {
        -1 => len,
        l if l < -1 => return Err("the length must be -1 or more".to_string()),
        l => start.saturating_add(l).min(len),
    };
    let (start, end) = (
        usize::try_from(start).unwrap_or(0),
        usize::try_from(end).unwrap_or(0),
    );
    Ok(Value::String(
        chars.get(start..end).unwrap_or_default().iter().collect(),
    ))
}

fn title(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut after_separator = true;
    for c in s.chars() {
        if after_separator && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        after_separator = !(c.is_alphanumeric() || c == '_') && (c.is_ascii() || c.is_whitespace());
    }
    out
}

fn compile(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("invalid regular expression: {e}"))
}

/// The result of one match: the matched text when the pattern has no capture groups, a list of
/// the groups when they are unnamed, an object of them when they are named.
fn regex_match(re: &Regex, caps: &regex::Captures<'_>) -> FnResult {
    let names: Vec<Option<&str>> = re.capture_names().skip(1).collect();
    let group = |i: usize| {
        caps.get(i)
            .map_or(Value::Null, |m| Value::String(m.as_str().to_string()))
    };
    if names.is_empty() {
        return Ok(group(0));
    }
    let named = names.iter().filter(|n| n.is_some()).count();
    if named == 0 {
        return Ok(Value::Array((1..=names.len()).map(group).collect()));
    }
    if named != names.len() {
        return Err("a pattern cannot mix named and unnamed capture groups".to_string());
    }
    let mut out = Map::new();
    for name in names.into_iter().flatten() {
        let v = caps
            .name(name)
            .map_or(Value::Null, |m| Value::String(m.as_str().to_string()));
        out.insert(name.to_string(), v);
    }
    Ok(Value::Object(out))
}

fn plain_replace(s: &str, search: &str, replacement: &str) -> FnResult {
    let count = if search.is_empty() {
        s.chars().count() + 1
    } else {
        s.matches(search).count()
    };
    if count
        .saturating_mul(replacement.len())
        .saturating_add(s.len())
        > MAX_STRING
    {
        return Err(too_long());
    }
    Ok(Value::String(s.replace(search, replacement)))
}

/// Replaces every match of `re`, expanding `$1` / `${name}` in the replacement.
fn regex_replace(s: &str, re: &Regex, replacement: &str) -> FnResult {
    let mut out = String::new();
    let mut last = 0;
    for caps in re.captures_iter(s) {
        let Some(m) = caps.get(0) else { continue };
        out.push_str(s.get(last..m.start()).unwrap_or_default());
        caps.expand(replacement, &mut out);
        last = m.end();
        if out.len() > MAX_STRING {
            return Err(too_long());
        }
    }
    out.push_str(s.get(last..).unwrap_or_default());
    Ok(Value::String(out))
}

fn flatten_into(items: Vec<Value>, out: &mut Vec<Value>) {
    for item in items {
        match item {
            Value::Array(inner) => flatten_into(inner, out),
            other => out.push(other),
        }
    }
}

/// `range` stops at 1024 elements, as Nomad's does.
fn range(start: f64, limit: f64, step: f64) -> FnResult {
    const MAX_ELEMENTS: usize = 1024;
    if step == 0.0 {
        return Err("the step must not be zero".to_string());
    }
    if (step > 0.0 && limit < start) || (step < 0.0 && limit > start) {
        return Err("the step goes away from the limit".to_string());
    }
    let mut out = Vec::new();
    let mut v = start;
    while (step > 0.0 && v < limit) || (step < 0.0 && v > limit) {
        if out.len() >= MAX_ELEMENTS {
            return Err(format!("more than {MAX_ELEMENTS} elements"));
        }
        out.push(float_value(v)?);
        v += step;
    }
    Ok(Value::Array(out))
}

fn setproduct(lists: &[Vec<Value>]) -> FnResult {
    const MAX_COMBINATIONS: usize = 100_000;
    let count = lists
        .iter()
        .try_fold(1usize, |acc, l| acc.checked_mul(l.len()))
        .unwrap_or(usize::MAX);
    if count > MAX_COMBINATIONS {
        return Err(format!("the product is too large ({count} combinations)"));
    }
    let mut acc: Vec<Vec<Value>> = vec![Vec::new()];
    for list in lists {
        let mut next = Vec::with_capacity(acc.len().saturating_mul(list.len()).min(1 << 16));
        let mut size = 0usize;
        for prefix in &acc {
            for item in list {
                let mut combo = prefix.clone();
                combo.push(item.clone());
                size = combo
                    .iter()
                    .map(|v| size_of(v, MAX_SIZE))
                    .fold(size, usize::saturating_add);
                if size > MAX_SIZE {
                    return Err("the product is too large".to_string());
                }
                next.push(combo);
            }
        }
        acc = next;
    }
    Ok(Value::Array(acc.into_iter().map(Value::Array).collect()))
}

// -- format ----------------------------------------------------------------------------------

#[derive(Default)]
struct Flags {
    minus: bool,
    plus: bool,
    space: bool,
    zero: bool,
    sharp: bool,
}

/// The largest width or precision a format verb may ask for.
const MAX_WIDTH: usize = 10_000;

/// `format`: Go-style verbs `%v %#v %s %q %t %d %b %o %x %X %e %E %f %g %G %%`, with flags
/// `- + space 0 #`, width, precision and `%[n]` argument indexes.
fn format_values(spec: &str, args: &[Value]) -> Result<String, String> {
    let mut out = String::new();
    let mut used = vec![false; args.len()];
    let mut next_arg = 0usize;
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut flags = Flags::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => flags.minus = true,
                '+' => flags.plus = true,
                ' ' => flags.space = true,
                '0' => flags.zero = true,
                '#' => flags.sharp = true,
                _ => break,
            }
            chars.next();
        }
        if chars.peek() == Some(&'[') {
            chars.next();
            let n = read_number(&mut chars).ok_or("%[ must be followed by an argument number")?;
            if chars.next() != Some(']') || n == 0 {
                return Err("an argument index must look like %[1]".to_string());
            }
            next_arg = n - 1;
        }
        let width = read_number(&mut chars);
        let precision = if chars.peek() == Some(&'.') {
            chars.next();
            Some(read_number(&mut chars).unwrap_or(0))
        } else {
            None
        };
        if width.unwrap_or(0) > MAX_WIDTH || precision.unwrap_or(0) > MAX_WIDTH {
            return Err(format!(
                "widths and precisions above {MAX_WIDTH} are not supported"
            ));
        }
        let verb = chars
            .next()
            .ok_or("the format string ends in the middle of a verb")?;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let arg = args
            .get(next_arg)
            .ok_or("there are fewer arguments than verbs in the format string")?;
        if let Some(u) = used.get_mut(next_arg) {
            *u = true;
        }
        next_arg += 1;
        let (text, numeric) = format_verb(verb, arg, &flags, precision)?;
        pad(&mut out, &text, width.unwrap_or(0), &flags, numeric);
        if out.len() > MAX_STRING {
            return Err(too_long());
        }
    }
    if let Some(unused) = used.iter().position(|u| !u) {
        return Err(format!(
            "argument {} is not used by the format string",
            unused + 2
        ));
    }
    Ok(out)
}

fn read_number(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        chars.next();
        n = Some(n.unwrap_or(0).saturating_mul(10).saturating_add(d as usize));
    }
    n
}

/// Formats one argument; the flag says whether it is a number (zero padding goes after the sign).
fn format_verb(
    verb: char,
    arg: &Value,
    flags: &Flags,
    precision: Option<usize>,
) -> Result<(String, bool), String> {
    let need_number =
        || to_number(arg).ok_or_else(|| format!("%{verb} needs a number, got {}", describe(arg)));
    match verb {
        'v' => {
            let text = match arg {
                _ if flags.sharp => serde_json::to_string(arg).map_err(|e| e.to_string())?,
                Value::Null => "null".to_string(),
                Value::Array(_) | Value::Object(_) => {
                    serde_json::to_string(arg).map_err(|e| e.to_string())?
                }
                other => to_string(other).unwrap_or_default(),
            };
            Ok((text, arg.is_number()))
        }
        's' => {
            let s = to_string(arg)
                .ok_or_else(|| format!("%s needs a string, got {}", describe(arg)))?;
            Ok((truncate(s, precision), false))
        }
        'q' => {
            let s = to_string(arg)
                .ok_or_else(|| format!("%q needs a string, got {}", describe(arg)))?;
            let quoted = serde_json::to_string(&s).map_err(|e| e.to_string())?;
            Ok((quoted, false))
        }
        't' => to_bool(arg)
            .map(|b| (b.to_string(), false))
            .ok_or_else(|| format!("%t needs a bool, got {}", describe(arg))),
        'd' | 'b' | 'o' | 'x' | 'X' => {
            let n = need_number()?;
            let (negative, magnitude) = match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => (i < 0, u128::from(i.unsigned_abs())),
                (None, Some(u)) => (false, u128::from(u)),
                _ => return Err(format!("%{verb} needs a whole number, got {n}")),
            };
            let digits = match verb {
                'd' => magnitude.to_string(),
                'b' => format!("{magnitude:b}"),
                'o' => format!("{magnitude:o}"),
                'x' => format!("{magnitude:x}"),
                _ => format!("{magnitude:X}"),
            };
            let prefix = match (flags.sharp, verb) {
                (true, 'b') => "0b",
                (true, 'o') => "0",
                (true, 'x') => "0x",
                (true, 'X') => "0X",
                _ => "",
            };
            Ok((signed(negative, flags, &format!("{prefix}{digits}")), true))
        }
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => {
            let f = need_number()?.as_f64().unwrap_or(0.0);
            let magnitude = f.abs();
            let body = match verb {
                'e' | 'E' => exp_form(magnitude, precision.unwrap_or(6), verb == 'E'),
                'f' | 'F' => format!("{magnitude:.*}", precision.unwrap_or(6)),
                _ => general_form(magnitude, precision, verb == 'G'),
            };
            Ok((signed(f.is_sign_negative() && f != 0.0, flags, &body), true))
        }
        other => Err(format!("%{other} is not a supported verb")),
    }
}

fn truncate(s: String, precision: Option<usize>) -> String {
    match precision {
        Some(p) => s.chars().take(p).collect(),
        None => s,
    }
}

fn signed(negative: bool, flags: &Flags, body: &str) -> String {
    let sign = if negative {
        "-"
    } else if flags.plus {
        "+"
    } else if flags.space {
        " "
    } else {
        ""
    };
    format!("{sign}{body}")
}

/// `1.234560e+03`: the exponent has a sign and at least two digits.
fn exp_form(f: f64, precision: usize, upper: bool) -> String {
    let raw = format!("{f:.precision$e}");
    let (mantissa, exp) = raw.split_once('e').unwrap_or((raw.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if exp < 0 { '-' } else { '+' };
    let e = if upper { 'E' } else { 'e' };
    format!("{mantissa}{e}{sign}{:02}", exp.unsigned_abs())
}

/// `%g`: the shorter of `%e` and `%f`, without trailing zeros.
fn general_form(f: f64, precision: Option<usize>, upper: bool) -> String {
    let shortest = format!("{f:e}");
    let (mantissa, exp) = shortest.split_once('e').unwrap_or((shortest.as_str(), "0"));
    let digits = mantissa.chars().filter(char::is_ascii_digit).count();
    let (digits, threshold) = match precision {
        Some(p) => (p.max(1), p.max(1)),
        None => (digits, 6),
    };
    let exp: i64 = match precision {
        Some(_) => {
            let rounded = format!("{f:.*e}", digits - 1);
            rounded
                .split_once('e')
                .and_then(|(_, e)| e.parse().ok())
                .unwrap_or(0)
        }
        None => exp.parse().unwrap_or(0),
    };
    let threshold = i64::try_from(threshold).unwrap_or(i64::MAX);
    let text = if exp < -4 || exp >= threshold {
        exp_form(f, digits - 1, upper)
    } else {
        let decimals = usize::try_from(i64::try_from(digits).unwrap_or(0) - 1 - exp).unwrap_or(0);
        format!("{f:.decimals$}")
    };
    strip_fraction_zeros(&text)
}

fn strip_fraction_zeros(text: &str) -> String {
    let (number, exponent) = match text.find(['e', 'E']) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let number = if number.contains('.') {
        number.trim_end_matches('0').trim_end_matches('.')
    } else {
        number
    };
    format!("{number}{exponent}")
}

fn pad(out: &mut String, text: &str, width: usize, flags: &Flags, numeric: bool) {
    let len = text.chars().count();
    let fill = width.saturating_sub(len);
    if fill == 0 {
        out.push_str(text);
    } else if flags.minus {
        out.push_str(text);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if flags.zero && numeric {
        let (sign, digits) = match text.chars().next() {
            Some(c @ ('-' | '+' | ' ')) => (Some(c), text.get(1..).unwrap_or_default()),
            _ => (None, text),
        };
        if let Some(c) = sign {
            out.push(c);
        }
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(digits);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(text);
    }
}

fn formatlist(spec: &str, args: &[Value]) -> FnResult {
    let mut len: Option<usize> = None;
    for arg in args {
        if let Value::Array(items) = arg {
            match len {
                Some(l) if l != items.len() => {
                    return Err("all list arguments must have the same length".to_string())
                }
                _ => len = Some(items.len()),
            }
        }
    }
    let mut out = Vec::new();
    let mut total = 0usize;
    for i in 0..len.unwrap_or(1) {
        let row: Vec<Value> = args
            .iter()
            .map(|a| match a {
                Value::Array(items) => items.get(i).cloned().unwrap_or(Value::Null),
                other => other.clone(),
            })
            .collect();
        let s = format_values(spec, &row)?;
        total = total.saturating_add(s.len());
        if total > MAX_STRING {
            return Err(too_long());
        }
        out.push(Value::String(s));
    }
    Ok(Value::Array(out))
}

// -- encodings -------------------------------------------------------------------------------

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                let idx = ((n >> shift) & 63) as usize;
                out.push(char::from(BASE64.get(idx).copied().unwrap_or(b'A')));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    let invalid = || "the string is not valid base64".to_string();
    let bytes = s.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return Err(invalid());
    }
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let chunks = bytes.len() / 4;
    for (ci, chunk) in bytes.chunks(4).enumerate() {
        let mut n: u32 = 0;
        let mut padding = 0;
        for (i, &c) in chunk.iter().enumerate() {
            let v = if c == b'=' {
                // Padding may only end the last group, in its last one or two places.
                if ci + 1 != chunks || i < 2 {
                    return Err(invalid());
                }
                padding += 1;
                0
            } else {
                if padding > 0 {
                    return Err(invalid());
                }
                BASE64.iter().position(|&b| b == c).ok_or_else(invalid)? as u32
            };
            n = (n << 6) | v;
        }
        let decoded = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(decoded.get(..3 - padding).unwrap_or_default());
    }
    Ok(out)
}

/// Go's `url.QueryEscape`: letters, digits and `-_.~` stay, a space becomes `+`, every other
/// byte becomes `%XX`.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(b));
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// Decodes CSV whose first line names the columns into a list of objects.
fn csv_decode(s: &str) -> FnResult {
    let records = parse_csv(s)?;
    let mut rows = records.into_iter();
    let Some(header) = rows.next() else {
        return Err("the CSV has no header line".to_string());
    };
    let mut out = Vec::new();
    for (i, row) in rows.enumerate() {
        if row.len() != header.len() {
            return Err(format!(
                "line {} has {} fields, but the header has {}",
                i + 2,
                row.len(),
                header.len()
            ));
        }
        let object: Map<String, Value> = header
            .iter()
            .cloned()
            .zip(row.into_iter().map(Value::String))
            .collect();
        out.push(Value::Object(object));
    }
    Ok(Value::Array(out))
}

fn parse_csv(s: &str) -> Result<Vec<Vec<String>>, String> {
    let mut records = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut in_quotes = false;
    let mut started = false;
    let mut field_quoted = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    field.push('"');
                } else {
                    in_quotes = false;
                }
            } else {
                field.push(c);
            }
            continue;
        }
        match c {
            '"' if field.is_empty() && !field_quoted => {
                in_quotes = true;
                field_quoted = true;
                started = true;
            }
            '"' => return Err("a quote appears inside an unquoted field".to_string()),
            ',' => {
                record.push(std::mem::take(&mut field));
                field_quoted = false;
                started = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                if started || !field.is_empty() {
                    record.push(std::mem::take(&mut field));
                    records.push(std::mem::take(&mut record));
                }
                field_quoted = false;
                started = false;
            }
            other => {
                if field_quoted {
                    return Err("text follows the closing quote of a field".to_string());
                }
                field.push(other);
                started = true;
            }
        }
    }
    if in_quotes {
        return Err("a quoted field is not closed".to_string());
    }
    if started || !field.is_empty() {
        record.push(field);
        records.push(record);
    }
    Ok(records)
}

// -- files -----------------------------------------------------------------------------------

fn resolve_path(env: &FuncEnv<'_>, rel: &str) -> Result<std::path::PathBuf, String> {
    match env.base_dir {
        Some(base) => Ok(base.join(rel)),
        None => Err(
            "files cannot be read here: no base directory was given for the job file".to_string(),
        ),
    }
}

// -- IP networks -----------------------------------------------------------------------------

/// An IPv4 or IPv6 prefix, `10.0.0.0/8`, with the address held in the low bits of a `u128`.
struct Cidr {
    addr: u128,
    prefix: u32,
    /// 32 or 128.
    bits: u32,
}

impl Cidr {
    fn parse(s: &str) -> Result<Cidr, String> {
        let invalid = || format!("{s:?} is not a valid CIDR prefix like 10.0.0.0/8");
        let (ip, len) = s.split_once('/').ok_or_else(invalid)?;
        let prefix: u32 = len.parse().map_err(|_| invalid())?;
        let (addr, bits) = if let Ok(v4) = ip.parse::<Ipv4Addr>() {
            (u128::from(u32::from(v4)), 32)
        } else if let Ok(v6) = ip.parse::<Ipv6Addr>() {
            (u128::from(v6), 128)
        } else {
            return Err(invalid());
        };
        if prefix > bits {
            return Err(invalid());
        }
        Ok(Cidr { addr, prefix, bits })
    }

    fn full(&self) -> u128 {
        if self.bits == 32 {
            u128::from(u32::MAX)
        } else {
            u128::MAX
        }
    }

    fn mask(&self) -> u128 {
        let host_bits = self.bits - self.prefix;
        self.full() & self.full().checked_shl(host_bits).unwrap_or(0)
    }

    fn network(&self) -> u128 {
        self.addr & self.mask()
    }

    /// How many addresses the prefix holds; saturates for a whole IPv6 space.
    fn size(&self) -> u128 {
        1u128
            .checked_shl(self.bits - self.prefix)
            .unwrap_or(u128::MAX)
    }

    /// The `num`th value of a field `width` bits wide; a negative `num` counts from the end.
    fn offset(&self, num: i64, width: u32) -> Result<u128, String> {
        let count = 1u128.checked_shl(width);
        let magnitude = u128::from(num.unsigned_abs());
        let out_of_range = || format!("{num} does not fit in {width} bits");
        if num >= 0 {
            match count {
                Some(c) if magnitude >= c => Err(out_of_range()),
                _ => Ok(magnitude),
            }
        } else {
            match count {
                Some(c) if magnitude > c => Err(out_of_range()),
                Some(c) => Ok(c - magnitude),
                None => Ok(u128::MAX - (magnitude - 1)),
            }
        }
    }

    fn format_addr(&self, addr: u128) -> Result<String, String> {
        if self.bits == 32 {
            u32::try_from(addr)
                .map(|a| Ipv4Addr::from(a).to_string())
                .map_err(|_| "the address is out of range".to_string())
        } else {
            Ok(Ipv6Addr::from(addr).to_string())
        }
    }
}
