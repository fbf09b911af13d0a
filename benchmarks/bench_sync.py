"""Sync throughput: the kit's Segment client vs the official ``segment-analytics-python``.

    python -m benchmarks.bench_sync [--messages N] [--runs R] [--quick]

The same ``--messages`` identify calls (200,000 by default; each a user id and three traits) go
to the same local HTTP server: the project's strict fake Segment (``tests/segment/
fake_segment.py``) in its own process, which validates every message like the real API and
counts what it accepted. Lost = sent − accepted by the server.

* **kit client** — ``build_encoded_message`` + ``pack_batches`` (500 per batch) +
  ``SegmentClient.send_batches`` (4 requests in flight), client-side rate limits off (they exist
  to protect a real workspace: 800 events/s by default);
* **kit sync** — ``sync()`` of a warehouse table holding the same rows, end to end: contract
  and drift checks, diff against the state, paged read, send, state commit, run record;
* **official library, default settings** — ``Client(write_key, host=...)``, ``identify()``
  per row, then ``flush()``; its queue holds 10,000 messages and drops the rest;
* **official library, tuned** — ``max_queue_size`` ≥ the messages (nothing dropped),
  ``upload_size=500`` and 2 consumer threads (the best of the settings tried; see README).

The traits are plain Python values for every contender (the official library raises on numpy
integers), built before the clock starts; message building is inside the timed part for all.
"""

from __future__ import annotations

import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

from benchmarks import _harness as h

DEFAULT_MESSAGES = 200_000
QUICK_MESSAGES = 20_000
TUNED = {"upload_size": 500, "thread": 2}


def _rows(n: int) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"user-{i}", {"churn_score": i / n, "ltv_90d": i * 1.25, "plan": "gold"}) for i in range(n)
    ]


def kit_client(url: str, write_key: str, n: int) -> dict[str, Any]:
    from sqltraits_kit.publishing.segment import SegmentClient, build_encoded_message, pack_batches

    rows = _rows(n)
    client = SegmentClient(
        write_key,
        endpoint=url,
        max_requests_per_second=None,
        max_events_per_second=None,
        concurrency=4,
    )
    with h.Timer() as t:
        messages = (
            build_encoded_message("identify", identifier=uid, traits=traits, run_id="bench", key=i)
            for i, (uid, traits) in enumerate(rows)
        )
        summary = client.send_batches(pack_batches(messages, max_messages=500))
    client.close()
    return t.figures(sent=n, delivered=summary.delivered_messages, client_requests=summary.requests)


def official(url: str, write_key: str, n: int, tuned: bool) -> dict[str, Any]:
    import logging

    from segment.analytics import Client

    # A full queue logs one warning per dropped message: keep the child's stderr readable.
    logging.getLogger("segment").setLevel(logging.CRITICAL)
    rows = _rows(n)
    failed: list[int] = []
    errors: list[str] = []

    def on_error(exc: Exception, batch: list[Any]) -> None:
        failed.append(len(batch))
        if len(errors) < 3:
            errors.append(f"{type(exc).__name__}: {exc}"[:200])

    options: dict[str, Any] = {"host": url, "on_error": on_error}
    if tuned:
        options |= {"max_queue_size": n + 1, **TUNED}
    client = Client(write_key, **options)
    refused = 0
    with h.Timer() as t:
        for uid, traits in rows:
            ok, _msg = client.identify(uid, traits)
            refused += not ok
        client.flush()
    client.join()
    return t.figures(
        sent=n, refused_by_queue=refused, failed_uploads=sum(failed), upload_errors=errors
    )


def raw_ceiling(url: str, write_key: str, n: int) -> dict[str, Any]:
    """The server's ceiling: the same messages pre-built into 500-message bodies before the
    clock starts, then only POSTed (4 threads, keep-alive sessions)."""
    import base64
    import threading

    import requests

    from sqltraits_kit.publishing.segment import build_encoded_message, pack_batches

    rows = _rows(n)
    messages = (
        build_encoded_message("identify", identifier=uid, traits=traits, run_id="raw", key=i)
        for i, (uid, traits) in enumerate(rows)
    )
    bodies = [b.body("2026-01-01T00:00:00.000Z") for b in pack_batches(messages, max_messages=500)]
    auth = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    headers = {"Content-Type": "application/json", "Authorization": auth}
    failures: list[int] = []

    def post(chunk: list[bytes]) -> None:
        with requests.Session() as session:
            for body in chunk:
                r = session.post(url + "/v1/batch", data=body, headers=headers, timeout=60)
                if r.status_code != 200:
                    failures.append(r.status_code)

    threads = [threading.Thread(target=post, args=(bodies[i::4],)) for i in range(4)]
    with h.Timer() as t:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return t.figures(sent=n, http_failures=len(failures))


