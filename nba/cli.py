"""Command line: argument parsing and wiring only."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import gzip
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.process
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from aiohttp import web
from redis.exceptions import RedisError

from nba import WORKER_METRICS_DIR, __version__, logs
from nba.access.apikeys import DEFAULT_RATE
from nba.access.audit import ACTIONS as AUDIT_ACTIONS
from nba.access.roles import Principal, Role
from nba.access.service import is_loopback_name
from nba.concurrency import run_bounded
from nba.errors import RulesInvalid
from nba.rules.load import load_rulebook
from nba.rules.rulebook import Rulebook
from nba.runtime.embedded_redis import (
    DataDirInUse,
    DataDirUnusable,
    RedisNotFound,
    RedisServer,
    data_dir_in_use,
    data_dir_password,
)
from nba.settings import DEFAULT_DAYS, MOST_DAYS, Settings, SettingsError, mask_url

if TYPE_CHECKING:
    from typing import TypeAlias

    from redis import Redis, RedisCluster

    from nba.customers import bulk, sync
    from nba.customers.service import Customers

    AnyRedis: TypeAlias = Redis | RedisCluster

    from nba.access.service import AccessControl
    from nba.runtime.supervision import Supervision
    from nba.store.redis import Store

log = logging.getLogger("nba")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="nba", description="Real-time next-best-action decisioning server")
    parser.add_argument("--version", action="version", version=f"nba {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP server (embedded redis-server unless NBA_REDIS_URL is set)")
    serve.add_argument("--host", help="listen address (NBA_HOST, default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="listen port (NBA_PORT, default 8080)")
    serve.add_argument("--rules", type=Path, help="rules directory (NBA_RULES_DIR, default ./rules)")
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="server processes sharing the port (SO_REUSEPORT; NBA_WORKERS, default 1)",
    )
    serve.add_argument(
        "--insecure-open",
        action="store_true",
        default=None,
        help="serve without API keys also on a non-loopback address (NBA_INSECURE_OPEN=1): anyone who can "
        "reach it may do everything",
    )
    serve.add_argument(
        "--demo-customers",
        type=int,
        default=0,
        metavar="N",
        help="seed N reproducible demo customers (c-1000 ...) at start-up",
    )
    serve.add_argument(
        "--demo-days",
        type=_demo_days,
        default=None,
        metavar="D",
        help=f"with --demo-customers: also seed D days of simulated traffic through the real decisions and events, "
        f"in the background, once per Redis (NBA_DEMO_DAYS, default {DEFAULT_DAYS}; 0: none)",
    )
    rules = sub.add_parser("rules", help="rule set tools")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True)
    check = rules_sub.add_parser("check", help="validate a rules directory; exit 1 when invalid")
    check.add_argument("directory", nargs="?", type=Path, default=None)
    rules_sub.add_parser("rollback", help="make the previously published rule set current again (all processes)")
    log_parser = sub.add_parser("log", help="decision logs")
    log_sub = log_parser.add_subparsers(dest="log_command", required=True)
    export = log_sub.add_parser("export", help="write every decision record with its rewards as JSON lines")
    export.add_argument("--out", type=Path, default=None, help="file to write (default: standard output)")
    evaluate = sub.add_parser(
        "evaluate",
        help="off-policy estimate of a candidate policy on exported logs; exit 3 when overlap is too poor",
    )
    evaluate.add_argument("log", type=Path, help="decision records from `nba log export`")
    evaluate.add_argument("--rules", type=Path, default=None, help="the candidate's rules (default: NBA_RULES_DIR)")
    evaluate.add_argument(
        "--model",
        choices=["priors", "redis"],
        default="redis",
        help="the candidate's model: the current statistics in Redis, or the priors alone",
    )
    evaluate.add_argument(
        "--candidate",
        type=Path,
        default=None,
        help="a candidate given as probabilities per logged record (JSON lines; docs/evaluation.md) instead of rules",
    )
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")
    evaluate.add_argument("--force", action="store_true", help="report even where overlap is too poor (exit 0)")
    keys_parser = sub.add_parser("keys", help="API keys (docs/access.md)")
    keys_sub = keys_parser.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it (once: only its hash is kept)")
    create.add_argument("--name", required=True, help="who or what uses it (shown in the audit trail)")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--channel", action="append", default=[], help="channel role: a channel it may use (repeat)")
    create.add_argument(
        "--origin", action="append", default=[], help="a web page origin that may call with it (CORS; repeat)"
    )
    create.add_argument("--expires", help="a duration (90d, 12h, 30m) or an ISO 8601 date or time")
    create.add_argument(
        "--rate",
        type=float,
        default=DEFAULT_RATE,
        help=f"requests per second (default {DEFAULT_RATE:.0f}; 0: no limit)",
    )
    create.add_argument(
        "--unsigned-customers",
        action="store_true",
        help="with --origin: no customer tokens (any page holding the key may act for any customer id)",
    )
    keys_sub.add_parser("list", help="list the keys (never their secrets)")
    token = keys_sub.add_parser("token", help="sign a customer token for a browser key (what your server does)")
    token.add_argument("key_id")
    token.add_argument("customer_id")
    token.add_argument("--ttl", type=int, default=3600, help="seconds it is valid (default 3600, at most 7 days)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key: every server refuses it within about a second")
    revoke.add_argument("key_id")
    audit_parser = sub.add_parser("audit", help="read the audit trail (erasures, rule changes, key changes)")
    audit_parser.add_argument("--action", choices=list(AUDIT_ACTIONS))
    audit_parser.add_argument("--customer", help="only the erasure of this customer id (matched by its keyed hash)")
    audit_parser.add_argument("--limit", type=int, default=1000)
    audit_parser.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    customers = sub.add_parser("customers", help="customer profiles in bulk")
    customers_sub = customers.add_subparsers(dest="customers_command", required=True)
    imports = customers_sub.add_parser(
        "import",
        help="load profiles from CSV or JSON lines (gzip too; - for standard input): checked as PUT checks them; "
        "exit 1 when any record was rejected (listed in the reject file)",
    )
    imports.add_argument("file", help="a .csv, .jsonl or .ndjson file (optionally .gz), or - for standard input")
    imports.add_argument("--format", choices=["csv", "jsonl"], help="needed for standard input or another name")
    imports.add_argument(
        "--mode", choices=["replace", "merge"], default="replace", help="per record, as PUT (replace) or PATCH"
    )
    imports.add_argument("--rejects", type=Path, help="where rejected records are listed (default: FILE.rejects)")
    imports.add_argument("--concurrency", type=int, default=256, help="records in flight at once")
    imports.add_argument(
        "--resume",
        action="store_true",
        help="skip what an interrupted import of this same file did (FILE.checkpoint); rejects are appended",
    )
    imports.add_argument(
        "--full-sync",
        action="store_true",
        help="the file is every customer: erase (as DELETE) those with a profile that are not in it; exit 3 when "
        "nothing was erased for safety (--max-delete, a rejected line naming no customer, a file cut off)",
    )
    imports.add_argument(
        "--max-delete",
        default="5%",
        help="a full sync erases nothing when it would erase more than this: a share of the customers with a "
        "profile before the run (default 5%%) or a number",
    )
    imports.add_argument(
        "--dry-run",
        action="store_true",
        help="check every record and report what would change (new, changed, unchanged, rejected, erased); "
        "write nothing",
    )
    test = rules_sub.add_parser("test", help="run the rule tests in DIR/tests/*.yaml; exit 1 on a failure")
    test.add_argument("directory", nargs="?", type=Path, default=None)
    test.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")
    _outbound_parser(sub)
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:  # `nba audit | head`: the reader is gone, which is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"nba: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log_level, settings.log_format, settings.access_log)
    try:
        if args.command == "log":
            return asyncio.run(log_export(settings, args.out))
        if args.command == "evaluate":
            return asyncio.run(evaluate_logs(settings, args))
        if args.command == "rules" and args.rules_command == "rollback":
            return asyncio.run(rules_rollback(settings))
        if args.command == "keys":
            return asyncio.run(keys_command(settings, args))
        if args.command == "audit":
            return asyncio.run(audit_command(settings, args))
        if args.command == "customers":
            _install_uvloop()  # the import is Python-bound: uvloop's cheaper futures and writes show
            return asyncio.run(customers_import(settings, args))
        if args.command == "outbound":
            return asyncio.run(outbound_run(settings, args))
    except NoRedis as exc:
        print(exc, file=sys.stderr)
        return 2
    except RedisError as exc:  # a stale var/redis/url of a server that crashed, a Redis that went away
        print(f"nba: Redis did not answer: {exc.__class__.__name__}: {mask_url(str(exc))}", file=sys.stderr)
        return 2
    if args.command == "rules" and args.rules_command == "test":
        return rules_test(args.directory or settings.rules_dir, verbose=args.verbose)
    if args.command == "rules":
        return rules_check(args.directory or settings.rules_dir)
    return run_server(settings, args)


# exit codes of `nba customers import`
IMPORT_REJECTED = 1  # some records were rejected (listed in the reject file); the rest is imported
IMPORT_FAILED = 2  # the file cannot be imported (or stopped being readable part-way)
SYNC_REFUSED = 3  # a full sync erased nothing, for safety (the import itself is done)


async def customers_import(settings: Settings, args: argparse.Namespace) -> int:
    """`nba customers import`: see nba/customers/bulk.py and nba/customers/sync.py."""
    from nba.customers import bulk, sync

    fmt = args.format or bulk.format_of(args.file)
    problem = None
    if fmt is None:
        problem = f"say --format csv or jsonl: {args.file!r} does not say which"
    elif not 1 <= args.concurrency <= 10_000:
        problem = "--concurrency must be between 1 and 10000"
    elif args.resume and args.file == "-":
        problem = "--resume needs a file (standard input cannot be read again)"
    elif args.resume and args.dry_run:
        problem = "--dry-run reads the whole file: it does not --resume"
    try:
        max_delete = sync.MaxDelete.parse(args.max_delete)
    except ValueError as exc:
        problem = problem or str(exc)
    if problem is not None or fmt is None:
        print(f"nba: {problem}", file=sys.stderr)
        return IMPORT_FAILED
    try:
        source = bulk.open_source(args.file)
        checkpoint = None if args.file == "-" or args.dry_run else bulk.Checkpoint(Path(args.file))
        if checkpoint is not None and args.resume and checkpoint.resume():
            print(f"resuming after line {checkpoint.skip_through}", file=sys.stderr)
    except OSError as exc:
        print(f"nba: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return IMPORT_FAILED
    except bulk.SourceInvalid as exc:
        print(f"nba: {exc}", file=sys.stderr)
        return IMPORT_FAILED
    rejects = args.rejects or Path("rejects.txt" if args.file == "-" else f"{args.file}.rejects")
    if not args.resume and not args.dry_run:
        rejects.unlink(missing_ok=True)
    with source.text, bulk.RejectFile(rejects) as reject_file:
        reject: Callable[[bulk.Rejected], None] = (lambda r: None) if args.dry_run else reject_file
        outcome = await _import(settings, args, source, fmt, reject, checkpoint, max_delete)
    if outcome is None:
        return IMPORT_FAILED
    summary, sync_refused = outcome
    if checkpoint is not None:
        checkpoint.remove()  # complete: nothing to resume
    for r in summary.examples:
        print("\n".join(r.lines()), file=sys.stderr)
    if summary.rejected and not args.dry_run:
        print(f"{summary.rejected} rejected record(s) are listed in {rejects}", file=sys.stderr)
    return SYNC_REFUSED if sync_refused else IMPORT_REJECTED if summary.rejected else 0


async def _import(
    settings: Settings,
    args: argparse.Namespace,
    source: bulk.Source,
    fmt: str,
    reject: Callable[[bulk.Rejected], None],
    checkpoint: bulk.Checkpoint | None,
    max_delete: sync.MaxDelete,
) -> tuple[bulk.Summary, bool] | None:
    """The summary, and whether a full sync refused to erase; None when the file could not be imported."""
    from nba.customers import bulk, sync
    from nba.customers.service import Customers
    from nba.live import Live
    from nba.metrics import Metrics

    async with admin_store(settings, "import customers into", start_embedded=True) as store:
        live = Live(load_rulebook(settings.rules_dir), store, Metrics())
        await live.sync_rules()  # the rules the servers use, when some were published
        rulebook = live.snapshot.rulebook
        customers = Customers(live, store, time.time)
        full = (
            sync.FullSync(await sync.profiled(store), max_delete, int(time.time() * 1000)) if args.full_sync else None
        )
        lines = bulk.Lines(source.text)
        run = bulk.Import(
            customers,
            merge=args.mode == "merge",
            reject=reject,
            concurrency=args.concurrency,
            seen=full.seen if full is not None else None,
            dry_run=args.dry_run,
        )
        try:
            summary = await run.run(
                bulk.read_records(lines, fmt, rulebook), progress=bulk.Progress(source), checkpoint=checkpoint
            )
        except (bulk.SourceInvalid, UnicodeDecodeError, csv.Error, EOFError, gzip.BadGzipFile) as exc:
            # EOFError: a gzip file cut off. Nothing is erased by a full sync of a file not read to its end
            print(f"nba: {args.file}: {exc}; nothing more was imported", file=sys.stderr)
            return None
        where = f"{store.description}, rules {rulebook.version}"
        if args.dry_run:
            records = summary.new + summary.changed + summary.unchanged + summary.rejected
            print(
                f"dry run, nothing written: of {records} record(s) {summary.new} new, {summary.changed} changed, "
                f"{summary.unchanged} unchanged, {summary.rejected} rejected; checked in {summary.seconds:.1f} s "
                f"against {where}",
                file=sys.stderr,
            )
        else:
            print(
                f"{summary.imported} profile(s) imported, {summary.rejected} rejected in {summary.seconds:.1f} s "
                f"({summary.imported / max(summary.seconds, 1e-9):.0f}/s) into {where}",
                file=sys.stderr,
            )
        refused = await _full_sync(args, customers, full, summary, lines.complete) if full is not None else False
    return summary, refused


async def _full_sync(
    args: argparse.Namespace, customers: Customers, full: sync.FullSync, summary: bulk.Summary, complete: bool
) -> bool:
    """Erase the customers the file does not name (nba/customers/sync.py); True when it refused to."""
    from nba.access import audit
    from nba.access.audit import Audit
    from nba.customers import sync

    held = len(full.before)
    limit = full.max_delete.limit(held)
    seen = full.seen
    gone = await sync.absent(customers.store, full.before, seen, keep=limit if not args.dry_run else sync.SAMPLE)
    reasons = sync.reasons_to_keep(summary, complete)
    if gone.count > limit:
        reasons.append(f"that is more than --max-delete {full.max_delete} allows ({limit} of {held} with a profile)")
    would = "would erase" if args.dry_run or reasons else "erasing"
    shown = sorted(gone.ids[: sync.SAMPLE])
    sample = f": {', '.join(shown)}{', ...' if gone.count > len(shown) else ''}" if shown else ""
    print(
        f"full sync: {gone.count} customer(s) with a profile are not in the file ({would}){sample}; "
        f"{len(seen)} distinct customer(s) in the file; ids kept in {seen.nbytes / 2**20:.1f} MiB",
        file=sys.stderr,
    )
    if reasons:
        print("full sync: nothing erased, because " + "; and ".join(reasons), file=sys.stderr)
        return True
    if args.dry_run or not gone.count:
        return False
    trail = Audit(customers.store, time.time)
    who = command_line_user()
    detail = f"full sync of {Path(args.file).name if args.file != '-' else 'standard input'}"

    async def audited(customer_id: str) -> None:
        # the entry DELETE writes (action and keyed hash of the id), with the run named in its detail
        await trail.record(who, audit.ERASE, await trail.subject(customer_id), detail)

    done = await sync.erase_absent(customers, gone.ids, full.started_ms, audited)
    kept = f"; {len(done.kept)} kept: written while the sync ran" if done.kept else ""
    print(f"full sync: {done.erased} customer(s) erased (each in `nba audit`){kept}", file=sys.stderr)
    return False


def rules_check(directory: Path) -> int:
    try:
        rb = load_rulebook(directory)
    except RulesInvalid as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"{len(exc.problems)} problem(s) in {directory}", file=sys.stderr)
        return 1
    print(
        f"{directory}: ok, version {rb.version}: {len(rb.actions)} actions, {len(rb.segments)} segments, "
        f"{len(rb.channels)} channels"
    )
    return 0


def rules_test(directory: Path, *, verbose: bool = False) -> int:
    from nba.evaluation.rule_tests import run_all, uncovered

    try:
        rb = load_rulebook(directory)
    except RulesInvalid as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    outcomes, problems = run_all(rb, directory)
    for problem in problems:
        print(problem, file=sys.stderr)
    failed = [o for o in outcomes if o.failures]
    for o in outcomes:
        if o.failures or verbose:
            print(o)
    missing = uncovered(rb, outcomes)
    if missing:
        print(f"not named by any case: {', '.join(missing)}")
    invalid = f", {len(problems)} invalid" if problems else ""
    print(f"{len(outcomes) - len(failed)} passed, {len(failed)} failed{invalid}")
    return 1 if failed or problems else 0


def redis_url_of(settings: Settings) -> str | None:
    """NBA_REDIS_URL, or the embedded server a running `nba serve` started under the data directory."""
    if settings.redis_url:
        return settings.redis_url
    marker = settings.data_dir / "redis" / "url"
    # a server killed with -9 leaves its marker behind: only a directory some process holds is served
    if not marker.exists() or not data_dir_in_use(settings.data_dir / "redis"):
        return None
    return marker.read_text(encoding="utf-8").strip()


class NoRedis(Exception):
    """An admin command found no Redis to work on; main() says why and exits 2."""


@contextlib.asynccontextmanager
async def admin_store(settings: Settings, purpose: str, *, start_embedded: bool = False) -> AsyncIterator[Store]:
    """The store an admin command works on, closed after it. With `start_embedded`, and neither
    NBA_REDIS_URL nor a running `nba serve`, the embedded Redis of the data directory is started for the
    command (so keys can be created before the first start)."""
    from nba.app import redis_client
    from nba.store.redis import Store

    url = redis_url_of(settings)
    embedded: RedisServer | None = None
    if url is None and start_embedded:
        directory = settings.data_dir / "redis"
        try:
            embedded = RedisServer(directory, persist=True, password=data_dir_password(directory))
            url = await asyncio.to_thread(embedded.start)
        except (RedisNotFound, DataDirInUse, DataDirUnusable) as exc:
            raise NoRedis(f"nba: {exc}") from None
    if url is None:
        raise NoRedis(f"nba: no Redis to {purpose}: set NBA_REDIS_URL (or run this next to a running `nba serve`)")
    store = Store(redis_client(url, settings.redis_timeout))
    store.description = (
        f"the Redis of {settings.data_dir} (started for this command; `nba serve` uses it)"
        if embedded is not None
        else f"Redis {mask_url(url)}"
    )
    try:
        yield store
    finally:
        await store.close()
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)


def command_line_user() -> Principal:
    """Who runs an admin command, as the audit trail names it."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return Principal("cli", f"cli:{user}@{socket.gethostname()}", Role.ADMIN)


