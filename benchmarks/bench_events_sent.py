"""Events sent: after a day-over-day re-score, how many profiles does a publish send?

    python -m benchmarks.bench_events_sent [--customers N] [--quick]

Set-up (cached as ``benchmarks/out/events-c<N>-s<seed>.duckdb``, from the scoring benchmark's
warehouse and models): score ``churn``, ``ltv`` and ``btyd`` as of day D−1 into
``churn_traits``, publish the trait sets ``traitsets/churn.toml`` and ``traitsets/ltv.toml``
with ``sync()`` to the local fake Segment server (so the state holds what Segment holds), then
re-score as of day D. Measured: ``dry_run()`` of each trait set — the profiles a publish would
send now (new + changed + removed) over the profiles in the table, with the trait set's own
rounding (``[decimals]``) and tolerance (``[tolerance]``). Reference: the share of profiles whose
unrounded scores moved at all between the two days (what a naive "send what changed" sends).

The share is deterministic for a sample; ``--runs`` only repeats the dry run's timing.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from benchmarks import _harness as h
from benchmarks.bench_scoring import TRAINING_CODE
from benchmarks.bench_scoring import prepare as prepare_scoring

DAY_BEFORE, DAY = "2026-10-31", "2026-11-01"
TRAIT_SETS = ("churn", "ltv")
MODELS = ["churn", "ltv", "btyd"]
#: The kit code (and trait sets) the cached set-up depends on, beyond the models'.
EVENTS_CODE = (
    "sqltraits_kit/traits/scoring",
    "sqltraits_kit/traits/sql_models.py",
    "sqltraits_kit/traits/sql_btyd.py",
    "sqltraits_kit/traits/sql_math.py",
    "sqltraits_kit/traits/output",
    "sqltraits_kit/traits/traitset",
    "sqltraits_kit/publishing/sync",
    "traitsets",
)
WHAT_IF = (2, 5)  # tolerance multipliers tried beside the trait sets' own
SCORE_COLUMNS = (  # what MODELS write (traits.output.score_columns, 90-day horizon)
    "churn_probability_90d",
    "predicted_ltv_90d",
    "p_alive",
    "p_no_purchase_90d",
    "expected_purchases_90d",
    "expected_spend_90d",
)


def _trait_set(name: str) -> Any:
    from sqltraits_kit.traits.traitset import TraitSet

    return TraitSet.load(h.ROOT / "traitsets" / f"{name}.toml")


def _setup_child(path: str, registry: str, url: str, write_key: str) -> dict[str, Any]:
    """Score D−1, publish both trait sets, keep D−1's scores, re-score D (on ``path``)."""
    scoring = h.require("sqltraits_kit.traits.scoring")
    sync_mod = h.require("sqltraits_kit.publishing.sync")
    from sqltraits_kit.publishing.segment import SegmentClient
    from sqltraits_kit.warehouse import connect

    wh = connect(f"duckdb://{path}")
    client = SegmentClient(
        write_key, endpoint=url, max_requests_per_second=None, max_events_per_second=None
    )
    with h.Timer() as t:
        scoring.score(wh, models=MODELS, registry=registry, table="churn_traits", as_of=DAY_BEFORE)
        wh.con.create_table("bench_scores_day_before", wh.table("churn_traits"), overwrite=True)
        published = {}
        for name in TRAIT_SETS:
            result = sync_mod.sync(
                wh,
                _trait_set(name),
                client=client,
                max_requests_per_second=None,
                max_events_per_second=None,
            )
            if not result.ok:
                raise RuntimeError(f"publishing {name} failed: {result.to_dict()}")
            published[name] = result.sent
        scoring.score(wh, models=MODELS, registry=registry, table="churn_traits", as_of=DAY)
    client.close()
    wh.close()
    return t.figures(published=published)


def prepare(customers: int, seed: int) -> Path:
    """The cached warehouse after the day-before publish and the day's re-score."""
    path, registry = prepare_scoring(customers, seed)

    def build(target: Path) -> None:
        shutil.copyfile(path, target)
        with h.FakeSegment() as server:
            print("scoring two days and publishing the first (once) ...")
            result = h.run_child(
                "benchmarks.bench_events_sent:_setup_child",
                {
                    "path": str(target),
                    "registry": str(registry),
                    "url": server.url,
                    "write_key": server.write_key,
                },
            )
        if "not_measured" in result:
            target.unlink()
            raise h.NotMeasured(result["not_measured"])
        print(f"  done in {result['seconds']:.0f} s; published {result['published']}")

    tag = h.code_tag(*TRAINING_CODE, *EVENTS_CODE)
    return h.ensure_file(f"events-c{customers}-s{seed}-{tag}.duckdb", build)


