//! Round trips of the job specification.
//!
//! * Random but well-formed HCL job files are generated from a structured model (job, groups,
//!   tasks and most of their blocks), rendered to text and parsed. The parsed job must carry
//!   the generated values unchanged (escaped strings, heredocs, runtime interpolations such as
//!   `${NOMAD_ALLOC_DIR}`, `${var.x}` substitutions, ports, durations, free-form driver
//!   configuration), survive the JSON API format unchanged before and after
//!   [`Job::canonicalize`], canonicalise idempotently, and validate.
//! * Every job file of the conformance corpus (`../shared/corpus` beside the workspace) that
//!   parses survives the JSON API format unchanged.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use nomad_core::job::{Constraint, Job, Port, Task, TaskGroup};
use nomad_core::jobspec::{parse_file, parse_hcl, parse_json, ParseOptions};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::{json, Map, Number, Value};

/// Cases per run: enough to reach the rarer shapes, small enough for a debug build to finish
/// in a few seconds. `PROPTEST_CASES` overrides it for a longer search.
const CASES: u32 = 256;

/// The name of the declared variable every generated job may refer to.
const VAR: &str = "release";

// ---------------------------------------------------------------------------------------------
// Strings: literal text, runtime interpolations and variable references
// ---------------------------------------------------------------------------------------------

/// Interpolations the client resolves; the parser must keep each one verbatim.
const RUNTIME: &[&str] = &[
    "${NOMAD_ALLOC_DIR}",
    "${NOMAD_TASK_DIR}",
    "${NOMAD_SECRETS_DIR}",
    "${NOMAD_ALLOC_INDEX}",
    "${NOMAD_PORT_http}",
    "${NOMAD_ADDR_db}",
    "${NOMAD_META_owner}",
    "${attr.kernel.name}",
    "${node.unique.name}",
    "${meta.rack}",
    "${env[\"HOME\"]}",
];

#[derive(Debug, Clone, PartialEq)]
enum Part {
    /// Text taken literally: rendered with whatever escapes it needs.
    Lit(String),
    /// One of [`RUNTIME`].
    Runtime(&'static str),
    /// `${var.release}`.
    Var,
}

impl Part {
    fn is_interpolation(&self) -> bool {
        !matches!(self, Part::Lit(_))
    }
}

/// A string value of the job file as a sequence of parts.
#[derive(Debug, Clone, PartialEq)]
struct Text(Vec<Part>);

impl Text {
    /// Merges adjacent literals, so that rendering sees every literal whole.
    fn new(parts: Vec<Part>) -> Text {
        let mut out: Vec<Part> = Vec::new();
        for p in parts {
            match (out.last_mut(), p) {
                (Some(Part::Lit(prev)), Part::Lit(s)) => prev.push_str(&s),
                (_, Part::Lit(s)) if s.is_empty() => {}
                (_, p) => out.push(p),
            }
        }
        Text(out)
    }

    fn plain(s: &str) -> Text {
        Text::new(vec![Part::Lit(s.to_string())])
    }

    /// The value the parsed job must hold.
    fn value(&self, var: &str) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Runtime(r) => out.push_str(r),
                Part::Var => out.push_str(var),
            }
        }
        out
    }

    /// The text as a quoted HCL template.
    fn quoted(&self) -> String {
        format!("\"{}\"", self.render(true))
    }

    /// The parts rendered for a quoted string (`quoted`) or a heredoc line.
    fn render(&self, quoted: bool) -> String {
        let mut out = String::new();
        for (i, p) in self.0.iter().enumerate() {
            match p {
                Part::Lit(s) => {
                    let before_interp = self.0.get(i + 1).is_some_and(Part::is_interpolation);
                    escape_literal(s, quoted, before_interp, &mut out);
                }
                Part::Runtime(r) => out.push_str(r),
                Part::Var => {
                    let _ = write!(out, "${{var.{VAR}}}");
                }
            }
        }
        out
    }
}

/// Appends `s` escaped for a quoted string or a heredoc. A `$` or `%` right before `{` is
/// doubled. Dollars that end the literal right before an interpolation would read as `$${`,
/// so they are written as one interpolation of a string, `${"$$"}`, instead.
fn escape_literal(s: &str, quoted: bool, before_interp: bool, out: &mut String) {
    let (s, dollars) = if before_interp {
        let head = s.trim_end_matches('$');
        (head, &s[head.len()..])
    } else {
        (s, "")
    };
    let chars: Vec<char> = s.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        let next = chars.get(i + 1).copied();
        match c {
            '$' | '%' if next == Some('{') => {
                out.push(c);
                out.push(c);
            }
            '"' if quoted => out.push_str("\\\""),
            '\\' if quoted => out.push_str("\\\\"),
            '\n' if quoted => out.push_str("\\n"),
            '\r' if quoted => out.push_str("\\r"),
            '\t' if quoted => out.push_str("\\t"),
            c if quoted && c.is_control() => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    if !dollars.is_empty() {
        let _ = write!(out, "${{\"{dollars}\"}}");
    }
}

/// Pieces of literal text, many of them needing escapes in a quoted string.
fn quoted_fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-zA-Z0-9 _./:=-]{1,8}",
        3 => prop::sample::select(vec![
            "\"", "\\", "\n", "\t", "\r", "${", "%{", "$", "%", "{", "}", "$${", "%%{", "\\n",
            "é", "✓ 日本", "🚀", "\u{1}", "\u{7f}", "{{ .Name }}",
        ])
        .prop_map(str::to_string),
    ]
}

/// Pieces of literal text for a heredoc line: no line breaks or other control characters.
fn heredoc_fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-zA-Z0-9 _./:=-]{1,10}",
        3 => prop::sample::select(vec![
            "\"", "\\", "\t", "${", "%{", "$", "%", "{", "}", "$${", "%%{", "\\n", "é", "🚀",
            "{{ env \"NOMAD_ALLOC_ID\" }}",
            "{{ key \"app/config\" }}",
            "{{- range service \"db\" }}{{ .Address }}:{{ .Port }}{{ end }}",
        ])
        .prop_map(str::to_string),
    ]
}

fn part(fragment: BoxedStrategy<String>) -> impl Strategy<Value = Part> {
    prop_oneof![
        6 => fragment.prop_map(Part::Lit),
        2 => prop::sample::select(RUNTIME).prop_map(Part::Runtime),
        1 => Just(Part::Var),
    ]
}

/// Any string value: literal text mixed with runtime interpolations and `${var.release}`.
fn text() -> impl Strategy<Value = Text> {
    prop::collection::vec(part(quoted_fragment().boxed()), 0..5).prop_map(Text::new)
}

/// Literal text only.
fn literal() -> impl Strategy<Value = Text> {
    prop::collection::vec(quoted_fragment(), 0..4).prop_map(|v| Text::plain(&v.concat()))
}

/// A non-empty text that starts with a runtime interpolation.
fn interpolated_text() -> impl Strategy<Value = Text> {
    (prop::sample::select(RUNTIME), text())
        .prop_map(|(r, rest)| Text::new([vec![Part::Runtime(r)], rest.0].concat()))
}

// ---------------------------------------------------------------------------------------------
// Durations and heredocs
// ---------------------------------------------------------------------------------------------

const NS: u64 = 1_000_000_000;

/// A duration and the Go duration text it is written as.
#[derive(Debug, Clone, Copy)]
struct Dur {
    nanos: u64,
    style: u8,
}

impl Dur {
    fn hcl(self) -> String {
        let n = self.nanos;
        let ms = n / 1_000_000;
        match self.style {
            _ if n == 0 => "0s".to_string(),
            0 if n.is_multiple_of(NS) => format!("{}s", n / NS),
            1 => format!("{ms}ms"),
            2 if n.is_multiple_of(NS / 2) && !n.is_multiple_of(NS) => {
                format!("{}.5s", n / NS)
            }
            _ => {
                let (h, m, s, ms) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, ms % 1000);
                let mut out = String::new();
                for (v, unit) in [(h, "h"), (m, "m"), (s, "s"), (ms, "ms")] {
                    if v > 0 {
                        let _ = write!(out, "{v}{unit}");
                    }
                }
                out
            }
        }
    }
}

/// A duration between `lo` and `hi` seconds, sometimes with half or milli seconds.
fn dur(lo: u64, hi: u64) -> impl Strategy<Value = Dur> {
    (
        lo..=hi,
        prop_oneof![Just(0u64), Just(NS / 2), Just(250_000_000)],
        0u8..4,
    )
        .prop_map(move |(s, frac, style)| Dur {
            nanos: if s < hi { s * NS + frac } else { s * NS },
            style,
        })
}

/// A template's `data`: a heredoc (plain or indented) or a quoted string.
#[derive(Debug, Clone)]
enum Data {
    Quoted(Text),
    Heredoc {
        lines: Vec<Text>,
        indent: Option<usize>,
    },
}

impl Data {
    fn value(&self, var: &str) -> String {
        match self {
            Data::Quoted(t) => t.value(var),
            Data::Heredoc { lines, .. } => lines
                .iter()
                .map(|l| format!("{}\n", l.value(var)))
                .collect(),
        }
    }

    fn hcl(&self, w: &Hcl) -> String {
        let (lines, indent) = match self {
            Data::Quoted(t) => return t.quoted(),
            Data::Heredoc { lines, indent } => (lines, indent),
        };
        let rendered: Vec<String> = lines.iter().map(|l| l.render(false)).collect();
        let marker = ["EOT", "EOF", "END_OF_TEMPLATE"]
            .into_iter()
            .find(|m| rendered.iter().all(|l| l.trim() != *m))
            .unwrap_or("NO_SUCH_LINE_EOT");
        let pad = " ".repeat(indent.unwrap_or(0));
        let mut out = format!("<<{}{marker}\n", if indent.is_some() { "-" } else { "" });
        for l in &rendered {
            if !l.is_empty() {
                out.push_str(&pad);
            }
            out.push_str(l);
            out.push('\n');
        }
        if indent.is_some() {
            out.push_str(&" ".repeat(w.depth * 2));
        }
        out.push_str(marker);
        out
    }
}

fn heredoc_line() -> impl Strategy<Value = Text> {
    prop::collection::vec(part(heredoc_fragment().boxed()), 0..5).prop_map(Text::new)
}

