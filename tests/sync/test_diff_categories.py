"""The diff's categories, counts and row selections on a hand-made ledger, one profile per case.

The sync tests reach the diff through whole runs against the stand-in, so a category can only be
seen through what was sent; mutation testing (benchmarks/mutation.py) showed what that leaves
open (the ``bad_ids`` count, which re-sends keep their message id's base). Here the ledger's
latest rows are written by hand, so every branch of ``diff_table`` is one row to look at: new,
changed, unchanged, removed, tombstoned, uncertain (in flight, with the same or other values, or
a removal), and identifiers that cannot be sent. In-memory DuckDB: milliseconds per test.
"""

from __future__ import annotations

import ibis
import pyarrow as pa
import pytest

from sqltraits_kit.publishing.sync import diff as d
from sqltraits_kit.publishing.sync.source import SyncSource
from sqltraits_kit.publishing.sync.state import BASE, DELIVERED, REMOVED, SEQ

# id: (score, plan) in the source; a missing id is not in the source.
SOURCE = {
    "same": (1.0, "a"),
    "moved": (2.5, "a"),
    "replan": (1.0, "b"),
    "fresh": (3.0, "a"),
    "back": (4.0, "a"),
    "flight_same": (5.0, "a"),
    "flight_other": (6.5, "a"),
    "nulls": (None, "a"),
}
# id: (score, plan, removed, delivered, base, seq): the latest ledger row per profile.
LEDGER = {
    "same": (1.0, "a", False, True, None, 1),
    "moved": (2.0, "a", False, True, None, 2),
    "replan": (1.0, "a", False, True, None, 3),
    "back": (None, None, True, True, None, 4),  # tombstoned, now back in the source
    "gone": (7.0, "a", False, True, None, 5),  # published, left the source
    "tomb": (None, None, True, True, None, 6),  # tombstoned and still gone
    "flight_same": (5.0, "a", False, False, 7, 9),  # sent, never acknowledged, same values
    "flight_other": (6.0, "a", False, False, 3, 10),  # sent, other values now
    "flight_gone": (8.0, "a", False, False, 2, 11),  # sent, then left the source
    "flight_removal": (None, None, True, False, 12, 13),  # a removal in flight, still gone
    "nulls": (None, "a", False, True, None, 14),  # null == null: unchanged
}


@pytest.fixture(scope="module")
def con():
    return ibis.duckdb.connect()


def _source(con, rows: dict, *, name: str, tolerance=None, on_remove="null") -> SyncSource:
    ids = list(rows)
    table = pa.table(
        {
            "user_id": pa.array(ids, pa.string()),
            "score": pa.array([rows[i][0] for i in ids], pa.float64()),
            "plan": pa.array([rows[i][1] for i in ids], pa.string()),
        }
    )
    return SyncSource(
        table=con.create_table(name, table, overwrite=True),
        id_column="user_id",
        traits=("score", "plan"),
        kind="identify",
        id_type="user_id",
        sync_key="k",
        label=name,
        on_remove=on_remove,
        tolerance=tolerance or {},
    )


def _ledger(con, rows: dict, *, name: str = "ledger") -> ibis.Table:
    ids = list(rows)
    column = {k: [rows[i][n] for i in ids] for n, k in enumerate(("score", "plan"))}
    flags = {k: [rows[i][n] for i in ids] for n, k in enumerate((REMOVED, DELIVERED), start=2)}
    table = pa.table(
        {
            "user_id": pa.array(ids, pa.string()),
            REMOVED: pa.array(flags[REMOVED], pa.bool_()),
            DELIVERED: pa.array(flags[DELIVERED], pa.bool_()),
            BASE: pa.array([rows[i][4] for i in ids], pa.int64()),
            SEQ: pa.array([rows[i][5] for i in ids], pa.int64()),
            "score": pa.array(column["score"], pa.float64()),
            "plan": pa.array(column["plan"], pa.string()),
        }
    )
    return con.create_table(name, table, overwrite=True)


def _rows(diff) -> dict[str, tuple]:
    out = diff.order_by("_id").to_pyarrow().to_pylist()
    return {r["_id"]: (r["_cat"], r["_pseq"], r["_base"], r["_c0"], r["_c1"]) for r in out}


def test_every_category_with_its_ledger_row_and_message_base(con):
    src = _source(con, SOURCE, name="src_all")
    got = _rows(d.diff_table(src, _ledger(con, LEDGER)))
    assert got == {
        "same": (d.UNCHANGED, 1, 1, 1.0, "a"),
        "moved": (d.CHANGED, 2, 2, 2.5, "a"),
        "replan": (d.CHANGED, 3, 3, 1.0, "b"),
        "fresh": (d.NEW, 0, 0, 3.0, "a"),
        "back": (d.NEW, 4, 4, 4.0, "a"),
        "gone": (d.REMOVED_CAT, 5, 5, None, None),
        "tomb": (-1, 6, 6, None, None),
        # the in-flight value comes back with the in-flight message's base (same messageId)
        "flight_same": (d.RESEND, 9, 7, 5.0, "a"),
        "flight_other": (d.RESEND, 10, 10, 6.5, "a"),
        "flight_gone": (d.RESEND_REMOVED, 11, 11, None, None),
        "flight_removal": (d.RESEND_REMOVED, 13, 12, None, None),
        "nulls": (d.UNCHANGED, 14, 14, None, "a"),
    }


def test_counts_add_up_the_categories(con):
    src = _source(con, SOURCE, name="src_counts")
    diff = d.diff_table(src, _ledger(con, LEDGER))
    assert d.counts(diff) == {
        "unchanged": 2,
        "new": 2,
        "changed": 4,  # moved, replan + the two uncertain ones still in the source
        "removed": 3,  # gone + the two uncertain removals
        "uncertain": 4,
        "bad_ids": 0,
        "rows": 8,  # new + changed + unchanged: the source's profiles
    }


