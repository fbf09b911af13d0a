"""Diff: find the changed rows of a published trait table (1% changed) in the warehouse.

    python -m benchmarks.bench_diff [--rows N] [--runs R] [--quick]

Set-up (cached under ``benchmarks/out/``): a DuckDB file with ``traits_v1`` (``--rows`` profiles:
a user id, three float traits and a string tier), published once with the kit's ``sync()`` to
the local fake Segment server so that the sync state is real, and ``traits_v2``: the same table
with 1% of the profiles given a new churn probability. Timed, each in its own process:

* **kit** — what a sync run does to find its rows: resolve the source, diff it against the
  latest state per profile (``sync.diff.diff_table``), count the categories and materialise the
  numbered rows to send (``counts`` + ``materialise``);
* **kit dry run** — ``dry_run()`` end to end (adds the contract and drift checks and encodes
  every message to send), for reference;
* **hand-written DuckDB SQL** — the changed rows of ``traits_v2`` against a plain snapshot
  table ``traits_v1`` (``IS DISTINCT FROM`` per column) into a temp table: the engine's floor;
* **pandas** — load both tables, ``merge`` and compare.

Every contender must find exactly the changed profiles (checked).
"""

from __future__ import annotations

import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

from benchmarks import _harness as h

DEFAULT_ROWS = 1_000_000
QUICK_ROWS = 20_000
CHANGED_SHARE = 0.01
SYNC_KEY = "bench-diff"
TRAITS = ("churn_probability", "predicted_ltv", "p_alive", "risk_tier")


def _create_tables(path: Path, rows: int) -> int:
    """``traits_v1`` and ``traits_v2`` (every 100th profile's churn probability moved)."""
    import duckdb

    every = round(1 / CHANGED_SHARE)
    con = duckdb.connect(str(path))
    con.execute(
        f"""
        CREATE TABLE traits_v1 AS
        SELECT 'u' || lpad(i::VARCHAR, 8, '0') AS user_id,
               round((hash(i, 1) % 1000000) / 1000000.0, 3) AS churn_probability,
               round((hash(i, 2) % 100000) / 100.0, 2) AS predicted_ltv,
               round((hash(i, 3) % 1000) / 1000.0, 3) AS p_alive,
               ['low', 'medium', 'high'][1 + (hash(i, 4) % 3)::INT] AS risk_tier
        FROM range({rows}) r(i)
        """
    )
    con.execute(
        f"""
        CREATE TABLE traits_v2 AS
        SELECT user_id,
               CASE WHEN row_number() OVER (ORDER BY user_id) % {every} = 0
                    THEN round(1.0 - churn_probability, 3) + 0.0005
                    ELSE churn_probability END AS churn_probability,
               predicted_ltv, p_alive, risk_tier
        FROM traits_v1 ORDER BY user_id
        """
    )
    changed = con.execute(
        "SELECT count(*) FROM traits_v1 a JOIN traits_v2 b USING (user_id) "
        "WHERE a.churn_probability IS DISTINCT FROM b.churn_probability"
    ).fetchone()[0]
    con.close()
    return int(changed)


def _publish_child(path: str, url: str, write_key: str) -> dict[str, Any]:
    """Publish ``traits_v1`` once with the kit's sync, so that the state table is real."""
    sync_mod = h.require("sqltraits_kit.publishing.sync")
    from sqltraits_kit.publishing.segment import SegmentClient
    from sqltraits_kit.warehouse import connect

    wh = connect(f"duckdb://{path}")
    client = SegmentClient(
        write_key, endpoint=url, max_requests_per_second=None, max_events_per_second=None
    )
    with h.Timer() as t:
        result = sync_mod.sync(
            wh,
            "traits_v1",
            client=client,
            sync_key=SYNC_KEY,
            max_requests_per_second=None,
            max_events_per_second=None,
        )
    client.close()
    wh.close()
    return t.figures(sent=result.sent, failed=result.failed, status=result.status)


def _name(rows: int) -> str:
    # The state format is the sync's: a change to it publishes the table again.
    return f"diff-{rows}-{h.code_tag('sqltraits_kit/publishing/sync')}"


def prepare(rows: int) -> tuple[Path, int, str | None]:
    """The cached set-up file, the number of changed profiles, and why the kit cannot be
    measured (None when it can)."""
    name = _name(rows)
    marker = h.OUT / f"{name}.changed"

    def build(path: Path) -> None:
        changed = _create_tables(path, rows)
        with h.FakeSegment() as server:
            result = h.run_child(
                "benchmarks.bench_diff:_publish_child",
                {"path": str(path), "url": server.url, "write_key": server.write_key},
            )
        if "not_measured" in result:
            marker.write_text(f"{changed}\n{result['not_measured']}\n")
            return
        if result["failed"] or result["sent"] != rows:
            raise h.ChildFailed(f"publishing traits_v1 did not deliver every row: {result}")
        marker.write_text(f"{changed}\n\n")

    path = h.ensure_file(f"{name}.duckdb", build)
    changed_text, reason = ([*marker.read_text().split("\n"), ""])[:2]
    return path, int(changed_text), (reason or None)


def _scratch_copy(path: str) -> Path:
    work = Path(path).with_name(f"diff-work-{uuid.uuid4().hex[:8]}.duckdb")
    shutil.copyfile(path, work)
    return work


def _cleanup(work: Path) -> None:
    work.unlink(missing_ok=True)
    Path(str(work) + ".wal").unlink(missing_ok=True)


