"""The state module's rules on hand-made ledgers: what the published snapshot is, which rows
compaction keeps and archives, how an old state table is migrated, which state table a sync key
is read from.

The sync tests reach these through whole runs against the stand-in, where every ledger looks
alike (each profile in flight, then delivered); mutation testing (benchmarks/MUTATION.md) showed
what that leaves open: a latest row that is unknown, a tombstone, a legacy log without the
delivery column, the compaction threshold, the type changes ``conform`` allows. Here each
ledger row is written by hand, so each rule is one row to look at. DuckDB, a file per test.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re

import ibis
import pyarrow as pa
import pytest

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.publishing.sync import state as s
from sqltraits_kit.publishing.sync.source import SyncSource
from sqltraits_kit.publishing.sync.tables import arrow_rows, insert
from sqltraits_kit.traits.traitset import TraitSet
from sqltraits_kit.warehouse import connect

KEY = "churn_scores"  # a trait set's sync key is its name
DEST = "segment:https://api.example/v1:abc"


@pytest.fixture
def wh(tmp_path):
    wh = connect(f"duckdb:///{tmp_path / 'state.duckdb'}", create=True)  # ":memory:" is shared
    yield wh
    wh.close()


def _source(wh, columns: dict[str, pa.Array], *, kind="identify", key=KEY) -> SyncSource:
    table = wh.con.create_table("scores", pa.table(columns), overwrite=True)
    ident, *traits = columns
    return SyncSource(
        table=table,
        id_column=ident,
        traits=tuple(traits),
        kind=kind,
        id_type="user_id",
        sync_key=key,
        label="scores",
        on_remove="null",
    )


def _plain(wh) -> SyncSource:
    return _source(
        wh,
        {
            "user_id": pa.array(["a"], pa.string()),
            "score": pa.array([0.5], pa.float64()),
            "plan": pa.array(["p"], pa.string()),
        },
    )


# id, score, removed, delivered, base, run, seq
Row = tuple[str, float | None, bool, bool, int | None, str, int]


def _ledger(wh, name: str, rows: list[Row], *, delivered_column: bool = True) -> None:
    """A state table (id ``user_id``, one trait ``score``) holding ``rows``."""
    names = ("user_id", "score", s.REMOVED, s.DELIVERED, s.BASE, s.RUN_ID, s.SEQ)
    types = (pa.string(), pa.float64(), pa.bool_(), pa.bool_(), pa.int64(), pa.string(), pa.int64())
    data = {
        n: pa.array([r[i] for r in rows], t)
        for i, (n, t) in enumerate(zip(names, types, strict=True))
    }
    if not delivered_column:
        del data[s.DELIVERED], data[s.BASE]
    wh.con.create_table(name, pa.table(data), overwrite=True)


def _pairs(table) -> list[tuple[str, int]]:
    """The (identifier, sequence number) of each row, sorted."""
    rows = table.select("user_id", s.SEQ).to_pyarrow().to_pylist()
    return sorted((r["user_id"], r[s.SEQ]) for r in rows)


def _register(wh, destination: str | None, at: int, *, key: str = KEY, kind="identify") -> None:
    """A registry row of ``key`` at ``destination``, registered ``at`` seconds past midnight."""
    s.ensure_table(wh, s.REGISTRY_TABLE, s._registry_schema())
    when = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=at)
    row = {
        "sync_key": key,
        "state_table": s.state_table_name(key, destination) if destination else "legacy",
        "id_column": "user_id",
        "kind": kind,
        "traits": "score",
        "source": f"at {at}",
        "registered_at": when,
        "destination": destination,
    }
    insert(wh, s.REGISTRY_TABLE, arrow_rows(s._registry_schema(), [row]))


# ---------------------------------------------------------------- the schema and its migration


def test_the_state_schema_is_the_identifier_the_traits_then_the_bookkeeping_in_order(wh):
    src = _source(
        wh,
        {
            "account": pa.array([1], pa.int32()),
            "plan": pa.array(["p"], pa.string()),
            "score": pa.array([0.5], pa.float32()),
        },
    )
    assert list(s.state_schema(src).items()) == [
        ("account", ibis.dtype("int32")),
        ("plan", ibis.dtype("string")),
        ("score", ibis.dtype("float32")),
        (s.REMOVED, ibis.dtype("boolean")),
        (s.DELIVERED, ibis.dtype("boolean")),
        (s.BASE, ibis.dtype("int64")),
        (s.RUN_ID, ibis.dtype("string")),
        (s.SEQ, ibis.dtype("int64")),
    ]


def test_conform_keeps_casts_or_nulls_each_trait_by_its_type_change(wh):
    old = pa.table(
        {
            "user_id": pa.array([1, 2], pa.int64()),
            "same": pa.array(["x", "y"], pa.string()),
            "widened": pa.array([3, 4], pa.int32()),  # int32 -> float64: cast
            "flag_to_int": pa.array([True, False]),  # boolean is not numeric: null
            "int_to_flag": pa.array([1, 0], pa.int64()),  # nor the other way round
            "to_text": pa.array([5, 6], pa.int64()),  # "5" and 5 differ for Segment: null
            "dropped": pa.array([7, 8], pa.int64()),
            s.REMOVED: pa.array([False, True]),
            s.DELIVERED: pa.array([False, True]),
            s.RUN_ID: pa.array(["r1", "r2"]),
            s.SEQ: pa.array([1, 2], pa.int64()),
            # no _sync_base: a log from before it existed
        }
    )
    table = wh.con.create_table("old_state", old)
    src = _source(
        wh,
        {
            "user_id": pa.array(["1"], pa.string()),  # ids may become text
            "same": pa.array(["x"], pa.string()),
            "widened": pa.array([0.5], pa.float64()),
            "flag_to_int": pa.array([1], pa.int64()),
            "int_to_flag": pa.array([True]),
            "to_text": pa.array(["5"], pa.string()),
            "fresh": pa.array([9.0], pa.float64()),  # a new trait: null, so re-sent
        },
    )
    out = s.conform(table, src)
    assert out.schema() == s.state_schema(src)
    assert out.order_by(s.SEQ).to_pyarrow().to_pylist() == [
        {
            "user_id": "1",
            "same": "x",
            "widened": 3.0,
            "flag_to_int": None,
            "int_to_flag": None,
            "to_text": None,
            "fresh": None,
            s.REMOVED: False,
            s.DELIVERED: False,  # the recorded status stays: only a log without it is delivered
            s.BASE: None,
            s.RUN_ID: "r1",
            s.SEQ: 1,
        },
        {
            "user_id": "2",
            "same": "y",
            "widened": 4.0,
            "flag_to_int": None,
            "int_to_flag": None,
            "to_text": None,
            "fresh": None,
            s.REMOVED: True,
            s.DELIVERED: True,
            s.BASE: None,
            s.RUN_ID: "r2",
            s.SEQ: 2,
        },
    ]


def test_conform_counts_a_log_from_before_the_ledger_as_delivered(wh):
    _ledger(wh, "legacy", [("a", 1.0, False, True, None, "r1", 1)], delivered_column=False)
    out = s.conform(wh.con.table("legacy"), _plain(wh))
    row = out.to_pyarrow().to_pylist()[0]
    assert (row[s.DELIVERED], row[s.BASE], row["plan"], row["score"]) == (True, None, None, 1.0)


def test_conform_refuses_another_identifier_or_an_identifier_that_is_no_longer_text(wh):
    _ledger(wh, "state", [("a", 1.0, False, True, None, "r1", 1)])
    other = _source(wh, {"email": pa.array(["a@x.io"]), "score": pa.array([0.5])})
    message = (
        f"sync key {KEY!r} was published with another identifier (user_id, score); publish "
        f"under a new sync key (or drop the table {s.state_table_name(KEY)} to start from an "
        "empty state: every profile is then sent again)"
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        s.conform(wh.con.table("state"), other)
    numeric = _source(wh, {"user_id": pa.array([1], pa.int64()), "score": pa.array([0.5])})
    message = (
        f"the identifier 'user_id' of sync key {KEY!r} changed type from string to int64; "
        "cast it back, or publish under a new sync key"
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        s.conform(wh.con.table("state"), numeric)


def test_the_other_identifier_message_names_at_most_80_characters_of_columns(wh):
    columns = {"user_id": pa.array(["a"])} | {f"trait_{i:02d}": pa.array([i]) for i in range(20)}
    wh.con.create_table("wide", pa.table(columns))
    other = _source(wh, {"email": pa.array(["a@x.io"]), "trait_00": pa.array([0])})
    listed = ", ".join(columns)[:80]
    assert len(listed) == 80 and listed.endswith(", t")  # cut inside a name
    with pytest.raises(ConfigError, match=rf"another identifier \({re.escape(listed)}\); "):
        s.conform(wh.con.table("wide"), other)


def test_ensure_state_creates_registers_once_and_re_registers_on_a_change(wh):
    src = _plain(wh)
    name = s.ensure_state(wh, src, DEST)
    assert name == s.state_table_name(KEY, DEST)
    assert wh.con.table(name).schema() == s.state_schema(src)
    reg = s.registration(wh, KEY, DEST)
    assert {k: v for k, v in reg.items() if k != "registered_at"} == {
        "sync_key": KEY,
        "state_table": name,
        "id_column": "user_id",
        "kind": "identify",
        "traits": "score,plan",
        "source": "scores",
        "destination": DEST,
    }
    assert reg["registered_at"].tzinfo is not None
    assert s.ensure_state(wh, src, DEST) == name
    assert wh.con.table(s.REGISTRY_TABLE).count().to_pyarrow().as_py() == 1  # nothing changed

    # another destination, then other traits, then another identifier: one row each
    s.ensure_state(wh, src, "segment:other")
    s.ensure_state(wh, src, DEST)  # back to the first: registered there already
    assert wh.con.table(s.REGISTRY_TABLE).count().to_pyarrow().as_py() == 2
    fewer = _source(wh, {"user_id": pa.array(["a"]), "score": pa.array([0.5])})
    s.ensure_state(wh, fewer, DEST)
    email = _source(wh, {"email": pa.array(["a@x.io"]), "score": pa.array([0.5])})
    s.ensure_state(wh, email, "segment:third")
    rows = wh.con.table(s.REGISTRY_TABLE).to_pyarrow().to_pylist()
    assert sorted((r["destination"], r["traits"], r["id_column"]) for r in rows) == [
        (DEST, "score", "user_id"),
        (DEST, "score,plan", "user_id"),
        ("segment:other", "score,plan", "user_id"),
        ("segment:third", "score", "email"),
    ]


def test_ensure_state_refuses_another_kind_under_the_same_key(wh):
    s.ensure_state(wh, _plain(wh), DEST)
    group = _source(
        wh, {"group_id": pa.array(["g"]), "score": pa.array([0.5])}, kind="group", key=KEY
    )
    message = (
        f"sync key {KEY!r} was published with identify calls, not group; use another sync key "
        "for the other kind"
    )
    with pytest.raises(ConfigError, match=f"^{re.escape(message)}$"):
        s.ensure_state(wh, group, "segment:other")


def test_ensure_state_migrates_the_state_and_its_archive_and_keeps_a_current_one(wh, monkeypatch):
    name = s.state_table_name(KEY, DEST)
    rows = [("a", 1.0, False, True, None, "r1", 1), ("b", 2.0, False, False, 1, "r1", 2)]
    _ledger(wh, name, rows)
    _ledger(wh, s.log_table_name(name), [("a", 0.5, False, True, None, "r0", 0)])
    src = _plain(wh)  # a new trait, plan
    assert s.ensure_state(wh, src, DEST) == name
    for table in (name, s.log_table_name(name)):
        assert wh.con.table(table).schema() == s.state_schema(src)
    assert _pairs(wh.con.table(name)) == [("a", 1), ("b", 2)]
    assert wh.con.table(name).order_by(s.SEQ)[s.DELIVERED].to_pyarrow().to_pylist() == [
        True,
        False,
    ]
    assert _pairs(wh.con.table(s.log_table_name(name))) == [("a", 0)]

    # a state already in the current schema is left as it is (not rewritten)
    def no_rewrite(_wh, table, _expr):
        raise AssertionError(f"{table} rewritten")

    monkeypatch.setattr(s, "replace_table", no_rewrite)
    assert s.ensure_state(wh, src, DEST) == name


# ------------------------------------------------------------------ the ledger and its snapshot

LEDGER: list[Row] = [
    ("a", 1.0, False, True, None, "r1", 1),  # delivered
    ("a", 2.0, False, False, 1, "r2", 3),  # then 2.0 in flight: Segment may hold either
    ("b", 3.0, False, True, None, "r1", 2),
    ("b", None, True, True, None, "r2", 4),  # tombstone, delivered
    ("c", 5.0, False, False, 2, "r2", 5),  # never acknowledged
    ("d", 6.0, False, True, None, "r2", 6),  # delivered by the run being resumed
    ("e", 7.0, False, True, None, "r1", 0),
    ("e", None, True, False, 6, "r2", 7),  # a removal in flight
]


def test_the_latest_state_is_the_latest_row_per_identifier_of_either_status(wh):
    assert s.latest_state(wh, "state") is None
    _ledger(wh, "state", LEDGER)
    assert _pairs(s.latest_state(wh, "state")) == [("a", 3), ("b", 4), ("c", 5), ("d", 6), ("e", 7)]
    before = s.latest_state(wh, "state", excluding_run="r2")
    assert _pairs(before) == [("a", 1), ("b", 2), ("e", 0)]


def test_the_published_snapshot_is_the_latest_delivered_value_not_removed(wh):
    assert s.published_snapshot(wh, KEY) is None
    _ledger(wh, s.state_table_name(KEY, DEST), LEDGER)
    _register(wh, DEST, 1)
    snapshot = s.published_snapshot(wh, KEY)
    assert snapshot.columns == ("user_id", "score")
    held = sorted(snapshot.to_pyarrow().to_pylist(), key=lambda r: r["user_id"])
    # a: the acknowledged 1.0, not the 2.0 in flight; b: removed; c: never acknowledged;
    # e: its removal is in flight, so Segment may still hold 7.0
    assert held == [
        {"user_id": "a", "score": 1.0},
        {"user_id": "d", "score": 6.0},
        {"user_id": "e", "score": 7.0},
    ]
    before = s.published_snapshot(wh, KEY, destination=DEST, excluding_run="r2")
    assert sorted(before.to_pyarrow().to_pylist(), key=lambda r: r["user_id"]) == [
        {"user_id": "a", "score": 1.0},
        {"user_id": "b", "score": 3.0},
        {"user_id": "e", "score": 7.0},
    ]
    by_trait_set = s.published_snapshot(wh, TraitSet(name=KEY, table="scores"))
    assert sorted(by_trait_set.to_pyarrow().to_pylist(), key=lambda r: r["user_id"]) == held

    # published to another destination since: the default follows it, a named one stays
    _ledger(wh, s.state_table_name(KEY, "later"), [("z", 9.0, False, True, None, "r3", 1)])
    _register(wh, "later", 2)
    assert s.published_snapshot(wh, KEY).to_pyarrow().to_pylist() == [
        {"user_id": "z", "score": 9.0}
    ]
    assert s.published_snapshot(wh, KEY, destination=DEST).count().to_pyarrow().as_py() == 3


def test_a_log_without_the_delivery_column_is_read_as_all_delivered(wh):
    rows = [("a", 1.0, False, True, None, "r1", 1), ("a", 2.0, False, True, None, "r2", 2)]
    _ledger(wh, s.state_table_name(KEY), rows, delivered_column=False)
    assert s._delivered(wh.con.table(s.state_table_name(KEY))).count().to_pyarrow().as_py() == 2
    assert s.published_snapshot(wh, KEY).to_pyarrow().to_pylist() == [
        {"user_id": "a", "score": 2.0}
    ]


def test_max_seq_and_the_published_version(wh):
    name = s.state_table_name(KEY, DEST)
    assert (s.max_seq(wh, name), s.published_version(wh, KEY)) == (0, 0)
    _register(wh, DEST, 1)
    _ledger(wh, name, [])
    assert (s.max_seq(wh, name), s.published_version(wh, KEY)) == (0, 0)
    _ledger(wh, name, LEDGER)
    assert s.max_seq(wh, name) == 7
    assert type(s.max_seq(wh, name)) is int
    trait_set = TraitSet(name=KEY, table="scores")
    assert (s.published_version(wh, KEY), s.published_version(wh, trait_set)) == (7, 7)


# ------------------------------------------------------------- which state table a key reads


def test_destinations_are_the_latest_registered_first_and_the_snapshot_reads_the_first_with_a_table(
    wh,
):
    assert (s.destinations(wh, KEY), s.snapshot_table(wh, KEY)) == ([], None)
    assert s.registration(wh, KEY) is None
    _register(wh, "one", 10)
    _register(wh, "two", 20)
    _register(wh, "one", 5)  # registered before: "one" counts from its latest row, 10
    _register(wh, None, 30)  # a legacy row: no destination
    _register(wh, "other-key", 40, key="another")
    assert s.destinations(wh, KEY) == ["two", "one"]
    assert s.registration(wh, KEY)["source"] == "at 30"
    assert s.registration(wh, KEY, "one")["source"] == "at 10"
    assert s.registration(wh, "nobody") is None

    assert s.snapshot_table(wh, KEY) is None  # no state table yet
    legacy = s.state_table_name(KEY)
    _ledger(wh, legacy, LEDGER)
    assert s.snapshot_table(wh, KEY) == legacy
    one = s.state_table_name(KEY, "one")
    _ledger(wh, one, LEDGER)
    assert s.snapshot_table(wh, KEY) == one
    two = s.state_table_name(KEY, "two")
    _ledger(wh, two, LEDGER)
    assert s.snapshot_table(wh, KEY) == two
    assert s.snapshot_table(wh, KEY, "one") == one
    assert s.snapshot_table(wh, KEY, "three") is None

    assert s.destination_of(wh, KEY, one) == "one"
    assert s.destination_of(wh, KEY, two) == "two"
    assert s.destination_of(wh, KEY, legacy) is None
    assert s.destination_of(wh, KEY, None) is None


def test_a_registry_from_before_destinations_lists_none(wh):
    schema = ibis.schema({n: t for n, t in s._registry_schema().items() if n != "destination"})
    wh.con.create_table(s.REGISTRY_TABLE, schema=schema)
    row = {
        "sync_key": KEY,
        "state_table": s.state_table_name(KEY),
        "id_column": "user_id",
        "kind": "identify",
        "traits": "score,plan",
    }
    insert(wh, s.REGISTRY_TABLE, arrow_rows(schema, [row]))
    assert s.destinations(wh, KEY) == []
    assert s.registration(wh, KEY, DEST)["state_table"] == s.state_table_name(KEY)
    # the next publish registers its destination (the registry gains the column), though
    # its identifier and traits are the ones registered
    s.ensure_state(wh, _plain(wh), DEST)
    assert s.destinations(wh, KEY) == [DEST]


# --------------------------------------------------------------------------------- compaction


def _history(ids: int, extra: int) -> list[Row]:
    """One delivered row per identifier, then ``extra`` more delivered rows for the first."""
    rows = [(f"u{i:05d}", float(i), False, True, None, "r1", i) for i in range(ids)]
    rows += [("u00000", float(-n), False, True, None, "r2", ids + n) for n in range(extra)]
    return rows


@pytest.mark.parametrize(
    ("ids", "extra", "compacted"),
    [
        (10, 1_000, False),  # 1,000 rows more than identifiers: the floor, not yet
        (10, 1_001, True),
        (1_000, 1_250, False),  # a quarter more than 1,000 identifiers: not yet
        (1_000, 1_251, True),
    ],
)
def test_compaction_starts_once_the_log_grew_past_its_threshold(wh, ids, extra, compacted):
    _ledger(wh, "state", _history(ids, extra))
    assert s.compact(wh, "state") is compacted
    n = wh.con.table("state").count().to_pyarrow().as_py()
    assert n == (ids if compacted else ids + extra)


def test_the_slack_sets_the_threshold(wh):
    _ledger(wh, "state", _history(1_000, 1_100))
    assert s.compact(wh, "state", slack=1.1) is False
    assert s.compact(wh, "state", slack=1.09) is True


def test_compaction_keeps_the_latest_row_and_the_latest_delivered_one_and_archives_the_rest(wh):
    rows: list[Row] = [
        ("a", 1.0, False, False, 0, "r1", 1),
        ("a", 1.0, False, True, None, "r1", 2),
        ("a", 2.0, False, False, 2, "r2", 3),
        ("a", 2.0, False, True, None, "r2", 4),  # latest, delivered: the only row kept
        ("b", 1.0, False, False, 0, "r1", 5),
        ("b", 1.0, False, True, None, "r1", 6),  # the snapshot, kept beside ...
        ("b", 3.0, False, False, 6, "r2", 7),  # ... the latest, unknown
        ("c", None, True, True, None, "r1", 8),  # a tombstone is a row like another
        ("d", 4.0, False, False, 0, "r1", 9),
        ("d", 5.0, False, False, 9, "r2", 10),  # only unknown rows: the latest
    ]
    rows += [("z", float(n), False, True, None, "r0", 100 + n) for n in range(1_100)]
    _ledger(wh, "state", rows)
    assert s.compact(wh, "state") is True
    kept = _pairs(wh.con.table("state"))
    assert kept == [("a", 4), ("b", 6), ("b", 7), ("c", 8), ("d", 10), ("z", 1_199)]
    log = wh.con.table(s.log_table_name("state"))
    assert log.schema() == wh.con.table("state").schema()
    # only delivered rows are archived (what Segment held after some run): not a, 1 or 3
    assert _pairs(log) == [("a", 2)] + [("z", 100 + n) for n in range(1_099)]
    assert s.compact(wh, "state") is False  # one row or two per identifier now
    assert not [t for t in wh.tables() if t.startswith("sqltraits_tmp__")]


def test_a_legacy_log_compacts_to_the_latest_row_per_identifier(wh):
    rows = [("a", float(n), False, True, None, "r", n) for n in range(3)]
    _ledger(wh, "legacy", rows, delivered_column=False)
    assert _pairs(s._compacted(wh.con.table("legacy"), "user_id")) == [("a", 2)]


def test_no_compaction_without_a_table_or_an_atomic_rewrite(wh, monkeypatch):
    assert s.compact(wh, "missing") is False
    _ledger(wh, "state", _history(10, 2_000))
    monkeypatch.setattr(s, "can_rewrite", lambda _wh: False)  # Spark: the log is kept whole
    assert s.compact(wh, "state") is False
    assert wh.con.table("state").count().to_pyarrow().as_py() == 2_010
    assert not wh.has_table(s.log_table_name("state"))


def test_table_names_are_lower_snake_case_with_a_hash_of_the_key_and_destination():
    """Operators see these names (and Snowflake folds case): the key in lower snake case, cut to
    30 characters, then a hash of the key (and the destination), so distinct keys never share a
    table; the archive and the pending table carry the state table's suffix."""

    def h(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    key, dest = "  Churn Scores!! (EU)", "segment:https://api.example/v1:abc"
    assert s.state_table_name(key) == f"sqltraits_state__churn_scores_eu_{h(key)}"
    assert s.pending_table_name(key) == f"sqltraits_pending__churn_scores_eu_{h(key)}"
    pair = f"churn_scores_eu_{h(key + chr(0) + dest)}"
    assert s.state_table_name(key, dest) == f"sqltraits_state__{pair}"
    assert s.pending_table_name(key, dest) == f"sqltraits_pending__{pair}"
    assert s.log_table_name(s.state_table_name(key, dest)) == f"sqltraits_statelog__{pair}"
    assert s.state_table_name("!!!") == f"sqltraits_state__key_{h('!!!')}"  # nothing left
    assert s.state_table_name("!!!", dest) == f"sqltraits_state__key_{h('!!!' + chr(0) + dest)}"
    long = "x" * 200
    assert s.state_table_name(long) == f"sqltraits_state__{'x' * 30}_{h(long)}"
    pair = f"{'x' * 30}_{h(long + chr(0) + dest)}"
    assert s.state_table_name(long, dest) == f"sqltraits_state__{pair}"
    names = [s.state_table_name(long, dest), s.log_table_name(s.state_table_name(long, dest))]
    assert all(len(n) <= 63 for n in names)  # PostgreSQL's limit
    assert s.state_table_name(long) != s.state_table_name(long + "y")  # same 30-char prefix
