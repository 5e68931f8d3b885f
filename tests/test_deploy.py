"""compose.yaml, the Prometheus configuration and alert rules, and the Grafana dashboard cannot be started
here (no container engine); what can be proved without one is proved: every file parses, Prometheus's own
promtool accepts the configuration and the rules and runs their unit tests, every service can be built
or pulled and says how its health is checked, and every metric and label the rules and the dashboard
read is one nba exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.metrics import MetricWrapperBase

from nba.metrics import Metrics
from nba.runtime.supervision import Supervision

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "compose.yaml"
ONE_SHOT = {"nba-keys", "nba-keys-cluster", "redis-cluster-init"}  # run to completion, then exit 0

_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
_ALWAYS = {"job", "instance"}  # Prometheus adds them to every series it scrapes


def exported() -> dict[str, set[str]]:
    """Every series name nba can export, with its label names (le for histogram buckets)."""
    metrics = Metrics()
    metrics.register_collector(Supervision().collector())
    out: dict[str, set[str]] = {}
    for m in vars(metrics).values():
        if isinstance(m, MetricWrapperBase):
            labels = set(getattr(m, "_labelnames", ()))
            kind = getattr(m, "_type", "")
            for suffix in _SUFFIXES.get(kind, ("",)):
                out[m._name + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    for family in metrics.registry.collect():
        for s in family.samples:
            out.setdefault(s.name, set()).update(s.labels)
    return out


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def expressions() -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every alert rule and dashboard query and annotation."""
    for group in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]:
        for rule in group["rules"]:
            yield f"alert {rule['alert']}", rule["expr"]
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "nba.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", target["expr"]
    for note in dashboard["annotations"]["list"]:
        yield f"annotation {note['name']!r}", note["expr"]
    for variable in dashboard["templating"]["list"]:
        yield f"variable {variable['name']}", variable["query"]["query"]


def test_every_metric_and_label_the_rules_and_dashboard_read_is_exported() -> None:
    known = exported()
    checked = 0
    for where, expr in expressions():
        used = re.findall(r"\b(nba_[a-z_]+)\b", expr)
        # `up` is Prometheus's own; everything else must be nba's
        assert used or re.search(r"\bup\{", expr), f"{where}: reads no nba metric: {expr}"
        for name in used:
            assert name in known, f"{where}: {name} is not exported by nba"
        labels_here = set().union(*(known[n] for n in used)) | _ALWAYS if used else _ALWAYS
        for name, selector in re.findall(r"\b(nba_[a-z_]+)\{([^}]*)\}", expr):
            for label in re.findall(r"(\w+)\s*(?:=~|!~|!=|=)", selector):
                assert label in known[name] | _ALWAYS, f"{where}: {name} has no label {label!r}"
        for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            for label in (g.strip() for g in group.split(",")):
                assert label in labels_here, f"{where}: groups by {label!r}, which none of {used} has"
        checked += 1
    assert checked > 30


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:  # scripts/setup.sh --test installs it (Debian's prometheus package)
        pytest.skip("promtool is not installed (Debian package prometheus; scripts/setup.sh --test installs it)")
    return found


def test_prometheus_accepts_the_configuration_and_rules_and_the_rules_pass_their_tests(tmp_path: Path) -> None:
    promtool = _promtool()
    # the configuration names paths inside the Prometheus container: point them at the repository's files
    key = tmp_path / "prometheus.key"
    key.write_text("nba_0_secret\n")
    config = (DEPLOY / "prometheus" / "prometheus.yml").read_text()
    for inside, here in (
        ("/etc/prometheus/alerts.yml", DEPLOY / "prometheus" / "alerts.yml"),
        ("/etc/nba-keys/prometheus.key", key),
        ("/etc/nba-keys-cluster/prometheus.key", key),
    ):
        assert inside in config
        config = config.replace(inside, str(here))
    (tmp_path / "prometheus.yml").write_text(config)
    jobs = {job["job_name"]: job for job in yaml.safe_load(config)["scrape_configs"]}
    # a target found by DNS vanishes when its container stops, and `up` with it: NbaDown needs a fixed one
    assert jobs["nba"]["static_configs"] == [{"targets": ["nba:8080"]}]
    for args in (
        ["check", "config", str(tmp_path / "prometheus.yml")],
        ["check", "rules", str(DEPLOY / "prometheus" / "alerts.yml")],
        ["test", "rules", "alerts.test.yml"],
    ):
        done = subprocess.run([promtool, *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True)
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    alerts = {
        r["alert"]
        for g in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]
        for r in g["rules"]
    }
    # what the issue asks alerts for: degraded share, learner lag, Redis unavailable, 5xx
    assert {"NbaDegradedDecisions", "NbaLearnerLagging", "NbaRedisUnavailable", "NbaHttp5xx"} <= alerts


