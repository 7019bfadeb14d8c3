//! A driver's configuration schema: which fields a task's `config` block may have and of
//! which type, checked before the configuration is decoded.
//!
//! Decoding straight into a struct with serde says "invalid type: string, expected u64" but
//! not where; the schema names the field (`mount[1].readonly`) so a job author can find it.

use std::time::Duration;

use serde_json::Value;

use super::DriverError;

/// The type of one configuration field.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum FieldKind {
    /// A string.
    String,
    /// `true` or `false`.
    Bool,
    /// A whole number (a float with no fractional part is accepted, as HCL may produce one).
    Integer,
    /// Any number.
    Number,
    /// A duration written the way Nomad writes them (`"10s"`, `"1m30s"`, `"250ms"`).
    Duration,
    /// A list whose elements all have this kind. When the elements are blocks, a single
    /// object is accepted as a list of one (HCL decodes one block as an object).
    List(Box<FieldKind>),
    /// An object with any keys whose values all have this kind (`labels`, `port_map`).
    Map(Box<FieldKind>),
    /// A nested block with its own schema; a list of such blocks is accepted too.
    Block(ConfigSchema),
    /// Anything at all; the driver checks it itself.
    Any,
}

impl FieldKind {
    /// A list of `element`.
    pub fn list(element: FieldKind) -> Self {
        Self::List(Box::new(element))
    }

    /// A map with values of `value`.
    pub fn map(value: FieldKind) -> Self {
        Self::Map(Box::new(value))
    }

    fn describe(&self) -> &'static str {
        match self {
            FieldKind::String => "a string",
            FieldKind::Bool => "a bool",
            FieldKind::Integer => "a whole number",
            FieldKind::Number => "a number",
            FieldKind::Duration => "a duration such as \"10s\"",
            FieldKind::List(_) => "a list",
            FieldKind::Map(_) => "an object",
            FieldKind::Block(_) => "a block",
            FieldKind::Any => "any value",
        }
    }
}

/// One field of a schema.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaField {
    /// The field's name in the `config` block.
    pub name: String,
    /// Its type.
    pub kind: FieldKind,
    /// Whether it must be present.
    pub required: bool,
}

/// The fields a driver's `config` block may contain.
///
/// ```
/// use nomad_core::driver::{ConfigSchema, DriverError, FieldKind};
///
/// let schema = ConfigSchema::new()
///     .required("command", FieldKind::String)
///     .optional("args", FieldKind::list(FieldKind::String));
///
/// assert!(schema.check(&serde_json::json!({"command": "/bin/date"})).is_ok());
/// let err = schema.check(&serde_json::json!({"command": "/bin/date", "args": ["-u", 1]}));
/// assert!(matches!(err, Err(DriverError::InvalidConfig { field, .. }) if field == "args[1]"));
/// let err = schema.check(&serde_json::json!({"comand": "/bin/date"}));
/// assert!(matches!(err, Err(DriverError::InvalidConfig { field, .. }) if field == "comand"));
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigSchema {
    fields: Vec<SchemaField>,
}

impl ConfigSchema {
    /// A schema with no fields.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a field that must be present.
    pub fn required(mut self, name: impl Into<String>, kind: FieldKind) -> Self {
        self.fields.push(SchemaField {
            name: name.into(),
            kind,
            required: true,
        });
        self
    }

    /// Adds a field that may be absent.
    pub fn optional(mut self, name: impl Into<String>, kind: FieldKind) -> Self {
        self.fields.push(SchemaField {
            name: name.into(),
            kind,
            required: false,
        });
        self
    }

    /// The schema's fields in the order they were added.
    pub fn fields(&self) -> &[SchemaField] {
        &self.fields
    }

    /// Checks `config` against the schema.
    ///
    /// `null` counts as an empty block. Returns [`DriverError::InvalidConfig`] naming the first
    /// field that is unknown, missing or of the wrong type.
    pub fn check(&self, config: &Value) -> Result<(), DriverError> {
        match config {
            Value::Null => self.check_object(&serde_json::Map::new(), ""),
            Value::Object(map) => self.check_object(map, ""),
            other => Err(DriverError::invalid_config(
                "",
                format!("expected a block, found {}", found(other)),
            )),
        }
    }

