"""A model-based test of delivery: random edits, faults, crashes and destinations, then the truth.

Hypothesis' stateful testing drives random sequences of

- table edits: a score changes, goes back to an earlier value, a profile leaves, one comes back;
- faults at the stand-in Segment (which stores what it accepts and dedupes by messageId): 5xx,
  a 5xx or a dropped connection *after* applying the batch (a lost acknowledgement), an HTML
  page with 200 (a proxy), a redirect to a page that answers 200, 429 with Retry-After, an
  answer slower than the client's total timeout (applied after the client gave up);
- crashes between any two writes of a run: every warehouse write after the crash point fails
  with an exception nothing in the kit catches, as if the process had been killed (the run's
  acknowledged-but-uncommitted rows are lost, its ledger says unknown);
- publishes to two destinations (two workspaces), in any order, and two runs of the same publish
  started at once on their own connections (two schedulers).

After a final run per destination with no faults, each destination must hold exactly the table
(profiles that left hold null traits, Segment's rule for SQL traits), a second run must send
nothing, and no run may send more than ``RESEND_BOUND`` messages per profile it knows.

A short profile runs in the suite (``.ci/run``); the long one is
``SQLTRAITS_MODEL_EXAMPLES=400 SQLTRAITS_MODEL_STEPS=40 pytest tests/sync/test_sync_model.py -s``
and prints its step count, the faults it met and the largest re-send it saw.
"""

from __future__ import annotations

import collections
import json
import os
import threading
import time
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sqltraits_kit.publishing.segment.retry import RetryPolicy
from sqltraits_kit.publishing.standin import (
    Delay,
    DropConnection,
    FakeSegmentServer,
    HtmlPage,
    Redirect,
    Respond,
)
from sqltraits_kit.publishing.sync import publisher, runs, sync
from sqltraits_kit.publishing.sync.lease import LeaseHeld
from sqltraits_kit.warehouse import connect
from tests.support.segment import PROFILE_TOKEN, SPACE_ID, WRITE_KEY
from tests.support.sync import make_client, make_table, server_profiles

IDS = [f"p{i}" for i in range(8)]
VALUES = [0.1, 0.2, 0.3]
TIMEOUT = 0.4  # the client's total timeout per request
SLOW = 0.6  # a slow answer: the server applies the batch this long after receiving it
#: A run sends at most this many messages per profile it knows (a batch is tried at most
#: max_retries + 1 = 2 times; a re-sent uncertain profile is one message per attempt).
RESEND_BOUND = 2
EXAMPLES = int(os.environ.get("SQLTRAITS_MODEL_EXAMPLES", "6"))
STEPS = int(os.environ.get("SQLTRAITS_MODEL_STEPS", "12"))

FAULTS = {
    "5xx": Respond(503),
    "5xx-after-applying": Respond(500, process=True),
    "drop": DropConnection(),
    "drop-after-applying": DropConnection(process=True),
    "html-200": HtmlPage(),
    "redirect": Redirect(),
    "429": Respond(429, headers={"Retry-After": "1"}),
    "slow": Delay(SLOW),
}

#: What the runs met, over every example of a session (printed by the long profile).
SEEN: dict[str, Any] = {"steps": 0, "runs": 0, "crashes": 0, "max_resend_per_profile": 0.0}
SEEN_FAULTS: collections.Counter[str] = collections.Counter()


class Crash(BaseException):
    """The process dies here: nothing in the kit catches a BaseException that is not its own."""


