"""The Segment stand-in's keys, and helpers to build rows, batches and clients for it."""

from __future__ import annotations

import time

from sqltraits_kit.publishing.segment import SegmentClient
from sqltraits_kit.publishing.segment.batching import Batch, pack_batches
from sqltraits_kit.publishing.segment.payload import build_encoded_message

__all__ = [
    "PROFILE_TOKEN",
    "SPACE_ID",
    "WRITE_KEY",
    "batches_for",
    "make_client",
    "rows",
    "stored",
]

WRITE_KEY = "wk_TEST_s3cr3t_0123456789"
PROFILE_TOKEN = "pt_TEST_t0k3n_9876543210"
SPACE_ID = "spa_test"


def batches_for(rows: dict[str, dict], *, run_id: str = "run-1", **pack) -> list[Batch]:
    msgs = (
        build_encoded_message("identify", identifier=uid, traits=traits, run_id=run_id, key=uid)
        for uid, traits in rows.items()
    )
    return list(pack_batches(msgs, **pack))


def rows(n: int, *, start: int = 0) -> dict[str, dict]:
    return {f"u{i}": {"churn_score": i / 1000, "plan": "gold"} for i in range(start, start + n)}


def stored(rows_: dict[str, dict]) -> dict[str, dict]:
    return {f"user_id:{uid}": traits for uid, traits in rows_.items()}


def make_client(server, sleeps=None, **kwargs) -> SegmentClient:
    kwargs = {
        "endpoint": server.url,
        "max_requests_per_second": None,
        "max_events_per_second": None,
        "timeout": 5,
        "sleep": (sleeps.append if sleeps is not None else time.sleep),
        **kwargs,
    }
    return SegmentClient(kwargs.pop("write_key", WRITE_KEY), **kwargs)
