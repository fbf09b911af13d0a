"""A publish without the network: counts, exact sample payloads, requests, expected duration."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from sqltraits_kit.publishing.segment.batching import (
    DEFAULT_MAX_BATCH_BYTES,
    ENVELOPE_BYTES,
    pack_batches,
)
from sqltraits_kit.publishing.segment.client import (
    DEFAULT_MAX_EVENTS_PER_SECOND,
    DEFAULT_MAX_REQUESTS_PER_SECOND,
)
from sqltraits_kit.publishing.sync import diff as d
from sqltraits_kit.publishing.sync import runs as r
from sqltraits_kit.publishing.sync import state as s
from sqltraits_kit.publishing.sync.checks import verdicts as gate_verdicts
from sqltraits_kit.publishing.sync.client import rate
from sqltraits_kit.publishing.sync.destination import message_scope
from sqltraits_kit.publishing.sync.messages import check_sizes, encode_page, identifier_of
from sqltraits_kit.publishing.sync.reports import DryRunReport
from sqltraits_kit.publishing.sync.source import SourceLike, resolve_source
from sqltraits_kit.warehouse.sandbox import time_limited

if TYPE_CHECKING:
    from sqltraits_kit.publishing.segment.payload import EncodedMessage
    from sqltraits_kit.warehouse import Warehouse

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_PAGE_ROWS", "EXACT_DRY_RUN_ROWS", "dry_run"]

DEFAULT_PAGE_ROWS = 20_000
DEFAULT_BATCH_SIZE = 500
SAMPLE_SIZE = 5
#: Up to this many rows to send, a dry run encodes every message: its request count is exact.
EXACT_DRY_RUN_ROWS = 200_000


def dry_run(
    wh: Warehouse,
    source: SourceLike,
    /,
    *,
    kind: str | None = None,
    id_column: str | None = None,
    on_remove: str | None = None,
    sync_key: str | None = None,
    only_failed: bool = False,
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_requests_per_second: float | None = DEFAULT_MAX_REQUESTS_PER_SECOND,
    max_events_per_second: float | None = DEFAULT_MAX_EVENTS_PER_SECOND,
    sample_size: int = SAMPLE_SIZE,
    page_rows: int = DEFAULT_PAGE_ROWS,
    destination: str | None = None,
) -> DryRunReport:
    """Counts by category, exact sample payloads, the requests and the expected duration.

    No network and no warehouse write (it runs on a read-only connection). Up to
    :data:`EXACT_DRY_RUN_ROWS` rows to send, every message is built and packed exactly as a
    publish would; above, the request count is estimated from the sample's message sizes.
    ``destination`` (see :mod:`.destination`): diff against what that destination holds;
    default: the destination most recently published to. The sample's message ids are the
    ones a publish to it would use.
    """
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
        sample_size=sample_size,
        page_rows=page_rows,
        destination=destination,
    )


@time_limited  # all of a dry run reads the user's SQL: one query budget
def _dry_run(
    wh: Warehouse,
    source: SourceLike,
    /,
    *,
    kind: str | None,
    id_column: str | None,
    on_remove: str | None,
    sync_key: str | None,
    only_failed: bool,
    batch_size: int,
    max_requests_per_second: float | None,
    max_events_per_second: float | None,
    sample_size: int = SAMPLE_SIZE,
    page_rows: int = DEFAULT_PAGE_ROWS,
    destination: str | None = None,
) -> DryRunReport:
    check_sizes(batch_size, page_rows)
    started = time.perf_counter()
    src = resolve_source(
        wh, source, kind=kind, id_column=id_column, on_remove=on_remove, sync_key=sync_key
    )
    verdicts = gate_verdicts(wh, src, destination=destination)
    if destination is None:
        name = s.snapshot_table(wh, src.sync_key)
        destination = s.destination_of(wh, src.sync_key, name)
    else:
        name = s.state_table_name(src.sync_key, destination)
    latest = s.latest_state(wh, name) if name is not None else None
    if latest is not None:
        latest = s.conform(latest, src)
    diff = d.diff_table(src, latest, screen=verdicts.bad_identifiers)
    if only_failed:
        diff = d.only_retries(diff, r.failed_identifiers(wh, src.sync_key, destination))
    c = d.counts(diff)
    scope = message_scope(src.sync_key, destination)
    rows = d.to_send(diff, src.on_remove)
    n = c["new"] + c["changed"] + (c["removed"] if src.on_remove == "null" else 0)
    rejections: list[tuple[str, str]] = []
    rejected = 0

    def on_error(_row: int, ident: Any, reason: str) -> None:
        nonlocal rejected
        rejected += 1
        if len(rejections) < 20:
            rejections.append((str(ident), reason))

    sample_page = rows.order_by("_id").limit(max(sample_size, 1_000)).to_pyarrow()
    sample_msgs = list(
        encode_page(sample_page, src, scope=scope, base_row=0, on_error=lambda *a: None)
    )
    sample = tuple(m.data.decode() for m in sample_msgs[:sample_size])
    exact = n <= EXACT_DRY_RUN_ROWS
    if exact:
        requests, payload = _count_exactly(
            rows, src, scope=scope, batch_size=batch_size, page_rows=page_rows, on_error=on_error
        )
    else:
        requests, payload = _estimate(n, [m.size for m in sample_msgs], batch_size=batch_size)
    rps, eps = rate(max_requests_per_second), rate(max_events_per_second)
    expected = None
    if rps or eps:
        expected = max(requests / rps if rps else 0.0, (n - rejected) / eps if eps else 0.0)
    return DryRunReport(
        sync_key=src.sync_key,
        source=src.label,
        kind=src.kind,
        on_remove=src.on_remove,
        rows=c["rows"],
        new=c["new"],
        changed=c["changed"],
        removed=c["removed"],
        unchanged=c["unchanged"],
        to_send=n,
        requests=requests,
        requests_exact=exact,
        payload_bytes=payload,
        rejected=rejected,
        rejections=tuple(rejections),
        sample=sample,
        expected_seconds=expected,
        max_requests_per_second=rps,
        max_events_per_second=eps,
        verdicts=verdicts,
        duration_s=time.perf_counter() - started,
        uncertain=c["uncertain"],
        destination=destination,
    )


def _count_exactly(
    rows: Any,
    src: Any,
    *,
    scope: str,
    batch_size: int,
    page_rows: int,
    on_error: Callable[[int, Any, str], None],
) -> tuple[int, int]:
    """Requests and body bytes of the publish, by encoding and packing every message as the
    publish would (nothing is written while this streams, so streaming is safe here)."""
    import pyarrow as pa

    def all_messages() -> Iterator[EncodedMessage]:
        for batch in rows.to_pyarrow_batches(chunk_size=page_rows):
            table = pa.Table.from_batches([batch])
            yield from encode_page(table, src, scope=scope, base_row=0, on_error=on_error)

    requests = payload = 0
    for batch in pack_batches(all_messages(), max_messages=batch_size):
        if batch.messages:
            requests += 1
            payload += batch.body_bytes
        for rej in batch.rejected:
            on_error(0, identifier_of(rej.message), rej.reason)
    return requests, payload


def _estimate(n: int, sizes: list[int], *, batch_size: int) -> tuple[int, int]:
    """Requests and body bytes estimated from the sample's mean message size (large publishes)."""
    sizes = sizes or [300]
    mean = sum(sizes) / len(sizes)
    room = DEFAULT_MAX_BATCH_BYTES - ENVELOPE_BYTES
    per_request = max(1, min(batch_size, int(room // (mean + 1))))
    requests = math.ceil(n / per_request)
    return requests, int(n * (mean + 1) + requests * ENVELOPE_BYTES)
