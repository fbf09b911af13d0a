"""The streamed path's overlap: the warehouse reads the next batch while batches are scored,
several at once, in worker threads."""

from __future__ import annotations

import threading

import pyarrow as pa
import pytest
from threadpoolctl import threadpool_info

from sqltraits_kit.traits.scoring.scratch import in_threads, read_ahead


class Reader:
    """Batches 0..n-1; records how far the reading got and can be held or made to fail."""

    def __init__(self, n: int, *, fail_at: int | None = None) -> None:
        self.n = n
        self.fail_at = fail_at
        self.read = 0
        self.thread: str | None = None
        self.allowed = threading.Semaphore(0)
        self.gated = False

    def __iter__(self):
        self.thread = threading.current_thread().name
        for i in range(self.n):
            if self.gated:
                self.allowed.acquire()
            if i == self.fail_at:
                raise OSError(f"connection lost at batch {i}")
            self.read += 1
            yield i


def test_every_batch_in_order_read_by_another_thread():
    reader = Reader(7)
    with read_ahead(reader) as batches:
        assert list(batches) == list(range(7))
    assert reader.thread == "sqltraits-read-ahead"
    assert reader.thread != threading.current_thread().name


def test_reads_at_most_depth_batches_ahead_of_the_caller():
    reader = Reader(10)
    seen = []
    with read_ahead(reader, depth=1) as batches:
        for batch in batches:
            seen.append(batch)
            # wait until the thread has read as far as it may: the one in the queue and the
            # one it is trying to hand over
            for _ in range(200):
                if reader.read >= min(len(seen) + 2, 10):
                    break
                threading.Event().wait(0.005)
            assert reader.read <= len(seen) + 2
    assert seen == list(range(10))


def test_an_error_while_reading_reaches_the_caller_after_the_batches_before_it():
    reader = Reader(5, fail_at=3)
    seen = []
    with pytest.raises(OSError, match="connection lost at batch 3"), read_ahead(reader) as b:
        for batch in b:
            seen.append(batch)
    assert seen == [0, 1, 2]


def test_an_error_while_scoring_stops_the_reading_and_releases_the_reader():
    reader = Reader(1_000)
    with pytest.raises(ValueError, match="model failed"), read_ahead(reader) as batches:
        for batch in batches:
            if batch == 2:
                raise ValueError("model failed on batch 2")
    # the block returned only after the thread let go: nothing more is read after it
    done = reader.read
    assert done <= 2 + 3
    threading.Event().wait(0.05)
    assert reader.read == done
    assert not any(t.name == "sqltraits-read-ahead" for t in threading.enumerate())


def test_a_reader_held_mid_batch_is_waited_for_before_the_block_returns():
    reader = Reader(3)
    reader.gated = True
    reader.allowed.release()  # batch 0 may be read
    returned = threading.Event()

    def consume():
        with read_ahead(reader) as batches:
            next(batches)  # batch 0; then leave while the thread waits to read batch 1
        returned.set()

    t = threading.Thread(target=consume)
    t.start()
    assert not returned.wait(0.2)  # still reading batch 1: the block waits for it
    reader.allowed.release()
    assert returned.wait(5)
    t.join()
    assert reader.read == 2


def _batch(i: int, rows: int = 3) -> pa.RecordBatch:
    return pa.record_batch({"i": pa.array([i] * rows, type=pa.int64())})


def test_batches_score_at_once_and_come_back_in_reading_order():
    second_done = threading.Event()

    def compute(batch):
        i = batch.column("i")[0].as_py()
        if i == 0:  # batch 0 finishes only after batch 1 did: both ran at the same time
            assert second_done.wait(10), "batch 1 never ran beside batch 0"
        if i == 1:
            second_done.set()
        return pa.table({"i": batch.column("i"), "thread": [threading.current_thread().name] * 3})

    out = list(in_threads(compute, [_batch(i) for i in range(5)], threads=2))
    assert [t.column("i")[0].as_py() for _, t in out] == [0, 1, 2, 3, 4]
    assert [rows for rows, _ in out] == [3] * 5
    assert all(t.column("thread")[0].as_py().startswith("sqltraits-score") for _, t in out)


def test_empty_batches_are_skipped():
    batches = [_batch(0), _batch(1, rows=0), _batch(2)]
    out = list(in_threads(lambda b: pa.table({"i": b.column("i")}), batches, threads=2))
    assert [t.column("i")[0].as_py() for _, t in out] == [0, 2]


def test_the_first_error_comes_after_the_results_before_it_and_stops_the_rest():
    started = []

    def compute(batch):
        i = batch.column("i")[0].as_py()
        started.append(i)
        if i == 2:
            raise ValueError("model failed on batch 2")
        return pa.table({"i": batch.column("i")})

    seen = []
    with pytest.raises(ValueError, match="batch 2"):
        for _, table in in_threads(compute, [_batch(i) for i in range(50)], threads=2):
            seen.append(table.column("i")[0].as_py())
    assert seen == [0, 1]
    assert max(started) <= 2 + 2  # at most a thread's worth started after the failing one


def test_each_scoring_thread_uses_one_openmp_thread_and_leaves_the_caller_alone():
    import sklearn.ensemble  # noqa: F401  (loads the OpenMP runtime)

    def openmp_threads():
        return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"]

    before = openmp_threads()
    assert before, "scikit-learn loads an OpenMP runtime"
    seen = []

    def compute(batch):
        seen.append(openmp_threads())
        return pa.table({"i": batch.column("i")})

    list(in_threads(compute, [_batch(i) for i in range(4)], threads=2))
    assert seen and all(n == [1] * len(n) for n in seen)
    assert openmp_threads() == before
