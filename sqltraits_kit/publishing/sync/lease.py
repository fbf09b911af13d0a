"""One run per sync key and destination at a time, on every backend: a lease row with a heartbeat.

The table ``sqltraits_sync_leases`` is append-only like the kit's other sync tables: each row is
one step of one lease's life (taken, heartbeat, released) and the row with the highest ``epoch``
for a ``(sync_key, destination)`` is the current one. Acquiring is *appending epoch N + 1* after
reading epoch N; the table's primary key ``(sync_key, destination, epoch)`` makes that append the
atomic step. Two processes that read the same N at the same instant both try to append N + 1 and
the warehouse lets exactly one commit (PostgreSQL: the second insert waits on the first, then
fails with a unique violation; DuckDB: a constraint or write-write conflict). The loser reads
again and finds a live lease. The same rule fences the holder: its heartbeats append N + 1 too, so
a holder whose lease expired and was taken over finds out at its next heartbeat, and stops.

Why not PostgreSQL advisory locks: they live as long as one database session, and Ibis gives no
way to pin the session a run uses; they exist on PostgreSQL only (DuckDB in one process with
several connections, and the other warehouses, would still need the row); and the operator
still needs the holder's host, pid and start time, which a row carries. A primary key is
standard SQL on every warehouse the kit runs on; it is *enforced* on DuckDB and PostgreSQL only.
Where it is not (Spark; see :mod:`~sqltraits_kit.warehouse.capabilities`) the table has no key,
both racers' rows land, and the one written first (then the smaller holder token) wins: the
loser finds out when it reads the epoch back, or at its next heartbeat. That closes the race
only as far as the two writes are ordered by the warehouse's clock; on such an engine one run per
trait set at a time is the scheduler's to guarantee, and the lease still refuses a second run
started while the first one is alive and reports who holds it.

Liveness: the holder appends a heartbeat every ``ttl / 3`` seconds from a thread with its own
connection (a batch waiting on ``Retry-After`` must not let the lease lapse), and each row says
when it expires, in the *warehouse's* clock (``CURRENT_TIMESTAMP``), so hosts with skewed clocks
agree. A run killed with ``kill -9`` stops heartbeating and its lease expires after ``ttl``; on
the same host a holder whose process is gone is taken over at once (the pid check can only err
towards "alive", if the pid was reused: then the lease simply expires).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.publishing.sync.destination import client_destination, destination_key
from sqltraits_kit.publishing.sync.limits import Deadline, RunStopped, guard
from sqltraits_kit.warehouse.capabilities import capabilities
from sqltraits_kit.warehouse.connection import close_second, second_connection
from sqltraits_kit.warehouse.transactions import execute

if TYPE_CHECKING:
    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "DEFAULT_TTL",
    "LEASE_TABLE",
    "Deadline",
    "Lease",
    "LeaseHeld",
    "RunStopped",
    "acquire",
    "client_destination",
    "current_holder",
    "destination_key",
    "guard",
    "hold",
    "scoped",
]

LEASE_TABLE = "sqltraits_sync_leases"
#: Seconds a lease lives without a heartbeat. Heartbeats come every third of it.
DEFAULT_TTL = 60.0
_POLL = 0.25  # seconds between looks at a held lease while waiting
_COLUMNS = {
    "sync_key": "text",
    "destination": "text",
    "epoch": "bigint",
    "holder": "text",  # a random token per acquisition
    "state": "text",  # held | released
    "run_id": "text",
    "host": "text",
    "pid": "bigint",
    "started_at": "timestamptz",
    "heartbeat_at": "timestamptz",
    "expires_at": "timestamptz",
}


class LeaseHeld(ConfigError):
    """Another live run holds the lease of this sync key and destination (CLI exit 2)."""

    def __init__(self, message: str, *, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder


# -- the table ------------------------------------------------------------------------------


def _ident(name: str) -> Any:
    import sqlglot as sg

    return sg.to_identifier(name, quoted=True)


def ensure_lease_table(wh: Warehouse) -> None:
    """Create the lease table with its primary key, unless it exists (racing creators agree)."""
    import sqlglot as sg
    import sqlglot.expressions as sge

    if wh.has_table(LEASE_TABLE):
        return
    columns = [
        sge.ColumnDef(this=_ident(name), kind=sge.DataType.build(kind))
        for name, kind in _COLUMNS.items()
    ]
    if capabilities(wh).enforced_keys:
        key = sge.PrimaryKey(expressions=[_ident(c) for c in ("sync_key", "destination", "epoch")])
        columns.append(key)
    create = sge.Create(
        kind="TABLE",
        exists=True,
        this=sge.Schema(this=sg.table(LEASE_TABLE, quoted=True), expressions=columns),
    )
    for attempt in range(20):
        try:
            execute(wh, create)
            return
        except Exception:
            # PostgreSQL can fail two simultaneous CREATE ... IF NOT EXISTS, and DuckDB reports
            # a catalog write-write conflict before the winner's table is visible: look again.
            if wh.has_table(LEASE_TABLE):
                return
            if attempt == 19:
                raise
            time.sleep(0.02 * (attempt + 1))


def _append(wh: Warehouse, lease: Lease, *, epoch: int, state: str) -> None:
    """Append one row of ``lease`` at ``epoch``; raises if that epoch is taken."""
    import sqlglot as sg
    import sqlglot.expressions as sge

    now = sge.CurrentTimestamp()
    ttl = sge.Interval(this=sge.Literal.string(f"{lease.ttl:.3f}"), unit=sge.Var(this="SECOND"))
    values = {
        "sync_key": sge.convert(lease.sync_key),
        "destination": sge.convert(lease.destination),
        "epoch": sge.convert(epoch),
        "holder": sge.convert(lease.holder),
        "state": sge.convert(state),
        "run_id": sge.convert(lease.run_id) if lease.run_id else sge.Null(),
        "host": sge.convert(lease.host),
        "pid": sge.convert(lease.pid),
        "started_at": (
            sge.cast(sge.convert(lease.started_at), "timestamptz") if lease.started_at else now
        ),
        "heartbeat_at": now,
        "expires_at": now if state == "released" else sge.Add(this=now, expression=ttl),
    }
    statement = sge.insert(
        sge.Values(expressions=[sge.Tuple(expressions=list(values.values()))]),
        sg.table(LEASE_TABLE, quoted=True),
        columns=[_ident(c) for c in values],
    )
    execute(wh, statement)


def current_holder(wh: Warehouse, sync_key: str, destination: str) -> dict[str, Any] | None:
    """The latest lease row of this sync key and destination, with ``live`` and ``age_s``.

    ``live`` is judged in the warehouse's clock: held and not expired. None: never leased.
    """
    import ibis

    if not wh.has_table(LEASE_TABLE):
        return None
    t = wh.con.table(LEASE_TABLE)
    now = ibis.now()
    expr = (
        t.filter((t["sync_key"] == sync_key) & (t["destination"] == destination))
        .order_by(t["epoch"].desc())
        .limit(1)
    )
    expr = expr.mutate(
        live=(expr["state"] == "held") & (expr["expires_at"] > now),
        age_s=(
            now.epoch_seconds().cast("float64")
            - expr["heartbeat_at"].epoch_seconds().cast("float64")
        ),
    )
    rows = expr.to_pyarrow().to_pylist()
    return rows[0] if rows else None


def _process_gone(row: dict[str, Any]) -> bool:
    """The holder ran on this host and its process no longer exists."""
    if row.get("host") != socket.gethostname() or not row.get("pid"):
        return False
    try:
        os.kill(int(row["pid"]), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False


def _describe(row: dict[str, Any]) -> str:
    run = f"run {row['run_id']}" if row.get("run_id") else "a run (still starting)"
    started = row.get("started_at")
    since = f" since {started:%Y-%m-%d %H:%M:%S} UTC" if started is not None else ""
    beat = f", last heartbeat {max(0.0, float(row['age_s'] or 0)):.0f} s ago"
    return f"{run} on host {row['host']} (pid {row['pid']}){since}{beat}"


# -- the lease ------------------------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class Lease:
    """A held lease: heartbeats in the background until :meth:`release`."""

    wh: Warehouse
    sync_key: str
    destination: str
    ttl: float
    holder: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex)
    host: str = dataclasses.field(default_factory=socket.gethostname)
    pid: int = dataclasses.field(default_factory=os.getpid)
    epoch: int = 0
    run_id: str | None = None
    started_at: Any = None
    lost: str | None = None  # why the lease is no longer ours, once it is not
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)
    _stop: threading.Event = dataclasses.field(default_factory=threading.Event, repr=False)
    _thread: threading.Thread | None = dataclasses.field(default=None, repr=False)

    def _step(self, wh: Warehouse, state: str) -> bool:
        """Append the next epoch; False if another holder has it (the lease is lost)."""
        with self._lock:
            if self.lost:
                return False
            nxt = self.epoch + 1
            try:
                _append(wh, self, epoch=nxt, state=state)
            except Exception:
                row = _row_at(wh, self, nxt)
                if row is None:
                    raise  # not a conflict: the warehouse failed; the caller decides
            else:
                # Without an enforced key both racers' rows land: the first one written wins.
                row = None if capabilities(wh).enforced_keys else _row_at(wh, self, nxt)
            if row is not None and row["holder"] != self.holder:
                self.lost = (
                    f"the lease of {self.sync_key} was taken over by "
                    f"{_describe({**row, 'age_s': 0})} after this run's heartbeat lapsed"
                )
                return False
            self.epoch = nxt
            return True

    def heartbeat(self, wh: Warehouse | None = None) -> bool:
        """Extend the lease now (also records the run id once known)."""
        return self._step(wh or self.wh, "held")

    def start(self) -> None:
        """Heartbeat every ``ttl / 3`` seconds from a thread with its own connection."""
        self._thread = threading.Thread(target=self._beat, name="sqltraits-lease", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        own = second_connection(self.wh)
        try:
            while not self._stop.wait(self.ttl / 3):
                with contextlib.suppress(
                    Exception
                ):  # a failed beat is retried; expiry is the bound
                    if not self.heartbeat(own):
                        return
        finally:
            # A second backend over a Spark session shares it: closing it would stop the session.
            close_second(own, self.wh)

    def check(self) -> None:
        """Raise :class:`RunStopped` once the lease is no longer this run's."""
        if self.lost:
            raise RunStopped(f"stopped: {self.lost}; the rows not sent are sent by the next run")

    def release(self) -> None:
        """Stop heartbeating and mark the lease released (a lost lease is left as it is)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self.ttl))
        with contextlib.suppress(Exception):
            self._step(self.wh, "released")


def _row_at(wh: Warehouse, lease: Lease, epoch: int) -> dict[str, Any] | None:
    """The row of ``epoch`` (the earliest written, then the smallest holder, if several: only
    possible where the primary key is not enforced)."""
    t = wh.con.table(LEASE_TABLE)
    rows = (
        t.filter(
            (t["sync_key"] == lease.sync_key)
            & (t["destination"] == lease.destination)
            & (t["epoch"] == epoch)
        )
        .order_by(["heartbeat_at", "holder"])
        .limit(1)
        .to_pyarrow()
        .to_pylist()
    )
    return rows[0] if rows else None


def acquire(
    wh: Warehouse,
    *,
    sync_key: str,
    destination: str,
    wait: float | bool = False,
    ttl: float = DEFAULT_TTL,
    on_wait: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Lease:
    """Take the lease of ``sync_key`` at ``destination``, or raise :class:`LeaseHeld`.

    ``wait``: False (default) refuses at once when a live run holds it; True waits as long as
    it takes; a number waits at most that many seconds. ``on_wait`` is told once whom we wait
    for. The caller must :meth:`Lease.release` it (see :func:`hold`).
    """
    if not ttl > 0:
        raise ConfigError(f"a lease ttl must be > 0 seconds, got {ttl}")
    limit = math.inf if wait is True else float(wait or 0)
    deadline = time.monotonic() + limit
    ensure_lease_table(wh)
    lease = Lease(wh, sync_key, destination, ttl)
    told, errors = False, 0
    while True:
        row = current_holder(wh, sync_key, destination)
        free = row is None or not row["live"] or _process_gone(row)
        if free:
            lease.epoch = int(row["epoch"]) if row is not None else 0
            try:
                won = lease.heartbeat()
            except Exception:
                # DuckDB reports a racing insert as a write-write conflict before the winner's
                # row is visible: look again shortly; give up only if it keeps failing.
                errors += 1
                if errors > 20:
                    raise
                sleep(_POLL / 5)
                continue
            if won:
                mine = _row_at(wh, lease, lease.epoch)
                lease.started_at = mine["heartbeat_at"] if mine else None
                return lease
            lease.lost = None  # someone else appended that epoch first: look again
            continue
        if time.monotonic() >= deadline:
            waited = f" (waited {limit:.0f} s)" if limit else ""
            raise LeaseHeld(
                f"{sync_key} is being published to {_redacted(destination)} by "
                f"{_describe(row)}{waited}; wait for it (--wait) or stop it. A run that died "
                f"is taken over once its lease expires ({ttl:.0f} s after its last heartbeat).",
                holder=row,
            )
        if on_wait is not None and not told:
            on_wait(f"waiting for {_describe(row)} to finish")
            told = True
        sleep(min(_POLL, max(0.0, deadline - time.monotonic())))


def _redacted(destination: str) -> str:
    return destination.split("#", 1)[0]


# -- holding a lease for exactly the length of a call ---------------------------------------

_SCOPE: ContextVar[contextlib.ExitStack | None] = ContextVar("sqltraits_lease_scope", default=None)
F = TypeVar("F", bound=Callable[..., Any])


def scoped(fn: F) -> F:
    """Release every lease taken with :func:`hold` inside ``fn`` when ``fn`` returns or raises.

    The sync engine takes its lease part-way through (after the gates, before it looks for a
    run to resume); this keeps the release in one place, whatever path leaves the function.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with contextlib.ExitStack() as stack:
            token = _SCOPE.set(stack)
            try:
                return fn(*args, **kwargs)
            finally:
                _SCOPE.reset(token)

    return wrapper  # type: ignore[return-value]


def for_the_run(context: contextlib.AbstractContextManager[Any]) -> None:
    """Enter ``context`` until the enclosing :func:`scoped` call ends (e.g. the run's memory
    of which tables exist, :meth:`Warehouse.remembering_tables`)."""
    stack = _SCOPE.get()
    if stack is None:
        raise RuntimeError("lease.for_the_run() is only valid inside a @lease.scoped function")
    stack.enter_context(context)


def hold(wh: Warehouse, **options: Any) -> Lease:
    """:func:`acquire`, heartbeat, and release when the enclosing :func:`scoped` call ends."""
    stack = _SCOPE.get()
    if stack is None:
        raise RuntimeError("lease.hold() is only valid inside a @lease.scoped function")
    lease = acquire(wh, **options)
    stack.callback(lease.release)
    lease.start()
    return lease
