"""With `nba serve --workers N` the kernel hands each connection, scrapes included, to any worker: every
scrape must still count the whole server, and keep counting what a worker that died had counted."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from nba import WORKER_METRICS_DIR
from nba.cli import _worker_metrics_dir, worker_metrics_parent
from tests.serving import Serve, call, wait_for

pytestmark = pytest.mark.slow


def _scrape(server: Serve) -> dict[str, float]:
    """Each call is a new connection, so successive scrapes reach either worker."""
    with urllib.request.urlopen(server.url("/metrics"), timeout=5) as resp:
        text = resp.read().decode()
    assert "_created" not in text
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            totals[s.name] = totals.get(s.name, 0.0) + s.value
    return totals


def test_every_scrape_counts_every_worker(tmp_path: Path) -> None:
    # no simulated past: its decisions would count too
    server = Serve(tmp_path, "--workers", "2", "--demo-customers", "20", "--demo-days", "0")
    try:
        server.wait_ready()
        pids: set[object] = set()
        while len(pids) < 2:  # both workers serve (wait_ready's limit covers a slow second start)
            pids.add(call(server.url("/healthz"))[1]["pid"])
        decides = 40
        for i in range(decides):  # a new connection each: spread over the workers
            status, _ = call(server.url("/v1/decide"), {"customer_id": f"c-{1000 + i % 20}", "channel": "web"})
            assert status == 200
        for _ in range(20):
            seen = _scrape(server)
            assert seen["nba_decisions_total"] == decides
            assert seen["nba_decision_duration_seconds_count"] == decides
            assert seen["nba_http_requests_total"] >= decides
            assert seen["nba_rules_info"] == 1  # the version in use, once, although two processes use it

        # a worker dies: what it counted stays counted, its gauges go with it
        workers = server.children("multiprocessing.spawn")
        assert len(workers) == 2
        os.kill(workers[0], signal.SIGKILL)
        wait_for(lambda: len(set(server.children("multiprocessing.spawn")) - set(workers)) == 1, 60, "a new worker")
        server.wait_ready()
        for _ in range(10):
            assert _scrape(server)["nba_decisions_total"] == decides
        assert server.stop() == 0
    finally:
        server.kill_all()


def test_a_metrics_directory_of_someone_else_is_not_used(tmp_path: Path) -> None:
    """PROMETHEUS_MULTIPROC_DIR left in the environment (by a shell profile, another service's unit):
    nba's processes keep their values in memory unless nba serve itself named the directory."""
    probe = "import nba.metrics, prometheus_client.values as v; print(v.ValueClass._multiprocess)"
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    env[WORKER_METRICS_DIR] = str(tmp_path)  # what nba serve --workers sets for its workers
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


def test_the_directory_of_a_killed_server_is_removed_at_the_next_start() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a pid that no process has now
    left = Path(tempfile.mkdtemp(prefix=f"nba-metrics-{dead.pid}-", dir=worker_metrics_parent()))
    (left / "counter_1.db").write_bytes(b"x")
    alive = Path(tempfile.mkdtemp(prefix=f"nba-metrics-{os.getpid()}-", dir=left.parent))
    made = Path(_worker_metrics_dir())
    try:
        assert not left.exists()
        assert alive.exists()  # this process runs: its directory stays
        assert made.name.startswith(f"nba-metrics-{os.getpid()}-")
    finally:
        for d in (left, alive, made):
            shutil.rmtree(d, ignore_errors=True)
