//! How a plan's placements are written to the replicated log.
//!
//! The allocations of one plan share nearly every field: job, group, evaluation, statuses,
//! task resources, times. Only the ID, the name, the node, the shared resources (the ports
//! the scheduler assigned) and the placement metrics change from one to the next. The log
//! therefore writes the first allocation whole, as the base, and each allocation after it
//! as a row of those per-placement fields. An allocation that differs from the base in
//! anything else (an in-place update, a replacement naming its previous allocation) is
//! written whole in its row. Reading rebuilds every allocation exactly as it was written.
//!
//! Entries written before this form (the placements as a plain list) still read back.

use std::sync::Arc;

use arcstr::ArcStr;
use nomad_core::structs::{AllocMetric, AllocatedResources, AllocatedSharedResources, Allocation};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The placements as written: a base allocation and one row per placement, in order.
#[derive(Serialize)]
struct CompactRef<'a> {
    #[serde(rename = "Base")]
    base: &'a Allocation,
    #[serde(rename = "Rows")]
    rows: Vec<RowRef<'a>>,
}

/// One placement as written.
#[derive(Serialize)]
enum RowRef<'a> {
    /// The base itself.
    #[serde(rename = "B")]
    Base,
    /// The per-placement fields; everything else is the base's.
    #[serde(rename = "P")]
    Placement(
        &'a ArcStr,
        &'a str,
        &'a ArcStr,
        &'a ArcStr,
        Option<&'a AllocatedSharedResources>,
        Option<&'a AllocMetric>,
    ),
    /// An allocation that differs from the base beyond those fields, whole.
    #[serde(rename = "F")]
    Full(&'a Allocation),
}

/// [`CompactRef`] as read back.
#[derive(Deserialize)]
struct Compact {
    #[serde(rename = "Base")]
    base: Allocation,
    #[serde(rename = "Rows")]
    rows: Vec<Row>,
}

/// [`RowRef`] as read back.
#[derive(Deserialize)]
enum Row {
    #[serde(rename = "B")]
    Base,
    #[serde(rename = "P")]
    Placement(Box<PlacementRow>),
    #[serde(rename = "F")]
    Full(Box<Allocation>),
}

/// The fields of [`RowRef::Placement`] as read back.
#[derive(Deserialize)]
struct PlacementRow(
    ArcStr,
    String,
    ArcStr,
    ArcStr,
    Option<AllocatedSharedResources>,
    Option<AllocMetric>,
);

/// Reads either form of the placements of an entry: a map is the compact form, a list
/// the form of earlier versions. Told apart by their first token, without buffering.
struct StoredVisitor;

impl<'de> serde::de::Visitor<'de> for StoredVisitor {
    type Value = Vec<Arc<Allocation>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a plan's placements, as a base with rows or as a list")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
        while let Some(a) = seq.next_element::<Allocation>()? {
            out.push(Arc::new(a));
        }
        Ok(out)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        let compact = Compact::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        Ok(expand(compact))
    }
}

