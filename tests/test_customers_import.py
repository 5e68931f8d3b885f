"""`nba customers import`: CRM's bulk load, checked record by record as PUT checks one, against a real Redis."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from nba.customers import bulk, sync
from nba.errors import FieldError
from nba.http.access import ACCESS
from nba.http.routes import CUSTOMERS
from nba.rules.load import load_rulebook
from tests.api.helpers import put_customer
from tests.conftest import RULES, AppFactory

RULEBOOK = load_rulebook(RULES)
HEADER = "customer_id,plan,monthly_spend,products,consents,open_complaint,tenure_months"


@pytest.mark.parametrize(
    ("kind", "cell", "value"),
    [
        ("integer", "12", 12),
        ("number", " 30.5 ", 30.5),
        ("boolean", "Yes", True),
        ("boolean", "0", False),
        ("list", "mobile| tv", ["mobile", "tv"]),
        ("flags", "crosssell=true|email=no", {"crosssell": True, "email": False}),
        ("string", " as written ", " as written "),
        ("date", "2026-11-23", "2026-11-23"),
    ],
)
def test_a_cell_becomes_its_attribute_type(kind: str, cell: str, value: object) -> None:
    assert bulk.cell_value(kind, cell) == value


@pytest.mark.parametrize(
    ("kind", "cell"), [("integer", "7.5"), ("number", "abc"), ("boolean", "maybe"), ("flags", "x")]
)
def test_a_cell_of_the_wrong_type_is_an_error(kind: str, cell: str) -> None:
    assert isinstance(bulk.cell_value(kind, cell), FieldError)


def _read(text: str, fmt: str = "csv") -> list[bulk.Record | bulk.Rejected]:
    return list(bulk.read_records(io.StringIO(text), fmt, RULEBOOK))


def test_csv_records_name_their_line_and_field() -> None:
    rows = _read(f"{HEADER}\nc-1,basic,30,mobile,,false,12\n\n,basic,1,,,,\nc-2,basic\nc-3,basic,x,,,,\n")
    assert rows[0] == bulk.Record(
        2,
        "c-1",
        {"plan": "basic", "monthly_spend": 30.0, "products": ["mobile"], "open_complaint": False, "tenure_months": 12},
    )
    assert [r.lines() for r in rows[1:] if isinstance(r, bulk.Rejected)] == [
        ["line 4: customer_id: must be 1 to 128 characters"],
        ["line 5: row: has 2 cells; the header has 7"],
        ["line 6: attributes.monthly_spend: 'x' is not a number"],
    ]


def test_a_csv_header_with_an_unknown_column_imports_nothing() -> None:
    with pytest.raises(bulk.SourceInvalid, match="unknown column"):
        _read("customer_id,plan,shoe_size\nc-1,basic,44\n")
    with pytest.raises(bulk.SourceInvalid, match="customer_id"):
        _read("plan\nbasic\n")


def test_json_lines_are_the_body_of_put() -> None:
    rows = _read('{"customer_id": "c-1", "attributes": {"plan": "basic"}}\nnot json\n{"customer_id": "c-2"}\n', "jsonl")
    assert rows[0] == bulk.Record(1, "c-1", {"plan": "basic"})
    assert isinstance(rows[1], bulk.Rejected)
    assert rows[1].errors[0].field == "line"
    assert isinstance(rows[2], bulk.Rejected)
    assert rows[2].lines() == ["line 3: attributes: is required: an object of profile attributes"]


def _nba(args: list[str], url: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "NBA_REDIS_URL": url, "NBA_RULES_DIR": str(RULES)}
    return subprocess.run(
        [sys.executable, "-m", "nba.cli", "customers", "import", *args],
        env=env,
        input=stdin,
        capture_output=True,
        timeout=120,
    )


@pytest.mark.slow
async def test_import_replace_then_merge_with_rejects(make_client: AppFactory, redis_url: str, tmp_path: Path) -> None:
    client = await make_client()
    csv_file = tmp_path / "crm.csv"
    csv_file.write_text(
        f"{HEADER}\n"
        "c-1,basic,30.5,mobile|tv,crosssell=true|email=no,false,12\n"
        "c-2,medium,abc,mobile,,yes,3\n"  # a bad number: rejected, nothing of it stored
        "c-3,large,40,radio,,,\n"  # a list value the profile does not allow
        "c-4,unlimited,99,broadband,crosssell=1,0,7\n"
        + "".join(f"c-5,basic,{i},,,,\n" for i in range(50))  # one customer again and again: the last line wins
    )
    done = _nba([str(csv_file)], redis_url)
    assert done.returncode == 1, done.stderr.decode()
    assert (tmp_path / "crm.csv.rejects").read_text().splitlines() == [
        "line 3: attributes.monthly_spend: 'abc' is not a number",
        "line 4: attributes.products: unknown value 'radio'; allowed: mobile, broadband, tv",
    ]
    assert b"52 profile(s) imported, 2 rejected" in done.stderr
    assert (await (await client.get("/v1/customers/c-5")).json())["attributes"]["monthly_spend"] == 49
    one = await (await client.get("/v1/customers/c-1")).json()
    assert one["attributes"] == {
        "plan": "basic",
        "monthly_spend": 30.5,
        "products": ["mobile", "tv"],
        "consents": {"crosssell": True, "email": False},
        "open_complaint": False,
        "tenure_months": 12,
    }
    assert (await client.get("/v1/customers/c-2")).status == 404

    # merge from gzip'd JSON lines on standard input: null removes, flags merge, the rest stays
    patch = orjson.dumps(
        {"customer_id": "c-1", "attributes": {"plan": "large", "tenure_months": None, "consents": {"email": True}}}
    )
    done = _nba(["-", "--format", "jsonl", "--mode", "merge"], redis_url, gzip.compress(patch + b"\n"))
    assert done.returncode == 0, done.stderr.decode()
    merged = (await (await client.get("/v1/customers/c-1")).json())["attributes"]
    assert merged["plan"] == "large"
    assert "tenure_months" not in merged
    assert merged["consents"] == {"crosssell": True, "email": True}
    assert merged["monthly_spend"] == 30.5


@pytest.mark.slow
def test_a_file_that_cannot_be_imported_says_why(tmp_path: Path, redis_url: str) -> None:
    bad = tmp_path / "crm.csv"
    bad.write_text("customer_id,shoe_size\nc-1,44\n")
    done = _nba([str(bad)], redis_url)
    assert done.returncode == 2
    assert b"unknown column(s) shoe_size" in done.stderr
    done = _nba([str(tmp_path / "crm.txt")], redis_url)
    assert done.returncode == 2
    assert b"--format" in done.stderr


async def test_an_interrupted_import_leaves_a_checkpoint_that_only_names_what_is_done(
    make_client: AppFactory, tmp_path: Path
) -> None:
    client = await make_client()
    customers = client.app[CUSTOMERS]
    source = tmp_path / "crm.jsonl"
    source.write_text(
        "".join(f'{{"customer_id": "c-{i}", "attributes": {{"tenure_months": {i}}}}}\n' for i in range(1, 301))
    )

    def items() -> Iterator[bulk.Record | bulk.Rejected]:
        for item in bulk.read_records(io.StringIO(source.read_text()), "jsonl", RULEBOOK):
            if item.line == 200:
                raise ConnectionError("the CRM's pipe broke")  # the import stops here, in the middle
            yield item

    checkpoint = bulk.Checkpoint(source)
    with pytest.raises(ConnectionError):
        await bulk.import_records(
            customers, items(), merge=False, reject=lambda r: None, concurrency=64, checkpoint=checkpoint
        )
    done = bulk.Checkpoint(source).resume()
    assert 0 < done < 200
    for i in range(1, done + 1):  # everything the checkpoint calls done is stored
        assert (await client.get(f"/v1/customers/c-{i}")).status == 200, i
    # resumed: the rest, and nothing before it again
    resumed = bulk.Checkpoint(source)
    resumed.resume()
    text = bulk.read_records(io.StringIO(source.read_text()), "jsonl", RULEBOOK)
    summary = await bulk.import_records(customers, text, merge=False, reject=lambda r: None, checkpoint=resumed)
    assert summary.imported == 300 - done
    assert summary.done_through == 300
    assert (await client.get("/v1/customers/c-300")).status == 200


@pytest.mark.slow
def test_resume_skips_what_was_done_and_refuses_a_changed_file(tmp_path: Path, redis_url: str) -> None:
    source = tmp_path / "crm.csv"
    source.write_text(f"{HEADER}\n" + "".join(f"c-{i},basic,{i},,,,\n" for i in range(1, 11)))
    checkpoint = bulk.Checkpoint(source)
    checkpoint.skip_through = 6  # as an import interrupted after line 6 (c-5) would have left it
    checkpoint.save(bulk.Summary(done_through=6))
    done = _nba([str(source), "--resume"], redis_url)
    assert done.returncode == 0, done.stderr.decode()
    assert b"resuming after line 6" in done.stderr
    assert b"5 profile(s) imported" in done.stderr  # c-6 .. c-10
    assert not checkpoint.path.exists()  # complete
    checkpoint.save(bulk.Summary(done_through=3))
    source.write_text(source.read_text() + "c-11,basic,11,,,,\n")  # the file changed since
    done = _nba([str(source), "--resume"], redis_url)
    assert done.returncode == 2
    assert b"changed since" in done.stderr


def _jsonl(ids: list[str], tenure: int = 1) -> str:
    return "".join(f'{{"customer_id": "{c}", "attributes": {{"tenure_months": {tenure}}}}}\n' for c in ids)


async def _stored(client: Any, ids: list[str]) -> list[str]:
    return [c for c in ids if (await client.get(f"/v1/customers/{c}")).status == 200]


async def _population(make_client: AppFactory, n: int, tmp_path: Path) -> tuple[Any, list[str], Path]:
    """A client of the test app, n customers c-1 ... with a profile, and where the CRM's file goes."""
    client = await make_client()
    everyone = [f"c-{i}" for i in range(1, n + 1)]
    for cid in everyone:
        await put_customer(client, cid, {"tenure_months": 2})
    return client, everyone, tmp_path / "crm.jsonl"


