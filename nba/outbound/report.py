"""An outbound run's report as a person reads it (the command line prints it; the JSON is the same data)."""

from __future__ import annotations

from typing import Any


def text(report: dict[str, Any]) -> str:
    c, t, cmp = report["customers"], report["totals"], report["comparison"]
    pop = report["population"]
    head = "DRY RUN (nothing reserved or recorded)" if report["dry_run"] else "run"
    lines = [
        f"{head} {report['run_id']} on {report['channel']}, sending from {report['send_at']} (day {report['day']})",
        f"population: {pop['kind']}{' in segment ' + pop['segment'] if pop['segment'] else ''}: "
        f"{pop['customers']} customer(s)"
        + (f", {pop['without_profile']} listed without a profile" if pop["without_profile"] else "")
        + (f", {pop['outside_segment']} outside the segment" if pop["outside_segment"] else ""),
    ]
    for why, n in sorted(pop["channel_closed"].items()):
        lines.append(f"  closed to {n}: {why}")
    lines.append(
        f"selected {t['selected']} action(s) for {c['selected']} customer(s): expected {t['expected_accepts']:.1f} "
        f"accepts, value {t['expected_value']:.2f}; nothing eligible for {c['nothing_eligible']}, "
        f"cut by capacity {c['cut_by_capacity']}"
    )
    for cap in report["capacities"]:
        lines.append(
            f"  {cap['name']}: used {cap['used']:g} of {cap['limit']:g}"
            + (f", price {cap['price']:.4g}" if cap["binding"] else " (not binding)")
        )
    lines.append("actions:")
    for a in report["actions"]:
        lines.append(
            f"  {a['action_id']:<28} {a['selected']:>8} selected ({a['without_capacity']} without capacity), "
            f"expected accepts {a['expected_accepts']:.1f}, value {a['expected_value']:.2f}"
        )
    lines.append(
        "score (priority above doing nothing): "
        f"this run {cmp['chosen']['score']:.4g}, first-come {cmp['first_come']['score']:.4g}, "
        f"without capacity {cmp['capacity_free']['score']:.4g}; at least {cmp['share_of_upper_bound']:.2%} of the "
        "best possible within capacity"
    )
    for ex in report["not_chosen_examples"][:5]:
        lines.append(f"  {ex['customer_id']} {ex['action_id']}: {ex['why']}")
    rec = report.get("recorded")
    if rec and not report["dry_run"]:
        lines.append(
            f"recorded {rec['decisions']} decision(s)"
            + (f"; {rec['changed']} left out: the customer changed meanwhile" if rec["changed"] else "")
            + (f"; {rec['erased']} erased meanwhile" if rec["erased"] else "")
        )
    s = report["seconds"]
    lines.append(f"took {s['total']:.1f} s (read {s['read']:.1f} s, select {s['select']:.1f} s)")
    return "\n".join(lines)
