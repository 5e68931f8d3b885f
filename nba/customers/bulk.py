"""CRM's bulk load of customer profiles: records read from CSV or JSON lines, checked against
rules/profile.yaml as PUT and PATCH /v1/customers check them, and written through the same
Customers.save, many at once (the store pipelines what is in flight). A bad record is reported with
its line and field and the import goes on; nothing of a bad record is written.

CSV: a header naming `customer_id` and profile attributes; a cell is converted by its attribute's type
(integer, number, boolean as true/false/1/0/yes/no, a list as values separated by `|`, flags as
`name=true|name=false`, string and date as written); an empty cell leaves the attribute out (replace:
absent; merge: unchanged). JSON lines: one `{"customer_id": ..., "attributes": {...}}` per line, the
body of PUT /v1/customers (and of PATCH with --mode merge, where null removes an attribute).
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import io
import re
import sys
import time
from array import array
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import orjson

from nba.concurrency import run_bounded
from nba.customers.service import Change, Customers
from nba.domain import check_id
from nba.errors import FieldError, InvalidRequest
from nba.rules.rulebook import Rulebook
from nba.terminal import StatusLine

FORMATS = ("csv", "jsonl")
MODES = ("replace", "merge")
LIST_SEPARATOR = "|"
_TRUE, _FALSE = frozenset({"true", "1", "yes"}), frozenset({"false", "0", "no"})


class SourceInvalid(ValueError):
    """The whole file cannot be imported (an unknown column, no customer_id): nothing is written."""


@dataclass(frozen=True)
class Record:
    line: int
    customer_id: str
    attributes: dict[str, Any]


@dataclass(frozen=True)
class Rejected:
    line: int
    errors: list[FieldError]
    # whose record it was, when a valid id could be read from it: a full sync must not take a bad record
    # for an absence (None: the line names no customer that can be told)
    customer_id: str | None = None

    def lines(self) -> list[str]:
        return [f"line {self.line}: {e.field}: {e.message}" for e in self.errors]


@dataclass
class Summary:
    imported: int = 0
    rejected: int = 0
    examples: list[Rejected] = field(default_factory=list)  # the first few rejected, to show
    seconds: float = 0.0
    done_through: int = 0  # every line up to this one is imported or rejected
    unidentified: int = 0  # rejected lines that name no customer (a full sync erases nothing then)
    first_unidentified: int = 0  # the line of the first of them
    # --dry-run: what the records would do (imported stays 0)
    new: int = 0
    changed: int = 0
    unchanged: int = 0


class Checkpoint:
    """How far an import of one file got, beside it (FILE.checkpoint): every line up to `done_through`
    is imported or rejected, so `--resume` skips them. Written every few seconds and when the import
    stops for any reason; removed when it completes. It names the file's size and modification time:
    a changed file is not resumed."""

    def __init__(self, source: Path):
        self.path = source.with_name(source.name + ".checkpoint")
        stat = source.stat()
        self.identity = {"file": source.name, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        self.skip_through = 0  # lines an earlier run did (resume)

    def resume(self) -> int:
        """Take up where the checkpoint says an earlier run got (nothing without one): that line."""
        if self.path.exists():
            saved = orjson.loads(self.path.read_bytes())
            if {k: saved.get(k) for k in self.identity} != self.identity:
                raise SourceInvalid(f"{self.identity['file']} changed since {self.path.name} was written: not resumed")
            self.skip_through = int(saved["done_through"])
        return self.skip_through

    def save(self, summary: Summary) -> None:
        data = {**self.identity, "done_through": summary.done_through}
        temporary = self.path.with_name(self.path.name + ".new")
        temporary.write_bytes(orjson.dumps(data))
        temporary.replace(self.path)  # never half written

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def format_of(path: str) -> str | None:
    """The format a file name implies (.csv, .jsonl or .ndjson, each optionally .gz)."""
    name = path.lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return "csv"
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    return None


@dataclass
class Source:
    text: IO[str]
    size: int | None  # bytes of the file (compressed, if it is), None for standard input
    position: Callable[[], int]  # bytes of the file read so far


def open_source(path: str) -> Source:
    """`path` as text, `-` for standard input; gzip recognised by its first bytes, not its name."""
    if path == "-":
        raw = sys.stdin.buffer
        size = None
    else:
        raw = Path(path).open("rb")  # noqa: SIM115 - closed with the text that wraps it
        size = Path(path).stat().st_size
    buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(cast(io.RawIOBase, raw))
    binary = cast(IO[bytes], gzip.GzipFile(fileobj=buffered)) if buffered.peek(2)[:2] == b"\x1f\x8b" else buffered
    # utf-8-sig: spreadsheets write a byte-order mark first ("CSV UTF-8"), which is not part of the header
    return Source(io.TextIOWrapper(binary, encoding="utf-8-sig", newline=""), size, buffered.tell)


class Lines:
    """The lines of a text, remembering whether the last one ended with a line break: an export cut off
    in the middle ends without one (a full sync then erases nothing)."""

    def __init__(self, text: Iterable[str]):
        self.text = text
        self.complete = True

    def __iter__(self) -> Iterator[str]:
        for line in self.text:
            self.complete = line.endswith(("\n", "\r"))
            yield line


def read_records(stream: Iterable[str], fmt: str, rulebook: Rulebook) -> Iterator[Record | Rejected]:
    if fmt == "csv":
        yield from _csv_records(stream, rulebook)
    else:
        yield from _json_records(stream)


def _csv_records(stream: Iterable[str], rulebook: Rulebook) -> Iterator[Record | Rejected]:
    reader = csv.reader(stream)
    try:
        header = next(reader)
    except StopIteration:
        return
    header = [h.strip() for h in header]
    if "customer_id" not in header:
        raise SourceInvalid("the CSV header has no customer_id column")
    unknown = [h for h in header if h != "customer_id" and h not in rulebook.attributes]
    if unknown:
        raise SourceInvalid(
            f"unknown column(s) {', '.join(unknown)}: the header names customer_id and attributes of "
            f"rules/profile.yaml ({', '.join(sorted(rulebook.attributes))})"
        )
    id_at = header.index("customer_id")
    for row in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in row):
            continue
        errors: list[FieldError] = []
        if len(row) != len(header):
            who = check_id(row[id_at], "customer_id", []) if id_at < len(row) else None
            yield Rejected(line, [FieldError("row", f"has {len(row)} cells; the header has {len(header)}")], who)
            continue
        cid = check_id(row[id_at], "customer_id", errors)
        attributes: dict[str, Any] = {}
        for name, cell in zip(header, row, strict=True):
            if name == "customer_id" or cell == "":
                continue
            value = cell_value(rulebook.attributes[name], cell)
            if isinstance(value, FieldError):
                errors.append(FieldError(f"attributes.{name}", value.message))
            else:
                attributes[name] = value
        yield Rejected(line, errors, cid) if errors or cid is None else Record(line, cid, attributes)


def cell_value(kind: str, cell: str) -> Any:
    """A CSV cell as the value of an attribute of `kind`; a FieldError (its message) when it is none."""
    text = cell.strip()
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        return FieldError("", f"{cell!r} is not {'a whole number' if kind == 'integer' else 'a number'}")
    if kind == "boolean":
        low = text.lower()
        if low in _TRUE or low in _FALSE:
            return low in _TRUE
        return FieldError("", f"{cell!r} is not true or false (also 1/0, yes/no)")
    if kind == "list":
        return [v.strip() for v in text.split(LIST_SEPARATOR) if v.strip()]
    if kind == "flags":
        flags: dict[str, bool] = {}
        for part in text.split(LIST_SEPARATOR):
            name, eq, flag = part.partition("=")
            low = flag.strip().lower()
            if not eq or not name.strip() or not (low in _TRUE or low in _FALSE):
                return FieldError("", f"{part!r} is not name=true or name=false (flags are separated by |)")
            flags[name.strip()] = low in _TRUE
        return flags
    return cell  # string and date: as written (checked like any write)


def _json_records(stream: Iterable[str], max_line: int | None = None) -> Iterator[Record | Rejected]:
    for line, text in enumerate(stream, start=1):
        if not text.strip():
            continue
        if max_line is not None and len(text.rstrip("\r\n")) > max_line:
            yield Rejected(line, [FieldError("line", f"longer than {max_line} characters")], _id_in(text[:300]))
            continue
        try:
            item = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            yield Rejected(line, [FieldError("line", f"not a JSON object: {exc}")], _id_in(text))
            continue
        if not isinstance(item, dict):
            yield Rejected(line, [FieldError("line", "not a JSON object")])
            continue
        errors: list[FieldError] = []
        cid = check_id(item.get("customer_id"), "customer_id", errors)
        attributes = item.get("attributes")
        if not isinstance(attributes, dict):
            errors.append(FieldError("attributes", "is required: an object of profile attributes"))
        extra = set(item) - {"customer_id", "attributes"}
        if extra:
            errors.append(FieldError(sorted(extra)[0], "unknown field; expected customer_id and attributes"))
        if errors or cid is None or not isinstance(attributes, dict):
            yield Rejected(line, errors, cid)
        else:
            yield Record(line, cid, attributes)


_ID_IN_TEXT = re.compile(r'"customer_id"\s*:\s*"([^"\\]{1,128})"')


def _id_in(text: str) -> str | None:
    """The customer id a broken JSON line names, when one can be read (a line cut off in the middle)."""
    found = _ID_IN_TEXT.search(text)
    return check_id(found.group(1), "customer_id", []) if found else None


class Progress:
    """A line on standard error every `every` seconds: how many, how fast and, when the size of what is
    left is known, until when. On a terminal the line is rewritten in place."""

    def __init__(self, source: Source, every: float = 2.0, out: IO[str] | None = None):
        self.total, self.position, self.every = source.size, source.position, every
        self.start = self.last = time.monotonic()
        self.line = StatusLine(out)

    def tick(self, summary: Summary) -> None:
        now = time.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        done = summary.imported + summary.rejected
        rate = done / max(now - self.start, 1e-9)
        eta = ""
        if self.total:
            share = min(1.0, self.position() / self.total)
            if share > 0:
                eta = f", {share:.0%}, about {(now - self.start) * (1 - share) / share:.0f} s left"
        self.line.show(f"{summary.imported} imported, {summary.rejected} rejected, {rate:.0f} records/s{eta}")

    def done(self) -> None:
        self.line.end()


class RejectFile:
    """Rejected records, a line per problem, written as they are found (appended: a resumed import adds
    to what the interrupted one listed); the file is only created when something is rejected."""

    def __init__(self, path: Path):
        self.path = path
        self._file: IO[str] | None = None

    def __call__(self, rejected: Rejected) -> None:
        if self._file is None:
            self._file = self.path.open("a", encoding="utf-8")
        self._file.write("".join(line + "\n" for line in rejected.lines()))

    def __enter__(self) -> RejectFile:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()


SHOWN_REJECTS = 5
CHECKPOINT_SECONDS = 2.0
# records written in one round trip (replace_many), and batches in flight: with one, Python would wait
# for Redis to run a batch before preparing the next, and the two would take turns instead of overlapping
BATCH = 100
MIN_BATCHES = 4


class IdSet:
    """Customer ids as 8-byte hashes: 5 million take 40 MB here, where a set of the strings takes about
    430 MB. Python's own str hash (SipHash, 64 bits) is used, so the hashes mean something in this
    process only, which is all a run needs. Two ids with one hash (about 1 in 10^6 runs at 5 million
    ids) make one look present: a full sync then keeps a customer it could have erased, never the reverse."""

    def __init__(self) -> None:
        self._added = array("q")  # since the last lookup
        self._sorted: np.ndarray[Any, np.dtype[np.int64]] = np.empty(0, np.int64)  # may repeat a hash

    def add(self, customer_id: str) -> None:
        self._added.append(hash(customer_id))

    def extend(self, customer_ids: Iterable[str]) -> None:
        self._added.extend(hash(c) for c in customer_ids)

    def _frozen(self) -> np.ndarray[Any, np.dtype[np.int64]]:
        if self._added:
            added = np.frombuffer(self._added, dtype=np.int64)
            self._sorted = np.sort(np.concatenate((self._sorted, added)) if len(self._sorted) else added)
            self._added = array("q")
        return self._sorted

    def __len__(self) -> int:
        known = self._frozen()
        return int(np.count_nonzero(known[1:] != known[:-1])) + 1 if len(known) else 0

    def contains(self, customer_ids: list[str]) -> np.ndarray[Any, np.dtype[np.bool_]]:
        """For each id, whether it is in the set."""
        known = self._frozen()
        if not len(known):
            return np.zeros(len(customer_ids), bool)
        wanted = np.fromiter((hash(c) for c in customer_ids), dtype=np.int64, count=len(customer_ids))
        at = np.minimum(np.searchsorted(known, wanted), len(known) - 1)
        found: np.ndarray[Any, np.dtype[np.bool_]] = known[at] == wanted
        return found

    @property
    def nbytes(self) -> int:
        return self._added.buffer_info()[1] * self._added.itemsize + self._sorted.nbytes


async def import_records(
    customers: Customers,
    items: Iterable[Record | Rejected],
    *,
    merge: bool,
    reject: Callable[[Rejected], None],
    concurrency: int = 256,
    progress: Progress | None = None,
    checkpoint: Checkpoint | None = None,
) -> Summary:
    """Write `items` in batches, about `concurrency` records in flight at once; each rejected record goes
    to `reject` as it is found. Lines up to the checkpoint's `skip_through` were done by an earlier run
    and are skipped."""
    run = Import(customers, merge=merge, reject=reject, concurrency=concurrency)
    return await run.run(items, progress=progress, checkpoint=checkpoint)


class Import:
    """One import: records in batches of BATCH, `concurrency` records in flight. A record of a customer
    whose earlier record is still being written waits for it, so the later line is the one that stays
    (as two PUTs in a row). `seen` (for a full sync) collects the id of every record, imported, rejected
    or done by an earlier run, and `Summary.unidentified` counts rejected lines that name no customer."""

    def __init__(
        self,
        customers: Customers,
        *,
        merge: bool,
        reject: Callable[[Rejected], None],
        concurrency: int = 256,
        seen: IdSet | None = None,
        dry_run: bool = False,
    ):
        self.customers = customers
        self.merge = merge
        self.dry_run = dry_run  # check each record and compare it with the stored profile; write nothing
        self.reject = reject
        self.size = max(1, min(BATCH, concurrency // MIN_BATCHES))
        self.workers = max(1, concurrency // self.size)
        self.seen = seen
        self.summary = Summary()
        self.in_flight: dict[int, None] = {}  # the first line of each batch being filled or written, oldest first
        self.last_line = 0  # the last line taken from the items
        self.writing: dict[str, asyncio.Event] = {}  # customer id -> the batch last sent with it, until written

    async def run(
        self,
        items: Iterable[Record | Rejected],
        *,
        progress: Progress | None = None,
        checkpoint: Checkpoint | None = None,
    ) -> Summary:
        skip_through = checkpoint.skip_through if checkpoint is not None else 0
        self.summary.done_through = self.last_line = skip_through
        start = time.monotonic()
        try:
            await run_bounded(self._batches(items, skip_through, progress, checkpoint), self.workers)
        finally:
            self.summary.seconds = time.monotonic() - start
            if progress is not None:
                progress.done()
            if checkpoint is not None:
                checkpoint.save(self.summary)
        return self.summary

    def _rejected(self, r: Rejected) -> None:
        summary = self.summary
        summary.rejected += 1
        if len(summary.examples) < SHOWN_REJECTS:
            summary.examples.append(r)
        self.reject(r)

    def _advance(self) -> None:
        self.summary.done_through = next(iter(self.in_flight)) - 1 if self.in_flight else self.last_line

    def _batches(
        self,
        items: Iterable[Record | Rejected],
        skip_through: int,
        progress: Progress | None,
        checkpoint: Checkpoint | None,
    ) -> Iterator[Awaitable[None]]:
        saved_at = time.monotonic()
        seen = self.seen
        batch: list[Record] = []
        for item in items:
            if seen is not None:
                if item.customer_id is not None:
                    seen.add(item.customer_id)
                else:
                    self.summary.unidentified += 1
                    self.summary.first_unidentified = self.summary.first_unidentified or item.line
            if item.line <= skip_through:
                continue
            self.last_line = item.line
            if progress is not None:
                progress.tick(self.summary)
            if checkpoint is not None and time.monotonic() - saved_at >= CHECKPOINT_SECONDS:
                checkpoint.save(self.summary)
                saved_at = time.monotonic()
            if isinstance(item, Rejected):
                self._rejected(item)
                self._advance()
                continue
            if not batch:
                self.in_flight[item.line] = None
            batch.append(item)
            if len(batch) >= self.size:
                yield self._send(batch)
                batch = []
        if batch:
            yield self._send(batch)
        self._advance()

    def _send(self, batch: list[Record]) -> Awaitable[None]:
        done = asyncio.Event()
        after = set()
        for record in batch:
            earlier = self.writing.get(record.customer_id)
            if earlier is not None and earlier is not done:
                after.add(earlier)
            self.writing[record.customer_id] = done
        return self._write(batch, after, done)

    async def _write(self, batch: list[Record], after: set[asyncio.Event], done: asyncio.Event) -> None:
        try:
            for earlier in after:
                await earlier.wait()
            records = [(r.customer_id, r.attributes) for r in batch]
            results: list[list[FieldError] | Change]
            if self.dry_run:
                results = await self.customers.preview_many(records, merge=self.merge)
            elif self.merge:
                results = list(await asyncio.gather(*(_merge_one(self.customers, r) for r in batch)))
            else:
                results = list(await self.customers.replace_many(records))
        finally:
            done.set()
        summary = self.summary
        for record, result in zip(batch, results, strict=True):
            if isinstance(result, list):
                if result:
                    self._rejected(Rejected(record.line, result, record.customer_id))
                else:
                    summary.imported += 1
            elif result == "new":
                summary.new += 1
            elif result == "changed":
                summary.changed += 1
            else:
                summary.unchanged += 1
            if self.writing.get(record.customer_id) is done:
                del self.writing[record.customer_id]
        del self.in_flight[batch[0].line]
        self._advance()


async def _merge_one(customers: Customers, record: Record) -> list[FieldError]:
    try:
        await customers.save(record.customer_id, record.attributes, merge=True)
    except InvalidRequest as exc:
        return exc.errors
    return []


async def import_pushed(
    customers: Customers, text: str, *, merge: bool, max_line: int
) -> tuple[Summary, list[Rejected]]:
    """JSON lines pushed by a CRM (POST /v1/customers:bulk): imported as a file of them is, lines longer
    than `max_line` characters rejected; the summary and every rejected record, in line order."""
    rejected: list[Rejected] = []
    run = Import(customers, merge=merge, reject=rejected.append)
    summary = await run.run(_json_records(io.StringIO(text), max_line))
    return summary, sorted(rejected, key=lambda r: r.line)
