"""Scratch tables of a scoring run and the streamed path: Arrow batches out, Parquet, back in.

The read runs a batch ahead in a background thread (:func:`read_ahead`) and batches score one
per core in worker threads (:func:`in_threads`); the load starts only after the read has finished
(ibis #9444: on DuckDB an insert during the iteration silently stops it after the first batch).
Neither side holds more than a few batches.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sqltraits_kit.errors import DataError
from sqltraits_kit.warehouse.capabilities import capabilities
from sqltraits_kit.warehouse.kit_tables import SCRATCH_PREFIX

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pyarrow as pa

    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "Progress",
    "Scratch",
    "in_threads",
    "max_diff",
    "read_ahead",
    "scoring_threads",
    "stream_to_table",
    "sub_progress",
    "systematic_sample",
]

TMP_PREFIX = f"{SCRATCH_PREFIX}tmp_"

Progress = Callable[[str, float], None]


class Scratch:
    """Temporary tables of one run, dropped at the end whatever happens."""

    def __init__(self, wh: Warehouse) -> None:
        self.wh = wh
        self.names: list[str] = []

    def name(self) -> str:
        name = f"{TMP_PREFIX}{uuid.uuid4().hex[:16]}"
        self.names.append(name)
        return name

    def table(self, expr: ir.Table) -> ir.Table:
        """``expr`` materialised once: a temporary table, or (on an engine without them, e.g.
        Spark) a table under the kit's scratch prefix, dropped by :meth:`drop_all`; one a crash
        leaves behind is a kit table, hidden from every list a user picks from."""
        temp = capabilities(self.wh).temporary_tables
        return self.wh.con.create_table(self.name(), expr, temp=temp or None)

    def drop_all(self) -> None:
        for name in reversed(self.names):
            # a temporary table also goes with the connection: a failed drop is harmless
            with contextlib.suppress(Exception):
                self.wh.con.drop_table(name, force=True)
        self.names.clear()


def systematic_sample(table: ir.Table, total: int, rows: int) -> ir.Table:
    """Every k-th row by profile id: deterministic, portable, spread over the whole range."""
    import ibis

    step = max(1, total // max(rows, 1))
    # The ids are numbered alone and the picked ones joined back: numbering the table itself
    # sorted every column of every row and computed the scores of all of them (3.7 of the 4.7 s
    # of a 1M-row parity check), where only ``rows`` rows are needed.
    ids = table.select("profile_id")
    numbered = ids.mutate(_sqltraits_rn=ibis.row_number().over(order_by=ids.profile_id))
    picked = numbered.filter(numbered._sqltraits_rn % step == 0).select("profile_id")
    picked = picked.order_by("profile_id").limit(rows)
    return table.semi_join(picked, "profile_id").order_by("profile_id")


def max_diff(reference: np.ndarray, candidate: np.ndarray) -> float:
    ref = np.asarray(reference, dtype=float)
    got = np.asarray(candidate, dtype=float)
    both_missing = np.isnan(ref) & np.isnan(got)
    diff = np.where(both_missing, 0.0, np.abs(ref - got))
    diff = np.where(np.isnan(diff), np.inf, diff)
    return float(diff.max()) if diff.size else 0.0


def stream_to_table(
    wh: Warehouse,
    scratch: Scratch,
    source: ir.Table,
    compute: Callable[[pa.RecordBatch], pa.Table],
    *,
    schema: pa.Schema,
    batch_rows: int,
    total: int,
    report: Callable[[str, float], None],
    label: str,
    threads: int | None = None,
) -> ir.Table:
    """``compute`` over every Arrow batch of ``source``, into a scratch table (``threads``: the
    batches computed at once here, default one per core; see :func:`in_threads`).

    On an engine with an Arrow-batch mapping (Spark) the engine's workers run ``compute`` where
    the rows are (:func:`~sqltraits_kit.warehouse.arrow_map.map_arrow_batches`): nothing comes
    through this process. Elsewhere the batches are read here (one ahead, :func:`read_ahead`),
    computed one per core (:func:`in_threads`), staged to Parquet in reading order and loaded
    back once the read has finished (ibis #9444), from a file on disk, so neither the read nor
    the write holds more than a few batches in memory.
    """
    if capabilities(wh).spark_dataframes:
        return _map_in_engine(
            wh, scratch, source, compute, schema=schema, total=total, report=report, label=label
        )
    import ibis
    import pyarrow as pa
    import pyarrow.parquet as pq

    with tempfile.TemporaryDirectory(prefix="sqltraits_score_", dir=wh.scratch_dir) as folder:
        path = Path(folder) / "scores.parquet"
        done = 0
        with pq.ParquetWriter(path, schema) as writer:
            reader = source.to_pyarrow_batches(chunk_size=batch_rows)
            try:
                with read_ahead(reader) as batches:
                    for rows, out in in_threads(compute, batches, threads=threads):
                        writer.write_table(out.cast(schema))
                        done += rows
                        report(f"{label}: {done:,}/{total:,} rows", done / max(total, 1))
            finally:
                close = getattr(reader, "close", None)
                if close is not None:
                    close()
        if done != total:
            raise DataError(
                f"{label}: read {done:,} of {total:,} rows from the warehouse; the scores were "
                "not written"
            )
        name = scratch.name()
        temp = capabilities(wh).temporary_tables or None
        target = wh.con.create_table(name, schema=ibis.Schema.from_pyarrow(schema), temp=temp)
        report(f"{label}: loading {done:,} scores back into the warehouse", 1.0)
        try:
            view = f"{name}_parquet"
            staged = wh.con.read_parquet(path, table_name=view)
        except NotImplementedError:
            staged = None
        if staged is not None:
            wh.con.insert(name, staged)
            with contextlib.suppress(Exception):  # the view dies with the connection anyway
                wh.con.drop_view(view, force=True)
        else:
            for part in pq.ParquetFile(path).iter_batches(batch_size=batch_rows):
                batch = ibis.memtable(pa.Table.from_batches([part]))
                wh.con.insert(name, batch)
                # Ibis keeps a memtable's copy until the process exits: drop it now so the
                # warehouse holds one batch at a time, not the whole column twice.
                with contextlib.suppress(Exception):
                    wh.con.drop_table(batch.get_name(), force=True)
    return target


def scoring_threads() -> int:
    """Batches scored at once: one per core, at most 4 (memory holds a batch per thread)."""
    return max(1, min(4, os.cpu_count() or 1))


def _one_openmp_thread() -> None:
    # scikit-learn's OpenMP loops (gradient boosting's predict) default to every core; with a
    # batch per core they would fight: on a busy 2-core machine a 2-thread predict of 100k rows
    # took 2.6x the CPU of a 1-thread one (spinning at each of its ~200 barriers). OpenMP's
    # thread count is per calling thread, so this limits this worker only.
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="openmp")


def in_threads(
    compute: Callable[[pa.RecordBatch], pa.Table],
    batches: Iterable[pa.RecordBatch],
    *,
    threads: int | None = None,
) -> Iterator[tuple[int, pa.Table]]:
    """``(rows, compute(batch))`` for each non-empty batch, in the order of ``batches``,
    computed by up to ``threads`` worker threads at once (default :func:`scoring_threads`).

    scikit-learn's predict runs in compiled code without the GIL, so batches score in
    parallel; at most ``threads`` results wait to be taken. The first error is raised at its
    batch, after the results before it; the batches not yet started are cancelled.
    """
    from collections import deque
    from concurrent.futures import Future, ThreadPoolExecutor

    n = threads or scoring_threads()
    waiting: deque[tuple[int, Future[pa.Table]]] = deque()
    with ThreadPoolExecutor(
        max_workers=n, thread_name_prefix="sqltraits-score", initializer=_one_openmp_thread
    ) as pool:
        try:
            for batch in batches:
                if not batch.num_rows:
                    continue
                waiting.append((batch.num_rows, pool.submit(compute, batch)))
                if len(waiting) >= n:
                    rows, future = waiting.popleft()
                    yield rows, future.result()
            while waiting:
                rows, future = waiting.popleft()
                yield rows, future.result()
        finally:
            for _, future in waiting:
                future.cancel()


_END = object()  # read_ahead's "the reader is done"


@contextlib.contextmanager
def read_ahead(reader: Iterable[pa.RecordBatch], *, depth: int = 1) -> Iterator[Iterator[Any]]:
    """The batches of ``reader``, read by a background thread up to ``depth`` batches ahead.

    The warehouse produces batch *n + 1* while the caller scores batch *n*: reading (DuckDB,
    the PostgreSQL driver) and predicting (scikit-learn) both release the GIL, so on two cores
    they overlap instead of taking turns. At most ``depth + 2`` batches are alive (one being
    read, ``depth`` waiting, one being scored). The reader is only ever touched by the thread;
    leaving the block early (an error while scoring) stops it after the batch it is reading,
    and the block returns only once the thread has let go of the reader, so the caller can
    close it. An error while reading is raised in the caller, at the batch where it happened.
    """
    import queue
    import threading

    waiting: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                waiting.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in reader:
                if not put(batch):
                    return
            put(_END)
        except BaseException as exc:  # handed to the caller, raised there
            put(exc)

    thread = threading.Thread(target=produce, name="sqltraits-read-ahead", daemon=True)

    def batches() -> Iterator[Any]:
        while True:
            item = waiting.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    thread.start()
    try:
        yield batches()
    finally:
        stop.set()
        thread.join()


def _map_in_engine(
    wh: Warehouse,
    scratch: Scratch,
    source: ir.Table,
    compute: Callable[[pa.RecordBatch], pa.Table],
    *,
    schema: pa.Schema,
    total: int,
    report: Callable[[str, float], None],
    label: str,
) -> ir.Table:
    from sqltraits_kit.warehouse.arrow_map import map_arrow_batches

    report(f"{label}: {total:,} rows in the engine's workers", 0.0)
    try:
        target = map_arrow_batches(wh, source, compute, schema=schema, table=scratch.name())
    except Exception as exc:
        # A worker's traceback arrives wrapped in the engine's own error: keep its last line.
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        last = lines[-1] if lines else type(exc).__name__
        raise DataError(f"{label}: the engine's workers failed: {last}") from None
    done = int(target.count().execute())
    if done != total:
        raise DataError(
            f"{label}: the engine's workers wrote {done:,} of {total:,} rows; the scores were "
            "not used"
        )
    report(f"{label}: {done:,}/{total:,} rows", 1.0)
    return target


def sub_progress(report: Progress, start: float, end: float) -> Callable[[str, float], None]:
    def inner(message: str, fraction: float) -> None:
        report(message, start + (end - start) * min(max(fraction, 0.0), 1.0))

    return inner