/// True when `a` equals `base` in every field but the per-placement ones (ID, name,
/// node ID and name, shared resources, metrics). Every field is named, so that a field
/// added to [`Allocation`] must be placed on one side or the other here.
fn shares_base(a: &Allocation, base: &Allocation) -> bool {
    let Allocation {
        id: _,
        namespace,
        eval_id,
        name: _,
        node_id: _,
        node_name: _,
        job_id,
        job,
        task_group,
        allocated_resources,
        metrics: _,
        desired_status,
        desired_description,
        desired_transition,
        client_status,
        client_description,
        task_states,
        deployment_id,
        deployment_status,
        followup_eval_id,
        previous_allocation,
        next_allocation,
        reschedule_tracker,
        preempted_allocations,
        preempted_by_allocation,
        create_index,
        modify_index,
        alloc_modify_index,
        create_time,
        modify_time,
    } = a;
    // The job is compared by pointer: plans carry it once, and a deep comparison of
    // two different copies would cost more than writing the allocation whole.
    let same_job = match (job, &base.job) {
        (None, None) => true,
        (Some(x), Some(y)) => Arc::ptr_eq(x, y),
        _ => false,
    };
    same_job
        && *namespace == base.namespace
        && *eval_id == base.eval_id
        && *job_id == base.job_id
        && *task_group == base.task_group
        && same_resources(
            allocated_resources.as_ref(),
            base.allocated_resources.as_ref(),
        )
        && *desired_status == base.desired_status
        && *desired_description == base.desired_description
        && *desired_transition == base.desired_transition
        && *client_status == base.client_status
        && *client_description == base.client_description
        && *task_states == base.task_states
        && *deployment_id == base.deployment_id
        && *deployment_status == base.deployment_status
        && *followup_eval_id == base.followup_eval_id
        && *previous_allocation == base.previous_allocation
        && *next_allocation == base.next_allocation
        && *reschedule_tracker == base.reschedule_tracker
        && *preempted_allocations == base.preempted_allocations
        && *preempted_by_allocation == base.preempted_by_allocation
        && *create_index == base.create_index
        && *modify_index == base.modify_index
        && *alloc_modify_index == base.alloc_modify_index
        && *create_time == base.create_time
        && *modify_time == base.modify_time
}

/// Both absent, or both present with the same task resources (the shared resources are
/// written per placement).
fn same_resources(a: Option<&AllocatedResources>, b: Option<&AllocatedResources>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => {
            let AllocatedResources {
                tasks,
                task_lifecycles,
                shared: _,
            } = a;
            *tasks == b.tasks && *task_lifecycles == b.task_lifecycles
        }
        _ => false,
    }
}

/// Writes `placed` in the compact form (see the module documentation).
pub(super) fn serialize<S: Serializer>(
    placed: &[Arc<Allocation>],
    ser: S,
) -> Result<S::Ok, S::Error> {
    let Some(base) = placed.first() else {
        return ser.collect_seq(std::iter::empty::<&Allocation>());
    };
    let rows = placed
        .iter()
        .enumerate()
        .map(|(i, a)| {
            if i == 0 {
                RowRef::Base
            } else if shares_base(a, base) {
                RowRef::Placement(
                    &a.id,
                    &a.name,
                    &a.node_id,
                    &a.node_name,
                    a.allocated_resources.as_ref().map(|r| &r.shared),
                    a.metrics.as_ref(),
                )
            } else {
                RowRef::Full(a)
            }
        })
        .collect();
    CompactRef { base, rows }.serialize(ser)
}

/// Reads placements written by [`serialize`], or as a plain list by earlier versions.
pub(super) fn deserialize<'de, D: Deserializer<'de>>(
    de: D,
) -> Result<Vec<Arc<Allocation>>, D::Error> {
    de.deserialize_any(StoredVisitor)
}

/// The allocations the rows of `compact` stand for, in order.
fn expand(compact: Compact) -> Vec<Arc<Allocation>> {
    let base = compact.base;
    let mut out = Vec::with_capacity(compact.rows.len());
    for row in compact.rows {
        let alloc = match row {
            Row::Base => base.clone(),
            Row::Full(a) => *a,
            Row::Placement(row) => {
                let PlacementRow(id, name, node_id, node_name, shared, metrics) = *row;
                let mut a = base.clone();
                a.id = id;
                a.name = name;
                a.node_id = node_id;
                a.node_name = node_name;
                if let Some(r) = a.allocated_resources.as_mut() {
                    r.shared = shared.unwrap_or_default();
                }
                a.metrics = metrics;
                a
            }
        };
        out.push(Arc::new(alloc));
    }
    out
}

#[cfg(test)]
mod tests {
    use nomad_core::structs::{status, AllocatedPortMapping, AllocatedTaskResources};

    use super::*;
    use crate::state::Command;

