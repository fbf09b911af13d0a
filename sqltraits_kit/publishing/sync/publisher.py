"""The sending half of a publish run: pages in flight, the ledger writes, failures, progress.

:class:`Publisher` reads the numbered rows to send page by page, writes them to the ledger as
*unknown* before the first batch, encodes them (:mod:`.messages`), and on each batch's result
appends the acknowledged rows as *delivered* and the failures to the failed-rows table, in
groups (the commit policy is :mod:`.engine`'s). ``on_result`` raises :class:`Stop` to end the
run early (a refused write key, too many failed batches in a row).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from sqltraits_kit.publishing.segment.client import BatchResult
from sqltraits_kit.publishing.sync import diff as d
from sqltraits_kit.publishing.sync import runs as r
from sqltraits_kit.publishing.sync import state as s
from sqltraits_kit.publishing.sync.destination import message_scope
from sqltraits_kit.publishing.sync.messages import encode_page
from sqltraits_kit.publishing.sync.reports import SyncProgress
from sqltraits_kit.publishing.sync.source import SyncSource
from sqltraits_kit.publishing.sync.tables import arrow_view, insert, utc_now

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pyarrow as pa

    from sqltraits_kit.publishing.segment.payload import EncodedMessage
    from sqltraits_kit.warehouse import Warehouse

__all__ = ["Publisher", "Stop"]

_PROGRESS_EVERY = 0.1  # seconds between progress callbacks while sending
_AUTH_STATUSES = frozenset({401, 403})


class Stop(Exception):
    """Raised from ``on_result`` to stop sending (the run then finishes normally)."""

    def __init__(self, reason: str, *, config: bool = False) -> None:
        super().__init__(reason)
        self.reason, self.config = reason, config


class Publisher:
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
        self.acked: list[int] = []  # row numbers (``_row``) Segment acknowledged
        self.failures: list[dict[str, Any]] = []
        self.sent = self.failed = self.requests = 0
        self.settled = 0  # every row below this number is acknowledged or recorded as failed
        self.consecutive_failures = 0
        self.errors: list[str] = []
        self.started = time.perf_counter()
        self.last_commit = self.last_progress = time.monotonic()
        self.schema = s.state_schema(src)

    # -- reading and encoding
    def messages(self) -> Iterator[EncodedMessage]:
        if self.total:
            # In flight before anything leaves: from here on Segment may hold these values.
            self._append(self.wh.con.table(self.pending_table), delivered=False)
        for page_no in range(math.ceil(self.total / self.page_rows)):
            page = d.read_page(self.wh, self.pending_table, page_no, self.page_rows)
            self.pages[page_no] = page
            produced = 0
            for message in encode_page(
                page,
                self.src,
                scope=self.scope,
                base_row=page_no * self.page_rows,
                on_error=self._payload_error,
            ):
                produced += 1
                yield message
            if not produced:
                # Every row failed before sending: no batch will refer to this page, and no
                # result will come to trigger a commit, so memory must not wait for one.
                del self.pages[page_no]
            if len(self.failures) >= self.commit_rows:
                self.commit()

    def _append(self, rows: ir.Table, *, delivered: bool) -> None:
        """Append pending ``rows`` to the ledger at the next sequence number: one INSERT ...
        SELECT in the warehouse, nothing but row numbers through Python.

        Every row of the run is written as unknown before the first batch leaves (one statement
        instead of one per page, which stalled the senders): a row the run never reached, or
        the payload layer refused, is then "unknown" too, which only means that the next run
        sends its current value again, as it would have anyway."""
        import ibis

        values = {t: rows[d.trait_alias(i)] for i, t in enumerate(self.src.traits)}
        ledger = rows.select(
            **{self.src.id_column: rows["_id"]},
            **values,
            **{
                s.REMOVED: rows["_cat"].isin(list(d.REMOVALS)),
                s.DELIVERED: ibis.literal(delivered),
                s.BASE: rows["_base"],
                s.RUN_ID: ibis.literal(self.run_id),
                s.SEQ: ibis.literal(self.seq, "int64"),
            },
        )
        insert(self.wh, self.state_table, ledger.cast(self.schema))
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
            raise Stop(
                f"Segment refused the write key (HTTP {result.http_status}): check "
                "SEGMENT_WRITE_KEY and the region/endpoint",
                config=True,
            )
        if self.consecutive_failures >= self.max_consecutive_failures:
            raise Stop(
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
        if self.acked:
            import pyarrow as pa

            pending = self.wh.con.table(self.pending_table)
            row = pending["_row"]
            # The range first: acknowledgements come in row order, so the scan reads only the
            # pages they fall in (min/max metadata, or the row-number index) instead of the
            # whole table at every commit.
            near = (row >= min(self.acked)) & (row <= max(self.acked))
            with arrow_view(self.wh, pa.table({"_acked": pa.array(self.acked, pa.int64())})) as ok:
                self._append(pending.filter(near & row.isin(ok["_acked"])), delivered=True)
            self.seq -= 1  # one sequence number for this commit's ledger and failure rows
        if self.failures:
            for row in self.failures:
                row["seq"] = self.seq
            r.record_failures(self.wh, self.failures)
        if self.acked or self.failures:
            self.seq += 1
        self.acked, self.failures = [], []
        self.last_commit = time.monotonic()
        done = self.settled // self.page_rows
        for page_no in [p for p in self.pages if p < done]:
            del self.pages[page_no]
