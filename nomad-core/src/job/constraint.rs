//! Placement rules: constraints, affinities and spreads.

use serde::{Deserialize, Serialize};

/// The constraint and affinity operators Nomad documents.
pub const CONSTRAINT_OPERATORS: &[&str] = &[
    "=",
    "==",
    "is",
    "!=",
    "not",
    ">",
    ">=",
    "<",
    "<=",
    "regexp",
    "set_contains",
    "set_contains_all",
    "set_contains_any",
    "version",
    "semver",
    "is_set",
    "is_not_set",
    "distinct_hosts",
    "distinct_property",
];

/// A hard placement rule: `${attr.kernel.name} = linux`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Constraint {
    /// The left side, usually an interpolated node attribute (`${attr.kernel.name}`).
    #[serde(rename = "LTarget")]
    pub l_target: String,
    /// The right side, a literal or an interpolation.
    #[serde(rename = "RTarget")]
    pub r_target: String,
    /// One of [`CONSTRAINT_OPERATORS`]; empty means `=`.
    pub operand: String,
}

impl Constraint {
    /// A constraint `l operand r`.
    pub fn new(l: impl Into<String>, operand: impl Into<String>, r: impl Into<String>) -> Self {
        Self {
            l_target: l.into(),
            operand: operand.into(),
            r_target: r.into(),
        }
    }
}

/// A soft placement preference with a weight from -100 to 100.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Affinity {
    /// The left side, usually an interpolated node attribute.
    #[serde(rename = "LTarget")]
    pub l_target: String,
    /// The right side.
    #[serde(rename = "RTarget")]
    pub r_target: String,
    /// The operator; the same set as constraints less `distinct_*` and `is_set`.
    pub operand: String,
    /// How strongly to prefer (positive) or avoid (negative): -100 to 100, not 0.
    pub weight: Option<i8>,
}

/// Spread allocations across the values of a node attribute.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Spread {
    /// The attribute to spread over, e.g. `${meta.rack}`.
    pub attribute: String,
    /// The weight of this spread relative to others, 0 to 100.
    pub weight: Option<i8>,
    /// Desired percentages per value; values not listed share the remainder.
    #[serde(rename = "SpreadTarget")]
    pub spread_target: Vec<SpreadTarget>,
}

/// One value of a spread attribute and the share of allocations it should get.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SpreadTarget {
    /// The attribute value.
    pub value: String,
    /// The percentage of allocations, 0 to 100.
    pub percent: u8,
}