async def keys_command(settings: Settings, args: argparse.Namespace) -> int:
    from nba.access.apikeys import KeyRequest
    from nba.access.service import AccessControl
    from nba.errors import InvalidRequest, NotFound
    from nba.metrics import Metrics

    async with admin_store(settings, "keep keys in", start_embedded=True) as store:
        where = store.description
        access = AccessControl(store, Metrics(), announce=False)
        if args.keys_command == "list":
            keys = await access.list_keys()
            print(
                f"{'id':<12}  {'name':<20} {'role':<9} {'channels':<16} {'rate/s':>9}  {'last used':<25} "
                f"{'expires':<25} origins"
            )
            for k in keys:
                p = k.public()
                origins = ",".join(k.origins) + (" (customer tokens)" if k.signing else "") if k.origins else "-"
                print(
                    f"{k.id:<12}  {k.name[:20]:<20} {k.role:<9} {','.join(k.channels) or '-':<16} "
                    f"{f'{k.rate:g}' if k.rate else 'unlimited':>9}  {p['last_used'] or 'never (or < 5 s ago)':<25} "
                    f"{p['expires'] or 'never':<25} {origins}"
                )
            print(f"{len(keys)} key(s)", file=sys.stderr)
            return 0
        if args.keys_command == "revoke":
            try:
                await access.revoke_key(args.key_id, command_line_user())
            except NotFound as exc:
                print(f"nba: {exc.detail}", file=sys.stderr)
                return 1
            print(f"revoked {args.key_id}; every server refuses it within about a second", file=sys.stderr)
            return 0
        channels = await _known_channels(settings, store)
        if args.keys_command == "token":
            return await _sign_token(access, args)
        req = KeyRequest(
            args.name,
            args.role,
            tuple(args.channel),
            tuple(args.origin),
            args.expires,
            args.rate,
            args.unsigned_customers,
        )
        try:
            key, secret = await access.create_key(req, channels, command_line_user())
        except InvalidRequest as exc:
            for e in exc.errors:
                print(f"nba: {e.field}: {e.message}", file=sys.stderr)
            return 2
    print(secret)
    print(
        f"created key {key.id} ({key.name}, {key.role}) in {where}. The line above is the key: keep it now, "
        "it is not stored and cannot be shown again. Send it as: Authorization: Bearer <key>",
        file=sys.stderr,
    )
    if key.signing:
        print(key.signing)
        print(
            "The second line is its signing secret: your server signs customer tokens with it, for pages to send "
            "in the Nba-Customer-Token header (docs/access.md; nba keys token signs one)",
            file=sys.stderr,
        )
    return 0