def test_compose_services_build_or_pull_check_their_health_and_wait_for_what_they_need() -> None:
    spec = compose()
    services: dict[str, Any] = spec["services"]
    volumes = set(spec.get("volumes") or {})
    assert {"nba", "redis", "prometheus", "grafana"} <= set(services)
    for name, svc in services.items():
        image = svc.get("image", "")
        assert image, f"{name}: no image"
        if "build" in svc:
            assert (ROOT / svc["build"] / "Dockerfile").is_file(), f"{name}: builds without a Dockerfile"
        else:  # pulled: a pinned version, never latest
            assert re.fullmatch(r"[\w./-]+:[\w.-]+", image), f"{name}: {image}"
            assert not image.endswith(":latest"), f"{name}: {image}"
        if name in ONE_SHOT:
            assert "restart" not in svc, f"{name} runs once: restarting it would loop"
        else:
            assert svc.get("healthcheck", {}).get("test"), f"{name}: no healthcheck"
            assert svc.get("restart") == "unless-stopped", name
        for needed, how in (svc.get("depends_on") or {}).items():
            assert needed in services, f"{name} depends on unknown {needed}"
            condition = how["condition"]
            if needed in ONE_SHOT:
                assert condition == "service_completed_successfully", f"{name} -> {needed}"
            else:
                assert condition == "service_healthy", f"{name} -> {needed}"
                assert services[needed].get("healthcheck"), f"{name} waits for {needed}, which has no healthcheck"
            # a service outside a profile cannot wait for one that only runs in it
            if not svc.get("profiles"):
                assert not services[needed].get("profiles"), f"{name} -> {needed} (profile only)"
        for mount in svc.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in volumes, f"{name}: volume {source} is not declared"

    nba = services["nba"]
    assert nba["environment"]["NBA_WORKERS"] == "2"
    assert nba["environment"]["NBA_LOG_FORMAT"] == "json"
    assert "--appendonly yes" in " ".join(services["redis"]["command"])  # persistence on
    # secrets are required, never defaulted: compose refuses to start without them
    text = COMPOSE.read_text()
    assert "${REDIS_PASSWORD:?" in text
    assert "${GRAFANA_ADMIN_PASSWORD:?" in text
    cluster = [n for n, s in services.items() if "cluster" in (s.get("profiles") or [])]
    primaries_and_replicas = [n for n in cluster if n.startswith("redis-node-")]
    assert len(primaries_and_replicas) == 6
    init = " ".join(services["redis-cluster-init"]["command"])
    assert "--cluster-replicas 1" in init  # 6 nodes, 1 replica each: 3 primaries
    assert services["nba-cluster"]["environment"]["NBA_REDIS_URL"].count("redis-node-") == 3


def test_grafana_is_provisioned_with_the_dashboard_on_the_prometheus_it_names() -> None:
    grafana = DEPLOY / "grafana"
    sources = yaml.safe_load((grafana / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uids = {s["uid"] for s in sources["datasources"] if s["type"] == "prometheus"}
    provider = yaml.safe_load((grafana / "provisioning" / "dashboards" / "nba.yml").read_text())["providers"][0]
    mounts = compose()["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts
    dashboard = json.loads((grafana / "dashboards" / "nba.json").read_text())
    assert dashboard["uid"]
    assert dashboard["title"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    # what the issue names: rate and latency per route, degraded share, learner lag, reward rate per
    # action with the control-group lift, Redis latency and errors
    for needed in (
        "requests per second by route",
        "latency",
        "degraded",
        "learner lag",
        "reward rate",
        "lift",
        "redis latency",
        "redis errors",
    ):
        assert needed in titles, needed
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] in uids, panel["title"]
        assert panel["gridPos"]["x"] >= 0, panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] in uids
            for used in re.findall(r"\$(\w+)", target["expr"]):
                assert used in variables or used.startswith("__"), f"{panel['title']}: ${used} is not defined"
