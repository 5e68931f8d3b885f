"""A full sync (`nba customers import --full-sync`): the file is the CRM's whole customer base, so a customer
that held a profile before the run and is absent from the file is erased, exactly as DELETE erases one.

An absence must be real before anything is erased:
- a rejected line is not an absence: its customer counts as present; a rejected line that names no
  customer that can be told (not JSON, no valid id) could be anyone's, so then nothing is erased;
- a file that does not end with a line break may have been cut off: nothing is erased;
- a file that cannot be read to its end, or an import that stops, erases nothing (the run fails before);
- a resumed run reads the lines the earlier run did again for their ids (their records are not written
  again): those customers count as present;
- only customers that held a profile when the run started are candidates, and one whose profile was
  written while the run went on (a real-time update) is kept;
- above `--max-delete` (5% of the customers that held a profile before the run, or a number), nothing
  is erased: a wrong or truncated file must not empty the store.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nba.concurrency import run_bounded
from nba.customers.bulk import IdSet, Summary
from nba.customers.service import Customers
from nba.store.contract import Storage

ERASE_CONCURRENCY = 16
SAMPLE = 10  # ids shown of those a run would erase


@dataclass(frozen=True)
class MaxDelete:
    """--max-delete: a share of the customers that held a profile before the run (`5%`) or a number."""

    value: float
    percent: bool

    @staticmethod
    def parse(text: str) -> MaxDelete:
        number = text.strip().removesuffix("%")
        percent = text.strip().endswith("%")
        try:
            value = float(number) if percent else int(number)
        except ValueError:
            raise ValueError(f"--max-delete must be a share such as 5% or a number such as 500, not {text!r}") from None
        if value < 0 or (percent and value > 100) or not math.isfinite(value):
            raise ValueError(f"--max-delete must be 0% to 100% or a number from 0, not {text!r}")
        return MaxDelete(value, percent)

    def limit(self, held: int) -> int:
        return math.floor(held * self.value / 100) if self.percent else int(self.value)

    def __str__(self) -> str:
        return f"{self.value:g}%" if self.percent else str(int(self.value))


@dataclass
class FullSync:
    """One full sync: who held a profile when it started, and who the file names."""

    before: IdSet
    max_delete: MaxDelete
    started_ms: int
    seen: IdSet = field(default_factory=IdSet)


@dataclass
class Absent:
    """Customers with a profile before the run and not in the file."""

    count: int = 0
    ids: list[str] = field(default_factory=list)  # the first `keep` of them


async def profiled(store: Storage) -> IdSet:
    """The customers holding a profile now."""
    held = IdSet()
    async for batch in store.customers_with_profiles():
        held.extend(batch)
    return held


async def absent(store: Storage, before: IdSet, seen: IdSet, keep: int) -> Absent:
    """Who held a profile before the run (`before`), holds one still, and is not in the file (`seen`);
    their ids kept up to `keep` (the count is exact)."""
    found = Absent()
    async for batch in store.customers_with_profiles():
        gone = before.contains(batch) & ~seen.contains(batch)
        for customer_id, is_gone in zip(batch, gone.tolist(), strict=True):
            if is_gone:
                found.count += 1
                if len(found.ids) < keep:
                    found.ids.append(customer_id)
    return found


def reasons_to_keep(summary: Summary, complete: bool) -> list[str]:
    """Why the absences of this run cannot be trusted (empty: they can)."""
    reasons = []
    if summary.unidentified:
        reasons.append(
            f"{summary.unidentified} rejected line(s) name no customer that can be told (the first: line "
            f"{summary.first_unidentified}): any customer could be on them"
        )
    if not complete:
        reasons.append("the file does not end with a line break: it may have been cut off")
    return reasons


@dataclass
class Erased:
    erased: int = 0
    kept: list[str] = field(default_factory=list)  # written while the run went on: not erased


async def erase_absent(
    customers: Customers,
    customer_ids: list[str],
    started_ms: int,
    audit: Callable[[str], Awaitable[object]],
) -> Erased:
    """Erase each customer as DELETE does (Customers.erase), then `audit` it, as the DELETE route does
    (after: an audit entry never names an erasure that did not happen). A profile written since the run
    started (a real-time update the file predates) is kept."""
    done = Erased()

    async def one(customer_id: str) -> None:
        stored, _ = await customers.store.get_profile(customer_id)
        if stored is None:  # erased meanwhile
            return
        if stored.updated_ms >= started_ms:
            done.kept.append(customer_id)
            return
        await customers.erase(customer_id)
        await audit(customer_id)
        done.erased += 1

    await run_bounded((one(c) for c in customer_ids), ERASE_CONCURRENCY)
    return done