async def _sign_token(access: AccessControl, args: argparse.Namespace) -> int:
    from nba.access import customer_token

    await access.refresh(force=True)
    key = access.keyring.keys.get(args.key_id)
    if key is None or not key.signing:
        print(f"nba: no key {args.key_id} with customer tokens", file=sys.stderr)
        return 1
    if not 0 < args.ttl <= customer_token.MAX_LIFETIME:
        print(f"nba: --ttl must be 1 to {customer_token.MAX_LIFETIME} seconds", file=sys.stderr)
        return 2
    print(customer_token.sign(key.signing, key.id, args.customer_id, int(time.time()) + args.ttl))
    return 0


async def _known_channels(settings: Settings, store: Store) -> list[str]:
    """The channels of the rules every server runs (published in Redis), else of the rules directory."""
    from nba.rules.directory import rulebook_from_files

    version = await store.current_rules_version()
    files = await store.rules_files(version) if version else None
    if files is not None:
        with contextlib.suppress(RulesInvalid):
            return list(rulebook_from_files(files).channels)
    try:
        return list(load_rulebook(settings.rules_dir).channels)
    except RulesInvalid:
        return []


async def audit_command(settings: Settings, args: argparse.Namespace) -> int:
    import dataclasses

    import orjson

    from nba.access.audit import Audit

    async with admin_store(settings, "read the audit trail of", start_embedded=True) as store:
        entries = await Audit(store, time.time).read(limit=args.limit, action=args.action, customer_id=args.customer)
    for e in entries:
        if args.json:
            print(orjson.dumps(dataclasses.asdict(e)).decode())
        else:
            print(f"{e.at}  {e.action:<15} {e.target:<34} by {e.actor} ({e.role}, {e.actor_id}) {e.detail}")
    if args.customer is not None:
        print(
            f"{args.customer}: {'erased' if entries else 'no erasure recorded'} (within the audit retention)",
            file=sys.stderr,
        )
    return 0


