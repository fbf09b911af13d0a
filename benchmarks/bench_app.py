"""App: render time of each page (Streamlit AppTest) and the chart payload it sends.

    python -m benchmarks.bench_app [--customers N] [--runs R] [--quick]

Each page is opened through ``app.py``'s navigation (``AppTest.from_file("app.py")`` then
``switch_page``) in its own process, against a scratch copy of the events benchmark's warehouse
(the sample with ``churn_traits`` scored on two days and the first day published, so the
Preview and Publish pages have a run and a published state to show) and the scoring benchmark's
model registry. Measured per page: the first render (cold: empty caches), a second render (warm:
what every widget interaction costs), and the bytes of plotly figure data the page sends (the
``spec`` of every ``st.plotly_chart``), which must stay small because the warehouse bins first
(1M raw points in a plotly histogram are ~15 MB).

No target is set in the issue for these figures; the guides used here: a warm render under 2 s
and under 200 KB of chart data per page.
"""

from __future__ import annotations

import shutil
import sys
import uuid
from pathlib import Path
from typing import Any

from benchmarks import _harness as h
from benchmarks.bench_events_sent import prepare as prepare_events
from benchmarks.bench_scoring import prepare as prepare_scoring

PAGES = ("data", "train", "score", "preview", "publish")
WARM_TARGET_S = 2.0
PAYLOAD_TARGET_KB = 200.0


def render(path: str, registry: str, page: str) -> dict[str, Any]:
    import logging

    import ibis  # noqa: F401 - imports before the clock starts
    import pandas  # noqa: F401
    import plotly  # noqa: F401
    import streamlit  # noqa: F401
    from streamlit.testing.v1 import AppTest

    from sqltraits_kit.settings import Settings
    from sqltraits_kit.warehouse import connect

    logging.getLogger("streamlit").setLevel(logging.ERROR)
    work = Path(path).with_name(f"app-work-{uuid.uuid4().hex[:8]}.duckdb")
    shutil.copyfile(path, work)
    try:
        wh = connect(f"duckdb://{work}")
        at = AppTest.from_file(str(h.ROOT / "app.py"), default_timeout=600)
        at.session_state["warehouse"] = wh
        at.session_state["settings"] = Settings(db_url=wh.url, models_dir=Path(registry))
        at.switch_page(f"pages/{page}.py")
        with h.Timer() as cold:
            at.run()
        errors = [str(e.value)[:200] for e in at.exception]
        with h.Timer() as warm:
            at.run()
        charts = [len(c.proto.spec) for c in at.get("plotly_chart")]
        wh.close()
    finally:
        work.unlink(missing_ok=True)
        Path(str(work) + ".wal").unlink(missing_ok=True)
    return {
        "seconds": cold.seconds,
        "cpu_seconds": cold.cpu,
        "warm_seconds": warm.seconds,
        "charts": len(charts),
        "chart_bytes": sum(charts),
        "largest_chart_bytes": max(charts, default=0),
        "errors": errors,
    }


def main(argv: list[str] | None = None) -> int:
    p = h.parser("App: AppTest render time and chart payload of each page.")
    p.add_argument("--pages", default=",".join(PAGES), help="comma-separated page names")
    args = h.parse(p, argv)
    bench = h.Bench("app", "App pages (AppTest render time, chart payload)", args)
    try:
        path = prepare_events(args.customers, args.seed)
        _, registry = prepare_scoring(args.customers, args.seed)
    except h.NotMeasured as exc:
        for page in args.pages.split(","):
            bench.not_measured(f"page {page}", str(exc))
        return bench.finish()
    for page in args.pages.split(","):
        m = bench.measure(
            "benchmarks.bench_app:render",
            {"path": str(path), "registry": str(registry), "page": page},
        )
        errors = m.runs[-1]["errors"]
        note = f"{int(m['charts'])} charts; peak RSS {m['peak_rss_mb']:.0f} MB"
        bench.add(
            h.Row(
                f"page {page}: first render (cold caches)",
                m["seconds"],
                "s",
                note=f"CPU {m['cpu_seconds']:.1f} s",
            )
        )

        if errors:
            note += f"; EXCEPTION: {errors[0]}"
        bench.add(
            h.Row(
                f"page {page}: warm render",
                m["warm_seconds"],
                "s",
                f"≤ {WARM_TARGET_S:g} s (guide)",
                h.at_most(m["warm_seconds"], WARM_TARGET_S) and not errors,
                note=note,
            )
        )
        kb = m["chart_bytes"] / 1024
        bench.add(
            h.Row(
                f"page {page}: chart payload",
                kb,
                "KB",
                f"≤ {PAYLOAD_TARGET_KB:g} KB (guide)",
                h.at_most(kb, PAYLOAD_TARGET_KB),
                note=f"largest chart {m['largest_chart_bytes'] / 1024:.1f} KB",
            )
        )
    bench.note(
        "Warm = a second run of the same AppTest (Streamlit's caches filled): what a widget "
        "interaction costs. Cold includes the first queries. Peak RSS: the AppTest process "
        "running that one page."
    )
    return bench.finish()


if __name__ == "__main__":
    sys.exit(main())