class _CrashAfter:
    """Make every warehouse write of the sync fail after ``n`` of them succeeded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, n: int) -> None:
        self.left = n
        self.mp = monkeypatch
        for module in (publisher, runs):
            original = module.insert
            self.mp.setattr(module, "insert", self._wrap(original))

    def _wrap(self, original):
        def insert(*args: Any, **kwargs: Any) -> None:
            if self.left <= 0:
                raise Crash
            self.left -= 1
            original(*args, **kwargs)

        return insert

    def undo(self) -> None:
        self.mp.undo()


def _machine(wh, monkeypatch: pytest.MonkeyPatch):
    class Delivery(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.table = f"t_model_{uuid.uuid4().hex[:10]}"
            self.rows: dict[str, float] = {i: VALUES[0] for i in IDS[:5]}
            self.servers = [
                FakeSegmentServer(
                    write_keys=(WRITE_KEY,), profile_tokens=(PROFILE_TOKEN,), space_id=SPACE_ID
                ).start()
                for _ in range(2)
            ]
            self.sleeps: list[float] = []
            self.clients = [
                make_client(
                    s,
                    self.sleeps,
                    retry=RetryPolicy(max_retries=1, max_rate_limit_wait=2),
                    concurrency=1,
                    timeout=TIMEOUT,
                )
                for s in self.servers
            ]
            self.used: set[int] = set()
            self.slow_pending = False
            self._write()

        def _write(self) -> None:
            ids = sorted(self.rows)
            make_table(wh, self.table, {"user_id": ids, "score": [self.rows[i] for i in ids]})

        # -- table edits
        @rule(ident=st.sampled_from(IDS), value=st.sampled_from(VALUES))
        def set_score(self, ident: str, value: float) -> None:
            """A score changes, moves back to an earlier value, or a profile (re)enters."""
            self.rows[ident] = value
            self._write()

        @precondition(lambda self: len(self.rows) > 1)
        @rule(data=st.data())
        def remove(self, data: st.DataObject) -> None:
            ident = data.draw(st.sampled_from(sorted(self.rows)))
            del self.rows[ident]
            self._write()

        # -- faults and runs
        @rule(
            dest=st.integers(0, 1),
            faults=st.lists(st.sampled_from(sorted(FAULTS)), max_size=3),
            crash_after=st.none() | st.integers(0, 6),
        )
        def publish(self, dest: int, faults: list[str], crash_after: int | None) -> None:
            server, client = self.servers[dest], self.clients[dest]
            server.clear_faults()
            server.inject(*(FAULTS[f] for f in faults))
            SEEN_FAULTS.update(faults)
            known = len(set(self.rows) | set(server_profiles(server)))
            before = server.stats.messages_received + server.stats.faults
            crash = _CrashAfter(monkeypatch, crash_after) if crash_after is not None else None
            try:
                sync(wh, self.table, client=client, allow_drift=True, batch_size=3)
            except Crash:
                SEEN["crashes"] += 1
            except LeaseHeld:  # pragma: no cover - one process, runs in sequence
                raise
            finally:
                if crash is not None:
                    crash.undo()
                server.clear_faults()
            if "slow" in faults:
                time.sleep(SLOW + 0.2)  # let the late batch land before anything else runs
            self.used.add(dest)
            SEEN["runs"] += 1
            sent = server.stats.messages_received + server.stats.faults - before
            per_profile = sent / max(known, 1)
            SEEN["max_resend_per_profile"] = max(SEEN["max_resend_per_profile"], per_profile)
            assert per_profile <= RESEND_BOUND * 3, (sent, known)  # batches of 3, 2 attempts

        @rule(dest=st.integers(0, 1), faults=st.lists(st.sampled_from(sorted(FAULTS)), max_size=2))
        def publish_twice_at_once(self, dest: int, faults: list[str]) -> None:
            """Two schedulers start the same publish at once, each on its own connection: one
            runs, the other is refused naming it (or runs after it, if the first was done)."""
            server = self.servers[dest]
            server.clear_faults()
            server.inject(*(FAULTS[f] for f in faults))
            SEEN_FAULTS.update(faults)
            outcomes: list[Any] = []
            barrier = threading.Barrier(2)

            def run() -> None:
                own = connect(wh.url)
                client = make_client(
                    server,
                    [],
                    retry=RetryPolicy(max_retries=1, max_rate_limit_wait=2),
                    concurrency=1,
                    timeout=TIMEOUT,
                )
                try:
                    barrier.wait(timeout=30)
                    outcomes.append(sync(own, self.table, client=client, allow_drift=True))
                except LeaseHeld as exc:
                    outcomes.append(exc)
                except Exception as exc:  # pragma: no cover - reported below
                    outcomes.append(exc)
                finally:
                    client.close()
                    own.close()

            threads = [threading.Thread(target=run) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            server.clear_faults()
            if "slow" in faults:
                time.sleep(SLOW + 0.2)
            self.used.add(dest)
            SEEN["runs"] += 2
            held = [o for o in outcomes if isinstance(o, LeaseHeld)]
            SEEN["concurrent_refused"] = SEEN.get("concurrent_refused", 0) + len(held)
            others = [o for o in outcomes if isinstance(o, Exception) and o not in held]
            assert not others, others
            assert len(outcomes) == 2 and len(held) < 2, outcomes

        @invariant()
        def count(self) -> None:
            SEEN["steps"] += 1

        def teardown(self) -> None:
            try:
                for dest in sorted(self.used):
                    server, client = self.servers[dest], self.clients[dest]
                    server.clear_faults()
                    final = sync(wh, self.table, client=client, allow_drift=True)
                    assert final.failed == 0 and final.unsent == 0, final
                    held = server_profiles(server)
                    for ident in IDS:
                        want = {"score": self.rows[ident]} if ident in self.rows else None
                        got = held.get(ident)
                        if want is None:
                            assert got is None or all(v is None for v in got.values()), (
                                ident,
                                got,
                            )
                        else:
                            assert got == want, (dest, ident, got, want)
                    again = sync(wh, self.table, client=client, allow_drift=True)
                    assert again.sent == 0, again
            finally:
                for c in self.clients:
                    c.close()
                for s in self.servers:
                    s.stop()

    return Delivery


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_delivery_model(wh, monkeypatch):
    machine = _machine(wh, monkeypatch)
    machine.TestCase.settings = settings(
        max_examples=EXAMPLES,
        stateful_step_count=STEPS,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    machine.TestCase().runTest()
    if EXAMPLES > 20:
        print("\nmodel-based delivery:", json.dumps({**SEEN, "faults": dict(SEEN_FAULTS)}))