@pytest.mark.slow
async def test_a_full_sync_erases_who_is_absent_as_delete_does(
    make_client: AppFactory, redis_url: str, tmp_path: Path
) -> None:
    client, everyone, source = await _population(make_client, 40, tmp_path)
    # c-39 and c-40 left; c-38 is on a bad line (not an absence); c-41 is new
    source.write_text(
        _jsonl(everyone[:37]) + '{"customer_id": "c-38", "attributes": {"tenure_months": "many"}}\n' + _jsonl(["c-41"])
    )

    preview = _nba([str(source), "--full-sync", "--dry-run"], redis_url)
    assert preview.returncode == 1, preview.stderr.decode()  # one rejected record
    assert b"of 39 record(s) 1 new, 37 changed, 0 unchanged, 1 rejected" in preview.stderr
    assert b"2 customer(s) with a profile are not in the file (would erase): c-39, c-40" in preview.stderr
    assert await _stored(client, everyone) == everyone  # nothing written
    assert (await client.get("/v1/customers/c-41")).status == 404
    assert not (tmp_path / "crm.jsonl.rejects").exists()

    done = _nba([str(source), "--full-sync"], redis_url)
    assert done.returncode == 1, done.stderr.decode()
    assert b"full sync: 2 customer(s) erased" in done.stderr
    assert await _stored(client, everyone) == everyone[:38]
    assert (await client.get("/v1/customers/c-41")).status == 200
    # erased as DELETE erases: an audit entry each, naming the keyed hash of the id, never the id
    audit = client.app[ACCESS].audit
    entries = await audit.read(action="customer.erase")
    assert {e.target for e in entries} == {await audit.subject("c-39"), await audit.subject("c-40")}
    assert all(e.detail == "full sync of crm.jsonl" and "c-39" not in str(e) for e in entries)
    assert await audit.read(customer_id="c-39")

    again = _nba([str(source), "--full-sync", "--dry-run"], redis_url)
    assert again.returncode == 1
    assert b"0 customer(s) with a profile are not in the file" in again.stderr
    assert b"0 new, 0 changed, 38 unchanged, 1 rejected" in again.stderr


