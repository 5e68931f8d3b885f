"""`nba customers import`: CRM's bulk load, checked record by record as PUT checks one, against a real Redis."""

from __future__ import annotations

import gzip
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from nba.customers import bulk
from nba.errors import FieldError
from nba.http.routes import CUSTOMERS
from nba.rules.load import load_rulebook
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
