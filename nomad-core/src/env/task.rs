//! Interpolating the parts of a task the client resolves before starting it.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::job::{ConsulConnect, FreeForm, Service, ServiceCheck, Task};

use super::TaskEnv;

/// Interpolates, in place, what the client resolves against the task's environment before
/// starting it:
///
/// * `env`: each entry becomes the value the task gets for that variable, so it reflects
///   interpolation and precedence (a template's variable of the same name wins);
/// * `config`: every string, and every object key, at any depth (see [`interpolate_json`]);
/// * services and their checks (see [`interpolate_service`]);
/// * templates' `source` and `destination`;
/// * artifacts' `source`, `destination`, option values and header values;
/// * volume mounts' `volume`, `destination` and `propagation_mode`.
///
/// Constraints and affinities are left alone: the scheduler resolves them against the node
/// (see [`resolve_target`](super::resolve_target)).
pub fn interpolate_task(task: &mut Task, env: &TaskEnv) {
    for (name, value) in task.env.iter_mut() {
        *value = match env.get(name) {
            Some(v) => v.to_owned(),
            None => env.interpolate(value),
        };
    }
    interpolate_free_form(&mut task.config, env);
    for service in &mut task.services {
        interpolate_service(service, env);
    }
    for template in &mut task.templates {
        interpolate_string(&mut template.source_path, env);
        interpolate_string(&mut template.dest_path, env);
    }
    for artifact in &mut task.artifacts {
        interpolate_string(&mut artifact.getter_source, env);
        interpolate_string(&mut artifact.relative_dest, env);
        for value in artifact.getter_options.values_mut() {
            interpolate_string(value, env);
        }
        for value in artifact.getter_headers.values_mut() {
            interpolate_string(value, env);
        }
    }
    for mount in &mut task.volume_mounts {
        interpolate_string(&mut mount.volume, env);
        interpolate_string(&mut mount.destination, env);
        interpolate_string(&mut mount.propagation_mode, env);
    }
}

/// Interpolates a service in place, as the client does before registering it: name, port
/// label, address, tags, canary tags, meta, canary meta and tagged addresses (keys and
/// values); each check's name, type, command, args, path, protocol, port label, initial
/// status, notes, method, gRPC service and headers; and in `connect`, the sidecar service's
/// port, tags and proxy (local service address, expose paths, upstreams' destination,
/// datacenter, bind address and config, proxy config), the sidecar task's driver, user,
/// kill signal, config, env and meta, and a gateway's proxy settings.
pub fn interpolate_service(service: &mut Service, env: &TaskEnv) {
    interpolate_string(&mut service.name, env);
    interpolate_string(&mut service.port_label, env);
    interpolate_string(&mut service.address, env);
    interpolate_strings(&mut service.tags, env);
    interpolate_strings(&mut service.canary_tags, env);
    interpolate_map(&mut service.meta, env);
    interpolate_map(&mut service.canary_meta, env);
    interpolate_map(&mut service.tagged_addresses, env);
    for check in &mut service.checks {
        interpolate_check(check, env);
    }
    if let Some(connect) = &mut service.connect {
        interpolate_connect(connect, env);
    }
}

fn interpolate_check(check: &mut ServiceCheck, env: &TaskEnv) {
    for field in [
        &mut check.name,
        &mut check.check_type,
        &mut check.command,
        &mut check.path,
        &mut check.protocol,
        &mut check.port_label,
        &mut check.initial_status,
        &mut check.notes,
        &mut check.method,
        &mut check.grpc_service,
    ] {
        interpolate_string(field, env);
    }
    interpolate_strings(&mut check.args, env);
    let header = std::mem::take(&mut check.header);
    check.header = header
        .into_iter()
        .map(|(k, mut values)| {
            interpolate_strings(&mut values, env);
            (env.interpolate(&k), values)
        })
        .collect();
}