def _table_file(n: int) -> Path:
    """A DuckDB file with table ``traits`` holding the same rows as :func:`_rows`."""

    def build(path: Path) -> None:
        import duckdb

        con = duckdb.connect(str(path))
        con.execute(
            "CREATE TABLE traits AS SELECT 'user-' || i::VARCHAR AS user_id, "
            f"i / {n}::DOUBLE AS churn_score, (i * 1.25)::DOUBLE AS ltv_90d, 'gold' AS plan "
            f"FROM range({n}) r(i)"
        )
        con.close()

    return h.ensure_file(f"sync-traits-{n}.duckdb", build)


def kit_sync(
    url: str,
    write_key: str,
    n: int,
    pristine: str,
    duckdb_options: str = "",
    events_per_second: float | None = None,
) -> dict[str, Any]:
    """``sync()`` of the whole table into an empty state, on a scratch copy of the file.

    ``events_per_second``: the kit's client-side limit (None: off, to measure the kit itself).
    """
    sync_mod = h.require("sqltraits_kit.publishing.sync")
    import ibis
    import ibis.backends.duckdb.converter
    import pandas  # noqa: F401

    from sqltraits_kit.publishing.segment import SegmentClient
    from sqltraits_kit.settings import Settings
    from sqltraits_kit.warehouse import connect

    ibis.duckdb  # noqa: B018
    work = Path(pristine).with_name(f"sync-work-{uuid.uuid4().hex[:8]}.duckdb")
    shutil.copyfile(pristine, work)
    try:
        # duckdb_options: DuckDB settings as URL query parameters ("memory_limit=256MB")
        wh = connect(
            f"duckdb://{work}" + (f"?{duckdb_options}" if duckdb_options else ""),
            settings=Settings.from_env().for_publishing().with_(allow_warehouse_url_options=True),
        )
        client = SegmentClient(
            write_key,
            endpoint=url,
            max_requests_per_second=None,
            max_events_per_second=events_per_second,
            concurrency=4,
        )
        base = h.rss_mb()
        with h.Timer() as t:
            result = sync_mod.sync(
                wh,
                "traits",
                client=client,
                max_requests_per_second=None,
                max_events_per_second=events_per_second,
            )
        client.close()
        wh.close()
    finally:
        work.unlink(missing_ok=True)
        Path(str(work) + ".wal").unlink(missing_ok=True)
    return t.figures(
        sent=n,
        delivered=result.sent,
        failed=result.failed,
        client_requests=result.requests,
        send_seconds=result.send_seconds,
        rss_before_mb=base,
    )


