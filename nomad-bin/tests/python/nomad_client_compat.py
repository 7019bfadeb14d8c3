"""Drives a running agent with python-nomad, a Nomad API client written against Nomad
itself, and checks what each call returns. Exits non-zero naming the first check that
failed. Usage: nomad_client_compat.py PORT
"""
import sys
import time

import nomad
from nomad.api import exceptions

PORT = int(sys.argv[1])
n = nomad.Nomad(host="127.0.0.1", port=PORT, timeout=10)

JOB = """
job "compat" {
  datacenters = ["dc1"]
  group "g" {
    task "t" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo hello from compat; exec sleep 300"]
      }
      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
"""


def check(what, cond, detail=""):
    if not cond:
        print("FAILED: %s %s" % (what, detail), flush=True)
        sys.exit(1)
    print("ok: %s" % what, flush=True)


def eventually(what, fn, limit=30.0):
    deadline = time.time() + limit
    last = None
    while time.time() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.2)
    check(what, False, "(last: %r)" % (last,))


job = n.jobs.parse(JOB)
check("jobs.parse turns HCL into the API's job", job.get("ID") == "compat", job)

validated = n.validate.validate_job({"Job": job})
validated = validated.json() if hasattr(validated, "json") else validated
check("validate.validate_job accepts it", not validated.get("ValidationErrors"), validated)

plan = n.job.plan_job("compat", {"Job": job}, diff=True)
check(
    "job.plan_job would place one allocation",
    plan["Annotations"]["DesiredTGUpdates"]["g"]["Place"] == 1,
    plan.get("Annotations"),
)

registered = n.jobs.register_job({"Job": job})
check("jobs.register_job returns an evaluation", bool(registered.get("EvalID")), registered)


def running_alloc():
    for a in n.job.get_allocations("compat"):
        if a["ClientStatus"] == "running":
            return a
    return None


alloc = eventually("the allocation runs", running_alloc)
check("jobs.get_jobs lists it", "compat" in [j["ID"] for j in n.jobs.get_jobs()])
check("job.get_job reads it", n.job.get_job("compat")["Status"] == "running")
summary = eventually(
    "job.get_summary counts it running",
    lambda: (lambda s: s if s["Summary"]["g"]["Running"] == 1 else None)(
        n.job.get_summary("compat")
    ),
)
versions = n.job.get_versions("compat")
check("job.get_versions has version 0", versions["Versions"][0]["Version"] == 0, versions)
evals = n.job.get_evaluations("compat")
check("job.get_evaluations has its evaluation", evals and evals[0]["JobID"] == "compat")
ev = n.evaluation.get_evaluation(evals[0]["ID"])
check("evaluation.get_evaluation reads it", ev["ID"] == evals[0]["ID"] and ev["Status"] == "complete", ev)
check("evaluations.get_evaluations lists it", any(e["ID"] == ev["ID"] for e in n.evaluations.get_evaluations()))
check("deployments.get_deployments answers a list", isinstance(n.deployments.get_deployments(), list))

read = n.allocation.get_allocation(alloc["ID"])
check("allocation.get_allocation carries the job", read["Job"]["ID"] == "compat", read.get("Job"))
check("allocations.get_allocations lists it", any(a["ID"] == alloc["ID"] for a in n.allocations.get_allocations()))
logs = eventually(
    "client.stream_logs returns what the task wrote",
    lambda: (lambda t: t if "hello from compat" in t else None)(
        n.client.stream_logs.stream(alloc["ID"], "t", "stdout", plain=True)
    ),
)

nodes = n.nodes.get_nodes()
check("nodes.get_nodes lists the dev node", len(nodes) == 1 and nodes[0]["Status"] == "ready", nodes)
node_id = nodes[0]["ID"]
check("node.get_node reads it", n.node.get_node(node_id)["ID"] == node_id)
check("node.get_allocations has the allocation", any(a["ID"] == alloc["ID"] for a in n.node.get_allocations(node_id)))
n.node.eligible_node(node_id, ineligible=True)
check("node.eligible_node(ineligible=True)", n.node.get_node(node_id)["SchedulingEligibility"] == "ineligible")
n.node.eligible_node(node_id, eligible=True)
check("node.eligible_node(eligible=True)", n.node.get_node(node_id)["SchedulingEligibility"] == "eligible")

check("status.leader.get_leader names a leader", bool(n.status.leader.get_leader()))
check("status.peers.get_peers has one server", len(n.status.peers.get_peers()) == 1)
check("regions.get_regions", n.regions.get_regions() == ["global"])
me = n.agent.get_agent()
check("agent.get_agent says the client runs", me["config"]["Client"]["Enabled"] is True, me["config"])
check("agent.get_agent gives this agent's port", me["config"]["Ports"]["HTTP"] == PORT, me["config"])
members = n.agent.get_members()
check("agent.get_members has one alive server", [m["Status"] for m in members["Members"]] == ["alive"], members)
raft = n.operator.get_configuration()
check("operator.get_configuration has the leader", [s["Leader"] for s in raft["Servers"]] == [True], raft)
metrics = n.metrics.get_metrics()
check("metrics.get_metrics has gauges and counters", "Gauges" in metrics and "Counters" in metrics)

# A job with an update block: its deployment, read through the deployment API, and a
# revert to its first version.
def web(version_env):
    return n.jobs.parse(JOB.replace('"compat"', '"compat-web"').replace(
        'group "g" {',
        'group "g" {\n    update {\n      min_healthy_time = "1s"\n      healthy_deadline = "30s"\n    }',
    ).replace('memory = 32', 'memory = 32\n      }\n      env {\n        V = "%s"' % version_env))


n.jobs.register_job({"Job": web("0")})
dep = eventually(
    "job.get_deployment reaches successful",
    lambda: (lambda d: d if d and d.get("Status") == "successful" else None)(
        n.job.get_deployment("compat-web")
    ),
)
check("deployment.get_deployment reads it", n.deployment.get_deployment(dep["ID"])["JobID"] == "compat-web")
check(
    "deployment.get_deployment_allocations lists its allocation",
    len(n.deployment.get_deployment_allocations(dep["ID"])) == 1,
)
check("the deployed version is stable", n.job.get_job("compat-web")["Stable"] is True)
n.jobs.register_job({"Job": web("1")})
eventually("version 1 registered", lambda: n.job.get_job("compat-web")["Version"] == 1)
reverted = n.job.revert_job("compat-web", 0, enforce_prior_version=1)
check("job.revert_job returns an evaluation", bool(reverted.get("EvalID")), reverted)
versions = n.job.get_versions("compat-web")["Versions"]
spec = {v["Version"]: v["TaskGroups"][0]["Tasks"][0]["Env"] for v in versions}
check("the revert registered version 2 as version 0", spec.get(2) == spec.get(0) == {"V": "0"}, spec)
try:
    n.job.revert_job("compat-web", 0, enforce_prior_version=1)
    check("a revert enforcing a stale version is refused", False)
except exceptions.BadRequestNomadException:
    check("a revert enforcing a stale version is refused", True)
n.job.deregister_job("compat-web", purge=True)

try:
    n.jobs.register_job({"Job": {"ID": "bad id", "Datacenters": []}})
    check("a bad job is refused", False)
except exceptions.BadRequestNomadException as e:
    check("a bad job is refused with 400", True, e)

n.job.deregister_job("compat", purge=True)
try:
    n.job.get_job("compat")
    check("job.deregister_job(purge=True) purges", False)
except exceptions.URLNotFoundNomadException:
    check("job.deregister_job(purge=True) purges", True)

print("python-nomad: every check passed", flush=True)