@pytest.mark.slow
async def test_a_full_sync_erases_nothing_when_an_absence_is_in_doubt(
    make_client: AppFactory, redis_url: str, tmp_path: Path
) -> None:
    client, everyone, source = await _population(make_client, 100, tmp_path)

    source.write_text(_jsonl(everyone[:90]))  # 10 of 100 absent: above the default 5%
    done = _nba([str(source), "--full-sync"], redis_url)
    assert done.returncode == 3, done.stderr.decode()
    assert b"more than --max-delete 5% allows (5 of 100 with a profile)" in done.stderr
    assert await _stored(client, everyone) == everyone  # the import is done, nothing erased
    assert _nba([str(source), "--full-sync", "--max-delete", "9"], redis_url).returncode == 3

    source.write_text(_jsonl(everyone[:95]) + "this line names nobody\n")  # whose line was it?
    done = _nba([str(source), "--full-sync"], redis_url)
    assert done.returncode == 3
    assert b"1 rejected line(s) name no customer that can be told (the first: line 96)" in done.stderr

    source.write_text(_jsonl(everyone[:95])[:-1])  # cut off: no line break at the end
    done = _nba([str(source), "--full-sync"], redis_url)
    assert done.returncode == 3
    assert b"does not end with a line break" in done.stderr

    source.write_bytes(gzip.compress(_jsonl(everyone[:95]).encode())[:-20])  # a gzip file cut off
    done = _nba([str(source), "--format", "jsonl", "--full-sync"], redis_url)
    assert done.returncode == 2
    assert await _stored(client, everyone) == everyone

    # a resumed run: the customers of the lines the earlier run did are present
    source.write_text(_jsonl(everyone[:95]))
    checkpoint = bulk.Checkpoint(source)
    checkpoint.save(bulk.Summary(done_through=60))
    done = _nba([str(source), "--full-sync", "--resume", "--max-delete", "10%"], redis_url)
    assert done.returncode == 0, done.stderr.decode()
    assert b"35 profile(s) imported" in done.stderr
    assert b"full sync: 5 customer(s) erased" in done.stderr
    assert await _stored(client, everyone) == everyone[:95]


