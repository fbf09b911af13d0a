"""Page rows to Segment messages: the hot path, shared by the publish and the dry run."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.publishing.segment.batching import SEGMENT_MAX_BATCH_MESSAGES
from sqltraits_kit.publishing.segment.payload import (
    EncodedMessage,
    PayloadError,
    build_encoded_message,
)
from sqltraits_kit.publishing.segment.row_encoder import plain_row_encoder
from sqltraits_kit.publishing.sync.diff import trait_alias

if TYPE_CHECKING:
    import pyarrow as pa

    from sqltraits_kit.publishing.sync.source import SyncSource

__all__ = ["check_sizes", "encode_page", "identifier_of"]


def _values(column: pa.ChunkedArray) -> list[Any]:
    """A column as Python values; single-precision floats keep their short decimal form.

    Arrow widens a float32 to the double nearest to it (0.1 -> 0.10000000149011612); the
    payload layer gives numpy's float32 its shortest repr, so hand it those.
    """
    import pyarrow as pa

    if pa.types.is_float32(column.type) or pa.types.is_float16(column.type):
        import numpy as np

        return [None if v is None else np.float32(v) for v in column.to_pylist()]
    return column.to_pylist()


def encode_page(
    page: pa.Table,
    src: SyncSource,
    *,
    scope: str,
    base_row: int,
    on_error: Callable[[int, Any, str], None],
) -> Iterator[EncodedMessage]:
    """One message per page row; a value that cannot be sent is reported, not raised.

    ``scope``: the namespace of the message ids (:func:`.destination.message_scope`).
    """
    ids = page.column("_id").to_pylist()
    prev = page.column("_base" if "_base" in page.column_names else "_pseq").to_pylist()
    columns = [_values(page.column(trait_alias(i))) for i in range(len(src.traits))]
    names = src.traits
    kind, id_type = src.kind, src.id_type
    # Sorted trait names: the message id hashes the traits' key-sorted JSON, which is then
    # cheaper to produce; the row loop is the hot path of a publish (one pass per message).
    order = sorted(range(len(names)), key=names.__getitem__)
    names = tuple(names[j] for j in order)
    columns = [columns[j] for j in order]
    rows = zip(*columns, strict=True) if columns else iter(() for _ in ids)
    # Plain values (text, numbers, booleans, nulls) take the fast path, which checks once per
    # page what build_encoded_message checks per row; any other row is encoded the general way.
    fast = plain_row_encoder(kind, names=names, id_type=id_type)
    for i, (ident, values) in enumerate(zip(ids, rows, strict=True)):
        # The ledger row a message replaces is part of its id, so a value that comes back
        # after another one was sent gets a new id; the value that was in flight when its
        # fate became unknown is re-sent under the id it went with (Segment drops the
        # duplicate if the first one arrived).
        run_id = f"{scope}/{prev[i]}"
        message = fast(ident, values, run_id, base_row + i) if fast is not None else None
        if message is not None:
            yield message
            continue
        try:
            yield build_encoded_message(
                kind,
                identifier=ident,
                traits=dict(zip(names, values, strict=True)),
                run_id=run_id,
                key=base_row + i,
                id_type=id_type,
            )
        except PayloadError as exc:
            on_error(base_row + i, ident, str(exc))


def check_sizes(batch_size: int, page_rows: int) -> None:
    if not 1 <= batch_size <= SEGMENT_MAX_BATCH_MESSAGES:
        raise ConfigError(
            f"batch size must be 1..{SEGMENT_MAX_BATCH_MESSAGES} (Segment drops larger batches), "
            f"got {batch_size}"
        )
    if page_rows < 1:
        raise ConfigError(f"page_rows must be at least 1, got {page_rows}")


def identifier_of(message: EncodedMessage) -> str:
    """The identifier a message is about (for reporting a rejected one)."""
    msg = json.loads(message.data)
    return str(msg.get("groupId") or msg.get("userId") or msg.get("anonymousId"))
