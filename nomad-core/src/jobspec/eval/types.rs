//! Type constraints of input variables (`type = list(string)`) and the value conversions HCL
//! applies between types: numbers and bools to strings and back, lists to sets, objects to maps.

use std::fmt;

use hcl::expr::{Expression, ObjectKey};
use hcl::{Map, Number, Value};

/// A type constraint, as written in a `variable` block or the second argument of `convert`.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Type {
    /// `any`: every value is accepted unchanged.
    Any,
    /// `string`
    String,
    /// `number`
    Number,
    /// `bool`
    Bool,
    /// `list(T)`
    List(Box<Type>),
    /// `set(T)`: a list without duplicates.
    Set(Box<Type>),
    /// `map(T)`
    Map(Box<Type>),
    /// `object({ name = T, ... })`
    Object(Vec<ObjectAttr>),
    /// `tuple([T, ...])`
    Tuple(Vec<Type>),
}

/// One attribute of an `object({...})` type.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ObjectAttr {
    name: String,
    ty: Type,
    optional: bool,
}

impl Type {
    /// Reads a type constraint expression.
    pub(super) fn parse(expr: &Expression) -> Result<Type, String> {
        match expr {
            Expression::Variable(v) => match v.as_str() {
                "any" => Ok(Type::Any),
                "string" => Ok(Type::String),
                "number" => Ok(Type::Number),
                "bool" => Ok(Type::Bool),
                // The bare collection keywords of early HCL2 mean "of any element type".
                "list" => Ok(Type::List(Box::new(Type::Any))),
                "set" => Ok(Type::Set(Box::new(Type::Any))),
                "map" => Ok(Type::Map(Box::new(Type::Any))),
                other => Err(format!("\"{other}\" is not a type; use any, string, number, bool, list(T), set(T), map(T), object({{...}}) or tuple([...])")),
            },
            Expression::Parenthesis(inner) => Type::parse(inner),
            Expression::FuncCall(call) if !call.name.is_namespaced() && !call.expand_final => {
                let name = call.name.name.as_str();
                let arg = match call.args.as_slice() {
                    [arg] => arg,
                    _ => return Err(format!("the type {name}(...) takes exactly one argument")),
                };
                match name {
                    "list" => Ok(Type::List(Box::new(Type::parse(arg)?))),
                    "set" => Ok(Type::Set(Box::new(Type::parse(arg)?))),
                    "map" => Ok(Type::Map(Box::new(Type::parse(arg)?))),
                    "object" => Type::parse_object(arg),
                    "tuple" => match arg {
                        Expression::Array(items) => Ok(Type::Tuple(
                            items.iter().map(Type::parse).collect::<Result<_, _>>()?,
                        )),
                        _ => Err("tuple(...) takes a list of types, like tuple([string, number])"
                            .to_string()),
                    },
                    other => Err(format!("\"{other}(...)\" is not a type constructor")),
                }
            }
            _ => Err("a type is required here, like string, number, list(string) or object({...})"
                .to_string()),
        }
    }

    fn parse_object(arg: &Expression) -> Result<Type, String> {
        let Expression::Object(fields) = arg else {
            return Err(
                "object(...) takes an object of attribute types, like object({ port = number })"
                    .to_string(),
            );
        };
        let mut attrs: Vec<ObjectAttr> = Vec::new();
        for (key, value) in fields.iter() {
            let name = match key {
                ObjectKey::Identifier(id) => id.as_str().to_string(),
                ObjectKey::Expression(Expression::String(s)) => s.clone(),
                ObjectKey::Expression(Expression::Variable(v)) => v.as_str().to_string(),
                _ => return Err("object type attribute names must be plain names".to_string()),
            };
            if attrs.iter().any(|a| a.name == name) {
                return Err(format!("object type attribute \"{name}\" is defined twice"));
            }
            let (ty, optional) = match value {
                Expression::FuncCall(call)
                    if call.name.name.as_str() == "optional" && !call.name.is_namespaced() =>
                {
                    match call.args.as_slice() {
                        [inner] => (Type::parse(inner)?, true),
                        _ => return Err("optional(...) takes exactly one type".to_string()),
                    }
                }
                other => (Type::parse(other)?, false),
            };
            attrs.push(ObjectAttr { name, ty, optional });
        }
        Ok(Type::Object(attrs))
    }