def test_max_delete_is_a_share_or_a_number() -> None:
    assert sync.MaxDelete.parse("5%").limit(1000) == 50
    assert sync.MaxDelete.parse("2.5%").limit(999) == 24
    assert sync.MaxDelete.parse("500").limit(10) == 500
    for bad in ("x", "-1", "101%", "5.5"):
        with pytest.raises(ValueError, match="--max-delete"):
            sync.MaxDelete.parse(bad)


def test_an_id_set_holds_ids_as_hashes() -> None:
    ids = bulk.IdSet()
    ids.extend(f"c-{i}" for i in range(1000))
    ids.add("c-1")
    assert len(ids) == 1000
    assert ids.contains(["c-1", "c-999", "c-1000", "x"]).tolist() == [True, True, False, False]
    assert bulk.IdSet().contains(["c-1"]).tolist() == [False]


def test_rejected_lines_keep_the_customer_they_name() -> None:
    rows = _read(
        '{"customer_id": "c-1", "attributes": {"plan": 3}\n'  # cut off: not JSON, the id can still be read
        '{"customer_id": "c-2"}\n'
        '["c-3"]\n',
        "jsonl",
    )
    assert [r.customer_id for r in rows] == ["c-1", "c-2", None]
    rows = _read(f"{HEADER}\nc-4,basic\n,basic,1,,,,\n")
    assert [r.customer_id for r in rows] == ["c-4", None]


def test_a_csv_saved_by_a_spreadsheet_with_a_byte_order_mark_reads_as_any(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_bytes(b"\xef\xbb\xbf" + f"{HEADER}\nc-1,basic,30,mobile,,false,12\n".encode())
    source = bulk.open_source(str(path))
    with source.text:
        [record] = list(bulk.read_records(source.text, "csv", RULEBOOK))
    assert record == bulk.Record(
        2,
        "c-1",
        {"plan": "basic", "monthly_spend": 30.0, "products": ["mobile"], "open_complaint": False, "tenure_months": 12},
    )
