"""Outcomes of what was published: did the scores come true, and did acting on them work?

For each published version of a trait set (a finished sync run, :mod:`~sqltraits_kit.
publishing.sync.versions`) the kit knows the profiles the destination held, the scoring run
those values came from (:mod:`~sqltraits_kit.publishing.sync.provenance`), and that run's
as-of date and models (:func:`~sqltraits_kit.traits.output.score_run`). Once a model's horizon
has passed since the as-of date, :func:`outcomes` computes each profile's realised outcome with
the label code training uses (:func:`~sqltraits_kit.modelling.features.build_labels`, with the
card's mapping, horizon and churn definition) and, in the warehouse
(:mod:`~sqltraits_kit.modelling.live_metrics`):

* live metrics per model version, overall and per published tier: AUC, calibration (Brier,
  mean predicted minus observed, ECE) and top-decile lift for churn; total error, MAE and
  decile lift for LTV;
* beside the model card's out-of-time figures, each comparison flagged when live quality is
  worse than the card's by more than its margin (:data:`DEFAULT_MARGINS`);
* with a holdout (``[holdout]`` in the trait set): treated vs control per tier, the churn
  reduction and the revenue uplift with 95% intervals.

The scores judged are the scoring run's own (the output table's history), for the profiles the
destination held after the run; the tier and the holdout flag are the published ones.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import ConfigError, ModelLoadError

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from sqltraits_kit.modelling.registry import ModelCard, Registry
    from sqltraits_kit.traits.traitset import TraitSet
    from sqltraits_kit.warehouse import Warehouse

from sqltraits_kit.workflows.outcome_reports import (
    Comparison,
    ModelOutcome,
    OutcomeReport,
    RunOutcome,
)

__all__ = [
    "DEFAULT_MARGINS",
    "Comparison",
    "ModelOutcome",
    "OutcomeReport",
    "RunOutcome",
    "outcomes",
]

#: How much worse than the card a live figure may be before it is flagged. ``auc``, ``brier``
#: and ``calibration_gap`` (|mean predicted - observed|, against 0) are absolute; ``mae`` and
#: ``top_decile_lift`` relative (0.25 = 25% worse); ``total_pct_error`` in percentage points
#: of |error|.
DEFAULT_MARGINS: dict[str, float] = {
    "auc": 0.05,
    "brier": 0.03,
    "calibration_gap": 0.05,
    "top_decile_lift": 0.25,
    "mae": 0.25,
    "total_pct_error": 15.0,
}
#: metric -> (better when, margin kind)
_RULES = {
    "auc": ("higher", "absolute"),
    "top_decile_lift": ("higher", "relative"),
    "brier": ("lower", "absolute"),
    "mae": ("lower", "relative"),
    "total_pct_error": ("nearer_zero", "absolute"),
    "calibration_gap": ("nearer_zero", "absolute"),
}
_COMPARED = {
    "churn": ("auc", "brier", "calibration_gap", "top_decile_lift"),
    "ltv": ("mae", "total_pct_error"),
}
#: The output column a model kind is judged on, and the label it is judged against.
_TARGETS = {"churn": "churned", "ltv": "ltv"}


def _worse(metric: str, live: float, card: float | None, margin: float) -> bool:
    better, kind = _RULES[metric]
    if better == "nearer_zero":
        return abs(live) > abs(card or 0.0) + margin
    if card is None:
        return False
    limit = abs(card) * margin if kind == "relative" else margin
    return live < card - limit if better == "higher" else live > card + limit


def _card_figures(card: ModelCard, kind: str) -> dict[str, Any]:
    """The card's out-of-time figures for ``kind`` (a BTYD card keeps LTV's under ``ltv_``)."""
    prefix = "ltv_" if card.kind == "btyd" and kind == "ltv" else ""
    metrics = card.metrics or {}
    names = ("auc", "brier", "top_decile_lift", "base_rate")
    if kind == "ltv":
        names = ("mae", "total_pct_error", "mean_actual", "mean_predicted", "gini")
    out: dict[str, Any] = {n: metrics.get(prefix + n) for n in names}
    out["test_rows"] = card.test_rows or metrics.get("test_rows")
    out["test_cutoff"] = card.test_cutoff
    return out


def _judged(card: ModelCard, columns: list[str]) -> list[tuple[str, str]]:
    """(kind, output column) pairs a model is judged on."""
    if card.kind == "btyd":
        from sqltraits_kit.traits.scoring import trait_columns

        _, no_purchase, _, spend = trait_columns(card)
        return [("churn", no_purchase), ("ltv", spend)]
    return [(card.kind, columns[0])]


def _tier_trait(ts: TraitSet, column: str, published: list[str]) -> str | None:
    for d in ts.derived:
        if d.column == column and d.type in ("tiers", "quantiles") and d.name in published:
            return d.name
    return None


def _day(when: Any) -> dt.datetime:
    if isinstance(when, dt.datetime):
        when = when.astimezone(dt.UTC).replace(tzinfo=None) if when.tzinfo else when
        return dt.datetime(when.year, when.month, when.day)
    raise ConfigError(f"not a date: {when!r}")


class _Context:
    """What several runs share: cards, data ends and label tables, loaded once."""

    def __init__(self, wh: Warehouse, registry: Registry) -> None:
        self.wh, self.registry = wh, registry
        self.cards: dict[str, ModelCard | str] = {}
        self.ends: dict[str, dt.datetime] = {}
        self.cached: dict[Any, ir.Table] = {}

    def card(self, name: str, version: int) -> ModelCard | str:
        ref = f"{name}@{version}"
        if ref not in self.cards:
            try:
                self.cards[ref] = self.registry.card(name, version)
            except (ModelLoadError, ConfigError, OSError) as exc:
                self.cards[ref] = f"model card {ref} not found in {self.registry.root}: {exc}"
        return self.cards[ref]

    def data_end(self, card: ModelCard) -> dt.datetime:
        from sqltraits_kit.modelling.features import TableMapping, data_end

        key = repr(sorted((card.mapping or {}).items()))
        if key not in self.ends:
            self.ends[key] = data_end(self.wh, TableMapping.from_dict(card.mapping or {}))
        return self.ends[key]

    def labelled(
        self, population: ir.Table, card: ModelCard, as_of: dt.datetime, ident: str
    ) -> ir.Table:
        """The population with each profile's realised outcome (``churned``, ``ltv``) by the
        card's label definition, kept in a temporary table for the run's several queries
        where the engine allows one (released by :meth:`release`)."""
        from sqltraits_kit.modelling.features import TableMapping, build_labels

        key = (repr(sorted((card.mapping or {}).items())), card.horizon_days, card.churn_on)
        if key not in self.cached:
            labels = build_labels(
                self.wh,
                TableMapping.from_dict(card.mapping or {}),
                cutoff=as_of,
                horizon_days=int(card.horizon_days),
                churn_on=card.churn_on or "orders",
            )
            table = _with_labels(population, labels, ident)
            with contextlib.suppress(Exception):  # without temporary tables: recomputed
                table = table.cache()
            self.cached[key] = table
        return self.cached[key]

    def release(self) -> None:
        for table in self.cached.values():
            with contextlib.suppress(Exception):
                table.release()
        self.cached = {}


def _population(
    wh: Warehouse, ts: TraitSet, sync_key: str, run: dict[str, Any], prov: dict[str, Any]
) -> tuple[ir.Table, list[str], list[str]]:
    """The scoring run's rows (the output table's history) of the profiles the destination held
    after the run, with the published traits as ``_pub_<trait>``; the published trait names;
    the output columns."""
    from sqltraits_kit.publishing.sync import snapshot_at
    from sqltraits_kit.traits.output import history_table

    snapshot = snapshot_at(wh, sync_key, run["run_id"])
    published = [c for c in snapshot.columns if c != ts.identifier]
    name = history_table(prov["output_table"])
    if not wh.has_table(name):
        raise ConfigError(
            f"{name} does not exist: the scores of run {prov['score_run_id']} are gone"
        )
    hist = wh.con.table(name)
    hist = hist.filter(hist["run_id"] == prov["score_run_id"])
    ident = ts.id_column or ts.identifier
    snap = snapshot.select(
        _pub_id=snapshot[ts.identifier].cast("string"),
        **{f"_pub_{c}": snapshot[c] for c in published},
    )
    joined = hist.join(snap, hist[ident].cast("string") == snap["_pub_id"]).drop("_pub_id")
    return joined, published, list(hist.columns)


def _with_labels(population: ir.Table, labels: ir.Table, ident: str) -> ir.Table:
    lab = labels.select(_lab_id=labels["profile_id"].cast("string"), churned=labels["churned"],
                        ltv=labels["ltv"])  # fmt: skip
    joined = population.join(lab, population[ident].cast("string") == lab["_lab_id"])
    return joined.drop("_lab_id")


def _evaluate_model(
    ctx: _Context,
    ts: TraitSet,
    table: ir.Table,
    card: ModelCard,
    kind: str,
    column: str,
    published: list[str],
    margins: dict[str, float],
    base: ModelOutcome,
) -> ModelOutcome:
    from sqltraits_kit.modelling.live_metrics import churn_metrics, ltv_metrics

    if column not in table.columns:
        base.status, base.reason = "unavailable", f"column {column!r} is not in the output history"
        return base
    measure = churn_metrics if kind == "churn" else ltv_metrics
    tier = _tier_trait(ts, column, published)
    by = f"_pub_{tier}" if tier is not None else None
    measured = measure(table, score=column, actual=_TARGETS[kind], by=by)
    overall = measured.pop("all")
    base.live, base.tiers, base.tier_trait = overall, measured, tier
    base.card = _card_figures(card, kind)
    for metric in _COMPARED[kind]:
        live = overall.get(metric)
        if live is None:
            continue
        card_value = None if metric == "calibration_gap" else base.card.get(metric)
        margin = float(margins[metric])
        flagged = _worse(metric, float(live), card_value, margin)
        base.comparisons.append(Comparison(metric, live, card_value, margin, flagged))
    base.status = "evaluated"
    return base


def _evaluate_run(
    ctx: _Context,
    ts: TraitSet,
    sync_key: str,
    run: dict[str, Any],
    margins: dict[str, float],
) -> RunOutcome:
    from sqltraits_kit.publishing.sync.provenance import provenance
    from sqltraits_kit.traits.output import score_run

    out = RunOutcome(
        run_id=run["run_id"],
        published_at=run.get("started_at"),
        source=run.get("source") or "",
        status="unavailable",
    )
    prov = provenance(ctx.wh, run["run_id"])
    scored = [p for p in prov if p.get("score_run_id")]
    if prov:
        out.rollback_of = prov[0].get("rollback_of")
    if not scored:
        out.reason = (
            "no scoring run recorded for this publish (a query source, or published before "
            "the kit recorded which scores a publish carried)"
        )
        return out
    main = max(scored, key=lambda p: int(p.get("rows") or 0))
    out.score_run_id = main["score_run_id"]
    record = score_run(ctx.wh, main["score_run_id"])
    if record is None:
        out.reason = f"no as-of date recorded for scoring run {main['score_run_id']}"
        return out
    out.as_of = _day(record["as_of"])
    try:
        table, published, columns = _population(ctx.wh, ts, sync_key, run, main)
    except ConfigError as exc:  # the scores or the ledger are gone: this run cannot be judged
        out.reason = str(exc)
        return out
    sources = set(ts.trait_map(columns)) | {d.column for d in ts.derived}
    models = [m for m in record["models"] if set(m.get("columns", [])) & sources]
    if not models:
        out.reason = "none of the scoring run's models is published by this trait set"
        return out
    out.holdout_trait = ts.holdout_trait if ts.holdout_trait in published else None
    uplift_card: ModelCard | None = None
    for m in models:
        card = ctx.card(m["name"], int(m["version"]))
        for kind, column in _judged(card, m["columns"]) if not isinstance(card, str) else []:
            horizon = int(card.horizon_days)
            base = ModelOutcome(
                model=f"{m['name']}@{m['version']}",
                kind=kind,
                column=column,
                horizon_days=horizon,
                matures_at=out.as_of + dt.timedelta(days=horizon),
                status="pending",
            )
            if base.matures_at > ctx.data_end(card):
                base.reason = (
                    f"the {horizon}-day horizon ends {base.matures_at.date()}; the data end "
                    f"{ctx.data_end(card):%Y-%m-%d}"
                )
                out.models.append(base)
                continue
            labelled = ctx.labelled(table, card, out.as_of, ts.id_column or "user_id")
            out.models.append(
                _evaluate_model(ctx, ts, labelled, card, kind, column, published, margins, base)
            )
            if uplift_card is None:
                uplift_card = card
                out.profiles = int(out.models[-1].live.get("rows") or 0)
        if isinstance(card, str):
            out.models.append(
                ModelOutcome(
                    model=f"{m['name']}@{m['version']}",
                    kind=str(m.get("kind")),
                    column=(m.get("columns") or [""])[0],
                    horizon_days=int(m.get("horizon_days") or 0),
                    matures_at=out.as_of + dt.timedelta(days=int(m.get("horizon_days") or 0)),
                    status="unavailable",
                    reason=card,
                )
            )
    evaluated = [m for m in out.models if m.status == "evaluated"]
    if evaluated:
        out.status = "evaluated"
        if out.holdout_trait is not None and uplift_card is not None:
            out.uplift = _uplift(ctx, ts, table, uplift_card, out, evaluated[0].tier_trait)
    elif any(m.status == "pending" for m in out.models):
        out.status = "pending"
        out.reason = next(m.reason for m in out.models if m.status == "pending")
    else:
        out.reason = "; ".join(m.reason for m in out.models if m.reason)
    return out


def _uplift(
    ctx: _Context,
    ts: TraitSet,
    table: ir.Table,
    card: ModelCard,
    out: RunOutcome,
    tier: str | None,
) -> dict[str, dict[str, Any]]:
    import ibis

    from sqltraits_kit.modelling.live_metrics import uplift

    assert out.as_of is not None and out.holdout_trait is not None
    labelled = ctx.labelled(table, card, out.as_of, ts.id_column or "user_id")
    # Treated: not in the control group (a CASE, not a NOT: see live_metrics.uplift).
    flag = labelled[f"_pub_{out.holdout_trait}"]
    treated = ibis.cases((flag.isnull(), ibis.null("boolean")), (flag, False), else_=True)
    labelled = labelled.mutate(_treated=treated)
    by = f"_pub_{tier}" if tier is not None else None
    return uplift(labelled, treated="_treated", churned="churned", revenue="ltv", by=by)


def outcomes(
    wh: Warehouse,
    trait_set: TraitSet,
    /,
    *,
    registry: Registry | str | Path,
    sync_key: str | None = None,
    destination: str | None = None,
    margins: dict[str, float] | None = None,
    limit: int | None = 20,
) -> OutcomeReport:
    """The outcomes of the ``limit`` latest published runs of ``trait_set`` (newest first).

    ``registry``: where the model cards are (their mapping, horizon, churn definition and
    out-of-time figures). ``sync_key``: the published state (default: the trait set's name;
    ``churn@staging`` for a named destination's). ``destination``: only runs that went there.
    ``margins``: per metric, overriding :data:`DEFAULT_MARGINS`. Runs whose horizon has not
    passed are listed as ``pending``; runs without a recorded scoring run as ``unavailable``.
    """
    from sqltraits_kit.modelling.registry import Registry
    from sqltraits_kit.publishing.sync import published_runs

    chosen = dict(DEFAULT_MARGINS)
    for metric, value in (margins or {}).items():
        if metric not in DEFAULT_MARGINS:
            raise ConfigError(f"no margin {metric!r} (known: {', '.join(DEFAULT_MARGINS)})")
        if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise ConfigError(f"margin {metric} must be a number >= 0, got {value!r}")
        chosen[metric] = float(value)
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be at least 1, got {limit}")
    reg = registry if isinstance(registry, Registry) else Registry(registry)
    key = sync_key or trait_set.name
    ctx = _Context(wh, reg)
    runs = published_runs(wh, key, destination=destination)
    if limit is not None:
        runs = runs[:limit]
    results = []
    for run in runs:
        try:
            results.append(_evaluate_run(ctx, trait_set, key, run, chosen))
        finally:
            ctx.release()
    return OutcomeReport(trait_set=trait_set.name, sync_key=key, margins=chosen, runs=results)