fn interpolate_connect(connect: &mut ConsulConnect, env: &TaskEnv) {
    if let Some(sidecar) = &mut connect.sidecar_service {
        interpolate_string(&mut sidecar.port, env);
        interpolate_strings(&mut sidecar.tags, env);
        if let Some(proxy) = &mut sidecar.proxy {
            interpolate_string(&mut proxy.local_service_address, env);
            if let Some(expose) = &mut proxy.expose {
                for path in &mut expose.paths {
                    interpolate_string(&mut path.path, env);
                    interpolate_string(&mut path.protocol, env);
                    interpolate_string(&mut path.listener_port, env);
                }
            }
            for upstream in &mut proxy.upstreams {
                interpolate_string(&mut upstream.destination_name, env);
                interpolate_string(&mut upstream.datacenter, env);
                interpolate_string(&mut upstream.local_bind_address, env);
                interpolate_free_form(&mut upstream.config, env);
            }
            interpolate_free_form(&mut proxy.config, env);
        }
    }
    if let Some(task) = &mut connect.sidecar_task {
        interpolate_string(&mut task.driver, env);
        interpolate_string(&mut task.user, env);
        interpolate_string(&mut task.kill_signal, env);
        interpolate_free_form(&mut task.config, env);
        interpolate_map(&mut task.env, env);
        interpolate_map(&mut task.meta, env);
    }
    if let Some(proxy) = connect.gateway.as_mut().and_then(|g| g.proxy.as_mut()) {
        interpolate_free_form(proxy, env);
    }
}

