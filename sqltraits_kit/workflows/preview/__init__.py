"""The Preview in one call: distributions, drift against a baseline, the contract, sample payloads.

The Preview page, a notebook and the CLI get the same numbers from here. Everything heavy runs in
the warehouse (:mod:`~sqltraits_kit.traits.distributions`, :mod:`~sqltraits_kit.traits.drift`,
:mod:`~sqltraits_kit.traits.contract`); what comes back is bins, counts, a few quantiles, the top
movers
and ``sample_size`` rows. A 1M-row table never leaves the warehouse.

API (one call per Preview panel, or :func:`preview` for all of them)::

    ts = load_trait_set_or_table("traitsets/churn.toml")        # or a table name + id_column
    report = preview(wh, ts, drift_threshold=0.25)              # PreviewReport
    report.contract.ok; report.summaries; report.drift; report.drift_warning
    report.sample.messages; report.to_dict()
    distributions(wh, ts); drift_check(wh, ts); sample_payloads(wh, ts)   # the panels
    table, label = baseline(wh, ts)        # published snapshot, else the previous run, else None
    print(segment_sql(wh, ts, dialect="snowflake"))             # the equivalent SQL Trait query
    export_csv(wh, ts, "churn.csv")                             # streamed in Arrow batches

**Baseline.** Drift is measured against what Segment holds: the published snapshot of the trait
set's sync key (:func:`sqltraits_kit.publishing.sync.checks.published_baseline`, the
acknowledged values), with the one gate the Publish step uses
(:func:`sqltraits_kit.traits.gate.drift_gate`): same traits, same rows, same figure. Until
something was published, the previous scoring run in ``<output>_history`` stands in (resolved
through the same trait set, so tiers and rounding match), for information: the Publish step
gates only on the published snapshot, and the warning says so. Without either there is no drift.

**Threshold.** The trait set's ``drift_threshold`` unless ``drift_threshold=`` overrides it; a PSI
above it is reported in :attr:`PreviewReport.drift_warning`, which the Publish step repeats
before it sends anything.

**Sample payloads** are built with :func:`sqltraits_kit.publishing.segment.payload.build_message`,
the
payload code the sync uses, so values are converted exactly as they will be sent (NaN -> null,
timestamps -> ISO-8601 ``Z``). Their ``messageId`` is derived from the placeholder run id
:data:`SAMPLE_RUN_ID`: a publish derives it from its own run id.

The package: what it reads (:mod:`.sources`), the panels (:mod:`.panels`, :mod:`.drift_panel`),
the exports (:mod:`.exports`); :func:`preview` and :class:`PreviewReport` put them together.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqltraits_kit.traits.gate import BaselineKind
from sqltraits_kit.traits.traitset import TraitSet
from sqltraits_kit.workflows.preview.drift_panel import DriftCheck, drift_check
from sqltraits_kit.workflows.preview.exports import (
    CSV_ROWS,
    SEGMENT_DIALECTS,
    csv_file_name,
    csv_row_choices,
    export_csv,
    frozen_cut_points,
    segment_dialects,
    segment_sql,
)
from sqltraits_kit.workflows.preview.panels import (
    SAMPLE_RUN_ID,
    Distributions,
    SamplePayloads,
    distributions,
    sample_payloads,
)
from sqltraits_kit.workflows.preview.sources import (
    baseline,
    data_version,
    default_identifier,
    identifier_kind,
    load_trait_set_or_table,
    output_tables,
    table_sync_key,
)

if TYPE_CHECKING:
    import pandas as pd

    from sqltraits_kit.traits.contract import ContractReport
    from sqltraits_kit.traits.distributions import TraitSummary
    from sqltraits_kit.traits.drift import DriftReport
    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "CSV_ROWS",
    "SAMPLE_RUN_ID",
    "SEGMENT_DIALECTS",
    "BaselineKind",
    "Distributions",
    "DriftCheck",
    "PreviewReport",
    "SamplePayloads",
    "baseline",
    "csv_file_name",
    "csv_row_choices",
    "data_version",
    "default_identifier",
    "distributions",
    "drift_check",
    "export_csv",
    "frozen_cut_points",
    "identifier_kind",
    "load_trait_set_or_table",
    "output_tables",
    "preview",
    "sample_payloads",
    "segment_dialects",
    "segment_sql",
    "table_sync_key",
]


@dataclass(frozen=True)
class PreviewReport:
    """Every panel of the Preview in one object; :meth:`to_dict` is JSON-able."""

    trait_set: TraitSet
    contract: ContractReport
    distributions: Distributions
    drift_check: DriftCheck
    sample: SamplePayloads

    # the numbers a notebook reaches for first
    @property
    def rows(self) -> int:
        return self.distributions.rows

    @property
    def traits(self) -> tuple[str, ...]:
        return self.distributions.traits

    @property
    def summaries(self) -> Mapping[str, TraitSummary]:
        return self.distributions.summaries

    @property
    def tiers(self) -> Mapping[str, pd.DataFrame]:
        return self.distributions.tiers

    @property
    def drift(self) -> DriftReport | None:
        return self.drift_check.report

    @property
    def baseline_label(self) -> str:
        return self.drift_check.baseline_label

    @property
    def baseline_kind(self) -> BaselineKind | None:
        return self.drift_check.baseline_kind

    @property
    def drift_threshold(self) -> float:
        return self.drift_check.threshold

    @property
    def drift_warning(self) -> str | None:
        return self.drift_check.warning

    @property
    def leaving_warning(self) -> str | None:
        return self.drift_check.leaving_warning

    @property
    def seconds(self) -> dict[str, float]:
        return {
            "contract": self.contract.seconds,
            "distributions": self.distributions.seconds,
            "drift": self.drift_check.seconds,
            "sample": self.sample.seconds,
        }

    def with_threshold(self, threshold: float | None, /) -> PreviewReport:
        """The same report judged against another drift threshold (no warehouse query)."""
        check = self.drift_check.with_threshold(threshold)
        if check is self.drift_check:
            return self
        return dataclasses.replace(self, trait_set=check.trait_set, drift_check=check)

    def to_dict(self) -> dict[str, Any]:
        return {
            "trait_set": self.trait_set.name,
            "rows": self.rows,
            "traits": list(self.traits),
            "drift_threshold": self.drift_threshold,
            "contract": self.contract.to_dict(),
            "distributions": self.distributions.to_dict(),
            "drift": self.drift_check.to_dict(),
            "sample": self.sample.to_dict(),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def preview(
    wh: Warehouse,
    trait_set: TraitSet,
    /,
    *,
    bins: int = 30,
    sample_size: int = 20,
    drift_threshold: float | None = None,
    movers: str | None = None,
    n_movers: int = 20,
    psi_bins: int = 10,
) -> PreviewReport:
    """Every panel at once: the contract, :func:`distributions`, :func:`drift_check` and
    :func:`sample_payloads` (``sample_size`` profiles). ``drift_threshold`` overrides the
    trait set's."""
    from sqltraits_kit.traits.contract import validate_trait_set

    if drift_threshold is not None:
        trait_set = trait_set.with_(drift_threshold=float(drift_threshold))
    return PreviewReport(
        trait_set=trait_set,
        contract=validate_trait_set(wh, trait_set),
        distributions=distributions(wh, trait_set, bins=bins),
        drift_check=drift_check(wh, trait_set, movers=movers, n_movers=n_movers, psi_bins=psi_bins),
        sample=sample_payloads(wh, trait_set, size=sample_size),
    )
