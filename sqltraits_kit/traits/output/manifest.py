"""The record of each scoring run: as of when it scored, and with which models.

The output table's rows carry the run id, the models and the time of scoring, not the date the
features were taken at (``as_of``), which is what an outcome needs: the realised outcome of a
score is what happened in the model's horizon *after* ``as_of``. :func:`record_score_run`
appends one row per scoring run to ``sqltraits_score_runs``; :func:`score_run` reads it back.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import ibis.expr.schema as sch

    from sqltraits_kit.warehouse import Warehouse

__all__ = ["SCORE_RUNS_TABLE", "record_score_run", "score_run"]

SCORE_RUNS_TABLE = "sqltraits_score_runs"


def _schema() -> sch.Schema:
    import ibis

    return ibis.schema(
        {
            "run_id": "string",
            "output_table": "string",
            "as_of": "timestamp('UTC')",
            "scored_at": "timestamp('UTC')",
            "models": "string",  # JSON: [{"ref", "name", "version", "kind", "columns", ...}]
            "recorded_at": "timestamp('UTC')",
        }
    )


def _utc(when: dt.datetime) -> dt.datetime:
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


def record_score_run(
    wh: Warehouse,
    *,
    table: str,
    run_id: str,
    as_of: dt.datetime,
    scored_at: dt.datetime,
    models: Sequence[Mapping[str, Any]],
) -> None:
    """Append the record of one scoring run (``models``: one mapping per model, JSON-able)."""
    import ibis
    import pyarrow as pa

    schema = _schema()
    if not wh.has_table(SCORE_RUNS_TABLE):
        try:
            wh.con.create_table(SCORE_RUNS_TABLE, schema=schema)
        except Exception:
            if not wh.has_table(SCORE_RUNS_TABLE):  # another process may have won the race
                raise
    row = {
        "run_id": run_id,
        "output_table": table,
        "as_of": _utc(as_of),
        "scored_at": _utc(scored_at),
        "models": json.dumps([dict(m) for m in models], sort_keys=True),
        "recorded_at": dt.datetime.now(dt.UTC),
    }
    arrow = pa.Table.from_pylist([row], schema=schema.to_pyarrow())
    wh.con.insert(SCORE_RUNS_TABLE, ibis.memtable(arrow))


def score_run(wh: Warehouse, run_id: str, /) -> dict[str, Any] | None:
    """The record of scoring run ``run_id`` (``models`` parsed), or None if none was kept."""
    if not wh.has_table(SCORE_RUNS_TABLE):
        return None
    t = wh.con.table(SCORE_RUNS_TABLE)
    rows = t.filter(t["run_id"] == run_id).order_by(t["recorded_at"].desc()).limit(1)
    found = rows.to_pyarrow().to_pylist()
    if not found:
        return None
    out = dict(found[0])
    out["models"] = json.loads(out["models"] or "[]")
    for key in ("as_of", "scored_at"):
        if out[key] is not None and out[key].tzinfo is None:
            out[key] = out[key].replace(tzinfo=dt.UTC)
    return out