/// Interpolates every string in `value`, and every object key, at any depth. Numbers,
/// booleans and nulls are left as they are; a key that interpolates to the same text as
/// another key of the object replaces it.
pub fn interpolate_json(value: &mut Value, env: &TaskEnv) {
    match value {
        Value::String(s) => interpolate_string(s, env),
        Value::Array(items) => {
            for item in items {
                interpolate_json(item, env);
            }
        }
        Value::Object(map) => {
            let entries = std::mem::take(map);
            for (k, mut v) in entries {
                interpolate_json(&mut v, env);
                map.insert(env.interpolate(&k), v);
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

fn interpolate_free_form(config: &mut FreeForm, env: &TaskEnv) {
    let entries = std::mem::take(config);
    for (k, mut v) in entries {
        interpolate_json(&mut v, env);
        config.insert(env.interpolate(&k), v);
    }
}

fn interpolate_map(map: &mut BTreeMap<String, String>, env: &TaskEnv) {
    let entries = std::mem::take(map);
    for (k, v) in entries {
        map.insert(env.interpolate(&k), env.interpolate(&v));
    }
}

fn interpolate_strings(items: &mut [String], env: &TaskEnv) {
    for item in items {
        interpolate_string(item, env);
    }
}

fn interpolate_string(s: &mut String, env: &TaskEnv) {
    if s.contains('$') {
        *s = env.interpolate(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::{
        ConsulProxy, ConsulSidecarService, ConsulUpstream, SidecarTask, TaskArtifact, Template,
        VolumeMount,
    };
    use serde_json::json;

    fn env() -> TaskEnv {
        TaskEnv::from_parts(
            BTreeMap::from([
                ("NOMAD_TASK_DIR".to_string(), "/local".to_string()),
                ("NOMAD_ALLOC_DIR".to_string(), "/alloc".to_string()),
                ("NOMAD_ADDR_http".to_string(), "10.0.0.5:23456".to_string()),
                ("NOMAD_PORT_http".to_string(), "8080".to_string()),
                ("NOMAD_JOB_NAME".to_string(), "web".to_string()),
                ("NOMAD_ALLOC_INDEX".to_string(), "2".to_string()),
                ("VERSION".to_string(), "v1 from template".to_string()),
                ("GREETING".to_string(), "hello /local".to_string()),
            ]),
            BTreeMap::from([
                ("node.datacenter".to_string(), "dc1".to_string()),
                ("attr.kernel.name".to_string(), "linux".to_string()),
                ("meta.rack".to_string(), "r1".to_string()),
            ]),
        )
    }

    #[test]
    fn driver_config_is_interpolated_at_every_depth() {
        let mut task = Task {
            config: FreeForm::from([
                ("command".to_string(), json!("${NOMAD_TASK_DIR}/bin/server")),
                (
                    "args".to_string(),
                    json!([
                        "--bind",
                        "${NOMAD_ADDR_http}",
                        "--logs",
                        "${NOMAD_ALLOC_DIR}/logs",
                        3
                    ]),
                ),
                (
                    "labels".to_string(),
                    json!([{"dc": "${node.datacenter}", "rack-${meta.rack}": true, "n": null}]),
                ),
                ("unknown".to_string(), json!("${NOT_SET}")),
            ]),
            ..Task::default()
        };
        interpolate_task(&mut task, &env());
        assert_eq!(task.config["command"], json!("/local/bin/server"));
        assert_eq!(
            task.config["args"],
            json!(["--bind", "10.0.0.5:23456", "--logs", "/alloc/logs", 3])
        );
        assert_eq!(
            task.config["labels"],
            json!([{"dc": "dc1", "rack-r1": true, "n": null}])
        );
        assert_eq!(task.config["unknown"], json!("${NOT_SET}"));
    }

    #[test]
    fn env_entries_take_the_value_the_task_sees() {
        let mut task = Task {
            env: BTreeMap::from([
                (
                    "GREETING".to_string(),
                    "hello ${NOMAD_TASK_DIR}".to_string(),
                ),
                ("VERSION".to_string(), "v1".to_string()),
                ("NOT_BUILT".to_string(), "${attr.kernel.name}".to_string()),
            ]),
            ..Task::default()
        };
        interpolate_task(&mut task, &env());
        assert_eq!(task.env["GREETING"], "hello /local");
        assert_eq!(task.env["VERSION"], "v1 from template");
        assert_eq!(task.env["NOT_BUILT"], "linux");
    }

    #[test]
    fn templates_artifacts_and_mounts() {
        let mut task = Task {
            templates: vec![Template {
                source_path: "${NOMAD_TASK_DIR}/in.tpl".into(),
                dest_path: "${NOMAD_ALLOC_DIR}/out-${NOMAD_ALLOC_INDEX}.conf".into(),
                embedded_tmpl: "{{ env \"NOMAD_TASK_DIR\" }} ${NOMAD_TASK_DIR}".into(),
                ..Template::default()
            }],
            artifacts: vec![TaskArtifact {
                getter_source: "https://example.com/${attr.kernel.name}/app.tgz".into(),
                relative_dest: "${NOMAD_TASK_DIR}/app".into(),
                getter_options: BTreeMap::from([("checksum".into(), "${meta.rack}".into())]),
                getter_headers: BTreeMap::from([("X-Job".into(), "${NOMAD_JOB_NAME}".into())]),
                ..TaskArtifact::default()
            }],
            volume_mounts: vec![VolumeMount {
                volume: "data-${NOMAD_ALLOC_INDEX}".into(),
                destination: "${NOMAD_ALLOC_DIR}/data".into(),
                ..VolumeMount::default()
            }],
            ..Task::default()
        };
        interpolate_task(&mut task, &env());
        let t = &task.templates[0];
        assert_eq!(t.source_path, "/local/in.tpl");
        assert_eq!(t.dest_path, "/alloc/out-2.conf");
        // The template body is the template engine's business.
        assert_eq!(
            t.embedded_tmpl,
            "{{ env \"NOMAD_TASK_DIR\" }} ${NOMAD_TASK_DIR}"
        );
        let a = &task.artifacts[0];
        assert_eq!(a.getter_source, "https://example.com/linux/app.tgz");
        assert_eq!(a.relative_dest, "/local/app");
        assert_eq!(a.getter_options["checksum"], "r1");
        assert_eq!(a.getter_headers["X-Job"], "web");
        assert_eq!(task.volume_mounts[0].volume, "data-2");
        assert_eq!(task.volume_mounts[0].destination, "/alloc/data");
    }

    #[test]
    fn services_checks_and_connect() {
        let mut service = Service {
            name: "${NOMAD_JOB_NAME}-api".into(),
            port_label: "${NOMAD_PORT_http}".into(),
            tags: vec!["dc-${node.datacenter}".into(), "plain".into()],
            canary_tags: vec!["canary-${NOMAD_ALLOC_INDEX}".into()],
            meta: BTreeMap::from([("rack-${meta.rack}".into(), "${attr.kernel.name}".into())]),
            canary_meta: BTreeMap::from([("c".into(), "${NOMAD_ALLOC_INDEX}".into())]),
            tagged_addresses: BTreeMap::from([("lan".into(), "${NOMAD_ADDR_http}".into())]),
            checks: vec![ServiceCheck {
                name: "${NOMAD_JOB_NAME} alive".into(),
                path: "/health/${NOMAD_ALLOC_INDEX}".into(),
                args: vec!["${NOMAD_TASK_DIR}/check.sh".into()],
                header: BTreeMap::from([(
                    "X-${NOMAD_JOB_NAME}".into(),
                    vec!["${node.datacenter}".into()],
                )]),
                ..ServiceCheck::default()
            }],
            connect: Some(ConsulConnect {
                sidecar_service: Some(ConsulSidecarService {
                    tags: vec!["${NOMAD_JOB_NAME}".into()],
                    proxy: Some(ConsulProxy {
                        upstreams: vec![ConsulUpstream {
                            destination_name: "db-${node.datacenter}".into(),
                            datacenter: "${node.datacenter}".into(),
                            ..ConsulUpstream::default()
                        }],
                        config: FreeForm::from([("protocol".to_string(), json!("${meta.rack}"))]),
                        ..ConsulProxy::default()
                    }),
                    ..ConsulSidecarService::default()
                }),
                sidecar_task: Some(SidecarTask {
                    env: BTreeMap::from([("DC".into(), "${node.datacenter}".into())]),
                    ..SidecarTask::default()
                }),
                ..ConsulConnect::default()
            }),
            ..Service::default()
        };
        interpolate_service(&mut service, &env());
        assert_eq!(service.name, "web-api");
        assert_eq!(service.port_label, "8080");
        assert_eq!(service.tags, ["dc-dc1", "plain"]);
        assert_eq!(service.canary_tags, ["canary-2"]);
        assert_eq!(service.meta["rack-r1"], "linux");
        assert_eq!(service.canary_meta["c"], "2");
        assert_eq!(service.tagged_addresses["lan"], "10.0.0.5:23456");
        let check = &service.checks[0];
        assert_eq!(check.name, "web alive");
        assert_eq!(check.path, "/health/2");
        assert_eq!(check.args, ["/local/check.sh"]);
        assert_eq!(check.header["X-web"], ["dc1"]);
        let connect = service.connect.as_ref().unwrap();
        let sidecar = connect.sidecar_service.as_ref().unwrap();
        assert_eq!(sidecar.tags, ["web"]);
        let proxy = sidecar.proxy.as_ref().unwrap();
        assert_eq!(proxy.upstreams[0].destination_name, "db-dc1");
        assert_eq!(proxy.upstreams[0].datacenter, "dc1");
        assert_eq!(proxy.config["protocol"], json!("r1"));
        assert_eq!(connect.sidecar_task.as_ref().unwrap().env["DC"], "dc1");
    }

    #[test]
    fn node_only_environment() {
        let node = crate::structs::Node {
            id: "n-1".into(),
            datacenter: "dc1".into(),
            node_pool: "prod".into(),
            meta: BTreeMap::from([("rack".into(), "r1".into())]),
            ..crate::structs::Node::default()
        };
        let env = TaskEnv::for_node(&node, "eu");
        let mut value = json!({"at": "${node.region}/${node.datacenter}/${node.pool}/${meta.rack}",
                               "later": "${NOMAD_ALLOC_ID}"});
        interpolate_json(&mut value, &env);
        assert_eq!(
            value,
            json!({"at": "eu/dc1/prod/r1", "later": "${NOMAD_ALLOC_ID}"})
        );
        assert!(env.env().is_empty());
        assert!(TaskEnv::for_node(&node, "").lookup("node.region").is_none());
    }

    #[test]
    fn task_services_are_interpolated_with_the_task() {
        let mut task = Task {
            services: vec![Service {
                name: "${NOMAD_JOB_NAME}".into(),
                ..Service::default()
            }],
            ..Task::default()
        };
        interpolate_task(&mut task, &env());
        assert_eq!(task.services[0].name, "web");
    }
}