async def rules_rollback(settings: Settings) -> int:
    from nba.access import audit
    from nba.access.audit import Audit

    async with admin_store(settings, "roll back in") as store:
        previous = await store.current_rules_version()
        version = await store.rollback_rules()
        source = await store.rules_source_version()
        if version is not None:
            await Audit(store, time.time).record(command_line_user(), audit.RULES_ROLLBACK, version, f"from {previous}")
    if version is None:
        print("nba: nothing to roll back to: only one rule set was ever published", file=sys.stderr)
        return 1
    print(f"rules version {version} is current again; every process switches within about a second")
    if source is not None and source != version:
        print(
            f"note: the rules directory still holds version {source}. Servers keep {version} until those "
            f"files change or POST /v1/rules/reload publishes them; to make the rollback permanent, change "
            f"the files back to version {version} (`nba rules check` prints a directory's version).",
            file=sys.stderr,
        )
    return 0


async def log_export(settings: Settings, out: Path | None) -> int:
    """Decision records for offline evaluation: one JSON object per line, with `rewards` per action."""
    import orjson

    count = 0
    async with admin_store(settings, "export from") as store:
        with out.open("wb") if out is not None else contextlib.nullcontext(sys.stdout.buffer) as sink:
            async for customer_id in store.customers_with_decisions():
                for record in await store.decision_records(customer_id):
                    sink.write(orjson.dumps(record) + b"\n")
                    count += 1
    print(f"exported {count} decision records", file=sys.stderr)
    return 0


