"""Segment SQL-trait contract checks over any Ibis table, computed in the warehouse.

Segment's SQL Traits accept a query result only when it has one identifier column without
nulls or duplicates, 1 to 24 traits (25 columns in all), at most 25 million rows, records under
16 KB and only strings, numbers, booleans and timestamps (``docs/../segment-facts.md``). This
module checks a table against those rules *before* anything is sent, because the Tracking API
answers 200 even for data Segment then drops.

Everything is counted in the warehouse: one aggregate query computes every count; only when a
rule fails does a second, filtered and limited query fetch its first offending rows (at most
``sample_size``). The table itself never leaves the warehouse (1M rows: ~1 s on DuckDB).

API (the Preview page shows ``report.to_frame()`` and the samples of failed rules)::

    report = validate(table, id_column="user_id", kind="user")
    report.ok                 # no error-level rule failed
    report.failed             # failed rules, errors first
    report.to_dict()          # JSON-able (the CLI's --json)
    report.to_frame()         # one row per rule
    validate_trait_set(wh, trait_set)   # resolve() + validate() in one call

Rules (name: level) — :data:`RULES` holds the same list with a description of each:

- ``identifier_present`` (error), ``identifier_name`` (warning: not one of Segment's names),
  ``identifier_not_null``, ``identifier_not_empty``, ``identifier_unique`` (errors; duplicates
  are named), ``identifier_length`` (account traits: groupId <= 500 characters),
  ``single_identifier`` (error: values for both ``user_id`` and ``anonymous_id``);
- ``has_traits``, ``max_columns`` (<= 25), ``max_rows`` (<= 25M), ``record_size`` (< 16 KB, an
  estimate: see :func:`record_size_estimate`) — errors; ``has_rows`` (warning: an empty result
  would set every published profile's traits to null);
- ``no_nested_types`` (arrays, structs, maps, JSON), ``supported_types`` (binary, time,
  interval...) — errors; ``timestamps_have_timezone`` (warning: naive timestamps and dates are
  sent as UTC with a ``Z``);
- ``finite_numbers`` (error: NaN/±inf, per column with counts; they are not JSON and the
  payload layer would turn them into null, silently erasing a score);
- ``identity_trait_names`` (error), ``reserved_trait_names`` (warning),
  ``trait_name_collisions`` (error), ``snake_case_names`` (warning).

Reserved names — the decision: a trait that would change *who the profile is* is an error:
``email`` (Segment promotes ``traits.email`` to the profile's email identifier), ``id``,
``user_id`` and ``anonymous_id`` for user traits; ``id`` and ``group_id`` for account traits
(camelCase and snake_case forms alike). The other reserved names of the Identify/Group specs
(``name``, ``phone``, ``created_at``, ``plan``...) only warn: writing a model score there is
almost surely a mistake, but it cannot corrupt the identity graph. ``allow_reserved`` accepts
names a team does mean to overwrite.

The package: the report and the rule list (:mod:`.report`), the one aggregate query
(:mod:`.measure`), and the rules in three small groups (:mod:`.identifier`, :mod:`.shape`,
:mod:`.names`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from sqltraits_kit.traits.contract.identifier import identifier_rules
from sqltraits_kit.traits.contract.measure import default_id, measure, record_size_estimate
from sqltraits_kit.traits.contract.names import name_rules
from sqltraits_kit.traits.contract.report import (
    GROUP_RESERVED_TRAITS,
    IDENTITY_TRAITS,
    MAX_COLUMNS,
    MAX_RECORD_BYTES,
    MAX_ROWS,
    RULES,
    SAMPLE_ROWS,
    USER_RESERVED_TRAITS,
    ContractReport,
    RuleResult,
)
from sqltraits_kit.traits.contract.shape import shape_rules, type_rules
from sqltraits_kit.traits.traitset import snake_case

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from sqltraits_kit.traits.traitset import TraitSet
    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "GROUP_RESERVED_TRAITS",
    "IDENTITY_TRAITS",
    "MAX_COLUMNS",
    "MAX_RECORD_BYTES",
    "MAX_ROWS",
    "RULES",
    "USER_RESERVED_TRAITS",
    "ContractReport",
    "RuleResult",
    "record_size_estimate",
    "validate",
    "validate_trait_set",
]


def validate(
    table: ir.Table,
    /,
    *,
    id_column: str | None = None,
    kind: Literal["user", "account"] = "user",
    allow_reserved: Iterable[str] = (),
    sample_size: int = SAMPLE_ROWS,
    max_columns: int = MAX_COLUMNS,
    max_rows: int = MAX_ROWS,
    max_record_bytes: int = MAX_RECORD_BYTES,
) -> ContractReport:
    """Check ``table`` against Segment's SQL-trait contract; returns a :class:`ContractReport`.

    ``id_column`` defaults to the first of ``user_id``/``email``/``anonymous_id`` the table has
    (``group_id`` for ``kind="account"``). Every other column is a trait. ``allow_reserved``
    lists trait names the team does mean to write although Segment reserves them.
    """
    if kind not in ("user", "account"):
        raise ValueError(f"kind must be 'user' or 'account', got {kind!r}")
    started = time.perf_counter()
    columns = list(table.columns)
    m = measure(
        table,
        id_column=id_column or default_id(columns, kind),
        kind=kind,
        sample_size=max(0, min(int(sample_size), SAMPLE_ROWS)),
        max_record_bytes=max_record_bytes,
    )
    allowed = {snake_case(n) for n in allow_reserved} | set(allow_reserved)
    results = {
        **identifier_rules(m),
        **shape_rules(
            m, max_columns=max_columns, max_rows=max_rows, max_record_bytes=max_record_bytes
        ),
        **type_rules(m),
        **name_rules(m.traits, m.id_column, kind, allowed),
    }
    return ContractReport(
        rules=tuple(results[name] for name in RULES if name in results),
        id_column=m.id_column if m.has_id else None,
        kind=kind,
        rows=m.rows,
        columns=tuple(columns),
        seconds=time.perf_counter() - started,
    )


def validate_trait_set(
    wh: Warehouse,
    trait_set: TraitSet,
    /,
    *,
    allow_reserved: Iterable[str] = (),
    source: ir.Table | None = None,
    **options: Any,
) -> ContractReport:
    """Resolve ``trait_set`` (:func:`sqltraits_kit.traits.traitset.resolve`) and validate the
    result; ``source``: rows to resolve instead of the trait set's table (staged rows)."""
    from sqltraits_kit.traits.traitset import resolve

    table = resolve(wh, trait_set, source=source)
    return validate(
        table,
        id_column=trait_set.identifier,
        kind=trait_set.kind,
        allow_reserved=allow_reserved,
        **options,
    )
