"""The whole scheduled job for one trait set: score -> validate -> drift gate -> sync.

``sqltraits run traitsets/churn.toml`` calls :func:`run_trait_set`; so can a notebook or an
orchestrator. Each step is the same library call the app's pages make, so a scheduled run and a
click in the app can never disagree.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import EXIT_FAILED, EXIT_OK, EXIT_USAGE, ConfigError
from sqltraits_kit.publishing.sync import DryRunReport, SyncResult

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from sqltraits_kit.modelling.registry import Registry
    from sqltraits_kit.publishing.segment import SegmentClient
    from sqltraits_kit.publishing.sync import SyncProgress
    from sqltraits_kit.traits.contract import ContractReport
    from sqltraits_kit.traits.scoring import ScoreResult
    from sqltraits_kit.traits.traitset import ModelRef, TraitSet
    from sqltraits_kit.warehouse import Warehouse

__all__ = ["PipelineResult", "publish_exit_code", "run_trait_set"]


def publish_exit_code(
    published: SyncResult | DryRunReport,
    /,
    *,
    allow_drift: bool = False,
    allow_invalid: bool = False,
) -> int:
    """The exit status of a publish or of its dry run, as ``sqltraits sync`` and ``sqltraits run``
    return it: 0 every row delivered (or would be), 1 some rows failed (recorded, sent again
    next run) or would be rejected, 2 a dry run that a gate would refuse (given the overrides).
    """
    if isinstance(published, DryRunReport):
        if published.problems(allow_drift=allow_drift, allow_invalid=allow_invalid):
            return EXIT_USAGE
        return EXIT_FAILED if published.rejected else EXIT_OK
    return EXIT_OK if published.ok else EXIT_FAILED


@dataclass
class PipelineResult:
    """What a scheduled run did, step by step."""

    trait_set: str
    scored: ScoreResult | None
    contract: ContractReport
    published: SyncResult | DryRunReport
    seconds: float
    steps: list[str] = field(default_factory=list)
    allow_drift: bool = False

    @property
    def exit_code(self) -> int:
        """The exit status of ``sqltraits sync`` (:func:`publish_exit_code`)."""
        return publish_exit_code(self.published, allow_drift=self.allow_drift)

    def to_dict(self) -> dict[str, Any]:
        out = dict(self.published.to_dict())
        out.update(
            {
                "trait_set": self.trait_set,
                "steps": self.steps,
                "pipeline_duration_s": round(self.seconds, 3),
                "score": self.scored.to_dict() if self.scored is not None else None,
                "contract": {
                    "ok": self.contract.ok,
                    "errors": [r.name for r in self.contract.errors],
                    "warnings": [r.name for r in self.contract.warnings],
                },
            }
        )
        return out


def _written(model: ModelRef, registry: Registry | str | Path) -> list[str]:
    """The columns the trait set's models write, from their cards (nothing loaded)."""
    from sqltraits_kit.modelling.registry import Registry, parse_ref
    from sqltraits_kit.traits.scoring import trait_columns

    reg = registry if isinstance(registry, Registry) else Registry(registry)
    return [c for ref in model.refs() for c in trait_columns(reg.card(*parse_ref(ref)))]


def _score(
    wh: Warehouse,
    ts: TraitSet,
    model: ModelRef,
    registry: Registry | str | Path,
    report: Callable[[str, float], None],
) -> tuple[ScoreResult, ContractReport | None]:
    """Score the trait set's models; validate the trait set on the staged rows before the swap.

    The validation is the run's only one (the publish reuses its report): a table the gate
    would refuse never replaces the output table. A trait set that does not read the table it
    scores into (a query, another table) is validated by the publish's gate instead (None).
    """
    from sqltraits_kit.traits.contract import validate_trait_set
    from sqltraits_kit.traits.output import METADATA_COLUMNS
    from sqltraits_kit.traits.scoring import score as score_models

    table = model.output_table or ts.table
    if not table:
        raise ConfigError(f"trait set {ts.name!r}: [model] needs output_table (or a table)")
    checked: list[ContractReport] = []

    def guard(staged: ir.Table) -> None:
        report("checking the traits against Segment's contract", 0.45)
        contract = validate_trait_set(wh, ts, source=staged)
        if not contract.ok:
            raise ConfigError(
                f"trait set {ts.name!r} fails Segment's contract; nothing was published and "
                f"{table} is unchanged:\n" + contract.summary()
            )
        checked.append(contract)

    reads_it = ts.table == table and ts.id_column == ts.identifier
    if reads_it:  # a column no model writes (a renamed one) fails now, not after the scoring
        ts.check_columns([ts.id_column, *_written(model, registry), *METADATA_COLUMNS])
    report(f"scoring {', '.join(model.refs())} into {table}", 0.0)
    scored = score_models(
        wh,
        models=model.refs(),
        table=table,
        registry=registry,
        as_of=model.as_of,
        id_column=ts.identifier,
        validate=guard if reads_it else None,
        progress=lambda m, f: report(m, 0.5 * f),
    )
    return scored, (checked[0] if checked else None)