async def evaluate_logs(settings: Settings, args: argparse.Namespace) -> int:
    """Print the candidate's estimated reward per decision (IPS, SNIPS, doubly robust) with its overlap
    diagnostics; exit 3 when overlap is too poor to trust them (unless --force), 2 on bad input."""
    import orjson

    from nba.evaluation.candidate import Candidate, Configured, Probabilities
    from nba.evaluation.logs import read_logs
    from nba.evaluation.replay import render, replay, report
    from nba.learning.snapshot import build_snapshot

    candidate: Candidate
    if args.candidate is not None:
        try:
            candidate = Probabilities(args.candidate)
        except (OSError, ValueError) as exc:
            print(f"nba: the candidate probabilities cannot be used: {exc}", file=sys.stderr)
            return 2
    else:
        rules_dir = args.rules or settings.rules_dir
        try:
            rb = load_rulebook(rules_dir)
        except RulesInvalid as exc:
            print(f"nba: the candidate rules are invalid:\n{exc}", file=sys.stderr)
            return 2
        data = None
        if args.model == "redis":
            async with admin_store(settings, "read the model from") as store:
                data = await store.model_data()
        candidate = Configured(build_snapshot(rb, data, now=time.time()), f"{rules_dir} with the model of {args.model}")
    try:
        records = _json_lines(args.log)
    except (OSError, ValueError) as exc:
        print(f"nba: cannot read the log: {exc}", file=sys.stderr)
        return 2
    logs, unreadable = read_logs(records)
    result = report(replay(logs, candidate))
    result["skipped"] = dict(unreadable + Counter(result["skipped"]))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() if args.json else render(result))
    if result["refused"] and not args.force:
        print("nba: not judged: overlap too poor (see above); --force reports it anyway", file=sys.stderr)
        return 3
    return 0


def _json_lines(path: Path) -> list[Any]:
    import orjson

    out = []
    with path.open("rb") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(orjson.loads(line))
                except orjson.JSONDecodeError as exc:
                    raise ValueError(f"{path}:{n}: not a JSON record: {exc}") from None
    return out


def run_server(settings: Settings, args: argparse.Namespace) -> int:
    from nba.http.server import PortInUse, listen
    from nba.runtime.supervision import RedisSupervisor, Supervision

    rules_dir = args.rules or settings.rules_dir
    try:
        load_rulebook(rules_dir)  # refuse to start on an invalid set before anything else
    except RulesInvalid as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        print(f"nba: not starting: {len(exc.problems)} problem(s) in {rules_dir}", file=sys.stderr)
        return 2
    host, port = args.host or settings.host, args.port or settings.port
    workers = args.workers or settings.workers
    insecure_open = bool(args.insecure_open) or settings.insecure_open
    try:
        # before Redis is started: a busy port must not cost the first server its data directory. One
        # process binds the socket it serves on; workers bind their own (SO_REUSEPORT), so this is a probe
        sock = listen(host, port)
    except OSError as exc:
        why = exc.strerror if isinstance(exc, PortInUse) else f"cannot listen on {host}:{port}: {exc.strerror}"
        print(f"nba: {why}", file=sys.stderr)
        return 2
    if workers > 1:
        sock.close()
    supervision = Supervision()
    supervisor: RedisSupervisor | None = None
    url = settings.redis_url
    try:
        if url is None:
            directory = settings.data_dir / "redis"
            try:
                embedded = RedisServer(
                    directory,
                    persist=True,
                    password=data_dir_password(directory),
                    maxmemory=settings.redis_maxmemory,
                    fsync_always=settings.durability == "fsync",
                )
                url = embedded.start()
            except (RedisNotFound, DataDirInUse, DataDirUnusable) as exc:
                print(f"nba: {exc}", file=sys.stderr)
                return 3 if isinstance(exc, RedisNotFound) else 2
            log.info("embedded redis-server on %s, data in %s", mask_url(url), embedded.data_dir)
            supervisor = RedisSupervisor(embedded, supervision)
            supervisor.start()
        elif settings.redis_maxmemory:
            log.warning("NBA_REDIS_MAXMEMORY applies to the embedded redis-server only; configure your Redis's own")
        open_without_keys = is_loopback_name(host) or insecure_open
        # what must hold of a Redis nba did not start itself, or of any Redis a server that may not run open uses
        checks = _durability_checks(settings.durability, embedded=supervisor is not None)
        if isinstance(checks, str):
            print(f"nba: {checks}", file=sys.stderr)
            return 2
        if not open_without_keys:
            checks.append(_keys_problem)
        refusal = _start_checks(url, settings, checks) if checks else None
        if refusal:
            print(f"nba: not starting on {host}: {refusal}", file=sys.stderr)
            return 2
        if insecure_open and not is_loopback_name(host):
            log.warning("--insecure-open on %s: without API keys, anyone who can reach it may do everything", host)
        serving = Serving(
            rules_dir,
            url,
            settings,
            (host, port),
            open_without_keys,
            insecure_open,
            workers,
            settings.demo_days if args.demo_days is None else args.demo_days,
        )
        if workers == 1:
            _serve(serving, args.demo_customers, sock=sock, supervision=supervision.shared)
        else:
            return _serve_workers(serving, args.demo_customers, supervision)
    finally:
        sock.close()
        if supervisor is not None:
            supervisor.stop()
    return 0


