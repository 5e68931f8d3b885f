"""`nba customers import` of N demo customers into nba's own Redis (a private redis-server with the
embedded server's settings: append-only file, fsync every second), next to `redis-benchmark -t hset`
against the same server in the same run, and Redis memory per customer.

    python -m loadtests.bench_import                 # 1,000,000 customers
    python -m loadtests.bench_import --n 100000 --profile import.prof   # cProfile of the import

The import runs as the real command (`python -m nba.cli customers import FILE`) in a process of its own;
the rate is the one it reports (records over the time from the first record to the last write).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson
import redis

from nba.customers.demo import demo_customer
from nba.runtime.embedded_redis import RedisServer

ROOT = Path(__file__).resolve().parent.parent


def write_population(path: Path, n: int, seed: int) -> None:
    """N demo customers as JSON lines (c-1000 ...), generated as a stream (1M dicts would not fit well)."""
    rng = np.random.default_rng(seed)
    today = dt.date(2026, 11, 23)
    with path.open("wb") as out:
        for i in range(n):
            record = {"customer_id": f"c-{1000 + i}", "attributes": demo_customer(i, rng, today)}
            out.write(orjson.dumps(record) + b"\n")


def hset_rate(port: int, requests: int, pipeline: int) -> float:
    """requests/s of redis-benchmark's HSET (50 clients) against the server on `port`."""
    done = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-t", "hset", "-n", str(requests), "-P", str(pipeline), "-q"],
        capture_output=True,
        text=True,
        check=True,
    )
    found = re.findall(r"([\d.]+) requests per second", done.stdout.replace("\r", "\n"))
    return float(found[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="customers to import")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rules", type=Path, default=ROOT / "rules")
    parser.add_argument("--profile", type=Path, help="write a cProfile of the import process here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "crm.jsonl"
        start = time.monotonic()
        write_population(source, args.n, args.seed)
        print(
            f"generated {args.n:,} demo customers ({source.stat().st_size / 2**20:.0f} MiB of JSON lines) "
            f"in {time.monotonic() - start:.0f} s",
            file=sys.stderr,
        )
        server = RedisServer(Path(tmp) / "redis", persist=True)
        url = server.start()
        try:
            client = redis.Redis(port=server.port)
            before = int(client.info("memory")["used_memory"])
            profile = ["-m", "cProfile", "-o", str(args.profile)] if args.profile else []
            env = {**os.environ, "NBA_REDIS_URL": url, "NBA_RULES_DIR": str(args.rules)}
            started = time.monotonic()
            done = subprocess.run(
                [sys.executable, *profile, "-m", "nba.cli", "customers", "import", str(source)],
                env=env,
                capture_output=True,
                text=True,
            )
            wall = time.monotonic() - started
            if done.returncode != 0:
                print(done.stderr, file=sys.stderr)
                return 1
            after = int(client.info("memory")["used_memory"])
            reported = re.search(r"\((\d+)/s\)", done.stderr)
            hset = hset_rate(server.port, 1_000_000, 1)
            hset_pipelined = hset_rate(server.port, 2_000_000, 16)
            client.close()
        finally:
            server.stop()
    print(
        f"import of {args.n:,} customers: {reported.group(1) if reported else '?'} records/s "
        f"({args.n / wall:,.0f}/s over the command's {wall:.1f} s wall time, start-up included)"
    )
    rates = f"{hset:,.0f} requests/s (50 clients), {hset_pipelined:,.0f}/s with -P 16"
    print(f"redis-benchmark -t hset, same server: {rates}")
    print(
        f"Redis used_memory {before / 2**20:.1f} -> {after / 2**20:.1f} MiB: "
        f"{(after - before) / args.n:.0f} bytes per customer"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
