"""Which scores a publish carried: the scoring runs behind each sync run.

The ledger (:mod:`.state`) knows the trait values a destination holds, not where they came
from. When a run starts, the scoring runs its source reads are recorded here, one row each,
in ``sqltraits_sync_provenance``: the output table, the scoring run id, the models and their
versions. A source that is an output production table (a trait set over one, or the table
itself) has them in its metadata columns; a query has none. A rollback carries the scores of
the run it re-publishes, and says so (``rollback_of``).

The outcome report (:mod:`sqltraits_kit.workflows.outcomes`) joins a published version with
these scores to judge them once the model's horizon has passed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqltraits_kit.publishing.sync.tables import arrow_rows, ensure_table, insert, utc_now
from sqltraits_kit.traits.output import METADATA_COLUMNS

if TYPE_CHECKING:
    import ibis.expr.schema as sch

    from sqltraits_kit.publishing.sync.source import SyncSource
    from sqltraits_kit.warehouse import Warehouse

__all__ = ["PROVENANCE_TABLE", "provenance", "record"]

PROVENANCE_TABLE = "sqltraits_sync_provenance"


def provenance_schema() -> sch.Schema:
    import ibis

    return ibis.schema(
        {
            "run_id": "string",  # the sync run
            "sync_key": "string",
            "destination": "string",
            "output_table": "string",
            "score_run_id": "string",  # the scoring run whose rows the source held
            "model_name": "string",  # as the output table writes them: "churn,ltv,btyd"
            "model_version": "string",  # "3,1,2", in the same order
            "scored_at": "timestamp('UTC')",
            "rows": "int64",
            "rollback_of": "string",  # the run a rollback re-published (null otherwise)
            "recorded_at": "timestamp('UTC')",
        }
    )


def _scoring_runs(wh: Warehouse, table: str) -> list[dict[str, Any]]:
    if not wh.has_table(table):
        return []
    t = wh.con.table(table)
    if not set(METADATA_COLUMNS) <= set(t.columns):
        return []  # not an output production table: no scoring run to name
    summary = t.group_by(
        score_run_id=t["run_id"].cast("string"),
        model_name=t["model_name"].cast("string"),
        model_version=t["model_version"].cast("string"),
    ).aggregate(scored_at=t["scored_at"].max(), rows=t.count())
    return summary.to_pyarrow().to_pylist()


def record(wh: Warehouse, src: SyncSource, /, *, run_id: str, destination: str) -> None:
    """Record the scoring runs behind run ``run_id`` of ``src`` (nothing for a query source)."""
    now = utc_now()
    base = {"run_id": run_id, "sync_key": src.sync_key, "destination": destination}
    if src.rollback_of is not None:
        earlier = provenance(wh, src.rollback_of)
        rows = [
            {**row, **base, "rollback_of": src.rollback_of, "recorded_at": now} for row in earlier
        ] or [{**base, "rollback_of": src.rollback_of, "recorded_at": now}]
    elif src.base_table is not None:
        rows = [
            {**row, **base, "output_table": src.base_table, "recorded_at": now}
            for row in _scoring_runs(wh, src.base_table)
        ]
    else:
        rows = []
    if rows:
        ensure_table(wh, PROVENANCE_TABLE, provenance_schema())
        insert(wh, PROVENANCE_TABLE, arrow_rows(provenance_schema(), rows))


def provenance(wh: Warehouse, run_id: str, /) -> list[dict[str, Any]]:
    """The scoring runs sync run ``run_id`` carried (empty: none recorded, or a query)."""
    if not wh.has_table(PROVENANCE_TABLE):
        return []
    t = wh.con.table(PROVENANCE_TABLE)
    rows = t.filter(t["run_id"] == run_id).order_by(t["score_run_id"])
    return rows.to_pyarrow().to_pylist()