def _durability_checks(durability: str, *, embedded: bool) -> list[Callable[[AnyRedis], str | None]] | str:
    """What to check of the Redis for NBA_DURABILITY before serving; a refusal as text."""
    if durability == "fsync" and not embedded:  # nba's own redis-server is started with appendfsync always
        return [_fsync_problem]
    if durability == "replica":
        if embedded:
            return "NBA_DURABILITY=replica needs a Redis with replicas: set NBA_REDIS_URL (docs/redis.md)"
        return [_replica_warning]
    return []


def _start_checks(url: str, settings: Settings, checks: list[Callable[[AnyRedis], str | None]]) -> str | None:
    """Run what must hold before serving against a Redis that may be starting beside us (compose,
    Kubernetes: it gets STARTUP_PATIENCE, as the server itself does); the first refusal, or None."""
    import redis

    from nba.app import STARTUP_PATIENCE
    from nba.store.client import sync_client

    try:
        client = sync_client(url, settings.redis_timeout)
    except ValueError as exc:
        return f"NBA_REDIS_URL cannot be used: {mask_url(str(exc))}"
    give_up = time.monotonic() + STARTUP_PATIENCE
    try:
        while True:
            try:
                client.ping()
                break
            except redis.AuthenticationError:
                raise
            except redis.RedisError as exc:
                if time.monotonic() > give_up:
                    return f"Redis does not answer ({exc.__class__.__name__}: {mask_url(str(exc))})"
                log.warning("Redis not answering yet (%s); retrying", exc.__class__.__name__)
                time.sleep(0.5)
        for check in checks:
            refusal = check(client)
            if refusal:
                return refusal
        return None
    except redis.RedisError as exc:
        return f"cannot ask Redis ({exc.__class__.__name__}: {mask_url(str(exc))})"
    finally:
        client.close()


def _replica_warning(client: AnyRedis) -> None:
    """NBA_DURABILITY=replica answers events 503 while their primary has no replica: say so at start."""
    import redis

    try:
        primaries = (
            [(n.name, client.info("replication", target_nodes=n)) for n in client.get_primaries()]  # type: ignore[no-untyped-call]
            if isinstance(client, redis.RedisCluster)
            else [("Redis", client.info("replication"))]
        )
    except redis.ResponseError:
        return None
    for name, info in primaries:
        if not int(info.get("connected_slaves", 0)):
            log.warning("NBA_DURABILITY=replica: %s has no replica now; its events are answered 503 until it has", name)
    return None


def _keys_problem(client: AnyRedis) -> str | None:
    """Why a server that must not run open cannot start (no API key), or None."""
    from nba.store import keys

    if client.hlen(keys.ACCESS_KEYS):
        return None
    return (
        "no API keys exist, and without them anyone who can reach this address could do everything. "
        "Create one first (nba keys create --name NAME --role admin, see docs/access.md), bind to "
        "127.0.0.1, or pass --insecure-open (NBA_INSECURE_OPEN=1) if something in front of nba controls access"
    )


def _node_configs(client: AnyRedis, *names: str) -> list[tuple[str, dict[str, str]]]:
    """CONFIG GET of `names` on the server, or on every node of a cluster: (node, settings) pairs."""
    import redis

    if isinstance(client, redis.RedisCluster):
        out = []
        for node in client.get_nodes():  # type: ignore[no-untyped-call]
            config: dict[str, str] = {}
            for name in names:
                config.update(cast(dict[str, str], client.config_get(name, target_nodes=node)))
            out.append((node.name, config))
        return out
    single: dict[str, str] = {}
    for name in names:
        single.update(cast(dict[str, str], client.config_get(name)))
    return [("Redis", single)]


def _fsync_problem(client: AnyRedis) -> str | None:
    """Why the configured Redis (every node of a cluster) cannot give NBA_DURABILITY=fsync (None: it does,
    or cannot be asked)."""
    import redis

    try:
        configs = _node_configs(client, "appendonly", "appendfsync")
    except redis.ResponseError:
        log.warning(
            "NBA_DURABILITY=fsync: this Redis does not allow CONFIG GET; make sure it runs with appendonly yes "
            "and appendfsync always"
        )
        return None
    for node, config in configs:
        if config.get("appendonly") != "yes" or config.get("appendfsync") != "always":
            return (
                f"NBA_DURABILITY=fsync needs a Redis with appendonly yes and appendfsync always; {node} has "
                f"appendonly {config.get('appendonly')}, appendfsync {config.get('appendfsync')} "
                "(set them, or use NBA_DURABILITY=memory)"
            )
    return None


@dataclass(frozen=True)
class Serving:
    """What every server process of one `nba serve` needs (picklable: workers are spawned)."""

    rules_dir: Path
    url: str
    settings: Settings
    address: tuple[str, int]
    open_without_keys: bool
    insecure_open: bool
    workers: int
    demo_days: int = 0  # with demo customers: days of simulated traffic (customers/demo_traffic.py)


