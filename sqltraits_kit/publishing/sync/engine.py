"""The publish run: checks, diff, paged send through the ledger, run record.

The ledger (:mod:`.state`, ``docs/DELIVERY.md``): before any message of a page goes out, every
row of the page is appended to the state as *unknown* (values and messageId); a batch that
Segment acknowledges appends its rows again as *delivered*. A crash, a timeout, an error answer
or exhausted retries leave rows unknown, and the next run re-sends every unknown profile's
current value. So the state never says "delivered" for what Segment did not acknowledge, and
always knows what Segment *may* hold.

Commit policy — the trade-off: the unknown rows of a page are written in one insert (one per
page of ``page_rows``); acknowledged rows are appended in groups (every ``commit_rows`` rows or
``commit_seconds``, whichever comes first), because one insert per 500-message batch would make
the warehouse, not Segment, the bottleneck. A crash (even ``kill -9``) loses at most the
acknowledged-but-uncommitted rows: they stay unknown and the next run re-sends them under the
*same* message ids, which Segment deduplicates for about 24 hours.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Literal, overload

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.publishing.segment.batching import pack_batches
from sqltraits_kit.publishing.segment.client import (
    DEFAULT_MAX_EVENTS_PER_SECOND,
    DEFAULT_MAX_REQUESTS_PER_SECOND,
    BatchResult,
    SegmentClient,
)
from sqltraits_kit.publishing.sync import diff as d
from sqltraits_kit.publishing.sync import lease as lz
from sqltraits_kit.publishing.sync import runs as r
from sqltraits_kit.publishing.sync import state as s
from sqltraits_kit.publishing.sync.checks import verdicts as gate_verdicts
from sqltraits_kit.publishing.sync.destination import client_destination, message_scope
from sqltraits_kit.publishing.sync.dryrun import DEFAULT_BATCH_SIZE, DEFAULT_PAGE_ROWS, _dry_run
from sqltraits_kit.publishing.sync.messages import check_sizes, encode_page
from sqltraits_kit.publishing.sync.reports import (
    DryRunReport,
    SyncProgress,
    SyncRefused,
    SyncResult,
)
from sqltraits_kit.publishing.sync.source import SourceLike, SyncSource, describe, resolve_source
from sqltraits_kit.publishing.sync.tables import insert, utc_now
from sqltraits_kit.warehouse.sandbox import time_limit

if TYPE_CHECKING:
    import pyarrow as pa

    from sqltraits_kit.publishing.segment.payload import EncodedMessage
    from sqltraits_kit.warehouse import Warehouse

__all__ = ["source_summary", "sync"]

_PROGRESS_EVERY = 0.1  # seconds between progress callbacks while sending
_AUTH_STATUSES = frozenset({401, 403})


class _Stop(Exception):
    """Raised from ``on_result`` to stop sending (the run then finishes normally)."""

    def __init__(self, reason: str, *, config: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.config = reason, config


class _Publisher:
    """Holds the pages in flight, the acknowledged rows and the failures until committed."""

    def __init__(
        self,
        wh: Warehouse,
        src: SyncSource,
        *,
        run_id: str,
        destination: str,
        state_table: str,
        pending_table: str,
        total: int,
        page_rows: int,
        seq: int,
        commit_rows: int,
        commit_seconds: float,
        max_consecutive_failures: int,
        progress: Callable[[SyncProgress], None] | None,
    ) -> None:

        self.wh, self.src, self.run_id = wh, src, run_id
        self.destination = destination
        self.scope = message_scope(src.sync_key, destination)
        self.state_table, self.pending_table = state_table, pending_table
        self.total, self.page_rows, self.seq = total, page_rows, seq
        self.commit_rows, self.commit_seconds = commit_rows, commit_seconds
        self.max_consecutive_failures = max_consecutive_failures
        self.progress = progress
        self.pages: dict[int, pa.Table] = {}
        self.acked: list[int] = []
        self.acked_ids: list[str] = []  # the messageId of each acknowledged row
        self.failures: list[dict[str, Any]] = []
        self.sent = self.failed = self.requests = 0
        self.settled = 0  # every row below this number is acknowledged or recorded as failed
        self.consecutive_failures = 0
        self.errors: list[str] = []
        self.started = time.perf_counter()
        self.last_commit = self.last_progress = time.monotonic()
        self.state_schema = s.state_schema(src).to_pyarrow()

    # -- reading and encoding
    def messages(self) -> Iterator[EncodedMessage]:
        for page_no in range(math.ceil(self.total / self.page_rows)):
            page = d.read_page(self.wh, self.pending_table, page_no, self.page_rows)
            self.pages[page_no] = page
            base_row = page_no * self.page_rows
            encoded = list(
                encode_page(
                    page,
                    self.src,
                    scope=self.scope,
                    base_row=base_row,
                    on_error=self._payload_error,
                )
            )
            if not encoded:
                # Every row failed before sending: no batch will refer to this page, and no
                # result will come to trigger a commit, so memory must not wait for one.
                del self.pages[page_no]
            else:
                # In flight before anything leaves: from here on Segment may hold these values.
                self._ledger(page, [m.key - base_row for m in encoded], encoded, delivered=False)
            yield from encoded
            if len(self.failures) >= self.commit_rows:
                self.commit()

    def _ledger(
        self,
        rows: pa.Table,
        index: list[int],
        encoded: list[EncodedMessage] | list[str],
        *,
        delivered: bool,
    ) -> None:
        """Append ledger rows: ``rows.take(index)`` with their message ids, at the next seq."""
        import pyarrow as pa
        import pyarrow.compute as pc

        part = rows.take(pa.array(index, pa.int64()))
        n = part.num_rows
        mids = [m if isinstance(m, str) else m.message_id for m in encoded]
        data = {self.src.id_column: part.column("_id")}
        for i, trait in enumerate(self.src.traits):
            data[trait] = part.column(d.trait_alias(i))
        removal = pc.is_in(part.column("_cat"), pa.array(d.REMOVALS, pa.int8()))
        data[s.REMOVED] = removal
        data[s.DELIVERED] = pa.array([delivered] * n, pa.bool_())
        data[s.MESSAGE_ID] = pa.array(mids, pa.string())
        data[s.RUN_ID] = pa.array([self.run_id] * n, pa.string())
        data[s.SEQ] = pa.array([self.seq] * n, pa.int64())
        insert(self.wh, self.state_table, pa.table(data).cast(self.state_schema))
        self.seq += 1

    def _identifier(self, row: int) -> str:
        page = self.pages[row // self.page_rows]
        return str(page.column("_id")[row % self.page_rows].as_py())

    def _fail(
        self,
        row: int,
        reason: str,
        *,
        payload_bytes: int = 0,
        http_status: int | None = None,
        requests: int = 0,
        identifier: Any = None,
    ) -> None:
        self.failures.append(
            {
                "run_id": self.run_id,
                "sync_key": self.src.sync_key,
                "destination": self.destination,
                "identifier": str(identifier) if identifier is not None else self._identifier(row),
                "reason": reason[:1000],
                "payload_bytes": payload_bytes,
                "http_status": http_status,
                "requests": requests,
                "failed_at": utc_now(),
            }
        )
        self.failed += 1
        if len(self.errors) < 5 and reason not in self.errors:
            self.errors.append(reason)

    def reject_identifiers(self, bad: Any, *, limit: int = 100_000) -> None:
        """Record the source rows whose identifier cannot be sent (missing, blank, duplicate)
        as failed rows with their reason: ``allow_invalid`` never sends them."""
        for row in bad.limit(limit).to_pyarrow().to_pylist():
            self.failures.append(
                {
                    "run_id": self.run_id,
                    "sync_key": self.src.sync_key,
                    "destination": self.destination,
                    "identifier": row["identifier"],
                    "reason": row["reason"],
                    "payload_bytes": 0,
                    "requests": 0,
                    "failed_at": utc_now(),
                }
            )
            self.failed += 1
            if len(self.errors) < 5 and row["reason"] not in self.errors:
                self.errors.append(row["reason"])

    def _payload_error(self, row: int, ident: Any, reason: str) -> None:
        self._fail(row, reason, identifier=ident)

    # -- acknowledgements (on the caller's thread, in input order)
    def on_result(self, result: BatchResult) -> None:
        batch = result.batch
        self.requests += result.attempts
        keys = [m.key for m in batch.messages]
        if result.ok:
            self.acked.extend(keys)
            self.acked_ids.extend(m.message_id for m in batch.messages)
            self.sent += len(keys)
            if keys:
                self.consecutive_failures = 0
        else:
            reason = result.error or f"{result.status.value} (HTTP {result.http_status})"
            if result.status.value == "failed_retries_exhausted":
                reason = f"gave up after {result.attempts} requests: {reason}"
            for m in batch.messages:
                self._fail(
                    m.key,
                    reason,
                    payload_bytes=m.size,
                    http_status=result.http_status,
                    requests=result.attempts,
                )
            self.consecutive_failures += 1
        for rejection in batch.rejected:
            self._fail(
                rejection.message.key, rejection.reason, payload_bytes=rejection.message.size
            )
        settled = [*keys, *(x.message.key for x in batch.rejected)]
        if settled:
            self.settled = max(self.settled, max(settled) + 1)
        now = time.monotonic()
        if len(self.acked) >= self.commit_rows or now - self.last_commit >= self.commit_seconds:
            self.commit()
        if now - self.last_progress >= _PROGRESS_EVERY:
            self.last_progress = now
            self.report("sending")
        if not result.ok and result.http_status in _AUTH_STATUSES:
            raise _Stop(
                f"Segment refused the write key (HTTP {result.http_status}): check "
                "SEGMENT_WRITE_KEY and the region/endpoint",
                config=True,
            )
        if self.consecutive_failures >= self.max_consecutive_failures:
            raise _Stop(
                f"stopped after {self.consecutive_failures} batches in a row failed "
                f"(last: {self.errors[-1] if self.errors else 'unknown'}); the rows not sent "
                "are sent by the next run"
            )

    def report(self, phase: str) -> None:
        if self.progress is not None:
            self.progress(
                SyncProgress(
                    phase=phase,  # type: ignore[arg-type]
                    run_id=self.run_id,
                    total=self.total,
                    sent=self.sent,
                    failed=self.failed,
                    requests=self.requests,
                    elapsed=time.perf_counter() - self.started,
                )
            )

    def commit(self) -> None:
        """Append the acknowledged rows to the ledger as delivered, the failures to the failed
        rows table (their ledger rows stay unknown)."""
        import pyarrow as pa

        if self.acked:
            by_page: dict[int, list[int]] = defaultdict(list)
            mids: dict[int, list[str]] = defaultdict(list)
            for row, mid in zip(self.acked, self.acked_ids, strict=True):
                by_page[row // self.page_rows].append(row % self.page_rows)
                mids[row // self.page_rows].append(mid)
            pages = list(by_page)
            part = pa.concat_tables(
                self.pages[p].take(pa.array(by_page[p], pa.int64())) for p in pages
            )
            seq = self.seq
            self._ledger(
                part,
                list(range(part.num_rows)),
                [m for p in pages for m in mids[p]],
                delivered=True,
            )
            self.seq = seq  # _ledger moved it on; one increment below covers both tables
        if self.failures:
            for row in self.failures:
                row["seq"] = self.seq
            r.record_failures(self.wh, self.failures)
        if self.acked or self.failures:
            self.seq += 1
        self.acked, self.acked_ids, self.failures = [], [], []
        self.last_commit = time.monotonic()
        done = self.settled // self.page_rows
        for page_no in [p for p in self.pages if p < done]:
            del self.pages[page_no]


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
        wh,
        sync_key=src.sync_key,
        destination=destination,
        wait=deadline.cap(wait),
        ttl=lease_ttl,
    )
    state_table = s.ensure_state(wh, src, destination)
    previous = r.latest_run(wh, src.sync_key, destination)
    now = utc_now()
    if previous is not None and previous["status"] in r.UNFINISHED:
        run_id = previous["run_id"]
        earlier = r.run_rows(wh, run_id)
        plan = earlier[0]
        attempt = max(int(x["attempt"] or 1) for x in earlier) + 1
        started_at = plan["started_at"]
        prior_requests = sum(int(x["requests"] or 0) for x in earlier if x["status"] != "running")
    else:
        from sqltraits_kit.traits.output import new_run_id

        run_id, plan, attempt, started_at, prior_requests = new_run_id(now), None, 1, now, 0

    lease.run_id = run_id
    lease.heartbeat()  # so that a run refused or waiting can name this one
    phase("diffing", run_id)
    screen = verdicts.bad_identifiers  # the contract found missing, blank or duplicate ids
    diff = d.diff_table(src, s.latest_state(wh, state_table), screen=screen)
    if only_failed:
        diff = d.only_retries(diff, r.failed_identifiers(wh, src.sync_key, destination))
    pending_table = s.pending_table_name(src.sync_key, destination)
    with time_limit(wh):  # the diff joins the user's SQL with the state: the query budget
        c = d.counts(diff)
        total = d.materialise(wh, pending_table, d.to_send(diff, src.on_remove))
    if plan is None:
        plan = {k: c[k] for k in ("rows", "new", "changed", "removed", "unchanged")}
    base_row = {
        "run_id": run_id,
        "sync_key": src.sync_key,
        "source": src.label,
        "kind": src.kind,
        "attempt": attempt,
        "started_at": started_at,
        "on_remove": src.on_remove,
        "destination": destination,
        **{k: int(plan[k] or 0) for k in ("rows", "new", "changed", "removed", "unchanged")},
    }
    r.record_run(
        wh,
        {
            **base_row,
            "status": "running",
            "sent": 0,
            "failed": 0,
            "requests": 0,
            "recorded_at": now,
            "event_seq": time.time_ns(),
        },
    )

    seq = max(s.max_seq(wh, state_table), r.max_failed_seq(wh, src.sync_key, destination)) + 1
    pub = _Publisher(
        wh,
        src,
        run_id=run_id,
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
    stop: _Stop | lz.RunStopped | None = None
    send_started = clock()
    try:
        try:
            client.send_batches(
                pack_batches(pub.messages(), max_messages=batch_size),
                on_result=lz.guard(pub.on_result, lease.check, deadline.check),
            )
        except (_Stop, lz.RunStopped) as exc:
            stop = exc
        send_seconds = clock() - send_started
        pub.commit()
    except BaseException as exc:
        # Keep what was acknowledged, then mark the run for resumption by the next call.
        with contextlib.suppress(Exception):
            pub.commit()
        with contextlib.suppress(Exception):
            finished = utc_now()
            r.record_run(
                wh,
                {
                    **base_row,
                    "status": "interrupted",
                    "sent": pub.sent,
                    "failed": pub.failed,
                    "requests": pub.requests,
                    "finished_at": finished,
                    "duration_s": (finished - started_at).total_seconds(),
                    "error": _safe_error(exc),
                    "recorded_at": finished,
                    "event_seq": time.time_ns(),
                },
            )
        raise

    pub.report("finishing")
    state = wh.con.table(state_table)
    sent = int(state.filter((state[s.RUN_ID] == run_id) & state[s.DELIVERED]).count().execute())
    unsent = max(0, total - pub.sent - pub.failed)
    status = _status(sent, pub.failed, unsent)
    error = stop.reason if stop is not None else None
    s.compact(wh, state_table)
    d.drop(wh, pending_table)
    finished = utc_now()
    duration = (finished - started_at).total_seconds()
    requests = prior_requests + pub.requests
    r.record_run(
        wh,
        {
            **base_row,
            "status": status,
            "sent": sent,
            "failed": pub.failed,
            "requests": requests,
            "finished_at": finished,
            "duration_s": duration,
            "error": error,
            "recorded_at": finished,
            "event_seq": time.time_ns(),
        },
    )
    pub.report("done")
    if stop is not None and stop.config:
        raise ConfigError(f"{error} (run {run_id}: {sent:,} sent, {pub.failed:,} failed)")
    return SyncResult(
        run_id=run_id,
        sync_key=src.sync_key,
        source=src.label,
        kind=src.kind,
        status=status,
        rows=int(plan["rows"] or 0),
        new=int(plan["new"] or 0),
        changed=int(plan["changed"] or 0),
        removed=int(plan["removed"] or 0),
        unchanged=int(plan["unchanged"] or 0),
        uncertain=c["uncertain"],
        destination=destination,
        sent=sent,
        failed=pub.failed,
        requests=requests,
        duration_s=duration,
        unsent=unsent,
        send_seconds=send_seconds,
        attempt=attempt,
        error=error,
        errors=tuple(pub.errors),
        verdicts=verdicts,
    )


def source_summary(wh: Warehouse, source: SourceLike, /, **options: Any) -> dict[str, Any]:
    """The resolved source as JSON (sync key, kind, identifier, traits, tolerance...)."""
    return describe(resolve_source(wh, source, **options))
