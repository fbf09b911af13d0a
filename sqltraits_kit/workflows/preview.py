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
"""

from __future__ import annotations

import dataclasses
import io
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from sqltraits_kit.errors import ConfigError, DataError, SqlTraitsError
from sqltraits_kit.traits.gate import BASELINE_NAMES, Baseline, BaselineKind
from sqltraits_kit.traits.traitset import TraitSet, resolve

if TYPE_CHECKING:
    import ibis.expr.types as ir
    import pandas as pd

    from sqltraits_kit.traits.contract import ContractReport
    from sqltraits_kit.traits.distributions import TraitSummary
    from sqltraits_kit.traits.drift import DriftReport
    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "SAMPLE_RUN_ID",
    "SEGMENT_DIALECTS",
    "BaselineKind",
    "Distributions",
    "DriftCheck",
    "PreviewReport",
    "SamplePayloads",
    "baseline",
    "data_version",
    "distributions",
    "drift_check",
    "export_csv",
    "frozen_cut_points",
    "load_trait_set_or_table",
    "output_tables",
    "preview",
    "sample_payloads",
    "segment_sql",
    "table_sync_key",
]

#: The run id the sample payloads' messageIds are derived from (a publish uses its own).
SAMPLE_RUN_ID = "preview"
#: Warehouses Segment's SQL Traits read from (``src/unify/Traits/sql-traits.md``) that Ibis or
#: sqlglot can write: Redshift is written by sqlglot from the PostgreSQL form. Azure SQL is left
#: out: Ibis cannot compile the NaN checks of tiers and flags to T-SQL.
SEGMENT_DIALECTS = ("snowflake", "bigquery", "redshift", "postgres")


# --------------------------------------------------------------------------- sources


def table_sync_key(table: str, *, kind: str = "user") -> str:
    """The sync key a publish of the bare table uses (``table:<name>:identify``), so the Preview
    of a table reads that table's published snapshot.

    The format is :func:`sqltraits_kit.publishing.sync.resolve_source`'s; a test holds the two
    to one answer (``tests/test_preview.py``) until the sync exports it.
    """
    message = "group" if kind in ("account", "group") else "identify"
    return f"table:{table}:{message}"


def load_trait_set_or_table(
    source: TraitSet | str | os.PathLike[str],
    /,
    *,
    id_column: str | None = None,
    kind: Literal["user", "account"] = "user",
) -> TraitSet:
    """A trait set from a TOML file, or an ad-hoc one over an output table.

    ``source`` is a :class:`TraitSet` (returned as is), a path to a ``.toml`` file, or a table
    name. A table becomes a trait set named by its sync key (:func:`table_sync_key`) whose traits
    are every column but ``id_column`` and the scoring metadata, as a publish of the bare table
    sends them.
    """
    if isinstance(source, TraitSet):
        return source
    if isinstance(source, os.PathLike) or str(source).endswith(".toml"):
        return TraitSet.load(source)
    name = str(source).strip()
    if not name:
        raise ConfigError("give a trait-set file (.toml) or a table name")
    if kind not in ("user", "account"):
        raise ConfigError(f"kind must be 'user' or 'account', got {kind!r}")
    return TraitSet(
        name=table_sync_key(name, kind=kind), table=name, kind=kind, id_column=id_column or None
    )


def output_tables(wh: Warehouse, /) -> list[str]:
    """Tables that can be previewed: everything but history tables and the kit's own tables
    (:func:`sqltraits_kit.traits.output.output_tables` with ``outputs_only=False``)."""
    from sqltraits_kit.traits.output import output_tables as listed

    return listed(wh, outputs_only=False)


# --------------------------------------------------------------------------- baseline


def _current_run_id(wh: Warehouse, table: str) -> str | None:
    source = wh.con.table(table)
    if "run_id" not in source.columns:
        return None
    values = source.select("run_id").limit(1).to_pyarrow().column(0).to_pylist()
    return str(values[0]) if values and values[0] is not None else None


def _published(wh: Warehouse, trait_set: TraitSet) -> tuple[Baseline | None, int]:
    from sqltraits_kit.publishing.sync.checks import published_baseline

    base, published = published_baseline(wh, trait_set.name)
    if base is None:
        return None, 0
    ident, id_col = trait_set.identifier, trait_set.id_column
    if ident not in base.table.columns and id_col in base.table.columns:
        # a bare table published under its own id column name (the sync keeps it as is)
        base = dataclasses.replace(base, table=base.table.rename({ident: id_col}))
    return base, published


def _previous_run(wh: Warehouse, trait_set: TraitSet) -> tuple[Baseline | None, str]:
    from sqltraits_kit.traits.output import history_table, runs

    table = trait_set.table
    if table is None:
        return None, "a query has no run history"
    history = history_table(table)
    if not wh.has_table(table) or not wh.has_table(history):
        return None, f"{table} has no run history ({history} does not exist)"
    current = _current_run_id(wh, table)
    try:
        kept = runs(wh, table)
    except SqlTraitsError as exc:
        return None, f"the run history of {table} cannot be read: {exc}"
    ids = [r.run_id for r in kept]
    if current not in ids:
        return None, f"the current rows of {table} are not a run of {history}"
    position = ids.index(current)
    if position + 1 >= len(kept):
        return None, f"{table} has no run before {current}"
    previous = kept[position + 1]
    hist = wh.con.table(history)
    # resolved by the code that resolves the current table: renames, rounding, tiers and that
    # run's own decile cut points
    rows = hist.filter(hist["run_id"] == previous.run_id)
    resolved = resolve(wh, trait_set, source=rows)
    when = f"scored {previous.scored_at:%Y-%m-%d %H:%M} UTC, " if previous.scored_at else ""
    label = f"previous run {previous.run_id} of {table} ({when}{previous.rows:,} rows)"
    return Baseline(resolved, "previous_run", label), label


def _baseline(wh: Warehouse, trait_set: TraitSet) -> tuple[Baseline | None, str]:
    key = trait_set.name
    published, count = _published(wh, trait_set)
    if published is not None and count:
        return published, published.label
    nothing = (
        f"the published snapshot of {key!r} is empty"
        if published is not None
        else f"nothing published under {key!r} yet"
    )
    previous, why = _previous_run(wh, trait_set)
    if previous is not None:
        label = f"{why}; {nothing}"
        return dataclasses.replace(previous, label=label), label
    return None, f"no baseline: {nothing}, and {why}"


def baseline(wh: Warehouse, trait_set: TraitSet, /) -> tuple[ir.Table | None, str]:
    """(the table to measure drift against, a label saying which it is).

    The published snapshot of ``trait_set.name`` (its sync key) when Segment acknowledged any
    profile; else the previous run of the trait set's output table, resolved the same way; else
    ``(None, <why there is none>)``.
    """
    base, label = _baseline(wh, trait_set)
    return (None if base is None else base.table), label


def data_version(wh: Warehouse, trait_set: TraitSet, /) -> str:
    """A cheap fingerprint of what a preview depends on: the current run id and row count of the
    source table and the last acknowledged sequence number of the published state.

    The app keys its cache with it, so a new scoring run, a rollback or a publish shows at once.
    """
    from sqltraits_kit.publishing.sync.state import max_seq, state_table_name

    parts = []
    if trait_set.table is not None and wh.has_table(trait_set.table):
        source = wh.con.table(trait_set.table)
        parts.append(f"run={_current_run_id(wh, trait_set.table)}")
        parts.append(f"rows={int(source.count().execute())}")
    parts.append(f"published={max_seq(wh, state_table_name(trait_set.name))}")
    return ";".join(parts)


# --------------------------------------------------------------------------- panels


def _timed(started: float) -> float:
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
    return Distributions(rows, traits, summaries, tiers, _timed(started))


@dataclass(frozen=True)
class DriftCheck:
    """Drift against the baseline, judged against the trait set's ``drift_threshold``.

    ``report`` is None without a baseline (``baseline_label`` says why) or when the comparison
    failed (``error`` says why).
    """

    trait_set: TraitSet
    report: DriftReport | None
    baseline_label: str
    baseline_kind: BaselineKind | None
    error: str | None = None
    seconds: float = 0.0

    @property
    def threshold(self) -> float:
        return float(self.trait_set.drift_threshold)

    @property
    def over_threshold(self) -> list[str]:
        """Traits whose PSI is above the threshold, largest first."""
        return self.report.over_threshold(self.threshold) if self.report else []

    @property
    def gates_publish(self) -> bool:
        """Whether the Publish step is gated on this figure (against the published snapshot)."""
        return self.baseline_kind == "published"

    @property
    def warning(self) -> str | None:
        """The warning the Publish step repeats; None when no trait drifted past the threshold."""
        hits = self.over_threshold
        if not hits or self.report is None:
            return None
        values = ", ".join(f"{t} {self.report.psi[t].psi:.3f}" for t in hits)
        against = BASELINE_NAMES.get(self.baseline_kind or "", "baseline")
        then = (
            "the Publish step asks for confirmation"
            if self.gates_publish
            else "nothing is published under this sync key yet, so the Publish step does not "
            "gate on it"
        )
        return (
            f"PSI above the drift threshold {self.threshold:g} for {values} (against the "
            f"{against}): check the model run before publishing; {then}"
        )

    @property
    def new_traits_note(self) -> str | None:
        """Traits the baseline does not have yet: no drift figure, they are new."""
        if self.report is None or not self.report.new_traits:
            return None
        against = BASELINE_NAMES.get(self.baseline_kind or "", "baseline")
        return f"New since the {against} (no drift figure): {', '.join(self.report.new_traits)}"

    @property
    def leaving_warning(self) -> str | None:
        """Profiles in the baseline but not in the table: what a publish does to them."""
        if self.report is None or not self.report.membership.leaving:
            return None
        n = self.report.membership.leaving
        if self.trait_set.on_remove == "null":
            return (
                f"{n:,} profiles are in the baseline but not in this table: publishing sets "
                "every trait of this set to null on them (Segment's rule; on_remove = 'keep' "
                "leaves them alone)"
            )
        return f"{n:,} profiles left the table; on_remove = 'keep' leaves their traits as they are"

    def with_threshold(self, threshold: float | None, /) -> DriftCheck:
        """The same comparison judged against another threshold (no warehouse query)."""
        if threshold is None or float(threshold) == self.threshold:
            return self
        report = self.report
        if report is not None:
            report = dataclasses.replace(report, threshold=float(threshold))
        ts = self.trait_set.with_(drift_threshold=float(threshold))
        return dataclasses.replace(self, trait_set=ts, report=report)

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": {"kind": self.baseline_kind, "label": self.baseline_label},
            "threshold": self.threshold,
            "over_threshold": self.over_threshold,
            "warning": self.warning,
            "leaving_warning": self.leaving_warning,
            "new_traits_note": self.new_traits_note,
            "gates_publish": self.gates_publish,
            "error": self.error,
            "report": self.report.to_dict() if self.report else None,
        }


def _movers_trait(current: ir.Table, base: ir.Table, trait_set: TraitSet, ident: str) -> str | None:
    derived = {d.name for d in trait_set.derived}
    for name in current.columns:
        if name == ident or name in derived or name not in base.columns:
            continue
        a, b = current[name].type(), base[name].type()
        if a.is_numeric() and not a.is_boolean() and b.is_numeric() and not b.is_boolean():
            return name
    return None


def drift_check(
    wh: Warehouse,
    trait_set: TraitSet,
    /,
    *,
    drift_threshold: float | None = None,
    movers: str | None = None,
    n_movers: int = 20,
    psi_bins: int = 10,
) -> DriftCheck:
    """PSI, transitions, membership and top movers against :func:`baseline`.

    ``movers``: the numeric trait of the top-movers list (default: the first numeric column
    trait); ``drift_threshold`` overrides the trait set's.
    """
    from sqltraits_kit.traits.drift import compare_trait_set

    started = time.perf_counter()
    if drift_threshold is not None:
        trait_set = trait_set.with_(drift_threshold=float(drift_threshold))
    base, label = _baseline(wh, trait_set)
    if base is None:
        return DriftCheck(trait_set, None, label, None, seconds=_timed(started))
    current = resolve(wh, trait_set)
    try:
        mover = movers or _movers_trait(current, base.table, trait_set, trait_set.identifier)
        report = compare_trait_set(
            current, base, trait_set, movers=mover, n_movers=n_movers, bins=psi_bins
        )
    except SqlTraitsError as exc:
        error = f"drift against the {label} could not be computed: {exc}"
        return DriftCheck(trait_set, None, label, base.kind, error, _timed(started))
    return DriftCheck(trait_set, report, label, base.kind, None, _timed(started))


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
        return SamplePayloads(ident, traits, (), seconds=_timed(started))
    try:  # the sync's own reading of the source: message kind and id type (e-mail refused)
        src = resolve_source(wh, trait_set)
    except ConfigError as exc:
        return SamplePayloads(ident, traits, (), (str(exc),), seconds=_timed(started))
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
    return SamplePayloads(ident, traits, tuple(messages), tuple(errors), seconds=_timed(started))


# --------------------------------------------------------------------------- report


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


# --------------------------------------------------------------------------- SQL and CSV


def segment_sql(wh: Warehouse, trait_set: TraitSet, /, *, dialect: str | None = None) -> str:
    """The SQL Trait query equivalent to publishing ``trait_set``, for Segment to pull itself.

    A SELECT of the identifier and every trait aliased to its trait name (renames, rounding,
    tiers and flags included), compiled by Ibis for ``dialect`` (one of
    :data:`SEGMENT_DIALECTS`; default: the warehouse's own). The warehouse supplies the column
    types and, for ``type = "quantiles"`` traits, this run's cut points, which the query then
    holds as constants: regenerate it after each scoring run.
    """
    import ibis
    import sqlglot

    own = "postgres" if wh.backend == "postgres" else wh.backend
    target = (dialect or own).strip().lower()
    allowed = (*SEGMENT_DIALECTS, own)
    if target not in allowed:
        raise ConfigError(f"dialect must be one of {', '.join(dict.fromkeys(allowed))}")
    table = resolve(wh, trait_set)
    if target == "redshift":
        # Ibis has no Redshift compiler; Redshift reads PostgreSQL's form with sqlglot's help.
        sql = str(ibis.to_sql(table, dialect="postgres"))
        return sqlglot.transpile(sql, read="postgres", write="redshift", pretty=True)[0]
    return str(ibis.to_sql(table, dialect=target))


def frozen_cut_points(trait_set: TraitSet, /) -> list[str]:
    """Derived traits whose cut points :func:`segment_sql` writes as constants (quantiles)."""
    return [d.name for d in trait_set.derived if d.type == "quantiles"]


def export_csv(
    wh: Warehouse,
    trait_set: TraitSet,
    path_or_buffer: str | os.PathLike[str] | BinaryIO,
    /,
    *,
    limit: int | None = None,
    batch_rows: int = 100_000,
) -> int:
    """Write the resolved traits as CSV, in identifier order; returns the number of rows.

    Rows stream from the warehouse in Arrow batches of ``batch_rows`` straight into the CSV
    writer, so memory stays flat whatever the table size. ``limit`` keeps the first rows only.
    ``path_or_buffer``: a path, or a binary file object (``open(p, "wb")``, ``io.BytesIO()``).
    Values are the resolved ones (renamed, rounded, tiers computed); nulls are empty fields.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if limit is not None and limit < 0:
        raise ConfigError(f"limit must be >= 0, got {limit}")
    if batch_rows < 1:
        raise ConfigError(f"batch_rows must be >= 1, got {batch_rows}")
    if isinstance(path_or_buffer, io.TextIOBase):
        raise ConfigError("export_csv writes bytes: pass a path or a binary file (mode 'wb')")
    table = resolve(wh, trait_set)
    table = table.order_by(trait_set.identifier)
    if limit is not None:
        table = table.limit(limit)
    reader = table.to_pyarrow_batches(chunk_size=batch_rows)
    target: Any = path_or_buffer
    if isinstance(path_or_buffer, str | os.PathLike):
        target = Path(path_or_buffer)
        target.parent.mkdir(parents=True, exist_ok=True)
        target = str(target)
    written = 0
    try:
        with pacsv.CSVWriter(target, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
                written += batch.num_rows
    except pa.ArrowNotImplementedError as exc:
        nested = [f.name for f in reader.schema if pa.types.is_nested(f.type)]
        what = f"column {nested[0]!r} is {reader.schema.field(nested[0]).type}" if nested else exc
        raise DataError(f"cannot write the traits as CSV: {what}") from None
    return written
