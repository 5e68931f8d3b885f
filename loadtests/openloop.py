"""Open-loop (fixed-rate) latency of nba next to an aiohttp hello-world, in the same run and the same way.

A closed-loop generator (wrk) waits for an answer before it sends the next request, so a server that
stalls also stops the clock: the stall hides in one slow sample ("coordinated omission"). Here request
i is due at t0 + i / rate whatever happened before, and its latency is measured from that intended
time: a stall shows up in every request that was due while it lasted.

The generator is raw asyncio over keep-alive HTTP/1.1 connections (a new connection when all are busy,
up to --max-connections), with prepared request bytes. It reports its own CPU and how late it sent
(`send lag`): when that lag is small next to the latencies, the generator was not the bottleneck.

Scenarios, each at every rate in --rates:
    hello        GET /hello on the baseline server (same loop, JSON library and HTTP stack as nba)
    web          POST /v1/decide (web, limit 3); after the answer an impression event, 5% also an accept
    call_center  POST /v1/decide on the call-center channel with explain: true
    outbound     POST /v1/events, batches of 500 impressions (--rates counts events/s)

    python -m loadtests.openloop --rates 200 500 1000 --duration 20                # demo customers
    python -m loadtests.openloop --redis redis://... --customers 1000000 --actions 1000  # after seed.py
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import orjson

from loadtests.gen_rules import generate
from loadtests.procs import children, own_cpu, proc_cpu, server_pid, wait_http
from nba.runtime.embedded_redis import RedisServer, free_port

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class _Conn(asyncio.Protocol):
    """One keep-alive connection: one request in flight, the answer framed by Content-Length."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buf[:end]).lower()
        length = 0
        at = head.find(b"content-length:")
        if at >= 0:
            eol = head.find(b"\r\n", at)
            length = int(head[at + 15 : eol if eol >= 0 else None])
        if len(self.buf) < end + 4 + length:
            return
        status = int(head[9:12])
        body = bytes(self.buf[end + 4 : end + 4 + length])
        del self.buf[: end + 4 + length]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    async def request(self, data: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return await self.waiter


class Pool:
    def __init__(self, port: int, max_connections: int):
        self.port = port
        self.max = max_connections
        self.idle: list[_Conn] = []
        self.open = 0
        self.freed = asyncio.Condition()

    async def request(self, data: bytes) -> tuple[int, bytes]:
        conn = await self._take()
        try:
            return await conn.request(data)
        finally:
            await self._give(conn)

    async def _take(self) -> _Conn:
        while True:
            while self.idle:
                conn = self.idle.pop()
                if not conn.closed:
                    return conn
                self.open -= 1
            if self.open < self.max:
                self.open += 1
                _, conn = await asyncio.get_running_loop().create_connection(_Conn, "127.0.0.1", self.port)
                return conn
            async with self.freed:
                await self.freed.wait()

    async def _give(self, conn: _Conn) -> None:
        if conn.closed:
            self.open -= 1
        else:
            self.idle.append(conn)
        async with self.freed:
            self.freed.notify()

    def close(self) -> None:
        for conn in self.idle:
            if conn.transport is not None:
                conn.transport.close()


def http_request(method: str, path: str, body: bytes = b"") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
    if body:
        head += "Content-Type: application/json\r\n"
    return head.encode() + b"\r\n" + body


@dataclass
class Phase:
    scenario: str
    rate: float
    sent: int = 0
    latencies: list[float] = field(default_factory=list)  # seconds from the intended send time
    lags: list[float] = field(default_factory=list)  # how late the generator sent
    errors: int = 0
    follow_ups: int = 0
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)  # seconds of CPU per process group

    def row(self) -> dict[str, float]:
        lat = np.asarray(self.latencies) * 1000
        lag = np.asarray(self.lags) * 1000

        def pct(a: np.ndarray, q: float) -> float:
            return float(np.percentile(a, q)) if a.size else float("nan")

        n = max(1, len(self.latencies))
        return {
            "rate": self.rate,
            "achieved": len(self.latencies) / self.seconds,
            "p50_ms": pct(lat, 50),
            "p99_ms": pct(lat, 99),
            "p999_ms": pct(lat, 99.9),
            "max_ms": pct(lat, 100),
            "errors": self.errors,
            "send_lag_p99_ms": pct(lag, 99),
            **{f"cpu_{k}_pct": 100 * v / self.seconds for k, v in self.cpu.items()},
            **{f"cpu_{k}_us_per_req": 1e6 * v / n for k, v in self.cpu.items()},
        }