def kit_diff(path: str) -> dict[str, Any]:
    h.require("sqltraits_kit.publishing.sync")
    import ibis  # noqa: F401 - imports before the clock starts

    from sqltraits_kit.publishing.sync import diff as d
    from sqltraits_kit.publishing.sync import state as s
    from sqltraits_kit.publishing.sync.source import resolve_source
    from sqltraits_kit.warehouse import connect

    work = _scratch_copy(path)  # the pending table is written: keep the cached file as it is
    try:
        wh = connect(f"duckdb://{work}")
        with h.Timer() as t:
            src = resolve_source(wh, "traits_v2", kind="identify", sync_key=SYNC_KEY)
            name = s.snapshot_table(wh, SYNC_KEY)
            diff = d.diff_table(src, s.latest_state(wh, name) if name else None)
            counts = d.counts(diff)
            to_send = d.materialise(wh, s.pending_table_name(SYNC_KEY), d.to_send(diff, "null"))
        wh.close()
    finally:
        _cleanup(work)
    return t.figures(changed=counts["changed"], new=counts["new"], to_send=to_send)


def kit_dry_run(path: str) -> dict[str, Any]:
    sync_mod = h.require("sqltraits_kit.publishing.sync")
    import ibis  # noqa: F401

    from sqltraits_kit.warehouse import connect

    work = _scratch_copy(path)
    try:
        wh = connect(f"duckdb://{work}")
        with h.Timer() as t:
            report = sync_mod.dry_run(wh, "traits_v2", sync_key=SYNC_KEY)
        wh.close()
    finally:
        _cleanup(work)
    return t.figures(changed=report.changed)


def sql_diff(path: str) -> dict[str, Any]:
    import duckdb

    work = _scratch_copy(path)
    try:
        with h.Timer() as t:
            con = duckdb.connect(str(work))
            differs = " OR ".join(f"c.{x} IS DISTINCT FROM p.{x}" for x in TRAITS)
            con.execute(
                "CREATE TEMP TABLE changed AS SELECT c.* FROM traits_v2 c "
                "LEFT JOIN traits_v1 p USING (user_id) "
                f"WHERE p.user_id IS NULL OR {differs}"
            )
            changed = con.execute("SELECT count(*) FROM changed").fetchone()[0]
        con.close()
    finally:
        _cleanup(work)
    return t.figures(changed=int(changed))


def pandas_diff(path: str) -> dict[str, Any]:
    import duckdb
    import pandas  # noqa: F401

    with h.Timer() as t:
        con = duckdb.connect(path, read_only=True)
        old = con.sql("SELECT * FROM traits_v1").df()
        new = con.sql("SELECT * FROM traits_v2").df()
        con.close()
        both = new.merge(old, on="user_id", how="left", suffixes=("", "_old"), indicator=True)
        mask = both["_merge"] == "left_only"
        for x in TRAITS:
            a, b = both[x], both[f"{x}_old"]
            mask |= ~((a == b) | (a.isna() & b.isna()))
        changed = both.loc[mask, ["user_id", *TRAITS]]
    return t.figures(changed=len(changed))


def main(argv: list[str] | None = None) -> int:
    p = h.parser("Diff: 1% of a published table changed; time to find the changed rows.")
    p.add_argument("--rows", type=int, default=None, help="profiles (default 1,000,000)")
    args = h.parse(p, argv)
    rows = args.rows or (QUICK_ROWS if args.quick else DEFAULT_ROWS)
    bench = h.Bench("diff", "Diff (1% of a published table changed)", args, size=f"{rows:,} rows")
    path, changed, missing = prepare(rows)
    here = "benchmarks.bench_diff"
    print(f"  {rows:,} profiles, {changed:,} changed")

    def found(m: h.Measurement) -> str:
        got = m.get("changed")
        return "found all changed rows" if got == changed else f"WRONG: found {got} changed"

    if missing:
        bench.not_measured("kit diff (diff + counts + materialise)", missing, target="< 2 s")
    else:
        kit = bench.measure(f"{here}:kit_diff", {"path": str(path)})
        if kit.not_measured:
            bench.not_measured(
                "kit diff (diff + counts + materialise)", kit.not_measured, target="< 2 s"
            )
        else:
            right = kit.get("changed") == changed
            bench.add(
                h.Row(
                    "kit diff (diff + counts + materialise)",
                    kit["seconds"],
                    "s",
                    "< 2 s",
                    kit["seconds"] < 2.0 and right,
                    note=f"CPU {kit['cpu_seconds']:.1f} s; {found(kit)}; peak RSS "
                    f"{kit['peak_rss_mb']:.0f} MB",
                )
            )
        dry = bench.measure(f"{here}:kit_dry_run", {"path": str(path)})
        if dry.not_measured:
            bench.not_measured("kit dry_run() end to end", dry.not_measured)
        else:
            bench.add(
                h.Row(
                    "kit dry_run() end to end",
                    dry["seconds"],
                    "s",
                    note=f"CPU {dry['cpu_seconds']:.1f} s; contract + drift checks + "
                    f"encoding the messages; {found(dry)}",
                )
            )
    for func, label in (
        ("sql_diff", "hand-written DuckDB SQL (vs a snapshot table)"),
        ("pandas_diff", "pandas (load both, merge, compare)"),
    ):
        m = bench.measure(f"{here}:{func}", {"path": str(path)})
        bench.add(
            h.Row(
                label,
                m["seconds"],
                "s",
                note=f"CPU {m['cpu_seconds']:.1f} s; {found(m)}; peak RSS "
                f"{m['peak_rss_mb']:.0f} MB",
            )
        )
    bench.note(
        f"{changed:,} of {rows:,} profiles changed (1%). The kit diffs against its append-only "
        "sync state (latest row per profile), the hand-written SQL against a plain snapshot."
    )
    if missing:  # the kit could not publish: build the set-up again next time
        path.unlink(missing_ok=True)
        (h.OUT / f"{_name(rows)}.changed").unlink(missing_ok=True)
    return bench.finish()


if __name__ == "__main__":
    sys.exit(main())