    fn placement(i: u16) -> Allocation {
        let mut resources = AllocatedResources::default();
        resources
            .tasks
            .insert("web".to_string(), AllocatedTaskResources::default());
        resources.shared = AllocatedSharedResources {
            disk_mb: 300,
            ports: vec![AllocatedPortMapping {
                label: "http".into(),
                value: 20000 + i,
                ..AllocatedPortMapping::default()
            }],
            ..AllocatedSharedResources::default()
        };
        Allocation {
            id: format!("alloc-{i}").into(),
            namespace: "default".into(),
            eval_id: "eval-1".into(),
            name: format!("web.app[{i}]"),
            node_id: format!("node-{i}").into(),
            node_name: format!("n{i}").into(),
            job_id: "web".into(),
            task_group: "app".into(),
            allocated_resources: Some(resources),
            metrics: Some(AllocMetric {
                nodes_evaluated: u32::from(i) + 3,
                ..AllocMetric::default()
            }),
            desired_status: status::ALLOC_DESIRED_RUN.into(),
            client_status: status::ALLOC_CLIENT_PENDING.into(),
            create_time: 7,
            modify_time: 7,
            ..Allocation::default()
        }
    }

    fn plan(placed: Vec<Allocation>) -> Command {
        Command::ApplyPlan {
            eval_id: "eval-1".into(),
            job: None,
            stops: vec![],
            placed: placed.into_iter().map(Arc::new).collect(),
            deployment: None,
            deployment_updates: vec![],
            time: 7,
            committed: Default::default(),
        }
    }

    #[test]
    fn placements_round_trip_through_the_compact_form() {
        let mut odd = placement(3);
        odd.previous_allocation = "alloc-old".into();
        let mut other_tasks = placement(4);
        if let Some(r) = other_tasks.allocated_resources.as_mut() {
            r.tasks.clear();
        }
        let mut bare = placement(5);
        bare.allocated_resources = None;
        let cmd = plan(vec![
            placement(0),
            placement(1),
            placement(2),
            odd,
            other_tasks,
            bare,
        ]);
        let text = serde_json::to_string(&cmd).expect("encode");
        let back: Command = serde_json::from_str(&text).expect("decode");
        assert_eq!(back, cmd);

        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        let rows = v["placed"]["Rows"].as_array().expect("rows");
        let kinds: Vec<&str> = rows
            .iter()
            .map(|r| match r {
                serde_json::Value::String(s) => s.as_str(),
                serde_json::Value::Object(o) => o.keys().next().map_or("", |k| k.as_str()),
                _ => "",
            })
            .collect();
        // The first is the base; a replacement, other task resources and no resources at
        // all are written whole.
        assert_eq!(kinds, ["B", "P", "P", "F", "F", "F"]);
    }

    #[test]
    fn the_compact_form_is_smaller_than_the_list() {
        let placed: Vec<Arc<Allocation>> = (0..50).map(|i| Arc::new(placement(i))).collect();
        let compact = serde_json::to_string(&plan(placed.iter().map(|a| (**a).clone()).collect()))
            .expect("encode");
        let list = serde_json::to_string(&placed).expect("encode");
        assert!(
            compact.len() * 2 < list.len(),
            "compact {} bytes, list {} bytes",
            compact.len(),
            list.len()
        );
    }

    #[test]
    fn entries_written_as_a_plain_list_still_read() {
        let cmd = plan(vec![placement(0), placement(1)]);
        let mut v = serde_json::to_value(&cmd).expect("encode");
        let list: Vec<Allocation> = vec![placement(0), placement(1)];
        v["placed"] = serde_json::to_value(&list).expect("list");
        let back: Command = serde_json::from_value(v).expect("decode");
        assert_eq!(back, cmd);
        let empty = plan(vec![]);
        let text = serde_json::to_string(&empty).expect("encode");
        assert_eq!(
            serde_json::from_str::<Command>(&text).expect("decode"),
            empty
        );
    }
}