def _publish(
    wh: Warehouse,
    ts: TraitSet,
    *,
    dry_run: bool,
    client: SegmentClient | None,
    allow_drift: bool,
    progress: Callable[[SyncProgress], None] | None,
    wait: float | bool,
    max_duration: float | None,
    options: dict[str, Any],
) -> tuple[SyncResult | DryRunReport, str]:
    """The publish (or its dry run, refused as a publish would be) and its step line.

    ``max_duration`` (a limit, ``1e-3`` when scoring spent it all: the publish then stops after
    its first batch) is what is left of the run's.
    """
    from sqltraits_kit.publishing.sync import dry_run as sync_dry_run
    from sqltraits_kit.publishing.sync import sync

    if dry_run:
        report = sync_dry_run(wh, ts, **options)
        problems = report.problems(allow_drift=allow_drift)
        if problems:
            raise ConfigError(f"the publish would be refused: {'; '.join(problems)}")
        return report, f"dry run: {report.to_send:,} messages would be sent"
    if client is None:
        raise ConfigError("publishing needs a Segment client (a write key)")
    result = sync(
        wh,
        ts,
        client=client,
        allow_drift=allow_drift,
        progress=progress,
        wait=wait,
        max_duration=max_duration,
        **options,
    )
    return result, f"sent {result.sent:,}, failed {result.failed:,}"


def run_trait_set(
    wh: Warehouse,
    trait_set: TraitSet | str | Path,
    /,
    *,
    registry: Registry | str | Path,
    client: SegmentClient | None = None,
    score: bool = True,
    dry_run: bool = False,
    allow_drift: bool = False,
    progress: Callable[[str, float], None] | None = None,
    sync_progress: Callable[[SyncProgress], None] | None = None,
    wait: float | bool = False,
    max_duration: float | None = None,
    **sync_options: Any,
) -> PipelineResult:
    """Score the trait set's models (if it names any), validate, gate on drift, then publish.

    Raises :class:`~sqltraits_kit.errors.ConfigError` (CLI exit 2) when a gate refuses: the
    contract check fails or drift from the last publish is over the trait set's threshold (unless
    ``allow_drift``). ``dry_run`` scores and checks but sends nothing. ``wait`` and
    ``max_duration`` are the publish's (see :func:`~sqltraits_kit.publishing.sync.sync`);
    ``max_duration`` counts from this call, so scoring uses up part of it.

    The traits are validated once per run: on the staged rows when this run scores the table
    the trait set reads, else by the publish's gate; :attr:`PipelineResult.contract` is that
    one report, the one the gate judged.
    """
    from sqltraits_kit.publishing.sync.checks import shared_validation
    from sqltraits_kit.traits.traitset import TraitSet

    started = time.perf_counter()
    report = progress or (lambda _m, _f: None)
    ts = trait_set if isinstance(trait_set, TraitSet) else TraitSet.load(trait_set)
    steps: list[str] = []

    scored, contract = None, None
    if score and ts.model is not None:
        scored, contract = _score(wh, ts, ts.model, registry, report)
        steps.append(f"scored {scored.rows:,} profiles into {scored.table}")

    report("publishing" if not dry_run else "dry run", 0.6)
    if max_duration is not None:  # counted from this call: scoring used up part of it
        max_duration = max(max_duration - (time.perf_counter() - started), 1e-3)
    key = sync_options.get("sync_key") or ts.name
    with shared_validation(key, contract) if contract is not None else nullcontext():
        published, done = _publish(
            wh,
            ts,
            dry_run=dry_run,
            client=client,
            allow_drift=allow_drift,
            progress=sync_progress,
            wait=wait,
            max_duration=max_duration,
            options=sync_options,
        )
    if published.verdicts is not None:  # the gate's report: the run's one validation
        contract = published.verdicts.validation
    elif contract is None:  # a publish that reported no verdicts: validate here, once
        from sqltraits_kit.traits.contract import validate_trait_set

        contract = validate_trait_set(wh, ts)
    warned = f" ({len(contract.warnings)} warnings)" if contract.warnings else ""
    steps += [f"contract ok{warned}", done]
    if isinstance(published, SyncResult) and published.error:
        steps.append(published.error)
    report("done", 1.0)
    return PipelineResult(
        trait_set=ts.name,
        scored=scored,
        contract=contract,
        published=published,
        seconds=time.perf_counter() - started,
        steps=steps,
        allow_drift=allow_drift,
    )
