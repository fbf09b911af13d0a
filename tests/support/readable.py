"""What a person should never read on a page or in a command's output (issue 17 item 9): the
raw renderings that bypass ``sqltraits_kit.formatting``."""

from __future__ import annotations

import re

#: A decimal number; it is raw when it shows more than 4 significant digits (0.88521, not
#: 0.8852; 0.08522 and 0.0001235 are 4 digits of a small figure).
_DECIMAL = re.compile(r"(?<![\w.])(\d+)\.(\d+)(?![\w])")
RAW = {
    "an ISO timestamp": re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d"),
    "a count without separators": re.compile(r"(?<![\w.@:/-])\d{5,}(?![\w.:/-])"),
    "a raw metric key": re.compile(r"\b(pr_auc|base_rate|top_decile_lift|total_pct_error)\b"),
    "None or nan": re.compile(r"\b(None|nan)\b"),  # Python reprs; prose may name NaN
    "a padded rate": re.compile(r"\b\d+\.00 (requests|events)/s"),
}


def raw_renderings(text: str) -> list[str]:
    """Each raw rendering in ``text``, named; JSON lines (exact payloads, data) are skipped."""
    kept = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("{"))
    found = [
        f"a float with more than 4 significant digits: {m.group(0)!r}"
        for m in _DECIMAL.finditer(kept)
        if len((m.group(1) + m.group(2)).lstrip("0")) > 4
    ]
    return found + [
        f"{what}: {m.group(0)!r}" for what, rx in RAW.items() for m in rx.finditer(kept)
    ]
