"""The publish run: checks, diff, paged send through the ledger, run record.

The ledger (:mod:`.state`, ``docs/DELIVERY.md``): before the first message goes out, every row
the run will send is appended to the state as *unknown* (values and message-id base); a batch that
Segment acknowledges appends its rows again as *delivered*. A crash, a timeout, an error answer
or exhausted retries leave rows unknown, and the next run re-sends every unknown profile's
current value. So the state never says "delivered" for what Segment did not acknowledge, and
always knows what Segment *may* hold.

Commit policy — the trade-off: the unknown rows are written in one INSERT ... SELECT before
sending; acknowledged rows are appended in groups (every ``commit_rows`` rows or
``commit_seconds``, whichever comes first), because one insert per 500-message batch would make
the warehouse, not Segment, the bottleneck. A crash (even ``kill -9``) loses at most the
acknowledged-but-uncommitted rows: they stay unknown and the next run re-sends them under the
*same* message ids, which Segment deduplicates for about 24 hours.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, overload

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.publishing.segment.batching import pack_batches
from sqltraits_kit.publishing.segment.client import (
    DEFAULT_MAX_EVENTS_PER_SECOND,
    DEFAULT_MAX_REQUESTS_PER_SECOND,
    SegmentClient,
)
from sqltraits_kit.publishing.sync import diff as d
from sqltraits_kit.publishing.sync import lease as lz
from sqltraits_kit.publishing.sync import provenance as pv
from sqltraits_kit.publishing.sync import runs as r
from sqltraits_kit.publishing.sync import state as s
from sqltraits_kit.publishing.sync.checks import verdicts as gate_verdicts
from sqltraits_kit.publishing.sync.destination import client_destination
from sqltraits_kit.publishing.sync.dryrun import DEFAULT_BATCH_SIZE, DEFAULT_PAGE_ROWS, _dry_run
from sqltraits_kit.publishing.sync.messages import check_sizes
from sqltraits_kit.publishing.sync.publisher import Publisher, Stop
from sqltraits_kit.publishing.sync.reports import (
    DryRunReport,
    SyncProgress,
    SyncRefused,
    SyncResult,
)
from sqltraits_kit.publishing.sync.source import SourceLike, describe, resolve_source
from sqltraits_kit.publishing.sync.tables import utc_now
from sqltraits_kit.warehouse.sandbox import time_limit

if TYPE_CHECKING:
    from sqltraits_kit.warehouse import Warehouse

__all__ = ["source_summary", "sync"]


def _status(sent: int, failed: int, unsent: int) -> Literal["succeeded", "partial", "failed"]:
    if failed == 0 and unsent == 0:
        return "succeeded"
    return "partial" if sent else "failed"


def _safe_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:500] if text else type(exc).__name__


@overload
def sync(
    wh: Warehouse, source: SourceLike, /, *, dry_run: Literal[True], **options: Any
) -> DryRunReport: ...
@overload
def sync(
    wh: Warehouse, source: SourceLike, /, *, dry_run: Literal[False] = ..., **options: Any
) -> SyncResult: ...


@lz.scoped  # releases the run's lease however sync() ends
def sync(
    wh: Warehouse,
    source: SourceLike,
    /,
    *,
    client: SegmentClient | None = None,
    kind: str | None = None,
    id_column: str | None = None,
    on_remove: str | None = None,
    sync_key: str | None = None,
    dry_run: bool = False,
    allow_drift: bool = False,
    allow_invalid: bool = False,
    only_failed: bool = False,
    progress: Callable[[SyncProgress], None] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    page_rows: int = DEFAULT_PAGE_ROWS,
    commit_rows: int = 20_000,
    commit_seconds: float = 1.0,
    max_consecutive_failures: int = 8,
    max_requests_per_second: float | None = DEFAULT_MAX_REQUESTS_PER_SECOND,
    max_events_per_second: float | None = DEFAULT_MAX_EVENTS_PER_SECOND,
    wait: float | bool = False,
    max_duration: float | None = None,
    lease_ttl: float = lz.DEFAULT_TTL,
) -> SyncResult | DryRunReport:
    """Publish the new and changed profiles of ``source`` to Segment; returns a SyncResult.

    ``source``: a :class:`TraitSet`, a table name or a :class:`Query`. ``kind`` (identify or
    group), ``id_column`` and ``on_remove`` (``null``: profiles that left the result get their
    traits set to null, Segment's rule; ``keep``: left alone) come from a trait set, or default
    to identify / ``user_id`` (``group_id``) / null. ``only_failed`` sends only rows that failed
    before. ``dry_run=True`` returns :func:`dry_run`'s report instead (no client needed;
    ``max_*_per_second`` are used for its duration estimate only).

    Refuses (:class:`SyncRefused`, nothing sent) when the table breaks Segment's contract
    (unless ``allow_invalid``: bad rows are then reported per row) or drifted past the
    threshold from what was last published (unless ``allow_drift``). A run that did not finish
    (crash, ``kill -9``, exception) is resumed by the next call for the same sync key.

    One run per sync key and destination at a time (:mod:`.lease`): raises
    :class:`~.lease.LeaseHeld` naming the live run that holds it, unless ``wait`` (True, or at
    most that many seconds). ``max_duration`` (seconds, from the call) stops sending between
    batches; the rows not sent are left for the next run and the result says so in ``error``.

    Longer than ~80 lines because of its 23 options and this text; the body is the run's steps in
    order (checks, lease, run record, diff, send, ledger, record), each one call.
    """
    if dry_run:
        return _dry_run(
            wh,
            source,
            kind=kind,
            id_column=id_column,
            on_remove=on_remove,
            sync_key=sync_key,
            only_failed=only_failed,
            batch_size=batch_size,
            max_requests_per_second=max_requests_per_second,
            max_events_per_second=max_events_per_second,
            page_rows=page_rows,
            destination=client_destination(client) if client is not None else None,
        )
    if client is None:
        raise ConfigError("publishing needs a SegmentClient (see make_client), or dry_run=True")
    if wh.read_only:
        raise ConfigError(
            f"{wh.display_url} is open read-only; a publish records its state in the warehouse"
        )
    check_sizes(batch_size, page_rows)
    lz.for_the_run(wh.remembering_tables())  # ~20 has_table calls: one listing per new name
    deadline = lz.Deadline(max_duration)
    clock = time.perf_counter
    t0 = clock()

    def phase(name: str, run_id: str | None = None, total: int = 0) -> None:
        if progress is not None:
            progress(SyncProgress(phase=name, run_id=run_id, total=total, elapsed=clock() - t0))  # type: ignore[arg-type]

    phase("checking")
    destination = client_destination(client)
    src = resolve_source(
        wh, source, kind=kind, id_column=id_column, on_remove=on_remove, sync_key=sync_key
    )
    verdicts = gate_verdicts(wh, src, destination=destination)
    problems = verdicts.problems(allow_drift=allow_drift, allow_invalid=allow_invalid)
    if problems:
        raise SyncRefused(f"not published ({src.label}): " + "; ".join(problems), verdicts=verdicts)

    # Before looking for a run to resume: a run found unfinished now is one that is not alive.
    lease = lz.hold(
        wh, sync_key=src.sync_key, destination=destination, wait=deadline.cap(wait), ttl=lease_ttl
    )
    state_table = s.ensure_state(wh, src, destination)
    run = _Run.start_or_resume(wh, src, destination)
    lease.run_id = run.run_id
    lease.heartbeat()  # so that a run refused or waiting can name this one
    phase("diffing", run.run_id)
    screen = verdicts.bad_identifiers  # the contract found missing, blank or duplicate ids
    diff = d.diff_table(src, s.latest_state(wh, state_table), screen=screen)
    if only_failed:
        diff = d.only_retries(diff, r.failed_identifiers(wh, src.sync_key, destination))
    pending_table = s.pending_table_name(src.sync_key, destination)
    with time_limit(wh):  # the diff joins the user's SQL with the state: the query budget
        c = d.counts(diff)
        total = d.materialise(wh, pending_table, d.to_send(diff, src.on_remove))
    run.plan_from(c)
    run.record(wh, "running", sent=0, failed=0, requests=0)
    if run.attempt == 1:  # which scores this run carries (a resumed run recorded them already)
        pv.record(wh, src, run_id=run.run_id, destination=destination)

    seq = max(s.max_seq(wh, state_table), r.max_failed_seq(wh, src.sync_key, destination)) + 1
    pub = Publisher(
        wh,
        src,
        run_id=run.run_id,
        destination=destination,
        state_table=state_table,
        pending_table=pending_table,
        total=total,
        page_rows=page_rows,
        seq=seq,
        commit_rows=commit_rows,
        commit_seconds=commit_seconds,
        max_consecutive_failures=max_consecutive_failures,
        progress=progress,
    )
    if screen and not only_failed:
        pub.reject_identifiers(d.bad_identifiers(src))
    pub.report("sending")
    send_started = clock()
    stop = _send(wh, run, pub, client, batch_size=batch_size, checks=(lease.check, deadline.check))
    send_seconds = clock() - send_started

    pub.report("finishing")
    state = wh.con.table(state_table)
    sent = int(state.filter((state[s.RUN_ID] == run.run_id) & state[s.DELIVERED]).count().execute())
    unsent = max(0, total - pub.sent - pub.failed)
    status = _status(sent, pub.failed, unsent)
    error = stop.reason if stop is not None else None
    s.compact(wh, state_table)
    d.drop(wh, pending_table)
    requests = run.prior_requests + pub.requests
    duration = run.record(
        wh, status, sent=sent, failed=pub.failed, requests=requests, error=error, finished=True
    )
    pub.report("done")
    if stop is not None and stop.config:
        raise ConfigError(f"{error} (run {run.run_id}: {sent:,} sent, {pub.failed:,} failed)")
    return _result(
        run,
        src,
        c,
        pub,
        sent=sent,
        unsent=unsent,
        status=status,
        error=error,
        requests=requests,
        duration=duration,
        send_seconds=send_seconds,
        verdicts=verdicts,
    )


def _result(
    run: _Run, src: Any, counts: dict[str, int], pub: Publisher, **figures: Any
) -> SyncResult:
    """The run's result from its record, the diff's counts and the publisher's tallies."""
    return SyncResult(
        run_id=run.run_id,
        sync_key=src.sync_key,
        source=src.label,
        kind=src.kind,
        status=figures["status"],
        **{k: int(run.plan[k] or 0) for k in _PLAN_KEYS},
        uncertain=counts["uncertain"],
        destination=run.base_row["destination"],
        sent=figures["sent"],
        failed=pub.failed,
        requests=figures["requests"],
        duration_s=figures["duration"],
        unsent=figures["unsent"],
        send_seconds=figures["send_seconds"],
        attempt=run.attempt,
        error=figures["error"],
        errors=tuple(pub.errors),
        verdicts=figures["verdicts"],
    )


