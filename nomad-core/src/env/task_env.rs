//! The built task environment and the lookups interpolation makes in it.

use std::collections::BTreeMap;

use crate::structs::Node;

use super::interpolate::{expand, lookup_env, lookup_node, node_variables, Reference};

/// A task's environment: the variables the task is started with, and the node variables
/// (`node.*`, `attr.*`, `meta.*`) that `${...}` can also refer to.
///
/// Built by [`TaskEnvBuilder`](super::TaskEnvBuilder); [`TaskEnv::from_parts`] makes one from
/// maps directly and [`TaskEnv::for_node`] one with node variables only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskEnv {
    env: BTreeMap<String, String>,
    node: BTreeMap<String, String>,
}

impl TaskEnv {
    /// An environment with the variables `env` and the node variables `node_vars`, keyed as
    /// they are written in references (`node.class`, `attr.kernel.name`, `meta.rack`).
    pub fn from_parts(env: BTreeMap<String, String>, node_vars: BTreeMap<String, String>) -> Self {
        Self {
            env,
            node: node_vars,
        }
    }

    /// An environment with no variables and the node variables of `node` (`node.region` is
    /// `region`, left out when empty): enough to interpolate node-derived values.
    pub fn for_node(node: &Node, region: &str) -> Self {
        Self {
            env: BTreeMap::new(),
            node: node_variables(node, region),
        }
    }

    /// The variables the task is started with.
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    /// The variables, taken out.
    pub fn into_env(self) -> BTreeMap<String, String> {
        self.env
    }

    /// The node variables, keyed as references spell them (`attr.kernel.name`).
    pub fn node_vars(&self) -> &BTreeMap<String, String> {
        &self.node
    }

    /// The variable `name`, also found under its sanitised spelling
    /// (`NOMAD_PORT_my-port` finds `NOMAD_PORT_my_port`).
    pub fn get(&self, name: &str) -> Option<&str> {
        lookup_env(&self.env, name)
    }

    /// What `${reference}` resolves to: a node variable first (`node.*`, `attr.*`, `meta.*`,
    /// `node.attr.*`, `node.meta.*`), then a variable of the environment as [`TaskEnv::get`]
    /// finds it. Node variables come first as in Nomad.
    pub fn lookup(&self, reference: &str) -> Option<&str> {
        lookup_node(&self.node, reference).or_else(|| self.get(reference))
    }

    /// The variables as `NAME=value` strings, sorted by name.
    pub fn to_list(&self) -> Vec<String> {
        self.env.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    /// Replaces the `${...}` references in `text`; see [`interpolate`](super::interpolate).
    pub fn interpolate(&self, text: &str) -> String {
        expand(text, &mut |r| self.resolve(r).map(str::to_owned))
    }

    fn resolve(&self, reference: &Reference<'_>) -> Option<&str> {
        match reference {
            Reference::Name(name) => self.lookup(name),
            Reference::Env(name) => self.env.get(name).map(String::as_str),
        }
    }
}
