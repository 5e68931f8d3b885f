"""Time an outbound run next to the import of the same population, as a user runs both.

A generated rule set (loadtests/gen_rules.py, default 100 actions, e-mail capacity 35,000 a day) and N
demo customers (default 100,000; half of them with e-mail consent) are loaded with `nba customers
import`; then `nba outbound run --channel email` runs dry and for real, each a separate process, as
the README shows. The machine's baseline in the same run: redis-benchmark's HSET rate on the same Redis.

    python -m loadtests.bench_outbound --customers 100000
    python -m loadtests.bench_outbound --customers 1000000 --actions 100

Prints the seconds of each command and the phases the run reports (read, select, record).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

from loadtests.gen_rules import generate
from nba.customers.demo import demo_customer
from nba.runtime.embedded_redis import RedisServer


def write_population(path: Path, n: int, seed: int = 11) -> None:
    import datetime as dt

    rng = np.random.default_rng(seed)
    today = dt.date(2026, 12, 1)
    with path.open("w") as f:
        for i in range(n):
            attrs = demo_customer(i, rng, today)
            attrs["email"] = f"klant{i}@example.nl"
            f.write(json.dumps({"customer_id": f"c-{i}", "attributes": attrs}) + "\n")


def nba(*args: str, env: dict[str, str]) -> tuple[float, float]:
    """The seconds the command took and its peak memory (MiB, its maximum resident set)."""
    timer = ["/usr/bin/time", "-f", "%M"] if Path("/usr/bin/time").exists() else []  # Debian's `time`
    start = time.perf_counter()
    done = subprocess.run([*timer, sys.executable, "-m", "nba.cli", *args], env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"nba {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    peak = int(done.stderr.strip().splitlines()[-1]) / 1024 if timer else float("nan")
    return time.perf_counter() - start, peak


def hset_rate(port: int, password: str | None) -> float:
    cmd = ["redis-benchmark", "-p", str(port), "-t", "hset", "-n", "300000", "-P", "16", "-q"]
    if password:
        cmd += ["-a", password]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    found = re.search(r"HSET: ([\d.]+) requests per second", out)
    return float(found.group(1)) if found else float("nan")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--customers", type=int, default=100_000)
    p.add_argument("--actions", type=int, default=100)
    p.add_argument("--capacity", type=int, default=35_000)
    p.add_argument("--keep", type=Path, help="keep the work directory here")
    args = p.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-outbound-"))
    work.mkdir(parents=True, exist_ok=True)
    rules = generate(work / "rules", args.actions, seed=1)
    channels = yaml.safe_load((rules / "channels.yaml").read_text())
    channels["channels"]["email"]["capacity"] = {"per_day": args.capacity}
    (rules / "channels.yaml").write_text(yaml.safe_dump(channels))
    people = work / "people.jsonl"
    write_population(people, args.customers)
    server = RedisServer(work / "redis", persist=False)
    url = server.start()
    try:
        env = {**os.environ, "NBA_REDIS_URL": url, "NBA_RULES_DIR": str(rules), "NBA_DATA_DIR": str(work / "data")}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        baseline = hset_rate(port, None)
        imported, import_mib = nba("customers", "import", str(people), "--rejects", str(work / "rejects"), env=env)
        print(f"customers:     {args.customers:,} with {args.actions} actions (e-mail capacity {args.capacity:,}/day)")
        print(f"baseline:      redis-benchmark HSET {baseline:,.0f}/s (pipelined 16)")
        print(
            f"import:        {imported:6.1f} s  ({args.customers / imported:,.0f} profiles/s, the whole command; "
            f"peak {import_mib:,.0f} MiB)"
        )
        for label, extra in (("dry run", ["--dry-run"]), ("real run", [])):
            report = work / f"report-{label.replace(' ', '-')}.json"
            seconds, mib = nba(
                "outbound", "run", "--channel", "email", *extra,
                "--out", str(work / f"{label.replace(' ', '-')}.jsonl"), "--report", str(report), env=env,
            )  # fmt: skip
            r = json.loads(report.read_text())
            s = r["seconds"]
            phases = ", ".join(f"{k} {v:.1f} s" for k, v in s.items() if k != "total")
            c = r["comparison"]
            print(
                f"{label + ':':<14} {seconds:6.1f} s  (the command, peak {mib:,.0f} MiB; the run: {phases}); selected "
                f"{r['totals']['selected']:,} for {r['customers']['in_population']:,} customers; score "
                f"{c['chosen']['score']:.1f} vs first-come {c['first_come']['score']:.1f}, without capacity "
                f"{c['capacity_free']['score']:.1f}, {c['share_of_upper_bound']:.2%} of the bound"
            )
    finally:
        server.stop()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