_PLAN_KEYS = ("rows", "new", "changed", "removed", "unchanged")


@dataclasses.dataclass
class _Run:
    """One run's record in the run history: new, or the unfinished run this call resumes."""

    base_row: dict[str, Any]
    plan: dict[str, Any] | None
    prior_requests: int

    @property
    def run_id(self) -> str:
        return str(self.base_row["run_id"])

    @property
    def attempt(self) -> int:
        return int(self.base_row["attempt"])

    @classmethod
    def start_or_resume(cls, wh: Warehouse, src: Any, destination: str) -> _Run:
        previous = r.latest_run(wh, src.sync_key, destination)
        now = utc_now()
        plan: dict[str, Any] | None = None
        if previous is not None and previous["status"] in r.UNFINISHED:
            run_id = previous["run_id"]
            earlier = r.run_rows(wh, run_id)
            plan = earlier[0]
            attempt = max(int(x["attempt"] or 1) for x in earlier) + 1
            started_at = plan["started_at"]
            prior = sum(int(x["requests"] or 0) for x in earlier if x["status"] != "running")
        else:
            from sqltraits_kit.traits.output import new_run_id

            run_id, attempt, started_at, prior = new_run_id(now), 1, now, 0
        base_row = {
            "run_id": run_id,
            "sync_key": src.sync_key,
            "source": src.label,
            "kind": src.kind,
            "attempt": attempt,
            "started_at": started_at,
            "on_remove": src.on_remove,
            "destination": destination,
        }
        return cls(base_row=base_row, plan=plan, prior_requests=prior)

    def plan_from(self, counts: dict[str, int]) -> None:
        """The counts planned at the run's first attempt (a resumed run keeps its own)."""
        if self.plan is None:
            self.plan = {k: counts[k] for k in _PLAN_KEYS}
        self.base_row.update({k: int(self.plan[k] or 0) for k in _PLAN_KEYS})

    def record(self, wh: Warehouse, status: str, *, finished: bool = False, **fields: Any) -> float:
        """Append the run's row with ``status``; returns the run's duration in seconds."""
        at = utc_now()
        duration = (at - self.base_row["started_at"]).total_seconds()
        row = {**self.base_row, "status": status, **fields, "recorded_at": at}
        if finished:
            row.update(finished_at=at, duration_s=duration)
        r.record_run(wh, {**row, "event_seq": time.time_ns()})
        return duration