def test_what_a_run_sends_under_each_on_remove(con):
    src = _source(con, SOURCE, name="src_send")
    diff = d.diff_table(src, _ledger(con, LEDGER))

    def ids(table) -> set[str]:
        return set(table.to_pyarrow().column("_id").to_pylist())

    changed = {"moved", "replan", "fresh", "back", "flight_same", "flight_other"}
    removals = {"gone", "flight_gone", "flight_removal"}
    assert ids(d.to_send(diff, "null")) == changed | removals
    assert ids(d.to_send(diff, "keep")) == changed
    assert d.send_categories("null") == [
        d.NEW,
        d.CHANGED,
        d.RESEND,
        d.REMOVED_CAT,
        d.RESEND_REMOVED,
    ]
    assert d.send_categories("keep") == [d.NEW, d.CHANGED, d.RESEND]


def test_a_retry_run_sends_the_failed_identifiers_and_every_uncertain_profile(con):
    src = _source(con, SOURCE, name="src_retry")
    diff = d.diff_table(src, _ledger(con, LEDGER))
    failed = con.create_table(
        "failed", pa.table({"identifier": ["moved", "nobody"]}), overwrite=True
    )["identifier"]
    uncertain = {"flight_same", "flight_other", "flight_gone", "flight_removal"}
    got = set(d.only_retries(diff, failed).to_pyarrow().column("_id").to_pylist())
    assert got == uncertain | {"moved"}
    none_failed = set(d.only_retries(diff, None).to_pyarrow().column("_id").to_pylist())
    assert none_failed == uncertain


def test_a_first_run_sends_everything_as_new(con):
    src = _source(con, {"x": (1.0, "a"), "y": (None, None)}, name="src_first")
    assert _rows(d.diff_table(src, None)) == {
        "x": (d.NEW, 0, 0, 1.0, "a"),
        "y": (d.NEW, 0, 0, None, None),
    }


def test_identifiers_that_cannot_be_sent_are_bad_never_new_nor_removed(con):
    rows = {"ok": (1.0, "a"), "dup": (2.0, "a"), " ": (3.0, "a"), "": (4.0, "a")}
    src = _source(con, rows, name="src_bad")
    dup = pa.table(
        {"user_id": ["dup", None], "score": [9.0, 5.0], "plan": ["z", "a"]},
        schema=src.table.schema().to_pyarrow(),
    )
    con.insert("src_bad", dup)
    ledger = _ledger(con, {"ok": (1.0, "a", False, True, None, 1)}, name="ledger_bad")

    diff = d.diff_table(src, ledger)
    cats = {k: v[0] for k, v in _rows(diff).items()}
    # the null identifier joins nothing and is left out; bad_identifiers reports it
    assert cats == {"ok": d.UNCHANGED, "dup": d.BAD_ID, " ": d.BAD_ID, "": d.BAD_ID}
    assert cats == {k: v[0] for k, v in _rows(d.diff_table(src, None)).items()} | {
        "ok": d.UNCHANGED
    }
    assert d.counts(diff) == {
        "unchanged": 1,
        "new": 0,
        "changed": 0,
        "removed": 0,
        "uncertain": 0,
        "bad_ids": 3,
        "rows": 1,
    }
    assert not set(d.to_send(diff, "null").to_pyarrow().column("_id").to_pylist())

    reasons = sorted(
        ("<null>" if r["identifier"] is None else r["identifier"], r["reason"])
        for r in d.bad_identifiers(src).to_pyarrow().to_pylist()
    )
    assert reasons == [
        ("", "blank identifier (user_id is an empty string)"),
        (" ", "blank identifier (user_id is an empty string)"),
        ("<null>", "missing identifier (user_id is null)"),
        ("dup", "duplicate identifier: 2 rows"),
        ("dup", "duplicate identifier: 2 rows"),
    ]


def test_unscreened_the_contract_already_vouched_for_the_identifiers(con):
    src = _source(con, {"a": (1.0, "x"), "b": (2.0, "y")}, name="src_unscreened")
    ledger = _ledger(con, {"a": (1.0, "x", False, True, None, 1)}, name="ledger_unscreened")
    assert _rows(d.diff_table(src, ledger, screen=False)) == _rows(d.diff_table(src, ledger))
    assert _rows(d.diff_table(src, None, screen=False)) == {
        "a": (d.NEW, 0, 0, 1.0, "x"),
        "b": (d.NEW, 0, 0, 2.0, "y"),
    }


def test_the_tolerance_applies_per_trait_and_only_to_numbers(con):
    rows = {"small": (1.04, "a"), "edge": (1.05, "a"), "plan": (1.0, "b")}
    src = _source(con, rows, name="src_tol", tolerance={"score": 0.0625})
    ledger = _ledger(
        con,
        {
            "small": (1.0, "a", False, True, None, 1),
            "edge": (0.9875, "a", False, True, None, 2),  # 1.05 - 0.9875 = 0.0625 (exact)
            "plan": (1.0, "a", False, True, None, 3),
        },
        name="ledger_tol",
    )
    cats = {k: v[0] for k, v in _rows(d.diff_table(src, ledger)).items()}
    assert cats == {"small": d.UNCHANGED, "edge": d.CHANGED, "plan": d.CHANGED}


def test_describe_counts():
    c = {"new": 1_200, "changed": 3, "removed": 0, "unchanged": 45_000, "uncertain": 9}
    assert d.describe_counts(c) == "1,200 new, 3 changed, 0 removed, 45,000 unchanged"
