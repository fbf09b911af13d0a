"""Publish traits to Segment: a diffed, resumable, rate-limited sync with dry run and history.

The page and the CLI call only what this module exports::

    result = sync(wh, TraitSet.load("traitsets/churn.toml"), client=make_client(settings))
    result = sync(wh, "churn_traits", client=client, kind="identify", id_column="user_id")
    result = sync(wh, Query("SELECT user_id, ... FROM ..."), client=client, on_remove="keep")
    report = dry_run(wh, source)            # no network, no write: counts, sample payloads...
    verdicts = check(wh, source)            # the validation and drift gates, without sending
    history(wh); failed_rows(wh)            # runs, and the rows the next run sends again
    published_snapshot(wh, "churn")         # what Segment holds: the Preview's drift baseline
    rollback(wh, trait_set, run_id, client=client)   # re-publish what an earlier run left

How a run works — everything heavy happens in the warehouse, Python holds one page at a time:

1. Resolve the source, check it against Segment's contract and against drift from the
   published snapshot (:mod:`.checks`); refuse unless overridden.
2. Diff it against the ledger of that sync key at that destination (:mod:`.diff`,
   :mod:`.state`, :mod:`.destination`): new, changed, removed, and *uncertain* profiles (sent,
   never acknowledged: sent again); number the rows to send in a scratch table.
3. Read that table in pages, build each message once (:mod:`.messages`), record the page in the
   ledger as in flight, pack and send (:mod:`sqltraits_kit.publishing.segment`), and append the
   rows Segment acknowledged as delivered, in groups (:mod:`.engine` explains the commit
   trade-off); failures go to the failed-rows table. ``docs/DELIVERY.md`` has the states.
4. Record the run (:mod:`.runs`). A run killed at any point leaves its unacknowledged rows
   unknown; the next call re-sends them under the same message ids, so Segment drops duplicates.
"""

from __future__ import annotations

from sqltraits_kit.publishing.sync.checks import check
from sqltraits_kit.publishing.sync.client import make_client
from sqltraits_kit.publishing.sync.dryrun import dry_run
from sqltraits_kit.publishing.sync.engine import source_summary, sync
from sqltraits_kit.publishing.sync.reports import (
    RESULT_KEYS,
    DryRunReport,
    SyncProgress,
    SyncRefused,
    SyncResult,
    Verdicts,
)
from sqltraits_kit.publishing.sync.rollback import rollback
from sqltraits_kit.publishing.sync.runs import FAILED_TABLE, RUNS_TABLE, failed_rows, history
from sqltraits_kit.publishing.sync.source import Query, SyncSource, resolve_source
from sqltraits_kit.publishing.sync.state import (
    REGISTRY_TABLE,
    published_keys,
    published_snapshot,
    state_table_name,
)
from sqltraits_kit.publishing.sync.versions import published_runs, snapshot_at

__all__ = [
    "FAILED_TABLE",
    "REGISTRY_TABLE",
    "RESULT_KEYS",
    "RUNS_TABLE",
    "DryRunReport",
    "Query",
    "SyncProgress",
    "SyncRefused",
    "SyncResult",
    "SyncSource",
    "Verdicts",
    "check",
    "dry_run",
    "failed_rows",
    "history",
    "make_client",
    "published_keys",
    "published_runs",
    "published_snapshot",
    "resolve_source",
    "rollback",
    "snapshot_at",
    "source_summary",
    "state_table_name",
    "sync",
]
