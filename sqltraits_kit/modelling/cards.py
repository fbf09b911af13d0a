"""The model card: what a model is, what it was trained on, how well it did out of time."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

from sqltraits_kit.errors import ConfigError, ModelLoadError
from sqltraits_kit.formatting import count, figure, metric_label, metric_value
from sqltraits_kit.modelling.integrity import expected_features

KINDS = ("churn", "ltv", "btyd")
_OPTIONAL_KEYS = (
    "training_cutoffs",
    "baselines",
    "comparison",
    "warnings",
    "selection",
    "refit",
    "origin",
    "feature_spec",
)


@dataclass(kw_only=True)
class ModelCard:
    """What a model is, what it was trained on, and how well it did out of time."""

    name: str
    kind: str  # churn | ltv | btyd
    estimator: str
    features: list[str]
    mapping: dict[str, Any]
    cutoff: str  # ISO date: the training cutoff (history before it, labels from it on)
    horizon_days: int
    metrics: dict[str, Any]
    training_rows: int
    data_fingerprint: str
    version: int = 0  # assigned by Registry.save
    test_cutoff: str | None = None  # ISO date of the out-of-time test set
    test_rows: int = 0
    windows: list[int] = field(default_factory=lambda: [7, 30, 90])
    churn_on: str = "orders"
    library_versions: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    warehouse: str = ""
    params: dict[str, Any] | None = None  # BTYD: the fitted parameters
    artifact: str | None = None  # file name of the skops artifact in the version folder
    artifact_sha256: str | None = None
    notes: list[str] = field(default_factory=list)
    signature: str | None = None  # HMAC of the rest, when a signing key is configured
    # Added by the champion/baseline training (absent from older cards, left out when None so
    # an older card's signature still verifies):
    training_cutoffs: list[str] | None = None  # the tested model's stacked snapshots
    baselines: dict[str, dict[str, Any]] | None = None  # each baseline's test metrics
    comparison: list[dict[str, Any]] | None = None  # per metric: model vs best baseline
    warnings: list[str] | None = None  # where the model does not beat a baseline
    selection: dict[str, Any] | None = None  # auto: every candidate's figures, why it won
    refit: dict[str, Any] | None = None  # the saved model's refit on the latest window
    origin: dict[str, Any] | None = None  # a model registered from outside the kit
    feature_spec: dict[str, Any] | None = None  # features beyond the built-in set

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in _OPTIONAL_KEYS:
            if out.get(key) is None:
                del out[key]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, allow_nan=False)

    def to_text(self) -> list[str]:
        """The card's figures as lines of text: each metric beside the best baseline and the
        reference, the candidates (auto), the warnings, the refit, parameters and notes."""
        lines = []
        compared = {row["metric"]: row for row in self.comparison or []}
        has_reference = any(k.startswith("reference_") for k in self.metrics)
        header = f"  {'metric':<20} {'model':>9}   {'best baseline':<32}"
        lines.append((header + ("  reference" if has_reference else "")).rstrip())
        for key, value in self.metrics.items():
            if key.startswith("reference_") or key.endswith("_rows"):
                continue
            row = compared.get(key)
            base = ""
            if row is not None:
                mark = "" if row["beats"] else "  <- not beaten"
                base = f"{metric_value(key, row['baseline'])} ({row['best_baseline']}){mark}"
            line = f"  {metric_label(key):<20} {metric_value(key, value):>9}   {base:<32}"
            ref = self.metrics.get(f"reference_{key}")
            if ref is not None:
                line += f"  {metric_value(key, ref)}"
            lines.append(line.rstrip())
        lines += _selection_lines(self.selection or {})
        lines += [f"  WARNING: {warning}" for warning in self.warnings or []]
        if self.refit:
            lines.append(
                f"  saved model refit on {', '.join(self.refit['cutoffs'])} "
                f"({count(self.refit['training_rows'])} rows) after testing"
            )
        if self.params:
            lines.append(f"  parameters: {_params_text(self.params)}")
        lines += [f"  note: {note}" for note in self.notes]
        return lines

    @classmethod
    def from_dict(cls, values: dict[str, Any], /) -> ModelCard:
        known = {f.name for f in dataclasses.fields(cls)}
        # Cards from a newer version may carry more keys; the ones we know must be right.
        kept = {k: v for k, v in values.items() if k in known}
        try:
            card = cls(**kept)
        except TypeError as exc:
            raise ModelLoadError(f"model card is incomplete: {exc}") from None
        if card.kind not in KINDS:
            raise ModelLoadError(f"model card has unknown kind {card.kind!r} (known: {KINDS})")
        return card


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to score with: the fitted object and its card."""

    model: Any
    card: ModelCard

    @property
    def features(self) -> list[str]:
        """The feature columns in the order the fitted model takes them (not the card's order,
        should the two differ); a card that lists other features is a :class:`ModelLoadError`."""
        return expected_features(self.model, self.card) if self.card.kind != "btyd" else []


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME@VERSION`` -> (name, version or None)."""
    name, _, version = ref.strip().partition("@")
    if not version:
        return name, None
    try:
        number = int(version.removeprefix("v"))
    except ValueError:
        raise ConfigError(f"model reference must be NAME@VERSION, got {ref!r}") from None
    return name, number


def library_versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from sqltraits_kit import __version__

    out = {"python": platform.python_version(), "sqltraits-kit": __version__}
    for pkg in ("scikit-learn", "skops", "numpy", "scipy", "pandas", "ibis-framework"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def _params_text(params: dict[str, Any], /) -> str:
    """Fitted parameters as ``bgnbd: r 0.2431, alpha 4.5``; numbers by the app's format."""
    parts = []
    for key, value in params.items():
        if isinstance(value, dict):
            parts.append(f"{key}: {_params_text(value)}" if value else f"{key}: {figure(None)}")
        elif isinstance(value, int | float) and not isinstance(value, bool):
            parts.append(f"{key} {figure(value)}")
        else:
            parts.append(f"{key} {value}")
    return (
        "; ".join(parts) if any(isinstance(v, dict) for v in params.values()) else ", ".join(parts)
    )


def _selection_lines(selection: dict[str, Any]) -> list[str]:
    """The champion and every candidate's validation and test figure (``--estimator auto``)."""
    if not selection:
        return []
    metric = selection["selected_by"]
    label = metric_label(metric)
    lines = [
        f"  champion {selection['champion']}: {selection['reason']} "
        f"(validation at {selection['validation_cutoff']})",
        f"  {'candidate':<12} {'validation ' + label:>16} {'test ' + label:>12}",
    ]
    for name, figures in selection["candidates"].items():
        val = figures.get("validation", {}).get(metric)
        test = figures.get("test", {}).get(metric)
        star = "*" if name == selection["champion"] else " "
        lines.append(
            f"  {star}{name:<11} {metric_value(metric, val):>16} {metric_value(metric, test):>12}"
        )
    return lines
