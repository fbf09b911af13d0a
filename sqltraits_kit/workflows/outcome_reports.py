"""What an outcome report holds: each run's live figures beside the card's, and their flags."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqltraits_kit.errors import EXIT_FAILED, EXIT_OK

__all__ = ["Comparison", "ModelOutcome", "OutcomeReport", "RunOutcome"]


@dataclass(frozen=True)
class Comparison:
    """One live figure beside the card's: flagged when worse by more than ``margin``."""

    metric: str
    live: float | None
    card: float | None
    margin: float
    flagged: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class ModelOutcome:
    """One model of a published run, judged as ``kind`` on ``column`` (a BTYD model is judged
    twice: churn on its no-purchase probability, LTV on its expected spend)."""

    model: str
    kind: str
    column: str
    horizon_days: int
    matures_at: dt.datetime
    status: str  # evaluated | pending (horizon not passed) | unavailable
    reason: str = ""
    tier_trait: str | None = None
    live: dict[str, Any] = field(default_factory=dict)
    tiers: dict[str, dict[str, Any]] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict)
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def flagged(self) -> list[str]:
        return [c.metric for c in self.comparisons if c.flagged]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["matures_at"] = self.matures_at.date().isoformat()
        out["comparisons"] = [c.to_dict() for c in self.comparisons]
        out["flagged"] = self.flagged
        return out


@dataclass
class RunOutcome:
    """A published version (sync run) and the outcomes of the scores it carried."""

    run_id: str
    published_at: dt.datetime | None
    source: str
    status: str  # evaluated | pending | unavailable
    reason: str = ""
    score_run_id: str | None = None
    as_of: dt.datetime | None = None
    rollback_of: str | None = None
    profiles: int = 0
    holdout_trait: str | None = None
    models: list[ModelOutcome] = field(default_factory=list)
    uplift: dict[str, dict[str, Any]] | None = None

    @property
    def flagged(self) -> list[str]:
        return [f"{m.model} {m.kind}: {x}" for m in self.models for x in m.flagged]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("published_at", "as_of"):
            value = getattr(self, key)
            out[key] = value.isoformat() if value is not None else None
        out["models"] = [m.to_dict() for m in self.models]
        out["flagged"] = self.flagged
        return out


@dataclass
class OutcomeReport:
    """Every published run of a trait set with its outcomes, newest first."""

    trait_set: str
    sync_key: str
    margins: dict[str, float]
    runs: list[RunOutcome]

    @property
    def flagged(self) -> list[str]:
        return [f"run {r.run_id}: {f}" for r in self.runs for f in r.flagged]

    @property
    def exit_code(self) -> int:
        """0: no live figure worse than its card by more than the margin; 1: some are."""
        return EXIT_FAILED if self.flagged else EXIT_OK

    def over_time(self) -> list[dict[str, Any]]:
        """One row per (run, model, compared metric): the series the Monitor page charts."""
        rows = []
        for run in self.runs:
            for m in run.models:
                for c in m.comparisons:
                    rows.append(
                        {
                            "run_id": run.run_id,
                            "as_of": run.as_of,
                            "published_at": run.published_at,
                            "model": m.model,
                            "kind": m.kind,
                            "metric": c.metric,
                            "live": c.live,
                            "card": c.card,
                            "flagged": c.flagged,
                        }
                    )
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "trait_set": self.trait_set,
            "sync_key": self.sync_key,
            "margins": self.margins,
            "evaluated": sum(r.status == "evaluated" for r in self.runs),
            "pending": sum(r.status == "pending" for r in self.runs),
            "flagged": self.flagged,
            "runs": [r.to_dict() for r in self.runs],
        }
