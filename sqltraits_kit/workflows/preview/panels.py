"""The Preview's distribution and sample-payload panels, computed in the warehouse."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.traits.traitset import TraitSet, resolve

if TYPE_CHECKING:
    import pandas as pd

    from sqltraits_kit.traits.distributions import TraitSummary
    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "SAMPLE_RUN_ID",
    "Distributions",
    "SamplePayloads",
    "distributions",
    "sample_payloads",
    "timed",
]

#: The run id the sample payloads' messageIds are derived from (a publish uses its own).
SAMPLE_RUN_ID = "preview"


def timed(started: float) -> float:
    return time.perf_counter() - started


@dataclass(frozen=True)
class Distributions:
    """Per-trait summaries (bins, quantiles, nulls) and the sizes of derived tier traits."""

    rows: int
    traits: tuple[str, ...]
    summaries: Mapping[str, TraitSummary]
    tiers: Mapping[str, pd.DataFrame]  # derived tiers/quantiles: tier, count, share
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "traits": list(self.traits),
            "summaries": {k: s.to_dict() for k, s in self.summaries.items()},
            "tiers": {k: frame.to_dict(orient="records") for k, frame in self.tiers.items()},
        }


def distributions(wh: Warehouse, trait_set: TraitSet, /, *, bins: int = 30) -> Distributions:
    """Every trait's :class:`~sqltraits_kit.traits.distributions.TraitSummary` and the tier sizes of
    derived ``tiers``/``quantiles`` traits (in label order), computed in the warehouse."""
    from sqltraits_kit.traits.distributions import summarize, tier_sizes

    started = time.perf_counter()
    table = resolve(wh, trait_set)
    ident = trait_set.identifier
    traits = tuple(c for c in table.columns if c != ident)
    summaries = summarize(table, columns=traits, bins=bins)
    tiers = {}
    for d in trait_set.derived:
        if d.type in ("tiers", "quantiles") and d.name in traits:
            labels = list(d.labels) if d.labels else list(range(1, d.bins + 1))
            tiers[d.name] = tier_sizes(table, d.name, labels=labels)
    rows = next(iter(summaries.values())).rows if summaries else int(table.count().execute())
    return Distributions(rows, traits, summaries, tiers, timed(started))


@dataclass(frozen=True)
class SamplePayloads:
    """The identify/group messages of the first profiles by identifier, as a publish builds them.

    ``messages`` are plain JSON; their ``messageId`` is derived from ``run_id`` (a placeholder).
    ``errors`` name the rows whose values Segment would refuse.
    """

    identifier: str
    traits: tuple[str, ...]
    messages: tuple[dict[str, Any], ...]
    errors: tuple[str, ...] = ()
    run_id: str = SAMPLE_RUN_ID
    seconds: float = 0.0

    def to_frame(self) -> pd.DataFrame:
        """One row per message: the identifier and each trait as sent."""
        import pandas as pd

        records = []
        for msg in self.messages:
            who = msg.get("groupId") or msg.get("userId") or msg.get("anonymousId")
            records.append({self.identifier: who, **msg["traits"]})
        return pd.DataFrame.from_records(records, columns=[self.identifier, *self.traits])

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "messages": list(self.messages), "errors": list(self.errors)}


def sample_payloads(wh: Warehouse, trait_set: TraitSet, /, *, size: int = 20) -> SamplePayloads:
    """The messages a publish would build for the first ``size`` profiles (by identifier).

    Built by :func:`sqltraits_kit.publishing.segment.payload.build_message`, the sync's payload
    code, with
    the placeholder run id :data:`SAMPLE_RUN_ID`.
    """
    from sqltraits_kit.publishing.segment.payload import PayloadError, build_message
    from sqltraits_kit.publishing.sync import resolve_source

    started = time.perf_counter()
    table = resolve(wh, trait_set)
    ident = trait_set.identifier
    traits = tuple(c for c in table.columns if c != ident)
    if size <= 0:
        return SamplePayloads(ident, traits, (), seconds=timed(started))
    try:  # the sync's own reading of the source: message kind and id type (e-mail refused)
        src = resolve_source(wh, trait_set)
    except ConfigError as exc:
        return SamplePayloads(ident, traits, (), (str(exc),), seconds=timed(started))
    rows = src.table.order_by(ident).limit(size).to_pyarrow().to_pylist()
    messages, errors = [], []
    for row in rows:
        try:
            messages.append(
                build_message(
                    src.kind,
                    identifier=row[ident],
                    traits={t: row[t] for t in traits},
                    run_id=SAMPLE_RUN_ID,
                    id_type=src.id_type,
                )
            )
        except PayloadError as exc:
            errors.append(str(exc))
    return SamplePayloads(ident, traits, tuple(messages), tuple(errors), seconds=timed(started))