Request = Callable[[int], tuple[bytes, Callable[[bytes], list[bytes]] | None]]


async def run_phase(
    name: str, pool: Pool, make: Request, rate: float, duration: float, cpu_of: dict[str, Callable[[], float]]
) -> Phase:
    """Send make(i) at t0 + i / rate; follow-ups (the web scenario's events) go out after the answer and
    are not part of the latency (a channel would send them asynchronously too)."""
    phase = Phase(name, rate)
    loop = asyncio.get_running_loop()
    total = int(rate * duration)
    cpu0 = {k: f() for k, f in cpu_of.items()}
    pending: set[asyncio.Task[None]] = set()

    async def one(i: int, due: float) -> None:
        data, follow = make(i)
        phase.lags.append(loop.time() - due)
        try:
            status, body = await pool.request(data)
        except (ConnectionError, OSError):
            phase.errors += 1
            return
        phase.latencies.append(loop.time() - due)
        if status >= 400:
            phase.errors += 1
            return
        if follow is not None:
            for extra in follow(body):
                status, _ = await pool.request(extra)
                phase.follow_ups += 1
                phase.errors += status >= 400

    t0 = loop.time() + 0.05
    for i in range(total):
        due = t0 + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i, due))
        pending.add(task)
        task.add_done_callback(pending.discard)
    if pending:
        await asyncio.wait(pending, timeout=60)
    phase.seconds = loop.time() - t0
    phase.sent = total
    phase.cpu = {k: f() - cpu0[k] for k, f in cpu_of.items()}
    return phase


def scenarios(customers: int, seed: int) -> dict[str, Request]:
    rnd = random.Random(seed)

    def cid() -> str:
        return f"c-{1000 + rnd.randrange(customers)}"

    def hello(i: int) -> tuple[bytes, None]:
        return http_request("GET", "/hello"), None

    def web(i: int) -> tuple[bytes, Callable[[bytes], list[bytes]]]:
        customer = cid()
        body = orjson.dumps(
            {
                "customer_id": customer,
                "channel": "web",
                "limit": 3,
                "context": {"device": rnd.choice(("mobile", "desktop"))},
            }
        )

        def events(answer: bytes) -> list[bytes]:
            d = orjson.loads(answer)
            if not d.get("actions"):
                return []
            first = d["actions"][0]["action_id"]
            evs = [
                {
                    "event_id": f"ol-{i}-{customer}-i",
                    "type": "impression",
                    "customer_id": customer,
                    "action_id": first,
                    "decision_id": d["decision_id"],
                    "channel": "web",
                }
            ]
            if rnd.random() < 0.05:
                evs.append({**evs[0], "event_id": f"ol-{i}-{customer}-a", "type": "accept"})
            return [http_request("POST", "/v1/events", orjson.dumps({"events": evs}))]

        return http_request("POST", "/v1/decide", body), events

    def call_center(i: int) -> tuple[bytes, None]:
        body = orjson.dumps(
            {"customer_id": cid(), "channel": "call_center", "limit": 3, "explain": True, "contact_id": f"call-{i}"}
        )
        return http_request("POST", "/v1/decide", body), None

    def outbound(i: int) -> tuple[bytes, None]:
        evs = [
            {
                "event_id": f"ob-{seed}-{i}-{k}",
                "type": "impression",
                "customer_id": cid(),
                "action_id": "no-action",
                "channel": "email",
            }
            for k in range(500)
        ]
        return http_request("POST", "/v1/events", orjson.dumps({"events": evs})), None

    return {"hello": hello, "web": web, "call_center": call_center, "outbound": outbound}