fn data() -> impl Strategy<Value = Data> {
    prop_oneof![
        // Non-empty: a template needs data.
        1 => text().prop_map(|t| Data::Quoted(Text::new([vec![Part::Lit("tmpl:".into())], t.0].concat()))),
        3 => (
            "[a-z]{1,6}",
            prop::collection::vec(heredoc_line(), 0..6),
            prop::option::of(1usize..8),
        )
            .prop_map(|(first, rest, indent)| {
                // The first line starts in its first column, so `<<-` removes exactly the
                // indentation added when rendering.
                let mut lines = vec![Text::plain(&first)];
                lines.extend(rest);
                Data::Heredoc { lines, indent }
            }),
    ]
}

// ---------------------------------------------------------------------------------------------
// Free-form configuration
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Cv {
    Str(Text),
    Int(i64),
    Big(u64),
    Float(f64),
    Bool(bool),
    List(Vec<Cv>),
    Map(Vec<(Text, Cv)>),
}

impl Cv {
    fn hcl(&self) -> String {
        match self {
            Cv::Str(t) => t.quoted(),
            Cv::Int(i) => i.to_string(),
            Cv::Big(u) => u.to_string(),
            Cv::Float(f) => format!("{f:?}"),
            Cv::Bool(b) => b.to_string(),
            Cv::List(items) => {
                let items: Vec<String> = items.iter().map(Cv::hcl).collect();
                format!("[{}]", items.join(", "))
            }
            Cv::Map(entries) => {
                let entries: Vec<String> = entries
                    .iter()
                    .map(|(k, v)| format!("{} = {}", k.quoted(), v.hcl()))
                    .collect();
                format!("{{ {} }}", entries.join(", "))
            }
        }
    }

    fn json(&self, var: &str) -> Value {
        match self {
            Cv::Str(t) => Value::String(t.value(var)),
            Cv::Int(i) => json!(i),
            Cv::Big(u) => json!(u),
            // HCL numbers are numbers: a float without a fraction is a whole number.
            Cv::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => json!(*f as i64),
            Cv::Float(f) => Value::Number(Number::from_f64(*f).expect("finite")),
            Cv::Bool(b) => Value::Bool(*b),
            Cv::List(items) => Value::Array(items.iter().map(|i| i.json(var)).collect()),
            Cv::Map(entries) => Value::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.value(var), v.json(var)))
                    .collect(),
            ),
        }
    }
}

fn cv() -> impl Strategy<Value = Cv> {
    let leaf = prop_oneof![
        4 => text().prop_map(Cv::Str),
        2 => any::<i64>().prop_map(Cv::Int),
        1 => (i64::MAX as u64 + 1..=u64::MAX).prop_map(Cv::Big),
        // Decimals of up to 15 significant digits. Floats that need all 17 digits are left
        // to `full_precision_floats_round_trip_through_json` below.
        2 => prop_oneof![
            (-999_999_999i64..999_999_999, 0u32..7)
                .prop_map(|(m, e)| Cv::Float(m as f64 / 10f64.powi(e as i32))),
            prop::sample::select(vec![0.5, -2.25, 1e-7, 6.02e23, 1e300, 3.0])
                .prop_map(Cv::Float),
        ],
        1 => any::<bool>().prop_map(Cv::Bool),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Cv::List),
            prop::collection::btree_map(
                prop_oneof!["k_[a-z0-9]{1,5}", "[a-z .$%{}\"\\\\-]{1,6}"],
                inner,
                0..4
            )
            .prop_map(|m| Cv::Map(m.into_iter().map(|(k, v)| (Text::plain(&k), v)).collect())),
        ]
    })
}

/// A free-form body: attributes, and blocks (labelled or not) with bodies of their own.
#[derive(Debug, Clone, Default)]
struct FreeBody {
    attrs: Vec<(String, Cv)>,
    blocks: Vec<(String, Vec<String>, FreeBody)>,
}

impl FreeBody {
    fn write(&self, w: &mut Hcl) {
        for (k, v) in &self.attrs {
            w.attr(k, &v.hcl());
        }
        for (name, labels, body) in &self.blocks {
            let labels: String = labels
                .iter()
                .map(|l| format!(" {}", Text::plain(l).quoted()))
                .collect();
            w.open(&format!("{name}{labels}"));
            body.write(w);
            w.close();
        }
    }

    /// The JSON the parser makes of it: attributes as values, blocks as arrays of objects
    /// under their name, labels as nested objects.
    fn json(&self, var: &str) -> Map<String, Value> {
        let mut out = Map::new();
        for (k, v) in &self.attrs {
            out.insert(k.clone(), v.json(var));
        }
        for (name, labels, body) in &self.blocks {
            let mut inner = Value::Object(body.json(var));
            for l in labels.iter().rev() {
                let mut m = Map::new();
                m.insert(l.clone(), inner);
                inner = Value::Object(m);
            }
            if let Some(Value::Array(a)) = out.get_mut(name) {
                a.push(inner);
            } else {
                out.insert(name.clone(), Value::Array(vec![inner]));
            }
        }
        out
    }
}

fn attr_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "image",
            "command",
            "args",
            "ports",
            "labels",
            "volumes",
            "network_mode",
            "entrypoint",
        ])
        .prop_map(str::to_string),
        "a_[a-z0-9_]{1,6}",
    ]
}

fn free_body() -> impl Strategy<Value = FreeBody> {
    let attrs = prop::collection::btree_map(attr_name(), cv(), 0..5).boxed();
    let flat = attrs.clone().prop_map(|a| FreeBody {
        attrs: a.into_iter().collect(),
        blocks: Vec::new(),
    });
    flat.prop_recursive(2, 12, 3, move |inner| {
        let block_name = prop_oneof![
            prop::sample::select(vec!["mount", "logging", "auth", "port_map"])
                .prop_map(str::to_string),
            "b_[a-z]{1,5}",
        ];
        let label = prop_oneof![
            "[a-z0-9 ._/-]{1,8}",
            Just("quote\" back\\slash".to_string())
        ];
        (
            attrs.clone(),
            prop::collection::vec(
                (block_name, prop::collection::vec(label, 0..3), inner),
                0..3,
            ),
        )
            .prop_map(|(attrs, blocks)| FreeBody {
                // Block names are kept apart from attribute names.
                blocks: blocks
                    .into_iter()
                    .filter(|(n, _, _)| !attrs.contains_key(n))
                    .collect(),
                attrs: attrs.into_iter().collect(),
            })
    })
}

// ---------------------------------------------------------------------------------------------
// The job model
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Service,
    Batch,
    System,
    Sysbatch,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Service => "service",
            Kind::Batch => "batch",
            Kind::System => "system",
            Kind::Sysbatch => "sysbatch",
        }
    }

    fn is_system(self) -> bool {
        matches!(self, Kind::System | Kind::Sysbatch)
    }

    fn is_batch(self) -> bool {
        matches!(self, Kind::Batch | Kind::Sysbatch)
    }
}

/// A string map written as a block (`meta { k = "v" }`) or an attribute (`meta = { ... }`).
#[derive(Debug, Clone)]
struct StrMap {
    entries: BTreeMap<String, Text>,
    as_block: bool,
}

impl StrMap {
    fn write(&self, w: &mut Hcl, key: &str) {
        if self.entries.is_empty() {
            return;
        }
        if self.as_block {
            w.open(key);
            for (k, v) in &self.entries {
                w.attr(k, &v.quoted());
            }
            w.close();
        } else {
            let entries: Vec<String> = self
                .entries
                .iter()
                .map(|(k, v)| format!("{} = {}", Text::plain(k).quoted(), v.quoted()))
                .collect();
            w.attr(key, &format!("{{\n{}\n}}", entries.join("\n")));
        }
    }

    fn value(&self, var: &str) -> BTreeMap<String, String> {
        self.entries
            .iter()
            .map(|(k, v)| (k.clone(), v.value(var)))
            .collect()
    }
}

/// Keys that are identifiers, so that they can be written in block form too.
fn str_map(key: &'static str, value: BoxedStrategy<Text>) -> impl Strategy<Value = StrMap> {
    (prop::collection::btree_map(key, value, 0..4), any::<bool>())
        .prop_map(|(entries, as_block)| StrMap { entries, as_block })
}

