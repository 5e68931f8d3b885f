"""Quick closed-loop benchmark of POST /v1/decide (or /v1/events) next to an aiohttp hello-world, in the same run.

Starts a private redis-server, nba (seeded with demo customers; `--workers N` processes on one port) and
as many hello-world processes on one port, then drives each with wrk (same threads, connections and
duration) and prints requests/s, latency percentiles and the CPU each request cost the server and
Redis (from /proc, so a paused VM's stolen time is billed too) side by side. Needs `wrk` (Debian:
apt-get install wrk). With `--key`, a second nba on its own Redis is driven with a channel API key in
the same rounds: what checking keys costs. With `--variants`, more nba servers are driven in the same
rounds: `cluster` (on a local Redis Cluster of 3 primaries and 3 replicas), `fsync` (NBA_DURABILITY=fsync
on its own Redis with appendfsync always), `cluster-replica` (the cluster with NBA_DURABILITY=replica),
`access-log` (NBA_LOG_LEVEL=INFO: a text access-log line per request) and `json-logs` (the same as JSON).
The others run at NBA_LOG_LEVEL=WARNING, without access log. Every server's log goes to a file, as under
systemd or a container runtime, not to this terminal. With `--before DIR`, an nba from another checkout
(PYTHONPATH=DIR, e.g. a `git worktree` of the previous commit) is driven in the same rounds: a change's
cost measured against the same baseline.

    .venv/bin/python -m loadtests.bench_decide --duration 10 --connections 16 [--workers 2] [--key]
    .venv/bin/python -m loadtests.bench_decide --endpoint events --variants fsync,cluster,cluster-replica
    .venv/bin/python -m loadtests.bench_decide --redis redis://h1:7000,h2:7001   # your own Redis, same rounds
    git worktree add /tmp/before HEAD~1 && .venv/bin/python -m loadtests.bench_decide --before /tmp/before \
        --variants access-log,json-logs
    # when the rules changed too: a rule set both versions read (the tests' frozen copy)
    .venv/bin/python -m loadtests.bench_decide --before /tmp/before --rules tests/fixtures/rules
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from loadtests.gen_rules import generate
from loadtests.procs import children, proc_cpu, server_pid, wait_http
from nba.runtime.embedded_redis import RedisServer, free_port
from tests.redis_cluster import LocalCluster

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# variant -> what its server's environment changes
VARIANTS: dict[str, dict[str, str]] = {
    "cluster": {},
    "fsync": {"NBA_DURABILITY": "fsync"},
    "cluster-replica": {"NBA_DURABILITY": "replica"},
    "access-log": {"NBA_LOG_LEVEL": "INFO"},
    "json-logs": {"NBA_LOG_LEVEL": "INFO", "NBA_LOG_FORMAT": "json"},
}


def run_wrk(
    url: str, script: Path, threads: int, connections: int, duration: int, env: dict[str, str]
) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout
    result = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))}  # type: ignore[union-attr]
    for pct in ("50", "90", "99"):
        m = re.search(rf"\s{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)", out)
        if m:
            value, unit = float(m.group(1)), m.group(2)
            result[f"p{pct}_ms"] = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["non_2xx"] = float(errors.group(1)) if errors else 0.0
    return result


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--customers", type=int, default=10000)
    parser.add_argument("--rounds", type=int, default=2, help="alternate hello/decide this many times")
    parser.add_argument("--workers", type=int, default=1, help="nba serve --workers, and as many hello processes")
    parser.add_argument(
        "--endpoint",
        choices=["decide", "events"],
        default="decide",
        help="decide (decide.lua) or events (events.lua: batches of 10 new impressions)",
    )
    parser.add_argument(
        "--actions",
        type=int,
        default=0,
        help="serve a generated rule set of this many actions instead of the shipped rules/",
    )
    parser.add_argument(
        "--key",
        action="store_true",
        help="also run a second nba (on its own Redis) with a channel API key sent with every request: the "
        "cost of checking keys, measured against the open one in the same run",
    )
    parser.add_argument(
        "--redis",
        metavar="URL",
        help="also an nba on this Redis (one server, cluster nodes or sentinels, as NBA_REDIS_URL), e.g. a cluster "
        "of your own; seeded with the demo customers like the others",
    )
    parser.add_argument(
        "--variants",
        default="",
        help="comma-separated extra servers driven in the same rounds: " + ", ".join(VARIANTS),
    )
    parser.add_argument(
        "--before",
        metavar="DIR",
        type=Path,
        help="also an nba from this source tree (a checkout of an earlier commit), on its own Redis",
    )
    parser.add_argument(
        "--rules",
        metavar="DIR",
        type=Path,
        help="serve this rule set (default: the shipped rules/); with --before, one both versions can read",
    )
    args = parser.parse_args()
    unknown = {v for v in args.variants.split(",") if v} - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants: {', '.join(sorted(unknown))}")
    return args


def variant_env(variant: str, args: argparse.Namespace) -> dict[str, str]:
    if variant == "before":
        return {"PYTHONPATH": str(args.before.resolve())}
    return dict(VARIANTS.get(variant, {}))


def main() -> int:
    args = parse_args()
    variants = (
        [v for v in args.variants.split(",") if v]
        + (["given"] if args.redis else [])
        + (["before"] if args.before else [])
    )
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install wrk", file=sys.stderr)
        return 2
    procs: list[subprocess.Popen[bytes]] = []
    redises: list[RedisServer | LocalCluster] = []
    ep = args.endpoint
    with tempfile.TemporaryDirectory() as tmp:
        rules = (
            generate(Path(tmp) / "rules", args.actions, seed=1)
            if args.actions
            else (args.rules.resolve() if args.rules else ROOT / "rules")
        )
        base_env = {
            **os.environ,
            # no simulated past seeding in the background while it is measured (a tree without the setting
            # ignores it)
            "NBA_DEMO_DAYS": "0",
            "NBA_LOG_LEVEL": "WARNING",
            "NBA_BENCH_CUSTOMERS": str(args.customers),
            "NBA_RULES_DIR": str(rules),
        }

        def start_nba(
            name: str,
            key: bool,
            *,
            cluster: bool = False,
            url: str | None = None,
            extra: dict[str, str] | None = None,
        ) -> tuple[str, dict[str, str], int, list[int]]:
            """An nba server on its own Redis (API keys are global to a Redis: a keyed server and an open
            one cannot share one), or on `url`'s; its URL, wrk's environment, its process and the pids of
            its Redis (none for `url`: its CPU is not measured)."""
            redis_pids: list[int] = []
            extra = extra or {}
            durability = extra.get("NBA_DURABILITY", "memory")
            if url is not None:
                pass
            elif cluster:
                local = LocalCluster(Path(tmp) / f"cluster-{name}")
                redises.append(local)
                local.start()
                url, redis_pids = local.seed_url, [n.process.pid for n in local.nodes if n.process is not None]
            else:
                redis = RedisServer(
                    Path(tmp) / f"redis-{name}", persist=durability == "fsync", fsync_always=durability == "fsync"
                )
                redises.append(redis)
                url = redis.start()
                redis_pids = [server_pid(url)]
            port = free_port()
            env = {**base_env, "NBA_REDIS_URL": url, "NBA_PORT": str(port), **extra}
            if key:  # before the server starts: it checks keys from its first request on
                create = ["keys", "create", "--name", "bench", "--role", "channel", "--channel", "web", "--rate", "0"]
                made = subprocess.run(
                    [sys.executable, "-m", "nba.cli", *create], env=env, capture_output=True, text=True, check=True
                )
                env["NBA_BENCH_KEY"] = made.stdout.strip()
            serve = ["serve", "--rules", str(rules), "--demo-customers", str(args.customers)]
            with (Path(tmp) / f"nba-{name}.log").open("wb") as log:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "nba.cli", *serve, "--workers", str(args.workers)],
                    env=env,
                    cwd=tmp,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            procs.append(proc)
            return f"http://127.0.0.1:{port}", env, proc.pid, redis_pids

        try:
            hello_port = free_port()
            hellos = [
                subprocess.Popen(
                    [
                        sys.executable,
                        str(HERE / "hello.py"),
                        "--port",
                        str(hello_port),
                        *(["--reuse-port"] if args.workers > 1 else []),
                    ]
                )
                for _ in range(args.workers)
            ]
            procs.extend(hellos)
            nbas = {ep: start_nba(ep, key=False)}
            if args.key:
                nbas[f"{ep}+key"] = start_nba(f"{ep}-key", key=True)
            for variant in variants:
                nbas[f"{ep}+{variant}"] = start_nba(
                    variant,
                    key=False,
                    cluster=variant.startswith("cluster"),
                    url=args.redis if variant == "given" else None,
                    extra=variant_env(variant, args),
                )
            for url, _, _, _ in nbas.values():
                wait_http(f"{url}/readyz", timeout=300)
            wait_http(f"http://127.0.0.1:{hello_port}/hello")
            # name -> (url, wrk script, wrk environment, server pids, redis pids)
            targets: dict[str, tuple[str, Path, dict[str, str], list[int], list[int]]] = {
                "hello": (f"http://127.0.0.1:{hello_port}", HERE / "hello.lua", base_env, [p.pid for p in hellos], [])
            }
            for name, (url, env, pid, redis_pids) in nbas.items():
                targets[name] = (url, HERE / f"{ep}.lua", env, children(pid), redis_pids)
            rows: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
            for target, script, env, _, _ in targets.values():  # warm-up
                run_wrk(target, script, args.threads, args.connections, 2, env)
            for _ in range(args.rounds):
                for name, (target, script, env, servers, redis_pids) in targets.items():
                    server0, redis0 = proc_cpu(servers), proc_cpu(redis_pids)
                    r = run_wrk(target, script, args.threads, args.connections, args.duration, env)
                    n = r["rps"] * args.duration
                    r["server_us"] = 1e6 * (proc_cpu(servers) - server0) / n
                    r["redis_us"] = 1e6 * (proc_cpu(redis_pids) - redis0) / n
                    rows[name].append(r)
        finally:
            for p in procs:
                p.terminate()
                p.wait(timeout=10)
            for redis in redises:
                redis.stop()
    report(args, rows, variants)
    return 0


def report(args: argparse.Namespace, rows: dict[str, list[dict[str, float]]], variants: list[str]) -> None:
    ep = args.endpoint
    print(
        f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration}s, {args.rounds} alternating rounds, "
        f"{args.customers} customers, rules: {args.actions or (args.rules or 'shipped')} actions, "
        f"{args.workers} process(es) each, "
        f"{os.cpu_count()} cores shared by server, Redis and wrk"
    )
    print(
        f"{'endpoint':20} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'non-2xx':>8} "
        f"{'server us/req':>14} {'redis us/req':>13}"
    )
    best: dict[str, dict[str, float]] = {}
    for name, results in rows.items():
        for r in results:
            print(
                f"{name:20} {r['rps']:9.0f} {r.get('p50_ms', 0):8.2f} {r.get('p90_ms', 0):8.2f} "
                f"{r.get('p99_ms', 0):8.2f} {r['non_2xx']:8.0f} {r['server_us']:14.0f} {r['redis_us']:13.0f}"
            )
        best[name] = max(results, key=lambda r: r["rps"])
    ratio = best[ep]["rps"] / best["hello"]["rps"]
    cost = min(r["server_us"] for r in rows[ep]) / min(r["server_us"] for r in rows["hello"])
    print(
        f"{ep}/hello throughput (best rounds): {ratio:.2f}x; server CPU per request (cheapest rounds): "
        f"{ep} {cost:.1f}x hello's"
    )
    if args.key:
        keyed = f"{ep}+key"
        more = min(r["server_us"] for r in rows[keyed]) / min(r["server_us"] for r in rows[ep]) - 1
        fewer = 1 - best[keyed]["rps"] / best[ep]["rps"]
        print(
            f"with an API key: server CPU per {ep} {more:+.1%} (cheapest rounds), throughput {-fewer:+.1%} "
            "(best rounds), against the open server in the same run"
        )
    for variant in variants:
        name = f"{ep}+{variant}"
        more = min(r["server_us"] for r in rows[name]) / min(r["server_us"] for r in rows[ep]) - 1
        ratio = best[name]["rps"] / best[ep]["rps"]
        p99 = best[name].get("p99_ms", 0) / max(best[ep].get("p99_ms", 0), 1e-9)
        print(
            f"{variant}: throughput {ratio:.2f}x {ep}'s (best rounds), server CPU per {ep} {more:+.1%} "
            f"(cheapest rounds), p99 {p99:.2f}x"
        )


if __name__ == "__main__":
    sys.exit(main())