def _serve(
    serving: Serving,
    demo: int,
    *,
    sock: socket.socket | None = None,
    supervision: Any = None,
) -> None:
    """One server process: its own event loop (uvloop when installed), its own Redis pool. A worker
    (no `sock`) binds its own socket with SO_REUSEPORT; it exits with code 2 when it cannot."""
    from nba.http.routes import GUARD
    from nba.http.server import PortInUse, fit_to_descriptors, listen, run
    from nba.runtime.supervision import Supervision

    settings = serving.settings
    if sock is None:  # a worker: the parent validated the rules, this process loads its own copy
        logs.configure(settings.log_level, settings.log_format, settings.access_log)
        try:
            sock = listen(*serving.address, reuse_port=True)
        except PortInUse as exc:
            log.error("%s", exc.strerror)
            sys.exit(2)
    rulebook = load_rulebook(serving.rules_dir)
    _install_uvloop()
    max_connections = fit_to_descriptors(settings.max_connections)
    app = _build(rulebook, serving, demo, max_connections, Supervision(supervision))
    # in-flight requests get shutdown_timeout to finish on SIGTERM/SIGINT (aiohttp's default is 60 s):
    # decisions have a 250 ms deadline, and a stop that hangs is worse than a cut request
    run(app, sock, app[GUARD], keepalive=settings.keepalive, shutdown_timeout=10.0)


def _serve_workers(serving: Serving, demo: int, supervision: Any) -> int:
    """N processes bound to one port with SO_REUSEPORT: the kernel spreads connections over them. They
    share rules and model through Redis. A worker that dies is started again (supervision.Backoff);
    Ctrl+C or SIGTERM stops them all gracefully."""
    from prometheus_client.multiprocess import mark_process_dead

    from nba.metrics import MULTIPROCESS_DIR
    from nba.runtime.supervision import Backoff

    workers, address = serving.workers, serving.address
    ctx = multiprocessing.get_context("spawn")
    # one scrape answers for every worker (nba/metrics.py): spawned workers import prometheus_client
    # afresh and find this directory
    metrics_dir = _worker_metrics_dir()
    os.environ[MULTIPROCESS_DIR] = os.environ[WORKER_METRICS_DIR] = metrics_dir

    def start(i: int) -> multiprocessing.process.BaseProcess:
        p = ctx.Process(
            target=_serve,
            args=(serving, demo if i == 0 else 0),
            kwargs={"supervision": supervision.shared},
            name=f"nba-worker-{i}",
        )
        p.start()
        return p

    procs = [start(i) for i in range(workers)]
    backoffs = [Backoff() for _ in range(workers)]
    log.info("%d workers on %s:%d", workers, *address)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # SIGINT too, explicitly: a shell starts background jobs with SIGINT ignored, and Python then installs
    # no KeyboardInterrupt handler, so `nba serve --workers 2 &` ignored Ctrl+C / kill -INT (its workers,
    # like a single-process server, handle it through aiohttp)
    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            multiprocessing.connection.wait([p.sentinel for p in procs])
            for i, p in enumerate(procs):
                if p.is_alive():
                    continue
                if p.exitcode == 2:  # it could not listen: restarting would not help
                    log.error("worker %d could not listen on %s:%d; stopping", i, *address)
                    return 2
                if p.pid is not None:  # its gauges go; its counters stay counted
                    mark_process_dead(p.pid, metrics_dir)  # type: ignore[no-untyped-call]
                pause = backoffs[i].next_pause()
                log.error(
                    "worker %d (pid %s) exited with code %s; starting it again in %.0f s", i, p.pid, p.exitcode, pause
                )
                time.sleep(pause)
                procs[i] = start(i)
                backoffs[i].started_now()
                supervision.count_restart("worker")
    except KeyboardInterrupt:
        pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        for p in procs:
            if p.is_alive() and p.pid is not None:
                os.kill(p.pid, signal.SIGINT)
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()
        os.environ.pop(MULTIPROCESS_DIR, None)
        os.environ.pop(WORKER_METRICS_DIR, None)
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def worker_metrics_parent() -> Path:
    """Where the workers' metric directories go: tmpfs where there is one, since every count writes there."""
    shm = Path("/dev/shm")
    return shm if os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


def _worker_metrics_dir() -> str:
    """A new directory for the workers' metric files, named after this process, so that one left behind
    by a server that was killed (no clean-up ran) is removed by the next start once its process is gone."""
    parent = worker_metrics_parent()
    for old in parent.glob("nba-metrics-*-*"):
        pid = old.name.split("-")[2]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists() and old.stat().st_uid == os.getuid():
            shutil.rmtree(old, ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"nba-metrics-{os.getpid()}-", dir=parent)


def _build(
    rulebook: Rulebook, serving: Serving, demo: int, max_connections: int, supervision: Supervision
) -> web.Application:
    from nba.app import AppOptions, create_app, redis_client
    from nba.http.routes import CUSTOMERS, LIVE, METRICS, STORE

    settings = serving.settings
    app = create_app(
        rulebook,
        redis_client(serving.url, settings.redis_timeout),
        AppOptions(
            rules_dir=serving.rules_dir,
            open_without_keys=serving.open_without_keys,
            loopback_callers_only=not serving.insecure_open,
            workers=serving.workers,
            decide_deadline=settings.decide_deadline,
            erase_rewrite=settings.erase_rewrite,
            durability=settings.durability,
            max_connections=max_connections,
            supervision=supervision,
        ),
    )
    if demo > 0:

        async def seed(app: web.Application) -> None:
            from nba.customers.demo import demo_population
            from nba.customers.demo_traffic import seed_traffic

            customers = app[CUSTOMERS]
            declared = app[LIVE].snapshot.rulebook.attributes  # a rule set may not know every demo attribute
            population = demo_population(demo)
            saves = (
                customers.save(cid, {k: v for k, v in attrs.items() if k in declared}, merge=False)
                for cid, attrs in population
            )
            await run_bounded(saves, 32)
            log.info("seeded %d demo customers (c-1000 .. c-%d)", demo, 999 + demo)
            if serving.demo_days > 0:  # in the background: the server is ready meanwhile
                traffic = seed_traffic(app[LIVE], app[STORE], app[METRICS], population, serving.demo_days)
                app[DEMO_TRAFFIC] = asyncio.create_task(traffic, name="demo-traffic")

        async def stop_seeding(app: web.Application) -> None:  # before the store closes (on_cleanup)
            task = app.get(DEMO_TRAFFIC)
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

        app.on_startup.append(seed)
        app.on_shutdown.append(stop_seeding)
    return app