#[derive(Debug, Clone)]
enum ConstraintSpec {
    /// `attribute`, optional `operator`, `value`.
    Compare(&'static str, Option<&'static str>, Text),
    /// A shorthand operator key (`version = ">= 1.2"`) with the attribute.
    Shorthand(&'static str, &'static str, &'static str),
    /// `operator = "is_set"` with no value.
    IsSet(&'static str),
    DistinctHosts,
    DistinctProperty(&'static str, Option<u8>),
}

const ATTRIBUTES: &[&str] = &[
    "${attr.kernel.name}",
    "${node.class}",
    "${meta.rack}",
    "${node.datacenter}",
    "${attr.cpu.arch}",
];

impl ConstraintSpec {
    fn write(&self, w: &mut Hcl, key: &str) {
        w.open(key);
        match self {
            ConstraintSpec::Compare(a, op, v) => {
                w.attr("attribute", &Text::plain(a).quoted());
                if let Some(op) = op {
                    w.attr("operator", &Text::plain(op).quoted());
                }
                w.attr("value", &v.quoted());
            }
            ConstraintSpec::Shorthand(a, op, v) => {
                w.attr("attribute", &Text::plain(a).quoted());
                w.attr(op, &Text::plain(v).quoted());
            }
            ConstraintSpec::IsSet(a) => {
                w.attr("attribute", &Text::plain(a).quoted());
                w.attr("operator", "\"is_set\"");
            }
            ConstraintSpec::DistinctHosts => w.attr("distinct_hosts", "true"),
            ConstraintSpec::DistinctProperty(a, n) => {
                w.attr("distinct_property", &Text::plain(a).quoted());
                if let Some(n) = n {
                    w.attr("value", &format!("\"{n}\""));
                }
            }
        }
        w.close();
    }

    /// The constraint after canonicalisation.
    fn model(&self, var: &str) -> Constraint {
        match self {
            ConstraintSpec::Compare(a, op, v) => {
                Constraint::new(*a, op.unwrap_or("="), v.value(var))
            }
            ConstraintSpec::Shorthand(a, op, v) => Constraint::new(*a, *op, *v),
            ConstraintSpec::IsSet(a) => Constraint::new(*a, "is_set", ""),
            ConstraintSpec::DistinctHosts => Constraint::new("", "distinct_hosts", ""),
            ConstraintSpec::DistinctProperty(a, n) => Constraint::new(
                *a,
                "distinct_property",
                n.map(|n| n.to_string()).unwrap_or_default(),
            ),
        }
    }
}

fn constraint(group_level: bool) -> impl Strategy<Value = ConstraintSpec> {
    let attr = || prop::sample::select(ATTRIBUTES);
    let compare = (
        attr(),
        prop::option::of(prop::sample::select(vec!["=", "==", "!=", "is", "not"])),
        text(),
    )
        .prop_map(|(a, op, v)| ConstraintSpec::Compare(a, op, v));
    let shorthand = (
        attr(),
        prop::sample::select(vec![
            ("version", ">= 1.2.0"),
            ("version", ">= 0.9, < 2.0"),
            ("semver", ">= 1.0.0-beta.1"),
            ("regexp", "^linux$"),
            ("regexp", "[a-z]+\\d?(x|y)"),
            ("set_contains", "a,b"),
            ("set_contains_any", "amd64,arm64"),
        ]),
    )
        .prop_map(|(a, (op, v))| ConstraintSpec::Shorthand(a, op, v));
    let is_set = attr().prop_map(ConstraintSpec::IsSet);
    if group_level {
        prop_oneof![
            3 => compare,
            2 => shorthand,
            1 => is_set,
            1 => Just(ConstraintSpec::DistinctHosts),
            1 => (attr(), prop::option::of(1u8..5))
                .prop_map(|(a, n)| ConstraintSpec::DistinctProperty(a, n)),
        ]
        .boxed()
    } else {
        prop_oneof![3 => compare, 2 => shorthand, 1 => is_set].boxed()
    }
}

#[derive(Debug, Clone)]
struct AffinitySpec {
    attribute: &'static str,
    operator: Option<&'static str>,
    value: Text,
    weight: Option<i8>,
}

fn affinity() -> impl Strategy<Value = AffinitySpec> {
    (
        prop::sample::select(ATTRIBUTES),
        prop::option::of(prop::sample::select(vec!["=", "!=", "set_contains_any"])),
        text(),
        prop::option::of(prop_oneof![-100i8..=-1, 1i8..=100]),
    )
        .prop_map(|(attribute, operator, value, weight)| AffinitySpec {
            attribute,
            operator,
            value,
            weight,
        })
}

#[derive(Debug, Clone)]
struct SpreadSpec {
    attribute: &'static str,
    weight: Option<i8>,
    targets: Vec<(String, u8)>,
}

fn spread() -> impl Strategy<Value = SpreadSpec> {
    (
        prop::sample::select(ATTRIBUTES),
        prop::option::of(0i8..=100),
        prop::collection::btree_map("[a-z0-9-]{1,6}", 0u8..=33, 0..4),
    )
        .prop_map(|(attribute, weight, targets)| SpreadSpec {
            attribute,
            weight,
            targets: targets.into_iter().collect(),
        })
}

#[derive(Debug, Clone)]
struct UpdateSpec {
    max_parallel: Option<i32>,
    health_check: Option<&'static str>,
    min_healthy_time: Option<Dur>,
    healthy_deadline: Option<Dur>,
    progress_deadline: Option<Dur>,
    canary: Option<i32>,
    auto_revert: Option<bool>,
    auto_promote: Option<bool>,
}

/// Durations ordered however the defaults fill the rest: min_healthy_time (10s) <
/// healthy_deadline (5m) <= progress_deadline (10m).
fn update() -> impl Strategy<Value = UpdateSpec> {
    (
        prop::option::of(0i32..5),
        prop::option::of(prop::sample::select(vec![
            "checks",
            "task_states",
            "manual",
        ])),
        prop::option::of(dur(1, 60)),
        prop::option::of(dur(120, 300)),
        prop::option::of(dur(300, 1200)),
        prop::option::of(0i32..3),
        prop::option::of(any::<bool>()),
        any::<bool>(),
    )
        .prop_map(
            |(mp, hc, min, hd, pd, canary, revert, promote)| UpdateSpec {
                max_parallel: mp,
                health_check: hc,
                min_healthy_time: min,
                healthy_deadline: hd,
                progress_deadline: pd,
                canary,
                auto_revert: revert,
                auto_promote: (promote && canary.unwrap_or(0) > 0).then_some(true),
            },
        )
}

impl UpdateSpec {
    fn write(&self, w: &mut Hcl) {
        w.open("update");
        w.opt("max_parallel", self.max_parallel);
        w.opt_str("health_check", self.health_check);
        w.opt_dur("min_healthy_time", self.min_healthy_time);
        w.opt_dur("healthy_deadline", self.healthy_deadline);
        w.opt_dur("progress_deadline", self.progress_deadline);
        w.opt("canary", self.canary);
        w.opt("auto_revert", self.auto_revert);
        w.opt("auto_promote", self.auto_promote);
        w.close();
    }
}

#[derive(Debug, Clone)]
struct RescheduleSpec {
    attempts: Option<i32>,
    interval: Dur,
    delay: Option<Dur>,
    delay_function: Option<&'static str>,
    max_delay: Option<Dur>,
    unlimited: Option<bool>,
}

fn reschedule() -> impl Strategy<Value = RescheduleSpec> {
    (
        prop::option::of(0i32..5),
        dur(3600, 86400),
        prop::option::of(dur(5, 60)),
        prop::option::of(prop::sample::select(vec![
            "constant",
            "exponential",
            "fibonacci",
        ])),
        prop::option::of(dur(120, 3600)),
        prop::option::of(any::<bool>()),
    )
        .prop_map(
            |(attempts, interval, delay, delay_function, max_delay, unlimited)| RescheduleSpec {
                attempts,
                interval,
                delay,
                delay_function,
                max_delay,
                unlimited,
            },
        )
}

impl RescheduleSpec {
    fn write(&self, w: &mut Hcl) {
        w.open("reschedule");
        w.opt("attempts", self.attempts);
        w.opt_dur("interval", Some(self.interval));
        w.opt_dur("delay", self.delay);
        w.opt_str("delay_function", self.delay_function);
        w.opt_dur("max_delay", self.max_delay);
        w.opt("unlimited", self.unlimited);
        w.close();
    }
}

#[derive(Debug, Clone)]
struct PeriodicSpec {
    crons: Vec<&'static str>,
    as_list: bool,
    prohibit_overlap: Option<bool>,
    time_zone: Option<&'static str>,
}

fn periodic() -> impl Strategy<Value = PeriodicSpec> {
    (
        prop::sample::subsequence(
            vec![
                "*/15 * * * *",
                "0 3 * * 1-5",
                "@daily",
                "0 0 12 ? * MON-FRI *",
            ],
            1..3,
        ),
        any::<bool>(),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::sample::select(vec!["UTC", "America/New_York"])),
    )
        .prop_map(
            |(crons, as_list, prohibit_overlap, time_zone)| PeriodicSpec {
                as_list: as_list || crons.len() > 1,
                crons,
                prohibit_overlap,
                time_zone,
            },
        )
}

#[derive(Debug, Clone)]
struct PortSpec {
    label: String,
    static_port: Option<u16>,
    to: Option<i32>,
    host_network: Option<&'static str>,
}

#[derive(Debug, Clone)]
struct NetworkSpec {
    mode: Option<&'static str>,
    ports: Vec<PortSpec>,
}

fn network() -> impl Strategy<Value = NetworkSpec> {
    (
        prop::option::of(prop::sample::select(vec!["host", "bridge", "cni/mynet"])),
        prop::collection::vec(
            (
                "[a-z]{1,6}",
                prop::option::of(1u16..=65535),
                prop::option::of(-1i32..=65535),
                prop::option::of(prop::sample::select(vec!["public", "private"])),
            ),
            0..4,
        ),
    )
        .prop_map(|(mode, ports)| {
            let mut used = std::collections::BTreeSet::new();
            let ports = ports
                .into_iter()
                .enumerate()
                .map(|(i, (base, static_port, to, host_network))| {
                    // Unique labels, and static ports unique per host network.
                    let static_port = static_port.map(|mut p| {
                        while !used.insert((p, host_network)) {
                            p = p.checked_add(1).unwrap_or(1);
                        }
                        p
                    });
                    PortSpec {
                        label: format!("{base}_{i}"),
                        static_port,
                        to,
                        host_network,
                    }
                })
                .collect();
            NetworkSpec { mode, ports }
        })
}

#[derive(Debug, Clone)]
struct CheckSpec {
    http: bool,
    name: Option<Text>,
    path: Text,
    port: Option<usize>,
    interval: Dur,
    timeout: Dur,
    header: BTreeMap<String, Vec<Text>>,
}

fn check() -> impl Strategy<Value = CheckSpec> {
    (
        any::<bool>(),
        prop::option::of(literal()),
        text().prop_map(|t| Text::new([vec![Part::Lit("/".into())], t.0].concat())),
        prop::option::of(0usize..4),
        dur(1, 60),
        dur(1, 30),
        prop::collection::btree_map("X-[A-Za-z]{1,6}", prop::collection::vec(text(), 1..3), 0..3),
    )
        .prop_map(
            |(http, name, path, port, interval, timeout, header)| CheckSpec {
                http,
                name,
                path,
                port,
                interval,
                timeout,
                header: if http { header } else { BTreeMap::new() },
            },
        )
}

#[derive(Debug, Clone)]
struct ServiceSpec {
    name: String,
    port: Option<usize>,
    provider: Option<&'static str>,
    tags: Vec<Text>,
    checks: Vec<CheckSpec>,
    meta: StrMap,
}

fn service() -> impl Strategy<Value = ServiceSpec> {
    (
        "[a-z][a-z0-9]{0,8}",
        prop::option::of(0usize..4),
        prop::option::of(prop::sample::select(vec!["consul", "nomad"])),
        prop::collection::vec(text(), 0..3),
        prop::collection::vec(check(), 0..3),
        str_map("[a-z][a-z0-9_]{0,6}", text().boxed()),
    )
        .prop_map(|(name, port, provider, tags, checks, meta)| ServiceSpec {
            name,
            port,
            provider,
            tags,
            checks,
            meta,
        })
}

#[derive(Debug, Clone)]
struct RestartSpec {
    attempts: Option<i32>,
    delay: Option<Dur>,
    interval: Option<Dur>,
    mode: Option<&'static str>,
}

/// attempts * delay fits the interval, whichever of them fall back to their defaults
/// (2 or 3 attempts, 15s delay, 30m or 24h interval).
fn restart() -> impl Strategy<Value = RestartSpec> {
    (
        prop::option::of(0i32..=5),
        prop::option::of(dur(1, 60)),
        prop::option::of(dur(1800, 7200)),
        prop::option::of(prop::sample::select(vec!["fail", "delay"])),
    )
        .prop_map(|(attempts, delay, interval, mode)| RestartSpec {
            attempts,
            delay,
            interval,
            mode,
        })
}

impl RestartSpec {
    fn write(&self, w: &mut Hcl) {
        w.open("restart");
        w.opt("attempts", self.attempts);
        w.opt_dur("delay", self.delay);
        w.opt_dur("interval", self.interval);
        w.opt_str("mode", self.mode);
        w.close();
    }
}

#[derive(Debug, Clone)]
struct ScalingSpec {
    min: Option<i64>,
    max: i64,
    enabled: Option<bool>,
    policy: Option<FreeBody>,
}

#[derive(Debug, Clone)]
struct TemplateSpec {
    data: Data,
    destination: String,
    change: Option<(&'static str, Option<&'static str>)>,
    perms: Option<&'static str>,
    splay: Option<Dur>,
    delimiters: bool,
    env: Option<bool>,
    wait: Option<(Dur, Dur)>,
    error_on_missing_key: Option<bool>,
}

fn template() -> impl Strategy<Value = TemplateSpec> {
    (
        data(),
        "[a-z]{1,8}",
        prop::option::of(prop::sample::select(vec![
            ("restart", None),
            ("noop", None),
            ("signal", Some("SIGHUP")),
            ("script", Some("/usr/local/bin/reload.sh")),
        ])),
        prop::option::of(prop::sample::select(vec!["0644", "0600", "755"])),
        prop::option::of(dur(0, 30)),
        any::<bool>(),
        prop::option::of(any::<bool>()),
        prop::option::of((dur(1, 10), dur(10, 60))),
        prop::option::of(any::<bool>()),
    )
        .prop_map(
            |(data, dest, change, perms, splay, delimiters, env, wait, missing)| TemplateSpec {
                data,
                destination: format!("local/{dest}.conf"),
                change,
                perms,
                splay,
                delimiters,
                env,
                wait,
                error_on_missing_key: missing,
            },
        )
}

#[derive(Debug, Clone)]
struct ArtifactSpec {
    source: Text,
    destination: Option<&'static str>,
    mode: Option<&'static str>,
    options: BTreeMap<String, String>,
    headers: BTreeMap<String, Text>,
}

fn artifact() -> impl Strategy<Value = ArtifactSpec> {
    (
        prop::collection::vec(part(quoted_fragment().boxed()), 0..3),
        prop::option::of(prop::sample::select(vec![
            "local/",
            "local/bin",
            "alloc/data",
        ])),
        prop::option::of(prop::sample::select(vec!["any", "file", "dir"])),
        prop::collection::btree_map(
            prop::sample::select(vec!["checksum", "archive", "depth"]).prop_map(str::to_string),
            "[a-z0-9:]{1,12}",
            0..3,
        ),
        prop::collection::btree_map("[A-Z][a-zA-Z-]{0,8}", text(), 0..3),
    )
        .prop_map(|(rest, destination, mode, options, headers)| ArtifactSpec {
            source: Text::new(
                [
                    vec![
                        Part::Lit("https://example.com/".into()),
                        Part::Runtime("${attr.kernel.name}"),
                        Part::Lit("/app.tar.gz?x=".into()),
                    ],
                    rest,
                ]
                .concat(),
            ),
            destination,
            mode,
            options,
            headers,
        })
}

#[derive(Debug, Clone)]
struct DeviceSpec {
    name: &'static str,
    count: Option<u64>,
    constraint: Option<ConstraintSpec>,
    affinity: Option<AffinitySpec>,
}

#[derive(Debug, Clone)]
struct ResourcesSpec {
    cpu: Option<u32>,
    cores: Option<u32>,
    memory: Option<u32>,
    memory_max: Option<u32>,
    devices: Vec<DeviceSpec>,
}

fn resources() -> impl Strategy<Value = ResourcesSpec> {
    let device = (
        prop::sample::select(vec!["nvidia/gpu", "gpu", "intel/fpga/x1"]),
        prop::option::of(1u64..5),
        prop::option::of(constraint(false)),
        prop::option::of(affinity()),
    )
        .prop_map(|(name, count, constraint, affinity)| DeviceSpec {
            name,
            count,
            constraint,
            affinity,
        });
    (
        prop_oneof![
            (1u32..4000).prop_map(|c| (Some(c), None)),
            (1u32..8).prop_map(|c| (None, Some(c))),
            Just((None, None)),
        ],
        prop::option::of(10u32..4096),
        prop::option::of(0u32..4096),
        prop::collection::vec(device, 0..3),
    )
        .prop_map(|((cpu, cores), memory, extra, devices)| ResourcesSpec {
            cpu,
            cores,
            memory,
            // memory_max is at least memory (300 when unset).
            memory_max: extra.map(|e| memory.unwrap_or(300) + e),
            devices,
        })
}

#[derive(Debug, Clone)]
struct VaultSpec {
    policies: Vec<String>,
    role: Option<String>,
    change: Option<(&'static str, Option<&'static str>)>,
    env: Option<bool>,
}

#[derive(Debug, Clone)]
struct IdentitySpec {
    name: Option<String>,
    aud: Vec<String>,
    env: Option<bool>,
    file: Option<bool>,
    ttl: Option<Dur>,
}

fn identity(named: bool) -> impl Strategy<Value = IdentitySpec> {
    (
        if named {
            "[a-z][a-z_]{0,8}".prop_map(Some).boxed()
        } else {
            Just(None).boxed()
        },
        prop::collection::vec("[a-z.]{1,10}", 0..3),
        prop::option::of(any::<bool>()),
        prop::option::of(any::<bool>()),
        prop::option::of(dur(60, 86400)),
    )
        .prop_map(|(name, aud, env, file, ttl)| IdentitySpec {
            name: name.map(|n| format!("id_{n}")),
            aud,
            env,
            file,
            ttl,
        })
}

#[derive(Debug, Clone)]
struct TaskSpec {
    name: String,
    driver: &'static str,
    config: FreeBody,
    env: StrMap,
    /// `RELEASE = "r-${var.release}"`: an env value substituted from the variable.
    env_uses_var: bool,
    meta: StrMap,
    resources: Option<ResourcesSpec>,
    lifecycle: Option<(&'static str, Option<bool>)>,
    templates: Vec<TemplateSpec>,
    artifacts: Vec<ArtifactSpec>,
    logs: Option<(Option<u32>, Option<u32>, Option<bool>)>,
    kill_timeout: Option<Dur>,
    kill_signal: Option<&'static str>,
    leader: Option<bool>,
    vault: Option<VaultSpec>,
    identities: Vec<IdentitySpec>,
    services: Vec<ServiceSpec>,
    constraints: Vec<ConstraintSpec>,
    restart: Option<RestartSpec>,
}

fn task() -> impl Strategy<Value = TaskSpec> {
    let vault = (
        prop::collection::vec("[a-z-]{1,8}", 0..3),
        prop::option::of("[a-z]{1,8}"),
        prop::option::of(prop::sample::select(vec![
            ("noop", None),
            ("restart", None),
            ("signal", Some("SIGUSR1")),
        ])),
        prop::option::of(any::<bool>()),
    )
        .prop_map(|(policies, role, change, env)| VaultSpec {
            policies,
            role,
            change,
            env,
        });
    let identities = (
        prop::option::of(identity(false)),
        prop::collection::vec(identity(true), 0..2),
    )
        .prop_map(|(default, named)| {
            let mut seen = std::collections::BTreeSet::new();
            default
                .into_iter()
                .chain(named.into_iter().filter(|i| seen.insert(i.name.clone())))
                .collect::<Vec<_>>()
        });
    (
        (
            "[a-z][a-z0-9_]{0,6}",
            prop::sample::select(vec![
                "docker", "exec", "raw_exec", "java", "podman", "my-drv",
            ]),
            free_body(),
            str_map("[A-Z][A-Z0-9_]{0,8}", interpolated_text().boxed()),
            any::<bool>(),
            str_map("[a-z][a-z0-9_]{0,6}", text().boxed()),
            prop::option::of(resources()),
            prop::option::of((
                prop::sample::select(vec!["prestart", "poststart", "poststop"]),
                prop::option::of(any::<bool>()),
            )),
        ),
        (
            prop::collection::vec(template(), 0..3),
            prop::collection::vec(artifact(), 0..2),
            prop::option::of((
                prop::option::of(1u32..=10),
                prop::option::of(1u32..=25),
                prop::option::of(any::<bool>()),
            )),
            prop::option::of(dur(0, 120)),
            prop::option::of(prop::sample::select(vec!["SIGTERM", "SIGINT", "SIGUSR1"])),
            prop::option::of(any::<bool>()),
            prop::option::of(vault),
            identities,
        ),
        (
            prop::collection::vec(service(), 0..2),
            prop::collection::vec(constraint(false), 0..2),
            prop::option::of(restart()),
        ),
    )
        .prop_map(
            |(
                (name, driver, config, env, env_uses_var, meta, resources, lifecycle),
                (templates, artifacts, logs, kill_timeout, kill_signal, leader, vault, identities),
                (services, constraints, restart),
            )| TaskSpec {
                name,
                driver,
                config,
                env,
                env_uses_var,
                meta,
                resources,
                lifecycle,
                templates,
                artifacts,
                logs,
                kill_timeout,
                kill_signal,
                leader,
                vault,
                identities,
                services,
                constraints,
                restart,
            },
        )
}

#[derive(Debug, Clone)]
struct GroupSpec {
    name: String,
    count: Option<u32>,
    network: Option<NetworkSpec>,
    services: Vec<ServiceSpec>,
    restart: Option<RestartSpec>,
    reschedule: Option<RescheduleSpec>,
    update: Option<UpdateSpec>,
    ephemeral_disk: Option<(Option<bool>, Option<bool>, Option<u32>)>,
    scaling: Option<ScalingSpec>,
    constraints: Vec<ConstraintSpec>,
    affinities: Vec<AffinitySpec>,
    spreads: Vec<SpreadSpec>,
    meta: StrMap,
    tasks: Vec<TaskSpec>,
}

fn group() -> impl Strategy<Value = GroupSpec> {
    let scaling = (
        0i64..3,
        0i64..20,
        prop::option::of(any::<bool>()),
        prop::option::of(free_body()),
        any::<bool>(),
    )
        .prop_map(|(min, extra, enabled, policy, with_min)| ScalingSpec {
            min: with_min.then_some(min),
            max: min + extra,
            enabled,
            policy,
        });
    (
        (
            "[a-z][a-z0-9-]{0,6}",
            prop::option::of(0u32..6),
            prop::option::of(network()),
            prop::collection::vec(service(), 0..3),
            prop::option::of(restart()),
            prop::option::of(reschedule()),
            prop::option::of(update()),
        ),
        (
            prop::option::of((
                prop::option::of(any::<bool>()),
                prop::option::of(any::<bool>()),
                prop::option::of(400u32..3000),
            )),
            prop::option::of(scaling),
            prop::collection::vec(constraint(true), 0..3),
            prop::collection::vec(affinity(), 0..2),
            prop::collection::vec(spread(), 0..2),
            str_map("[a-z][a-z0-9_]{0,6}", text().boxed()),
            prop::collection::vec(task(), 1..4),
        ),
    )
        .prop_map(
            |(
                (name, count, network, services, restart, reschedule, update),
                (ephemeral_disk, scaling, constraints, affinities, spreads, meta, tasks),
            )| GroupSpec {
                name,
                count,
                network,
                services,
                restart,
                reschedule,
                update,
                ephemeral_disk,
                scaling,
                constraints,
                affinities,
                spreads,
                meta,
                tasks,
            },
        )
}

#[derive(Debug, Clone)]
struct JobSpec {
    id: String,
    name: Option<Text>,
    kind: Option<Kind>,
    priority: Option<i32>,
    region: Option<String>,
    datacenters: Option<Vec<String>>,
    meta: StrMap,
    constraints: Vec<ConstraintSpec>,
    affinities: Vec<AffinitySpec>,
    spreads: Vec<SpreadSpec>,
    update: Option<UpdateSpec>,
    reschedule: Option<RescheduleSpec>,
    periodic: Option<PeriodicSpec>,
    /// The variable's default.
    var_default: Text,
    /// A `-var release=...` given to the parser, overriding the default.
    var_override: Option<String>,
    groups: Vec<GroupSpec>,
}

fn job_spec() -> impl Strategy<Value = JobSpec> {
    (
        (
            "[a-z][a-z0-9_.-]{0,12}",
            prop::option::of(literal()),
            prop::option::of(prop::sample::select(vec![
                Kind::Service,
                Kind::Batch,
                Kind::System,
                Kind::Sysbatch,
            ])),
            prop::option::of(1i32..=100),
            prop::option::of("[a-z]{2,6}-[a-z]{1,5}"),
            prop::option::of(prop::collection::vec("[a-z]{2,4}[0-9]?\\*?", 1..4)),
            str_map("[a-z][a-z0-9_]{0,6}", text().boxed()),
        ),
        (
            prop::collection::vec(constraint(true), 0..3),
            prop::collection::vec(affinity(), 0..3),
            prop::collection::vec(spread(), 0..2),
            prop::option::of(update()),
            prop::option::of(reschedule()),
            prop::option::of(periodic()),
            literal(),
            prop::option::of(
                prop::collection::vec(quoted_fragment(), 0..4).prop_map(|v| v.concat()),
            ),
            prop::collection::vec(group(), 1..4),
        ),
    )
        .prop_map(
            |(
                (id, name, kind, priority, region, datacenters, meta),
                (
                    constraints,
                    affinities,
                    spreads,
                    update,
                    reschedule,
                    periodic,
                    var_default,
                    var_override,
                    groups,
                ),
            )| {
                JobSpec {
                    id,
                    name,
                    kind,
                    priority,
                    region,
                    datacenters,
                    meta,
                    constraints,
                    affinities,
                    spreads,
                    update,
                    reschedule,
                    periodic,
                    var_default,
                    var_override,
                    groups,
                }
                .well_formed()
            },
        )
}

impl JobSpec {
    fn kind(&self) -> Kind {
        self.kind.unwrap_or(Kind::Service)
    }

    fn var_value(&self) -> String {
        self.var_override
            .clone()
            .unwrap_or_else(|| self.var_default.value(""))
    }

    /// Drops or adjusts what the job's type does not allow, and makes names unique, so that
    /// the job is one Nomad would accept.
    fn well_formed(mut self) -> JobSpec {
        let kind = self.kind();
        if kind.is_system() {
            self.spreads.clear();
            self.reschedule = None;
        }
        if kind.is_batch() {
            self.update = None;
        } else {
            self.periodic = None;
        }
        if kind == Kind::System {
            if let Some(u) = &mut self.update {
                u.canary = u.canary.map(|_| 0);
                u.auto_promote = None;
            }
        }
        if let Some(r) = &mut self.reschedule {
            // The job-level block is validated as written (see
            // `partial_job_reschedule_block_is_valid`), so it is written whole.
            r.delay.get_or_insert(Dur {
                nanos: 30 * NS,
                style: 0,
            });
            r.delay_function.get_or_insert("exponential");
        }
        fix_spreads(&mut self.spreads);
        let job_promotes = self
            .update
            .as_ref()
            .is_some_and(|u| u.auto_promote == Some(true));
        for (gi, g) in self.groups.iter_mut().enumerate() {
            if let Some(u) = &mut g.update {
                // A group inheriting auto_promote keeps the job's canaries.
                if job_promotes && u.canary == Some(0) {
                    u.canary = None;
                }
            }
            g.name = format!("{}-{gi}", g.name);
            if kind.is_system() {
                g.count = g.count.map(|c| c.min(1));
                g.spreads.clear();
                g.reschedule = None;
                if let Some(s) = &mut g.scaling {
                    s.min = s.min.map(|m| m.min(1));
                }
            }
            if kind.is_batch() {
                g.update = None;
            }
            if kind == Kind::System {
                if let Some(u) = &mut g.update {
                    u.canary = u.canary.map(|_| 0);
                    u.auto_promote = None;
                }
            }
            if let Some(s) = &mut g.scaling {
                // min <= count <= max, with the count given when there is a policy.
                let lo = s.min.unwrap_or(0);
                let hi = if kind.is_system() { lo.max(1) } else { s.max };
                let count = i64::from(g.count.unwrap_or(1)).clamp(lo, hi);
                s.max = s.max.max(count);
                g.count = u32::try_from(count).ok();
            }
            fix_spreads(&mut g.spreads);
            let labels: Vec<String> = g
                .network
                .as_ref()
                .map(|n| n.ports.iter().map(|p| p.label.clone()).collect())
                .unwrap_or_default();
            for (si, s) in g.services.iter_mut().enumerate() {
                fix_service(s, &format!("{gi}-{si}"), &labels);
            }
            for (ti, t) in g.tasks.iter_mut().enumerate() {
                t.name = format!("{}{ti}", t.name);
                // The first task is the main one; only it may lead.
                if ti == 0 {
                    t.lifecycle = None;
                } else {
                    t.leader = None;
                }
                for (si, s) in t.services.iter_mut().enumerate() {
                    fix_service(s, &format!("{gi}-{ti}-{si}"), &labels);
                }
            }
        }
        self
    }
}

fn fix_spreads(spreads: &mut Vec<SpreadSpec>) {
    let mut seen = std::collections::BTreeSet::new();
    spreads.retain(|s| seen.insert(s.attribute));
}

/// A unique DNS-label name, ports that the group defines, checks only where there is a port.
fn fix_service(s: &mut ServiceSpec, suffix: &str, labels: &[String]) {
    s.name = format!("{}-{suffix}", s.name);
    if labels.is_empty() {
        s.port = None;
    }
    s.port = s.port.map(|p| p % labels.len().max(1));
    for c in &mut s.checks {
        c.port = if labels.is_empty() {
            None
        } else {
            c.port.map(|p| p % labels.len())
        };
    }
    s.checks.retain(|c| c.port.is_some() || s.port.is_some());
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

/// An HCL writer with indentation.
#[derive(Default)]
struct Hcl {
    out: String,
    depth: usize,
}

impl Hcl {
    fn line(&mut self, s: &str) {
        for _ in 0..self.depth {
            self.out.push_str("  ");
        }
        self.out.push_str(s);
        self.out.push('\n');
    }

    fn open(&mut self, header: &str) {
        self.line(&format!("{header} {{"));
        self.depth += 1;
    }

    fn close(&mut self) {
        self.depth -= 1;
        self.line("}");
    }

    fn attr(&mut self, key: &str, value: &str) {
        self.line(&format!("{key} = {value}"));
    }

    fn opt(&mut self, key: &str, value: Option<impl ToString>) {
        if let Some(v) = value {
            self.attr(key, &v.to_string());
        }
    }

    fn opt_str(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.attr(key, &Text::plain(v).quoted());
        }
    }

    fn opt_dur(&mut self, key: &str, value: Option<Dur>) {
        if let Some(d) = value {
            self.attr(key, &format!("\"{}\"", d.hcl()));
        }
    }

    fn list(&mut self, key: &str, items: &[Text]) {
        let items: Vec<String> = items.iter().map(Text::quoted).collect();
        self.attr(key, &format!("[{}]", items.join(", ")));
    }
}

fn render(spec: &JobSpec) -> String {
    let mut w = Hcl::default();
    w.open(&format!("variable {}", Text::plain(VAR).quoted()));
    w.attr("type", "string");
    w.attr("description", "\"The release the job runs.\"");
    w.attr("default", &spec.var_default.quoted());
    w.close();
    w.line("");
    w.open(&format!("job {}", Text::plain(&spec.id).quoted()));
    if let Some(n) = &spec.name {
        w.attr("name", &n.quoted());
    }
    if let Some(k) = spec.kind {
        w.attr("type", &format!("\"{}\"", k.name()));
    }
    w.opt("priority", spec.priority);
    w.opt_str("region", spec.region.as_deref());
    if let Some(dcs) = &spec.datacenters {
        let dcs: Vec<Text> = dcs.iter().map(|d| Text::plain(d)).collect();
        w.list("datacenters", &dcs);
    }
    spec.meta.write(&mut w, "meta");
    for c in &spec.constraints {
        c.write(&mut w, "constraint");
    }
    for a in &spec.affinities {
        write_affinity(&mut w, a);
    }
    for s in &spec.spreads {
        write_spread(&mut w, s);
    }
    if let Some(u) = &spec.update {
        u.write(&mut w);
    }
    if let Some(r) = &spec.reschedule {
        r.write(&mut w);
    }
    if let Some(p) = &spec.periodic {
        w.open("periodic");
        if p.as_list {
            let crons: Vec<Text> = p.crons.iter().map(|c| Text::plain(c)).collect();
            w.list("crons", &crons);
        } else {
            w.opt_str("cron", p.crons.first().copied());
        }
        w.opt("prohibit_overlap", p.prohibit_overlap);
        w.opt_str("time_zone", p.time_zone);
        w.close();
    }
    for g in &spec.groups {
        write_group(&mut w, g);
    }
    w.close();
    w.out
}

fn write_affinity(w: &mut Hcl, a: &AffinitySpec) {
    w.open("affinity");
    w.attr("attribute", &Text::plain(a.attribute).quoted());
    w.opt_str("operator", a.operator);
    w.attr("value", &a.value.quoted());
    w.opt("weight", a.weight);
    w.close();
}

fn write_spread(w: &mut Hcl, s: &SpreadSpec) {
    w.open("spread");
    w.attr("attribute", &Text::plain(s.attribute).quoted());
    w.opt("weight", s.weight);
    for (value, percent) in &s.targets {
        w.open(&format!("target {}", Text::plain(value).quoted()));
        w.attr("percent", &percent.to_string());
        w.close();
    }
    w.close();
}

fn write_group(w: &mut Hcl, g: &GroupSpec) {
    w.open(&format!("group {}", Text::plain(&g.name).quoted()));
    w.opt("count", g.count);
    g.meta.write(w, "meta");
    for c in &g.constraints {
        c.write(w, "constraint");
    }
    for a in &g.affinities {
        write_affinity(w, a);
    }
    for s in &g.spreads {
        write_spread(w, s);
    }
    let labels: Vec<String> = g
        .network
        .as_ref()
        .map(|n| n.ports.iter().map(|p| p.label.clone()).collect())
        .unwrap_or_default();
    if let Some(n) = &g.network {
        w.open("network");
        w.opt_str("mode", n.mode);
        for p in &n.ports {
            w.open(&format!("port {}", Text::plain(&p.label).quoted()));
            w.opt("static", p.static_port);
            w.opt("to", p.to);
            w.opt_str("host_network", p.host_network);
            w.close();
        }
        w.close();
    }
    for s in &g.services {
        write_service(w, s, &labels);
    }
    if let Some(r) = &g.restart {
        r.write(w);
    }
    if let Some(r) = &g.reschedule {
        r.write(w);
    }
    if let Some(u) = &g.update {
        u.write(w);
    }
    if let Some((sticky, migrate, size)) = g.ephemeral_disk {
        w.open("ephemeral_disk");
        w.opt("sticky", sticky);
        w.opt("migrate", migrate);
        w.opt("size", size);
        w.close();
    }
    if let Some(s) = &g.scaling {
        w.open("scaling");
        w.opt("min", s.min);
        w.attr("max", &s.max.to_string());
        w.opt("enabled", s.enabled);
        if let Some(p) = &s.policy {
            w.open("policy");
            p.write(w);
            w.close();
        }
        w.close();
    }
    for t in &g.tasks {
        write_task(w, t, &labels);
    }
    w.close();
}

fn write_service(w: &mut Hcl, s: &ServiceSpec, labels: &[String]) {
    w.open("service");
    w.attr("name", &Text::plain(&s.name).quoted());
    if let Some(p) = s.port {
        w.attr("port", &Text::plain(&labels[p]).quoted());
    }
    w.opt_str("provider", s.provider);
    if !s.tags.is_empty() {
        w.list("tags", &s.tags);
    }
    s.meta.write(w, "meta");
    for c in &s.checks {
        w.open("check");
        if let Some(n) = &c.name {
            w.attr("name", &n.quoted());
        }
        w.attr("type", if c.http { "\"http\"" } else { "\"tcp\"" });
        if c.http {
            w.attr("path", &c.path.quoted());
        }
        if let Some(p) = c.port {
            w.attr("port", &Text::plain(&labels[p]).quoted());
        }
        w.opt_dur("interval", Some(c.interval));
        w.opt_dur("timeout", Some(c.timeout));
        if !c.header.is_empty() {
            w.open("header");
            for (k, v) in &c.header {
                w.list(k, v);
            }
            w.close();
        }
        w.close();
    }
    w.close();
}

fn write_task(w: &mut Hcl, t: &TaskSpec, labels: &[String]) {
    w.open(&format!("task {}", Text::plain(&t.name).quoted()));
    w.attr("driver", &Text::plain(t.driver).quoted());
    w.open("config");
    t.config.write(w);
    w.close();
    t.env.write(w, "env");
    if t.env_uses_var {
        // A second env block merges into the first.
        w.open("env");
        w.attr("RELEASE_FROM_VAR", &format!("\"r-${{var.{VAR}}}\""));
        w.close();
    }
    t.meta.write(w, "meta");
    if let Some(r) = &t.resources {
        w.open("resources");
        w.opt("cpu", r.cpu);
        w.opt("cores", r.cores);
        w.opt("memory", r.memory);
        w.opt("memory_max", r.memory_max);
        for d in &r.devices {
            w.open(&format!("device {}", Text::plain(d.name).quoted()));
            w.opt("count", d.count);
            if let Some(c) = &d.constraint {
                c.write(w, "constraint");
            }
            if let Some(a) = &d.affinity {
                write_affinity(w, a);
            }
            w.close();
        }
        w.close();
    }
    if let Some((hook, sidecar)) = t.lifecycle {
        w.open("lifecycle");
        w.opt_str("hook", Some(hook));
        w.opt("sidecar", sidecar);
        w.close();
    }
    for tmpl in &t.templates {
        w.open("template");
        let data = tmpl.data.hcl(w);
        w.attr("data", &data);
        w.attr("destination", &Text::plain(&tmpl.destination).quoted());
        if let Some((mode, arg)) = tmpl.change {
            w.opt_str("change_mode", Some(mode));
            match (mode, arg) {
                ("signal", Some(sig)) => w.opt_str("change_signal", Some(sig)),
                ("script", Some(cmd)) => {
                    w.open("change_script");
                    w.opt_str("command", Some(cmd));
                    w.attr("args", "[\"-v\", \"${NOMAD_TASK_DIR}\"]");
                    w.attr("timeout", "\"20s\"");
                    w.attr("fail_on_error", "true");
                    w.close();
                }
                _ => {}
            }
        }
        w.opt_str("perms", tmpl.perms);
        w.opt_dur("splay", tmpl.splay);
        if tmpl.delimiters {
            w.attr("left_delimiter", "\"[[\"");
            w.attr("right_delimiter", "\"]]\"");
        }
        w.opt("env", tmpl.env);
        if let Some((min, max)) = tmpl.wait {
            w.open("wait");
            w.opt_dur("min", Some(min));
            w.opt_dur("max", Some(max));
            w.close();
        }
        w.opt("error_on_missing_key", tmpl.error_on_missing_key);
        w.close();
    }
    for a in &t.artifacts {
        w.open("artifact");
        w.attr("source", &a.source.quoted());
        w.opt_str("destination", a.destination);
        w.opt_str("mode", a.mode);
        if !a.options.is_empty() {
            w.open("options");
            for (k, v) in &a.options {
                w.attr(k, &Text::plain(v).quoted());
            }
            w.close();
        }
        if !a.headers.is_empty() {
            let headers: Vec<String> = a
                .headers
                .iter()
                .map(|(k, v)| format!("{} = {}", Text::plain(k).quoted(), v.quoted()))
                .collect();
            w.attr("headers", &format!("{{ {} }}", headers.join(", ")));
        }
        w.close();
    }
    if let Some((files, size, disabled)) = t.logs {
        w.open("logs");
        w.opt("max_files", files);
        w.opt("max_file_size", size);
        w.opt("disabled", disabled);
        w.close();
    }
    w.opt_dur("kill_timeout", t.kill_timeout);
    w.opt_str("kill_signal", t.kill_signal);
    w.opt("leader", t.leader);
    if let Some(v) = &t.vault {
        w.open("vault");
        let policies: Vec<Text> = v.policies.iter().map(|p| Text::plain(p)).collect();
        w.list("policies", &policies);
        w.opt_str("role", v.role.as_deref());
        if let Some((mode, signal)) = v.change {
            w.opt_str("change_mode", Some(mode));
            w.opt_str("change_signal", signal);
        }
        w.opt("env", v.env);
        w.close();
    }
    for i in &t.identities {
        match &i.name {
            Some(n) => w.open(&format!("identity {}", Text::plain(n).quoted())),
            None => w.open("identity"),
        }
        let aud: Vec<Text> = i.aud.iter().map(|a| Text::plain(a)).collect();
        w.list("aud", &aud);
        w.opt("env", i.env);
        w.opt("file", i.file);
        w.opt_dur("ttl", i.ttl);
        w.close();
    }
    for s in &t.services {
        write_service(w, s, labels);
    }
    for c in &t.constraints {
        c.write(w, "constraint");
    }
    if let Some(r) = &t.restart {
        r.write(w);
    }
    w.close();
}

// ---------------------------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------------------------

fn json_round_trip(job: &Job, what: &str) -> Result<(), TestCaseError> {
    let text = serde_json::to_string(job).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back = parse_json(&text, "roundtrip.json")
        .map_err(|e| TestCaseError::fail(format!("{what}: the job's own JSON is refused: {e}")))?;
    prop_assert_eq!(&back, job, "{}: JSON round trip changed the job", what);
    Ok(())
}

/// The parsed job holds the generated values.
fn check_values(job: &Job, spec: &JobSpec) -> Result<(), TestCaseError> {
    let var = spec.var_value();
    prop_assert_eq!(&job.id, &spec.id);
    let name = spec
        .name
        .as_ref()
        .map_or(spec.id.clone(), |n| n.value(&var));
    prop_assert_eq!(&job.name, &name);
    prop_assert_eq!(job.priority, spec.priority);
    prop_assert_eq!(&job.region, &spec.region);
    let dcs = spec.datacenters.clone().unwrap_or_else(|| vec!["*".into()]);
    prop_assert_eq!(&job.datacenters, &dcs);
    prop_assert_eq!(&job.meta, &spec.meta.value(&var));
    let constraints: Vec<Constraint> = spec.constraints.iter().map(|c| c.model(&var)).collect();
    let mut got = job.constraints.clone();
    for c in &mut got {
        if c.operand.is_empty() {
            c.operand = "=".into();
        }
    }
    prop_assert_eq!(got, constraints);
    prop_assert_eq!(job.affinities.len(), spec.affinities.len());
    for (a, s) in job.affinities.iter().zip(&spec.affinities) {
        prop_assert_eq!(&a.l_target, s.attribute);
        prop_assert_eq!(&a.r_target, &s.value.value(&var));
        prop_assert_eq!(a.weight, s.weight);
    }
    prop_assert_eq!(job.spreads.len(), spec.spreads.len());
    for (s, g) in job.spreads.iter().zip(&spec.spreads) {
        let targets: Vec<(String, u8)> = s
            .spread_target
            .iter()
            .map(|t| (t.value.clone(), t.percent))
            .collect();
        prop_assert_eq!(targets, g.targets.clone());
    }
    if let Some(p) = &spec.periodic {
        let got = job.periodic.as_ref().expect("periodic block");
        if p.as_list {
            prop_assert_eq!(&got.specs, &p.crons);
        } else {
            prop_assert_eq!(got.spec.as_deref(), p.crons.first().copied());
        }
    }
    if let Some(r) = &spec.reschedule {
        let got = job.reschedule.as_ref().expect("reschedule block");
        prop_assert_eq!(got.interval.map(|d| d.as_nanos()), Some(r.interval.nanos));
        prop_assert_eq!(got.delay.map(|d| d.as_nanos()), r.delay.map(|d| d.nanos));
    }
    prop_assert_eq!(job.task_groups.len(), spec.groups.len());
    for (g, gs) in job.task_groups.iter().zip(&spec.groups) {
        check_group(g, gs, &var)?;
    }
    Ok(())
}

fn check_group(g: &TaskGroup, spec: &GroupSpec, var: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(&g.name, &spec.name);
    prop_assert_eq!(g.count, spec.count);
    prop_assert_eq!(&g.meta, &spec.meta.value(var));
    match &spec.network {
        None => prop_assert!(g.networks.is_empty()),
        Some(n) => {
            prop_assert_eq!(g.networks.len(), 1);
            let net = &g.networks[0];
            prop_assert_eq!(net.mode.as_str(), n.mode.unwrap_or(""));
            let port = |p: &PortSpec| Port {
                label: p.label.clone().into(),
                value: p.static_port.unwrap_or(0),
                to: p.to.unwrap_or(0),
                host_network: p.host_network.unwrap_or("").to_string().into(),
            };
            let reserved: Vec<Port> = n
                .ports
                .iter()
                .filter(|p| p.static_port.is_some())
                .map(port)
                .collect();
            let dynamic: Vec<Port> = n
                .ports
                .iter()
                .filter(|p| p.static_port.is_none())
                .map(port)
                .collect();
            prop_assert_eq!(&net.reserved_ports, &reserved);
            prop_assert_eq!(&net.dynamic_ports, &dynamic);
        }
    }
    let labels: Vec<String> = spec
        .network
        .as_ref()
        .map(|n| n.ports.iter().map(|p| p.label.clone()).collect())
        .unwrap_or_default();
    prop_assert_eq!(g.services.len(), spec.services.len());
    for (s, ss) in g.services.iter().zip(&spec.services) {
        check_service(s, ss, &labels, var)?;
    }
    if let Some(d) = spec.ephemeral_disk.and_then(|d| d.2) {
        prop_assert_eq!(g.ephemeral_disk.as_ref().and_then(|e| e.size_mb), Some(d));
    }
    if let Some(s) = &spec.scaling {
        let got = g.scaling.as_ref().expect("scaling block");
        prop_assert_eq!(got.max, Some(s.max));
        prop_assert_eq!(got.min, s.min);
        let policy = s
            .policy
            .as_ref()
            .map(|p| p.json(var).into_iter().collect())
            .unwrap_or_default();
        prop_assert_eq!(&got.policy, &policy);
    }
    prop_assert_eq!(g.tasks.len(), spec.tasks.len());
    for (t, ts) in g.tasks.iter().zip(&spec.tasks) {
        check_task(t, ts, &labels, var)?;
    }
    Ok(())
}

fn check_service(
    s: &nomad_core::job::Service,
    spec: &ServiceSpec,
    labels: &[String],
    var: &str,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(&s.name, &spec.name);
    let port = spec.port.map(|p| labels[p].clone()).unwrap_or_default();
    prop_assert_eq!(&s.port_label, &port);
    let tags: Vec<String> = spec.tags.iter().map(|t| t.value(var)).collect();
    prop_assert_eq!(&s.tags, &tags);
    prop_assert_eq!(&s.meta, &spec.meta.value(var));
    prop_assert_eq!(s.checks.len(), spec.checks.len());
    for (c, cs) in s.checks.iter().zip(&spec.checks) {
        prop_assert_eq!(c.check_type.as_str(), if cs.http { "http" } else { "tcp" });
        if cs.http {
            prop_assert_eq!(&c.path, &cs.path.value(var));
        }
        prop_assert_eq!(c.interval.as_nanos(), cs.interval.nanos);
        prop_assert_eq!(c.timeout.as_nanos(), cs.timeout.nanos);
        let header: BTreeMap<String, Vec<String>> = cs
            .header
            .iter()
            .map(|(k, v)| (k.clone(), v.iter().map(|t| t.value(var)).collect()))
            .collect();
        prop_assert_eq!(&c.header, &header);
        if let Some(n) = &cs.name {
            prop_assert_eq!(&c.name, &n.value(var));
        }
    }
    Ok(())
}

fn check_task(
    t: &Task,
    spec: &TaskSpec,
    labels: &[String],
    var: &str,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(&t.name, &spec.name);
    prop_assert_eq!(&t.driver, spec.driver);
    let config: BTreeMap<String, Value> = spec.config.json(var).into_iter().collect();
    prop_assert_eq!(&t.config, &config);
    let mut env = spec.env.value(var);
    if spec.env_uses_var {
        env.insert("RELEASE_FROM_VAR".into(), format!("r-{var}"));
    }
    // Every generated env value starts with a runtime interpolation, kept verbatim.
    for (k, v) in &spec.env.entries {
        if let Some(Part::Runtime(r)) = v.0.first() {
            prop_assert!(t.env.get(k).is_some_and(|got| got.starts_with(r)));
        }
    }
    prop_assert_eq!(&t.env, &env);
    prop_assert_eq!(&t.meta, &spec.meta.value(var));
    if let Some(r) = &spec.resources {
        let got = t.resources.as_ref().expect("resources block");
        prop_assert_eq!(got.cpu, r.cpu);
        prop_assert_eq!(got.cores, r.cores);
        prop_assert_eq!(got.memory_mb, r.memory);
        prop_assert_eq!(got.memory_max_mb, r.memory_max);
        let devices: Vec<(&str, Option<u64>)> = got
            .devices
            .iter()
            .map(|d| (d.name.as_str(), d.count))
            .collect();
        let want: Vec<(&str, Option<u64>)> = r.devices.iter().map(|d| (d.name, d.count)).collect();
        prop_assert_eq!(devices, want);
    }
    prop_assert_eq!(
        t.lifecycle.as_ref().map(|l| (l.hook.as_str(), l.sidecar)),
        spec.lifecycle.map(|(h, s)| (h, s.unwrap_or(false)))
    );
    prop_assert_eq!(t.templates.len(), spec.templates.len());
    for (tmpl, ts) in t.templates.iter().zip(&spec.templates) {
        prop_assert_eq!(&tmpl.embedded_tmpl, &ts.data.value(var));
        prop_assert_eq!(&tmpl.dest_path, &ts.destination);
        prop_assert_eq!(tmpl.splay.map(|d| d.as_nanos()), ts.splay.map(|d| d.nanos));
        if let Some((min, max)) = ts.wait {
            let w = tmpl.wait.as_ref().expect("wait block");
            prop_assert_eq!(w.min.map(|d| d.as_nanos()), Some(min.nanos));
            prop_assert_eq!(w.max.map(|d| d.as_nanos()), Some(max.nanos));
        }
    }
    prop_assert_eq!(t.artifacts.len(), spec.artifacts.len());
    for (a, s) in t.artifacts.iter().zip(&spec.artifacts) {
        prop_assert_eq!(&a.getter_source, &s.source.value(var));
        prop_assert_eq!(&a.getter_options, &s.options);
        let headers: BTreeMap<String, String> = s
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.value(var)))
            .collect();
        prop_assert_eq!(&a.getter_headers, &headers);
    }
    prop_assert_eq!(
        t.kill_timeout.map(|d| d.as_nanos()),
        spec.kill_timeout.map(|d| d.nanos)
    );
    prop_assert_eq!(t.kill_signal.as_str(), spec.kill_signal.unwrap_or(""));
    prop_assert_eq!(t.leader, spec.leader.unwrap_or(false));
    let default_identity = spec.identities.iter().find(|i| i.name.is_none());
    prop_assert_eq!(t.identity.is_some(), default_identity.is_some());
    let named: Vec<&str> = t.identities.iter().map(|i| i.name.as_str()).collect();
    let want: Vec<&str> = spec
        .identities
        .iter()
        .filter_map(|i| i.name.as_deref())
        .collect();
    prop_assert_eq!(named, want);
    prop_assert_eq!(t.services.len(), spec.services.len());
    for (s, ss) in t.services.iter().zip(&spec.services) {
        check_service(s, ss, labels, var)?;
    }
    Ok(())
}

fn parse_options(spec: &JobSpec) -> ParseOptions {
    ParseOptions {
        vars: spec
            .var_override
            .iter()
            .map(|v| (VAR.to_string(), v.clone()))
            .collect(),
        ..ParseOptions::default()
    }
}

fn config() -> ProptestConfig {
    let mut config = ProptestConfig {
        // Failures print their shrunk input; nothing is written beside the sources.
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = CASES;
    }
    config
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn generated_job_files_round_trip(spec in job_spec()) {
        let src = render(&spec);
        let parsed = parse_hcl(&src, "generated.nomad.hcl", &parse_options(&spec));
        let mut job = match parsed {
            Ok(job) => job,
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n--- job file ---\n{src}"))),
        };
        check_values(&job, &spec)?;
        json_round_trip(&job, "parsed job")?;

        job.canonicalize();
        json_round_trip(&job, "canonical job")?;
        let once = job.clone();
        job.canonicalize();
        prop_assert_eq!(&job, &once, "canonicalize is not idempotent");
        if let Err(e) = job.validate() {
            return Err(TestCaseError::fail(format!(
                "a well-formed job does not validate: {e}\n--- job file ---\n{src}"
            )));
        }
    }
}

/// The specific values the generated jobs are checked for, in one fixed job, so that a
/// failure here names the value that went wrong without any shrinking.
#[test]
fn fixed_job_keeps_ports_templates_interpolations_and_variables() {
    let src = r#"
variable "release" {
  type    = string
  default = "1.2.3"
}

job "fixed" {
  group "web" {
    network {
      mode = "bridge"
      port "http" {
        static = 8080
        to     = 80
      }
      port "metrics" {
        to = -1
      }
    }
    task "server" {
      driver = "docker"
      config {
        image = "nginx:${var.release}"
        args  = ["--dir", "${NOMAD_TASK_DIR}", "literal $${NOMAD_TASK_DIR}"]
      }
      env {
        DATA_DIR = "${NOMAD_ALLOC_DIR}/data \"quoted\"\t\\"
        RELEASE  = "r-${var.release}"
      }
      template {
        data        = <<-EOT
          port={{ env "NOMAD_PORT_http" }}
            dir=${NOMAD_TASK_DIR}
          %%{ not a directive }
          EOT
        destination = "local/app.conf"
      }
    }
  }
}
"#;
    let opts = ParseOptions {
        vars: vec![(VAR.to_string(), "2.0.0".to_string())],
        ..ParseOptions::default()
    };
    let job = parse_hcl(src, "fixed.nomad.hcl", &opts).expect("the fixed job parses");
    let g = &job.task_groups[0];
    let net = &g.networks[0];
    assert_eq!(net.reserved_ports[0].value, 8080);
    assert_eq!(net.reserved_ports[0].to, 80);
    assert_eq!(net.dynamic_ports[0].label, "metrics");
    assert_eq!(net.dynamic_ports[0].to, -1);
    let t = &g.tasks[0];
    assert_eq!(t.config["image"], json!("nginx:2.0.0"));
    assert_eq!(
        t.config["args"],
        json!(["--dir", "${NOMAD_TASK_DIR}", "literal ${NOMAD_TASK_DIR}"])
    );
    assert_eq!(t.env["DATA_DIR"], "${NOMAD_ALLOC_DIR}/data \"quoted\"\t\\");
    assert_eq!(t.env["RELEASE"], "r-2.0.0");
    assert_eq!(
        t.templates[0].embedded_tmpl,
        "port={{ env \"NOMAD_PORT_http\" }}\n  dir=${NOMAD_TASK_DIR}\n%{ not a directive }\n"
    );
    let text = serde_json::to_string(&job).expect("serialises");
    assert_eq!(parse_json(&text, "fixed.json").expect("parses back"), job);
}

/// A float in a driver's `config` needs all 17 significant digits to be told apart from its
/// neighbours; the JSON API format must still carry it exactly. serde_json reads such floats
/// exactly only with its `float_roundtrip` feature, which the workspace does not enable yet.
#[test]
fn full_precision_floats_round_trip_through_json() {
    let src = r#"
job "floats" {
  group "g" {
    task "t" {
      driver = "docker"
      config {
        ratio = 132711373.71946509
      }
    }
  }
}
"#;
    let job = parse_hcl(src, "floats.nomad.hcl", &ParseOptions::default()).expect("parses");
    assert_eq!(
        job.task_groups[0].tasks[0].config["ratio"],
        json!(132711373.71946509)
    );
    let text = serde_json::to_string(&job).expect("serialises");
    assert_eq!(parse_json(&text, "floats.json").expect("parses back"), job);
}

/// A doubled marker (`$${`, `%%{`) stands for a literal `${` or `%{`, also right after another
/// `$` or `%` and also in a string that is a template: `"${NOMAD_ALLOC_DIR}$${ $$${x}"` is the
/// allocation directory followed by `${ $${x}`, as in HashiCorp's HCL. (Writing templates back
/// to text with `hcl_primitives::template::escape_markers` 0.1.13 loses the second marker of
/// `$${`, `%%{`, `$%{` or `%${` once a literal holds an escaped marker.)
#[test]
fn template_literals_keep_doubled_markers() {
    let cases = [
        (
            r#""${NOMAD_ALLOC_DIR}$${ $$${x}""#,
            "${NOMAD_ALLOC_DIR}${ $${x}",
        ),
        (
            r#""${NOMAD_ALLOC_DIR}%%{ %%%{x}""#,
            "${NOMAD_ALLOC_DIR}%{ %%{x}",
        ),
        (
            r#""${NOMAD_ALLOC_DIR}$${ %$${1 + 1}""#,
            "${NOMAD_ALLOC_DIR}${ %${1 + 1}",
        ),
        (
            "<<EOT\nrate: $${ 100%$${1 + 1}\nEOT",
            "rate: ${ 100%${1 + 1}\n",
        ),
    ];
    let mut wrong = Vec::new();
    for (written, want) in cases {
        let src = format!(
            "job \"j\" {{\n  group \"g\" {{\n    task \"t\" {{\n      driver = \"docker\"\n      \
             env {{\n        V = {written}\n      }}\n    }}\n  }}\n}}\n"
        );
        let job = parse_hcl(&src, "escapes.nomad.hcl", &ParseOptions::default());
        let got = job.map(|j| j.task_groups[0].tasks[0].env["V"].clone());
        if got.as_deref().ok() != Some(want) {
            wrong.push(format!("{written}: want {want:?}, got {got:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// `x = null` in a driver's `config` is kept as a JSON `null`, but `parse_json` drops every
/// `null` object member before decoding, so the job's own JSON reads back without `x`.
#[test]
fn null_config_values_round_trip_through_json() {
    let src = r#"
job "nulls" {
  group "g" {
    task "t" {
      driver = "docker"
      config {
        x = null
        nested = { y = null }
      }
    }
  }
}
"#;
    let job = parse_hcl(src, "nulls.nomad.hcl", &ParseOptions::default()).expect("parses");
    let text = serde_json::to_string(&job).expect("serialises");
    assert_eq!(parse_json(&text, "nulls.json").expect("parses back"), job);
}

/// A job-level `reschedule` block gives defaults to the groups' policies, as in Nomad, where
/// only the merged group policies are validated: a partial block such as
/// `reschedule { unlimited = true }` is valid, the rest coming from the job type's defaults.
#[test]
fn partial_job_reschedule_block_is_valid() {
    let src = r#"
job "partial" {
  datacenters = ["dc1"]
  reschedule {
    unlimited = true
  }
  group "g" {
    task "t" {
      driver = "docker"
    }
  }
}
"#;
    let mut job = parse_hcl(src, "partial.nomad.hcl", &ParseOptions::default()).expect("parses");
    job.canonicalize();
    let rs = job.task_groups[0]
        .reschedule_policy
        .clone()
        .unwrap_or_default();
    assert_eq!(rs.delay_function.as_deref(), Some("exponential"));
    assert_eq!(rs.unlimited, Some(true));
    if let Err(e) = job.validate() {
        panic!("a partial job-level reschedule block is refused: {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// The conformance corpus
// ---------------------------------------------------------------------------------------------

fn corpus_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("NOMAD_CORPUS_DIR") {
        return Some(PathBuf::from(dir));
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/corpus");
    dir.is_dir().then_some(dir)
}

fn job_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            job_files(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e == "hcl" || e == "nomad" || e == "json")
        {
            out.push(path);
        }
    }
}

#[test]
fn corpus_jobs_round_trip_through_json() {
    let Some(dir) = corpus_dir() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "the conformance corpus (../shared/corpus) is missing"
        );
        println!("skipped: no conformance corpus at ../shared/corpus");
        return;
    };
    let mut files = Vec::new();
    job_files(&dir, &mut files);
    let mut parsed = 0;
    let mut failures = Vec::new();
    for path in &files {
        let Ok(mut job) = parse_file(path, &ParseOptions::default()) else {
            continue;
        };
        parsed += 1;
        for stage in ["parsed", "canonical"] {
            if stage == "canonical" {
                job.canonicalize();
            }
            let text = serde_json::to_string(&job).expect("a job serialises");
            match parse_json(&text, "roundtrip.json") {
                Ok(back) if back == job => {}
                Ok(_) => failures.push(format!("{}: {stage} job changed", path.display())),
                Err(e) => failures.push(format!("{}: {stage} job refused: {e}", path.display())),
            }
        }
    }
    println!(
        "{parsed} of {} corpus files parsed and round-tripped",
        files.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        parsed >= 100,
        "only {parsed} corpus files parsed; is the corpus complete?"
    );
}