    /// True when a `-var` or `NOMAD_VAR_` string is converted as it stands rather than read as
    /// an HCL expression: for strings, numbers, bools and `any`.
    pub(super) fn takes_raw_string(&self) -> bool {
        matches!(self, Type::Any | Type::String | Type::Number | Type::Bool)
    }

    /// Converts `value` to this type, or says why it cannot be. `null` converts to every type.
    pub(super) fn convert(&self, value: Value) -> Result<Value, String> {
        if value.is_null() {
            return Ok(Value::Null);
        }
        match self {
            Type::Any => Ok(value),
            Type::String => to_string(&value)
                .map(Value::String)
                .ok_or_else(|| format!("a string is required, got {}", describe(&value))),
            Type::Number => to_number(&value)
                .map(Value::Number)
                .ok_or_else(|| format!("a number is required, got {}", describe(&value))),
            Type::Bool => to_bool(&value)
                .map(Value::Bool)
                .ok_or_else(|| format!("a bool is required, got {}", describe(&value))),
            Type::List(elem) | Type::Set(elem) => {
                let Value::Array(items) = value else {
                    return Err(format!("a list is required, got {}", describe(&value)));
                };
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    out.push(
                        elem.convert(item)
                            .map_err(|e| format!("element {i}: {e}"))?,
                    );
                }
                if matches!(self, Type::Set(_)) {
                    out = make_set(out);
                }
                Ok(Value::Array(out))
            }
            Type::Map(elem) => {
                let Value::Object(fields) = value else {
                    return Err(format!("a map is required, got {}", describe(&value)));
                };
                let mut out = Map::with_capacity(fields.len());
                for (k, v) in fields {
                    let v = elem.convert(v).map_err(|e| format!("key \"{k}\": {e}"))?;
                    out.insert(k, v);
                }
                Ok(Value::Object(out))
            }
            Type::Object(attrs) => {
                let Value::Object(mut fields) = value else {
                    return Err(format!("an object is required, got {}", describe(&value)));
                };
                let mut out = Map::with_capacity(attrs.len());
                for attr in attrs {
                    match fields.swap_remove(&attr.name) {
                        Some(v) => {
                            let v = attr
                                .ty
                                .convert(v)
                                .map_err(|e| format!("attribute \"{}\": {e}", attr.name))?;
                            out.insert(attr.name.clone(), v);
                        }
                        None if attr.optional => {
                            out.insert(attr.name.clone(), Value::Null);
                        }
                        None => return Err(format!("attribute \"{}\" is required", attr.name)),
                    }
                }
                Ok(Value::Object(out))
            }
            Type::Tuple(elems) => {
                let Value::Array(items) = value else {
                    return Err(format!("a tuple is required, got {}", describe(&value)));
                };
                if items.len() != elems.len() {
                    return Err(format!(
                        "a tuple of {} elements is required, got {} elements",
                        elems.len(),
                        items.len()
                    ));
                }
                let mut out = Vec::with_capacity(items.len());
                for (i, (item, ty)) in items.into_iter().zip(elems).enumerate() {
                    out.push(ty.convert(item).map_err(|e| format!("element {i}: {e}"))?);
                }
                Ok(Value::Array(out))
            }
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Any => f.write_str("any"),
            Type::String => f.write_str("string"),
            Type::Number => f.write_str("number"),
            Type::Bool => f.write_str("bool"),
            Type::List(t) => write!(f, "list({t})"),
            Type::Set(t) => write!(f, "set({t})"),
            Type::Map(t) => write!(f, "map({t})"),
            Type::Object(attrs) => {
                f.write_str("object({")?;
                for (i, a) in attrs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    if a.optional {
                        write!(f, "{} = optional({})", a.name, a.ty)?;
                    } else {
                        write!(f, "{} = {}", a.name, a.ty)?;
                    }
                }
                f.write_str("})")
            }
            Type::Tuple(elems) => {
                f.write_str("tuple([")?;
                for (i, t) in elems.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{t}")?;
                }
                f.write_str("])")
            }
        }
    }
}