def _send(
    wh: Warehouse,
    run: _Run,
    pub: Publisher,
    client: SegmentClient,
    *,
    batch_size: int,
    checks: tuple[Callable[[], None], ...],
) -> Stop | lz.RunStopped | None:
    """Send the pending rows; returns why the run stopped early, or None.

    Whatever ends the send (an exception, Ctrl-C), what was acknowledged is committed first;
    on an exception the run is then recorded ``interrupted`` for the next call to resume.
    """
    stop: Stop | lz.RunStopped | None = None
    try:
        try:
            client.send_batches(
                pack_batches(pub.messages(), max_messages=batch_size),
                on_result=lz.guard(pub.on_result, *checks),
            )
        except (Stop, lz.RunStopped) as exc:
            stop = exc
        pub.commit()
    except BaseException as exc:
        with contextlib.suppress(Exception):
            pub.commit()
        with contextlib.suppress(Exception):
            run.record(
                wh,
                "interrupted",
                sent=pub.sent,
                failed=pub.failed,
                requests=pub.requests,
                error=_safe_error(exc),
                finished=True,
            )
        raise
    return stop


def source_summary(wh: Warehouse, source: SourceLike, /, **options: Any) -> dict[str, Any]:
    """The resolved source as JSON (sync key, kind, identifier, traits, tolerance...)."""
    return describe(resolve_source(wh, source, **options))