def main(argv: list[str] | None = None) -> int:
    p = h.parser("Sync throughput: the kit's client and sync vs segment-analytics-python.")
    p.add_argument("--messages", type=int, default=None, help="identify calls (default 200,000)")
    p.add_argument(
        "--server",
        choices=("fake", "sink"),
        default="fake",
        help="fake: the project's validating fake Segment (default); sink: benchmarks/_sink.py, "
        "which only counts, so that the clients set the pace",
    )
    args = h.parse(p, argv)
    n = args.messages or (QUICK_MESSAGES if args.quick else DEFAULT_MESSAGES)
    key = "sync" if args.server == "fake" else "sync_sink"
    title = "Sync throughput (identify calls to the local fake Segment)"
    if args.server == "sink":
        title = "Sync throughput, counting sink (identify calls to benchmarks/_sink.py)"
    bench = h.Bench(key, title, args, size=f"{n:,} messages")
    here = "benchmarks.bench_sync"
    figures: dict[str, h.Measurement] = {}
    with h.FakeSegment(sink=args.server == "sink") as server:

        def after(result: dict[str, Any]) -> dict[str, Any]:
            stats = server.stats()
            accepted = stats["messages_accepted"]
            return {
                "accepted": accepted,
                "lost": result["sent"] - accepted,
                "requests": stats["requests"],
                "rejected_by_server": stats.get("messages_rejected", 0)
                + stats.get("messages_dropped", 0),
                "msgs_per_s": result["sent"] / result["seconds"],
                "server_cpu_seconds": server.cpu_since_reset(),
            }

        common = {"url": server.url, "write_key": server.write_key, "n": n}
        hooks = {"before": server.reset, "after": after}
        figures["kit"] = bench.measure(f"{here}:kit_client", common, **hooks)
        pristine = str(_table_file(n))
        figures["sync"] = bench.measure(
            f"{here}:kit_sync", {**common, "pristine": pristine}, **hooks
        )
        figures["raw"] = bench.measure(f"{here}:raw_ceiling", common, **hooks)
        figures["default"] = bench.measure(f"{here}:official", {**common, "tuned": False}, **hooks)
        figures["tuned"] = bench.measure(f"{here}:official", {**common, "tuned": True}, **hooks)

    labels = {
        "kit": "kit SegmentClient (build + pack + send)",
        "sync": "kit sync() end to end (table → Segment)",
        "default": "segment-analytics-python, default settings",
        "tuned": "segment-analytics-python, tuned",
        "raw": "reference: pre-built bodies, POST only (the server's ceiling)",
    }
    for key, label in labels.items():
        m = figures[key]
        if m.not_measured:
            bench.not_measured(f"{label}: messages/s", m.not_measured)
            continue
        is_kit = key in ("kit", "sync")
        rate = m["msgs_per_s"]
        bench.add(
            h.Row(
                f"{label}: messages/s",
                rate,
                "msg/s",
                "≥ 40,000" if is_kit else "",
                h.at_least(rate, 40_000) if is_kit else None,
                note=f"{m['seconds']:.2f} s wall, CPU {m['cpu_seconds']:.1f} s = "
                f"{m['sent'] / m['cpu_seconds']:,.0f} msg per CPU-second (server "
                f"{m['server_cpu_seconds']:.1f} s); {int(m['requests']):,} requests; "
                f"peak RSS {m['peak_rss_mb']:.0f} MB",
            )
        )
        lost = m.max("lost")  # the worst run: one lost message is one too many
        extra = ""
        worst = max(m.runs, key=lambda r: r["lost"])  # the figures of the run that lost most
        if "refused_by_queue" in worst:
            extra = f"worst run: {int(worst['refused_by_queue']):,} refused by the full queue"
            if worst.get("failed_uploads"):
                extra += f", {int(worst['failed_uploads']):,} in failed uploads"
                if worst["upload_errors"]:
                    extra += f" ({worst['upload_errors'][0]})"
        bench.add(
            h.Row(
                f"{label}: messages lost",
                float(lost),
                "",
                "0" if is_kit else "",
                (lost == 0) if is_kit else None,
                note=extra,
            )
        )
    kit, tuned, default = figures["kit"], figures["tuned"], figures["default"]
    if not (kit.not_measured or tuned.not_measured):
        speed = h.ratio(kit["msgs_per_s"], tuned["msgs_per_s"])
        cpu = h.ratio(tuned["cpu_seconds"], kit["cpu_seconds"])
        bench.add(
            h.Row(
                "kit client vs official (tuned)",
                speed,
                "x",
                "≥ 5x",
                h.at_least(speed, 5.0),
                note=f"by CPU time per message {cpu:.1f}x",
            )
        )
        vs_default = h.ratio(kit["msgs_per_s"], default["msgs_per_s"])
        bench.add(
            h.Row(
                "kit client vs official (default)",
                vs_default,
                "x",
                "≥ 5x",
                h.at_least(vs_default, 5.0),
                note="the default loses messages, so its rate counts sent calls",
            )
        )
    server_text = (
        "sqltraits_kit/publishing/standin/ in its own process (validates every message; keeps no "
        "message bodies)"
        if args.server == "fake"
        else "benchmarks/_sink.py in its own process (auth, one json.loads per request, distinct "
        "messageIds counted; no validation)"
    )
    bench.note(
        f"Server: {server_text}. Client and server share the machine's cores; 'server' CPU is "
        "the server process's CPU time during the run. Tuned official settings: max_queue_size "
        f"= messages + 1, {TUNED}."
    )
    return bench.finish()


if __name__ == "__main__":
    sys.exit(main())