async def drive(
    args: argparse.Namespace, ports: dict[str, int], pids: dict[str, Callable[[], list[int]]]
) -> list[Phase]:
    makers = scenarios(args.customers, args.seed)
    phases: list[Phase] = []
    pools = {name: Pool(port, args.max_connections) for name, port in ports.items()}
    try:
        for rate in args.rates:
            for scenario in args.scenarios:
                target = "hello" if scenario == "hello" else "nba"
                cpu_of: dict[str, Callable[[], float]] = {
                    "server": lambda t=target: proc_cpu(pids[t]()),  # type: ignore[misc]
                    "redis": lambda: proc_cpu(pids["redis"]()),
                    "generator": own_cpu,
                }
                per_second = rate / 500 if scenario == "outbound" else rate
                await run_phase(scenario, pools[target], makers[scenario], per_second, 2, cpu_of)  # warm-up
                phase = await run_phase(scenario, pools[target], makers[scenario], per_second, args.duration, cpu_of)
                phase.rate = rate
                phases.append(phase)
                r = phase.row()
                achieved = r["achieved"] * (500 if scenario == "outbound" else 1)
                print(
                    f"{scenario:12} {rate:6.0f}/s achieved {achieved:7.0f}"
                    f"  p50 {r['p50_ms']:7.2f}  p99 {r['p99_ms']:8.2f}  p99.9 {r['p999_ms']:8.2f} ms"
                    f"  errors {phase.errors}  send lag p99 {r['send_lag_p99_ms']:.2f} ms"
                    f"  cpu% server {r['cpu_server_pct']:.0f} redis {r['cpu_redis_pct']:.0f}"
                    f" gen {r['cpu_generator_pct']:.0f}",
                    flush=True,
                )
    finally:
        for pool in pools.values():
            pool.close()
    return phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", type=float, nargs="+", default=[200, 500, 1000])
    parser.add_argument("--duration", type=float, default=20, help="seconds per scenario and rate")
    parser.add_argument(
        "--scenarios",
        nargs="+",
        default=["hello", "web", "call_center", "outbound"],
        choices=["hello", "web", "call_center", "outbound"],
    )
    parser.add_argument("--workers", type=int, default=1, help="nba serve --workers")
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--actions", type=int, default=0, help="generated actions (0: the shipped rules/)")
    parser.add_argument(
        "--redis",
        help="an already seeded Redis (loadtests/seed.py); default: a private one with --customers demo customers",
    )
    parser.add_argument("--max-connections", type=int, default=256)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    procs: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rules = generate(Path(tmp) / "rules", args.actions, seed=1) if args.actions else ROOT / "rules"
        redis = None if args.redis else RedisServer(Path(tmp) / "redis", persist=False)
        url = args.redis or redis.start()  # type: ignore[union-attr]
        try:
            nba_port, hello_port = free_port(), free_port()
            env = {
                **os.environ,
                "NBA_REDIS_URL": url,
                "NBA_PORT": str(nba_port),
                "NBA_HOST": "127.0.0.1",
                "NBA_LOG_LEVEL": "WARNING",
                "NBA_DEMO_DAYS": "0",  # no simulated past seeding in the background while it is measured
            }
            demo = [] if args.redis else ["--demo-customers", str(args.customers)]
            server = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "nba.cli",
                    "serve",
                    "--rules",
                    str(rules),
                    "--workers",
                    str(args.workers),
                    *demo,
                ],
                env=env,
                cwd=tmp,
            )
            hello = subprocess.Popen([sys.executable, str(HERE / "hello.py"), "--port", str(hello_port)])
            procs += [server, hello]
            wait_http(f"http://127.0.0.1:{nba_port}/readyz", timeout=600)
            wait_http(f"http://127.0.0.1:{hello_port}/hello")
            redis_pid = server_pid(url)
            # "server" CPU is the hello process in hello's phases, nba's processes (all workers) in nba's
            pids = {
                "nba": lambda: children(server.pid),
                "hello": lambda: children(hello.pid),
                "redis": lambda: [redis_pid],
            }
            phases = asyncio.run(drive(args, {"nba": nba_port, "hello": hello_port}, pids))
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
            if redis is not None:
                redis.stop()
    print(
        f"\n{os.cpu_count()} cores shared by nba ({args.workers} worker(s)), Redis, hello-world and this "
        f"generator; {args.duration:.0f} s per phase; rules: {args.actions or 'shipped'} actions; "
        f"{args.customers:,} customers"
    )
    by = {(p.scenario, p.rate): p.row() for p in phases}
    for rate in args.rates:
        base = by.get(("hello", rate))
        for scenario in args.scenarios:
            r = by.get((scenario, rate))
            if r is None or base is None or scenario == "hello" or scenario == "outbound":
                continue
            print(
                f"at {rate:.0f}/s {scenario}: p99 {r['p99_ms']:.2f} ms = {r['p99_ms'] / base['p99_ms']:.2f}x "
                f"hello's {base['p99_ms']:.2f} ms; p50 {r['p50_ms'] / base['p50_ms']:.2f}x; "
                f"server CPU {r['cpu_server_us_per_req']:.0f} us/request (hello {base['cpu_server_us_per_req']:.0f})"
            )
    if args.out:
        rows = [{"scenario": p.scenario, **p.row()} for p in phases]
        args.out.write_text(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