/// The HCL name of a value's type, for messages.
pub(super) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

/// A short description of a value for messages: its type, and its value when that is short.
pub(super) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => format!("bool {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => {
            let mut shown: String = s.chars().take(40).collect();
            if shown.len() < s.len() {
                shown.push_str("...");
            }
            format!("string {shown:?}")
        }
        Value::Array(items) => format!("list of {} elements", items.len()),
        Value::Object(fields) => format!("object with {} attributes", fields.len()),
    }
}

/// Converts a string, number or bool to a string as HCL does; `None` for anything else.
pub(super) fn to_string(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Converts a number, or a string holding a decimal number, to a number.
pub(super) fn to_number(value: &Value) -> Option<Number> {
    match value {
        Value::Number(n) => Some(*n),
        Value::String(s) => parse_number(s),
        _ => None,
    }
}

/// Converts a bool, or the strings `"true"` and `"false"`, to a bool.
pub(super) fn to_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

/// Reads a decimal number (`12`, `-3`, `1.5`, `2e3`); no hex, no infinities, no spaces.
pub(super) fn parse_number(s: &str) -> Option<Number> {
    let body = s.strip_prefix('-').unwrap_or(s);
    let digits_ok = !body.is_empty()
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-'))
        && body.starts_with(|c: char| c.is_ascii_digit() || c == '.');
    if !digits_ok {
        return None;
    }
    if let Ok(i) = s.parse::<i64>() {
        return Some(Number::from(i));
    }
    if let Ok(u) = s.parse::<u64>() {
        return Some(Number::from(u));
    }
    s.parse::<f64>().ok().and_then(Number::from_f64)
}

/// Removes duplicates, keeping first occurrences; a set of only strings or only numbers is
/// sorted, the order HCL iterates such sets in.
pub(super) fn make_set(items: Vec<Value>) -> Vec<Value> {
    let mut out: Vec<Value> = Vec::with_capacity(items.len());
    for item in items {
        if !out.contains(&item) {
            out.push(item);
        }
    }
    if out.iter().all(Value::is_string) {
        out.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    } else if out.iter().all(Value::is_number) {
        out.sort_by(|a, b| {
            let (x, y) = (a.as_number(), b.as_number());
            x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal)
        });
    }
    out
}

/// True when `value` nests deeper than `limit` levels of lists and objects.
pub(super) fn deeper_than(value: &Value, limit: usize) -> bool {
    let mut stack: Vec<(&Value, usize)> = vec![(value, 0)];
    while let Some((v, depth)) = stack.pop() {
        if depth > limit {
            return true;
        }
        match v {
            Value::Array(items) => stack.extend(items.iter().map(|i| (i, depth + 1))),
            Value::Object(fields) => stack.extend(fields.values().map(|i| (i, depth + 1))),
            _ => {}
        }
    }
    false
}

/// The size of a value in abstract units (one per value plus one per 16 bytes of string),
/// counted up to just past `limit`.
pub(super) fn size_of(value: &Value, limit: usize) -> usize {
    let mut total = 0usize;
    let mut stack: Vec<&Value> = vec![value];
    while let Some(v) = stack.pop() {
        total = total.saturating_add(1);
        match v {
            Value::String(s) => total = total.saturating_add(s.len() / 16),
            Value::Array(items) => stack.extend(items.iter()),
            Value::Object(fields) => {
                total = total.saturating_add(fields.len());
                stack.extend(fields.values());
            }
            _ => {}
        }
        if total > limit {
            break;
        }
    }
    total
}