    fn check_object(
        &self,
        map: &serde_json::Map<String, Value>,
        prefix: &str,
    ) -> Result<(), DriverError> {
        let mut names: Vec<&str> = map.keys().map(String::as_str).collect();
        names.sort_unstable();
        for name in names {
            if !self.fields.iter().any(|field| field.name == name) {
                let known: Vec<&str> = self.fields.iter().map(|f| f.name.as_str()).collect();
                return Err(DriverError::invalid_config(
                    join(prefix, name),
                    format!("unknown field; expected one of: {}", known.join(", ")),
                ));
            }
        }
        for field in &self.fields {
            let path = join(prefix, &field.name);
            match map.get(&field.name) {
                None | Some(Value::Null) if field.required => {
                    return Err(DriverError::invalid_config(
                        path,
                        "required field is missing",
                    ));
                }
                None | Some(Value::Null) => {}
                Some(value) => check_value(&field.kind, value, &path)?,
            }
        }
        Ok(())
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

fn found(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn mistyped(kind: &FieldKind, value: &Value, path: &str) -> DriverError {
    DriverError::invalid_config(
        path,
        format!("expected {}, found {}", kind.describe(), found(value)),
    )
}

fn check_value(kind: &FieldKind, value: &Value, path: &str) -> Result<(), DriverError> {
    let ok = match (kind, value) {
        (FieldKind::Any, _) => true,
        (FieldKind::String, Value::String(_)) => true,
        (FieldKind::Bool, Value::Bool(_)) => true,
        (FieldKind::Number, Value::Number(_)) => true,
        (FieldKind::Integer, Value::Number(n)) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        (FieldKind::Duration, Value::String(text)) => {
            if let Err(reason) = parse_duration(text) {
                return Err(DriverError::invalid_config(path, reason));
            }
            true
        }
        (FieldKind::List(element), Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                check_value(element, item, &format!("{path}[{index}]"))?;
            }
            true
        }
        (FieldKind::List(element), Value::Object(_))
            if matches!(**element, FieldKind::Block(_)) =>
        {
            check_value(element, value, &format!("{path}[0]"))?;
            true
        }
        (FieldKind::Map(inner), Value::Object(map)) => {
            for (key, item) in map {
                check_value(inner, item, &format!("{path}.{key}"))?;
            }
            true
        }
        (FieldKind::Block(schema), Value::Object(map)) => {
            schema.check_object(map, path)?;
            true
        }
        (FieldKind::Block(schema), Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                let item_path = format!("{path}[{index}]");
                match item {
                    Value::Object(map) => schema.check_object(map, &item_path)?,
                    other => return Err(mistyped(kind, other, &item_path)),
                }
            }
            true
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(mistyped(kind, value, path))
    }
}

/// Parses a duration the way Nomad (Go's `time.ParseDuration`) writes them: a sequence of
/// decimal numbers with units `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`, as `"1m30s"` or
/// `"1.5s"`; `"0"` alone is zero. Negative durations are refused.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration such as \"10s\" or \"1m30s\"");
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(bad());
    }
    let mut rest = text;
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        if number_len == 0 {
            return Err(bad());
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos_per_unit = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return Err(bad()),
        };
        total += number * nanos_per_unit;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mount_schema() -> ConfigSchema {
        ConfigSchema::new()
            .required("image", FieldKind::String)
            .optional("ports", FieldKind::list(FieldKind::String))
            .optional("labels", FieldKind::map(FieldKind::String))
            .optional("memory_hard_limit", FieldKind::Integer)
            .optional("stop_after", FieldKind::Duration)
            .optional(
                "mount",
                FieldKind::list(FieldKind::Block(
                    ConfigSchema::new()
                        .required("target", FieldKind::String)
                        .optional("readonly", FieldKind::Bool),
                )),
            )
    }

    fn field_of(result: Result<(), DriverError>) -> String {
        match result {
            Err(DriverError::InvalidConfig { field, .. }) => field,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn accepts_a_matching_config() {
        let config = json!({
            "image": "busybox",
            "ports": ["http"],
            "labels": {"team": "a"},
            "memory_hard_limit": 512.0,
            "stop_after": "1m30s",
            "mount": [{"target": "/data", "readonly": true}],
        });
        mount_schema().check(&config).unwrap();
        // One block decoded as an object is a list of one.
        mount_schema()
            .check(&json!({"image": "x", "mount": {"target": "/d"}}))
            .unwrap();
    }

    #[test]
    fn names_the_offending_field() {
        let schema = mount_schema();
        assert_eq!(
            field_of(schema.check(&json!({"image": "x", "imgae": 1}))),
            "imgae"
        );
        assert_eq!(field_of(schema.check(&json!({"ports": []}))), "image");
        assert_eq!(field_of(schema.check(&json!({"image": 3}))), "image");
        assert_eq!(
            field_of(schema.check(&json!({"image": "x", "ports": ["a", 2]}))),
            "ports[1]"
        );
        assert_eq!(
            field_of(schema.check(&json!({"image": "x", "labels": {"a": true}}))),
            "labels.a"
        );
        assert_eq!(
            field_of(schema.check(&json!({"image": "x", "memory_hard_limit": 1.5}))),
            "memory_hard_limit"
        );
        assert_eq!(
            field_of(schema.check(&json!({"image": "x", "mount": [{"target": "/d", "ro": true}]}))),
            "mount[0].ro"
        );
        assert_eq!(
            field_of(
                schema
                    .check(&json!({"image": "x", "mount": [{"target": "/d", "readonly": "yes"}]}))
            ),
            "mount[0].readonly"
        );
        assert_eq!(
            field_of(schema.check(&json!({"image": "x", "stop_after": "soon"}))),
            "stop_after"
        );
        assert_eq!(field_of(schema.check(&json!(["image"]))), "");
    }

    #[test]
    fn error_message_says_what_was_expected() {
        let err = mount_schema()
            .check(&json!({"image": "x", "ports": "http"}))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid driver config: field \"ports\": expected a list, found a string"
        );
    }

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_duration("10s").unwrap(), Duration::from_secs(10));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::from_secs(5400));
        assert_eq!(parse_duration("0").unwrap(), Duration::ZERO);
        for bad in ["", "10", "s", "-1s", "1x", "1..2s"] {
            assert!(parse_duration(bad).is_err(), "{bad} should be refused");
        }
    }
}