def dry_runs(path: str) -> dict[str, Any]:
    sync_mod = h.require("sqltraits_kit.publishing.sync")
    import ibis

    from sqltraits_kit.warehouse import connect

    wh = connect(f"duckdb://{path}", read_only=True)
    out: dict[str, Any] = {}
    with h.Timer() as t:
        for name in TRAIT_SETS:
            report = sync_mod.dry_run(wh, _trait_set(name))
            out[name] = {
                "rows": report.rows,
                "to_send": report.to_send,
                "new": report.new,
                "changed": report.changed,
                "removed": report.removed,
            }
    # What-if: the same publish with the trait sets' tolerances made wider.
    for name in TRAIT_SETS:
        ts = _trait_set(name)
        for factor in WHAT_IF:
            wider = ts.with_(
                tolerance={k: v * factor for k, v in ts.tolerance.items()},
                relative_tolerance={
                    k: min(v * factor, 0.99) for k, v in ts.relative_tolerance.items()
                },
            )
            out[f"{name}_x{factor}"] = sync_mod.dry_run(wh, wider).to_send
    # The reference: profiles whose unrounded scores moved at all.
    cur, old = wh.table("churn_traits"), wh.table("bench_scores_day_before")
    j = cur.join(old, "user_id", how="outer", rname="{name}_old")
    moved = ibis.or_(*(~j[c].identical_to(j[f"{c}_old"]) for c in SCORE_COLUMNS))
    raw = j.aggregate(moved=moved.sum(), rows=j.count()).to_pandas().iloc[0]
    wh.close()
    return t.figures(**out, raw_moved=int(raw["moved"]), raw_rows=int(raw["rows"]))


def main(argv: list[str] | None = None) -> int:
    p = h.parser("Events sent after a day-over-day re-score, with the trait sets' rounding.")
    p.set_defaults(default_runs=1)
    args = h.parse(p, argv)
    bench = h.Bench("events_sent", "Events sent after a day-over-day re-score", args)
    try:
        path = prepare(args.customers, args.seed)
    except h.NotMeasured as exc:
        for name in TRAIT_SETS:
            bench.not_measured(
                f"trait set {name}: share of profiles sent", str(exc), target="≤ 10%"
            )
        return bench.finish()
    m = bench.measure("benchmarks.bench_events_sent:dry_runs", {"path": str(path)})
    if m.not_measured:
        for name in TRAIT_SETS:
            bench.not_measured(
                f"trait set {name}: share of profiles sent", m.not_measured, target="≤ 10%"
            )
        return bench.finish()
    for name in TRAIT_SETS:
        c = m.runs[-1][name]
        share = 100.0 * c["to_send"] / max(c["rows"], 1)
        ts = _trait_set(name)
        rules = ", ".join(f"{k}: {v} decimals" for k, v in ts.decimals.items())
        rules += "; tolerance " + ", ".join(f"{k} {v}" for k, v in ts.tolerance.items())
        if ts.relative_tolerance:
            rules += "; relative tolerance " + ", ".join(
                f"{k} {v:.0%}" for k, v in ts.relative_tolerance.items()
            )
        if ts.tolerance_followers():
            rules += "; derived traits re-sent with their value: " + ", ".join(
                ts.tolerance_followers()
            )
        bench.add(
            h.Row(
                f"trait set {name}: share of profiles sent",
                share,
                "%",
                "≤ 10%",
                h.at_most(share, 10.0),
                note=f"{c['to_send']:,} of {c['rows']:,} ({c['changed']:,} changed, "
                f"{c['new']:,} new, {c['removed']:,} removed); {rules}",
            )
        )
    for name in TRAIT_SETS:
        rows = max(m.runs[-1][name]["rows"], 1)
        shares = ", ".join(
            f"×{f}: {100.0 * m.runs[-1][f'{name}_x{f}'] / rows:.1f}%" for f in WHAT_IF
        )
        bench.add(
            h.Row(
                f"what-if: trait set {name} with wider tolerances",
                shares,
                note="share sent with every [tolerance] and [relative_tolerance] multiplied",
            )
        )
    raw = 100.0 * m.runs[-1]["raw_moved"] / max(m.runs[-1]["raw_rows"], 1)
    bench.add(
        h.Row(
            "reference: profiles whose unrounded scores moved at all",
            raw,
            "%",
            note="what sending every changed row would send",
        )
    )
    bench.add(
        h.Row(
            "dry runs of both trait sets", m["seconds"], "s", note=f"CPU {m['cpu_seconds']:.1f} s"
        )
    )
    bench.note(
        f"Scores as of {DAY_BEFORE} published, then re-scored as of {DAY} (models churn, ltv, "
        "btyd from the scoring benchmark's registry)."
    )
    return bench.finish()


if __name__ == "__main__":
    sys.exit(main())