DEMO_TRAFFIC: web.AppKey[asyncio.Task[object]] = web.AppKey("demo_traffic")


def _demo_days(text: str) -> int:
    days = int(text)
    if not 0 <= days <= MOST_DAYS:
        raise argparse.ArgumentTypeError(f"must be 0 to {MOST_DAYS} (events older than 30 days are refused)")
    return days


def _install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _outbound_progress(progress: Any, every: float = 2.0) -> None:
    """How far a run got, on standard error every `every` seconds."""
    from nba.terminal import StatusLine

    line = StatusLine()
    try:
        while True:
            await asyncio.sleep(every)
            p = progress.as_dict()
            text = f"{p['phase']}: {p['customers_read']} customers read"
            if p["to_record"]:
                text += f", {p['customers_recorded']} of {p['to_record']} done"
            line.show(text)
    finally:
        line.end()


def _outbound_parser(sub: Any) -> None:
    outbound = sub.add_parser("outbound", help="outbound selection within channel capacity (README)")
    outbound_sub = outbound.add_subparsers(dest="outbound_command", required=True)
    run = outbound_sub.add_parser(
        "run",
        help="choose actions for a population on a channel within its capacity; write the selection for lead "
        "management and record it (unless --dry-run)",
    )
    run.add_argument("--channel", required=True)
    who = run.add_mutually_exclusive_group()
    who.add_argument("--segment", help="only customers in this segment (default: everyone with a profile)")
    who.add_argument("--customers", type=Path, help="only the customer ids in this file, one per line")
    run.add_argument("--dry-run", action="store_true", help="report what would be chosen; reserve and record nothing")
    run.add_argument("--send-at", help="the earliest send time (ISO 8601; default now), moved past quiet hours")
    run.add_argument("--budget", type=float, help="the most the selections may cost together (actions' cost)")
    run.add_argument("--per-customer", type=int, help="actions per customer (default: the channel's default_limit)")
    run.add_argument("--include", default="", help="profile attributes to copy into each line, comma-separated")
    run.add_argument("--out", type=Path, help="the selection: .jsonl (default) or .csv; default outbound-RUN.jsonl")
    run.add_argument("--report", type=Path, help="also write the report as JSON here")
    run.add_argument("--seed", type=int, help="random seed (control-group orderings)")


async def outbound_run(settings: Settings, args: argparse.Namespace) -> int:
    """`nba outbound run`: see nba/outbound/run.py."""
    import orjson

    from nba.errors import Conflict, InvalidRequest
    from nba.live import Live
    from nba.metrics import Metrics
    from nba.outbound import report as report_text
    from nba.outbound.run import CSV_COLUMNS, OutboundRun, RunRequest, csv_row, parse_send_time

    ids: tuple[str, ...] | None = None
    if args.customers is not None:
        try:
            ids = tuple(line.strip() for line in args.customers.read_text().splitlines() if line.strip())
        except OSError as exc:
            print(f"nba: cannot read {args.customers}: {exc.strerror}", file=sys.stderr)
            return 2
    send_at = None
    if args.send_at is not None:
        parsed = parse_send_time(args.send_at, time.time())
        if isinstance(parsed, str):
            print(f"nba: --send-at {args.send_at!r} {parsed}", file=sys.stderr)
            return 2
        send_at = parsed
    req = RunRequest(
        channel=args.channel,
        segment=args.segment,
        customer_ids=ids,
        dry_run=args.dry_run,
        send_at=send_at,
        budget=args.budget,
        per_customer=args.per_customer,
        include=tuple(n.strip() for n in args.include.split(",") if n.strip()),
    )
    async with admin_store(settings, "run an outbound selection on", start_embedded=True) as store:
        live = Live(load_rulebook(settings.rules_dir), store, Metrics())
        await live.sync_rules()
        await live.refresh_model(force=True)
        run = OutboundRun(store, lambda: live.snapshot, req, seed=args.seed)
        out = args.out or Path(f"outbound-{run.run_id}.jsonl")
        as_csv = out.suffix.lower() == ".csv"
        written = 0
        with out.open("w", encoding="utf-8", newline="") as f:
            writer = csv.writer(f) if as_csv else None
            if writer is not None:
                writer.writerow([*CSV_COLUMNS, *req.include])

            async def sink(lines: list[dict[str, Any]]) -> None:
                nonlocal written
                written += len(lines)
                if writer is not None:
                    writer.writerows(csv_row(line, req.include) for line in lines)
                else:
                    f.write("".join(orjson.dumps(line).decode() + "\n" for line in lines))

            ticker = asyncio.ensure_future(_outbound_progress(run.progress))
            try:
                result = await run.run(sink)
            except InvalidRequest as exc:
                out.unlink(missing_ok=True)
                print(f"nba: {exc.detail}", file=sys.stderr)
                for e in exc.errors:
                    print(f"  {e.field}: {e.message}", file=sys.stderr)
                return 2
            except Conflict as exc:
                out.unlink(missing_ok=True)
                print(f"nba: {exc.detail}", file=sys.stderr)
                return 3
            finally:
                ticker.cancel()
        result["selection"] = {"file": str(out), "lines": written}
        now_ms = int(time.time() * 1000)
        doc = {
            "run_id": run.run_id,
            "state": "done",
            "request": req.as_doc(),
            "started_by": command_line_user().name,
            "started_ms": now_ms - int(result["seconds"]["total"] * 1000),
            "updated_ms": now_ms,
            "report": result,
        }
        await store.save_outbound_run(run.run_id, orjson.dumps(doc), now_ms - int(result["seconds"]["total"] * 1000))
    print(report_text.text(result), file=sys.stderr)
    print(f"{written} line(s) for lead management in {out}", file=sys.stderr)
    if args.report is not None:
        args.report.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
