"""What a person should never read on a page or in a command's output (issue 17 item 9): the
raw renderings that bypass ``sqltraits_kit.formatting``."""

from __future__ import annotations

import re

RAW = {
    "a float with more than 4 decimals": re.compile(r"(?<![\w.])\d+\.\d{5,}(?![\w])"),
    "an ISO timestamp": re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d"),
    "a count without separators": re.compile(r"(?<![\w.@:/-])\d{5,}(?![\w.:/-])"),
    "a raw metric key": re.compile(r"\b(pr_auc|base_rate|top_decile_lift|total_pct_error)\b"),
    "None or nan": re.compile(r"\b(None|nan)\b"),  # Python reprs; prose may name NaN
    "a padded rate": re.compile(r"\b\d+\.00 (requests|events)/s"),
}


def raw_renderings(text: str) -> list[str]:
    """Each raw rendering in ``text``, named; JSON lines (exact payloads, data) are skipped."""
    kept = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("{"))
    return [f"{what}: {m.group(0)!r}" for what, rx in RAW.items() for m in rx.finditer(kept)]
