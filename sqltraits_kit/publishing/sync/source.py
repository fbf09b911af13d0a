"""What a sync publishes: a trait set, a table or a query, resolved to identifier + traits.

Segment's own rule for SQL Traits: every column but the identifier is a trait, named by its
column. A trait set adds renaming, rounding and derived traits (:func:`traitset.resolve`); an
output production table (it carries the scoring metadata columns) has those columns left out,
since ``run_id``/``scored_at`` change every run and would re-send every profile.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sqltraits_kit.errors import ConfigError, UnknownTableError
from sqltraits_kit.traits.traitset import DEFAULT_DRIFT_THRESHOLD, METADATA_COLUMNS, TraitSet

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "Query",
    "SourceLike",
    "SyncSource",
    "normalise_kind",
    "resolve_source",
    "table_sync_key",
]

MessageKind = Literal["identify", "group"]
OnRemove = Literal["null", "keep"]

#: Column names the sync keeps for itself in the state tables.
RESERVED_PREFIX = "_sync_"

_KINDS: dict[str, MessageKind] = {
    "identify": "identify",
    "user": "identify",
    "group": "group",
    "account": "group",
}


@dataclass(frozen=True)
class Query:
    """A read-only SELECT whose non-identifier columns are the traits."""

    sql: str

    def __post_init__(self) -> None:
        if not isinstance(self.sql, str) or not self.sql.strip():
            raise ConfigError("the query is empty")


SourceLike = TraitSet | Query | str  # or an already resolved SyncSource (a rollback's)


@dataclass(frozen=True)
class SyncSource:
    """A source resolved against a warehouse: a lazy table whose first column is the identifier."""

    table: ir.Table
    id_column: str
    traits: tuple[str, ...]
    kind: MessageKind
    id_type: Literal["user_id", "anonymous_id"]
    sync_key: str
    label: str
    on_remove: OnRemove
    tolerance: Mapping[str, float] = field(default_factory=dict)
    #: Per trait: a change below this fraction of the published value is not re-sent either.
    relative_tolerance: Mapping[str, float] = field(default_factory=dict)
    #: Derived trait -> the toleranced trait it is re-sent with (``TraitSet.tolerance_followers``).
    follows: Mapping[str, str] = field(default_factory=dict)
    drift_threshold: float = DEFAULT_DRIFT_THRESHOLD
    trait_set: TraitSet | None = None
    #: The table the traits were read from (a trait set's or a bare table), for the record of
    #: which scoring run a publish carried (:mod:`.provenance`); None for a query.
    base_table: str | None = None
    #: The run whose published values this source re-publishes (:mod:`.rollback`), or None.
    rollback_of: str | None = None

    @property
    def contract_kind(self) -> Literal["user", "account"]:
        """The kind as :mod:`sqltraits_kit.traits.contract` names it."""
        return "account" if self.kind == "group" else "user"


def normalise_kind(kind: str | None) -> MessageKind | None:
    """``identify``/``group`` (``user``/``account`` accepted too); None stays None."""
    if kind is None:
        return None
    try:
        return _KINDS[str(kind).strip().lower()]
    except KeyError:
        raise ConfigError(f"kind must be 'identify' or 'group', got {kind!r}") from None


def _check_on_remove(value: str) -> OnRemove:
    if value not in ("null", "keep"):
        raise ConfigError(
            f"on_remove must be 'null' (Segment's rule: profiles that leave the result get their "
            f"traits set to null) or 'keep', got {value!r}"
        )
    return value  # type: ignore[return-value]


def _id_type(kind: MessageKind, id_column: str) -> Literal["user_id", "anonymous_id"]:
    if kind == "identify" and id_column == "email":
        # The Tracking API needs a userId or an anonymousId on every message; Segment's SQL
        # Traits resolve e-mail addresses internally, which the public API cannot do.
        raise ConfigError(
            "an e-mail identifier cannot be published through the Tracking API (every identify "
            "needs a userId or anonymousId): select the user_id in the query instead"
        )
    return "anonymous_id" if kind == "identify" and id_column == "anonymous_id" else "user_id"


def table_sync_key(table: str, kind: MessageKind) -> str:
    """The sync key of a bare table published with ``kind`` calls: ``table:<name>:<kind>``."""
    return f"table:{table}:{kind}"


def _query_key(sql: str, kind: MessageKind) -> str:
    digest = hashlib.sha256(" ".join(sql.split()).encode()).hexdigest()[:12]
    return f"query:{digest}:{kind}"


def _check_names(columns: list[str], id_column: str, label: str) -> None:
    if id_column not in columns:
        raise UnknownTableError(
            f"identifier column {id_column!r} is not in the {label} (columns: {', '.join(columns)})"
        )
    reserved = [c for c in columns if c.startswith(RESERVED_PREFIX)]
    if reserved:
        raise ConfigError(
            f"column {reserved[0]!r} of the {label}: names starting with {RESERVED_PREFIX!r} are "
            "reserved for the sync's own bookkeeping; rename it"
        )
    if len(columns) < 2:
        raise ConfigError(f"the {label} has no trait column besides {id_column!r}")


def resolve_source(
    wh: Warehouse,
    source: SourceLike,
    /,
    *,
    kind: str | None = None,
    id_column: str | None = None,
    on_remove: str | None = None,
    sync_key: str | None = None,
) -> SyncSource:
    """Resolve ``source`` (a :class:`TraitSet`, a table name or a :class:`Query`).

    A trait set names its own kind and identifier: passing a different ``kind`` or
    ``id_column`` is a :class:`ConfigError`. ``on_remove`` overrides the trait set's.
    The sync key (which state a run diffs against) is the trait set's name,
    ``table:<name>:<kind>`` or ``query:<hash of the SQL>:<kind>``, unless given.
    """
    from sqltraits_kit.traits.traitset import query_table, resolve

    wanted_kind = normalise_kind(kind)
    if sync_key is not None and (not isinstance(sync_key, str) or not sync_key.strip()):
        raise ConfigError("the sync key must be a non-empty string")
    if isinstance(source, SyncSource):
        return _resolved(source, wanted_kind, id_column, on_remove, sync_key)
    if isinstance(source, TraitSet):
        ts = source
        if wanted_kind is not None and wanted_kind != ts.message_type:
            raise ConfigError(
                f"trait set {ts.name!r} is {ts.kind} traits ({ts.message_type} calls); "
                f"--kind {wanted_kind} contradicts it"
            )
        if id_column is not None and id_column not in (ts.id_column, ts.identifier):
            raise ConfigError(
                f"trait set {ts.name!r} uses identifier {ts.id_column!r}; "
                f"--id-column {id_column} contradicts it"
            )
        table = resolve(wh, ts)
        ident = ts.identifier
        columns = list(table.columns)
        label = f"trait set {ts.name}"
        _check_names(columns, ident, label)
        traits = tuple(c for c in columns if c != ident)
        return SyncSource(
            table=table.select(ident, *traits),
            id_column=ident,
            traits=traits,
            kind=ts.message_type,
            id_type=_id_type(ts.message_type, ident),
            sync_key=sync_key or ts.name,
            label=label,
            on_remove=_check_on_remove(on_remove or ts.on_remove),
            tolerance={t: float(v) for t, v in ts.tolerance.items() if float(v) > 0},
            relative_tolerance={
                t: float(v) for t, v in ts.relative_tolerance.items() if float(v) > 0
            },
            follows={d: t for d, t in ts.tolerance_followers().items() if t in traits},
            drift_threshold=float(ts.drift_threshold),
            trait_set=ts,
            base_table=ts.table,
        )

    msg_kind: MessageKind = wanted_kind or "identify"
    ident = id_column or ("group_id" if msg_kind == "group" else "user_id")
    if isinstance(source, Query):
        table = query_table(wh, source.sql)
        label, key = "query", _query_key(source.sql, msg_kind)
        columns = list(table.columns)
        _check_names(columns, ident, label)
        traits = tuple(c for c in columns if c != ident)
    elif isinstance(source, str):
        table = wh.table(source)
        label, key = f"table {source}", table_sync_key(source, msg_kind)
        columns = list(table.columns)
        _check_names(columns, ident, label)
        skip: set[str] = set()
        if set(METADATA_COLUMNS) <= set(columns):
            # An output production table: its run metadata changes every run and is no trait.
            skip = set(METADATA_COLUMNS) - {ident}
        traits = tuple(c for c in columns if c != ident and c not in skip)
        if not traits:
            raise ConfigError(f"the {label} has no trait column besides the scoring metadata")
    else:
        raise ConfigError(
            f"a sync source is a TraitSet, a table name or a Query, not {type(source).__name__}"
        )
    return SyncSource(
        table=table.select(ident, *traits),
        id_column=ident,
        traits=traits,
        kind=msg_kind,
        id_type=_id_type(msg_kind, ident),
        sync_key=sync_key or key,
        label=label,
        on_remove=_check_on_remove(on_remove or "null"),
        base_table=source if isinstance(source, str) else None,
    )


def _resolved(
    src: SyncSource,
    kind: MessageKind | None,
    id_column: str | None,
    on_remove: str | None,
    sync_key: str | None,
) -> SyncSource:
    """A source resolved already (a rollback builds one): the options may only confirm it."""
    if kind is not None and kind != src.kind:
        raise ConfigError(f"the {src.label} is published with {src.kind} calls, not {kind}")
    if id_column is not None and id_column != src.id_column:
        raise ConfigError(f"the {src.label} is identified by {src.id_column!r}, not {id_column!r}")
    changes: dict[str, Any] = {}
    if on_remove is not None:
        changes["on_remove"] = _check_on_remove(on_remove)
    if sync_key is not None:
        changes["sync_key"] = sync_key
    return dataclasses.replace(src, **changes) if changes else src


def describe(src: SyncSource) -> dict[str, Any]:
    """A JSON-able summary of a resolved source (for reports and the CLI)."""
    return {
        "sync_key": src.sync_key,
        "source": src.label,
        "kind": src.kind,
        "id_column": src.id_column,
        "traits": list(src.traits),
        "on_remove": src.on_remove,
        "tolerance": dict(src.tolerance),
        "relative_tolerance": dict(src.relative_tolerance),
        "follows": dict(src.follows),
        "drift_threshold": src.drift_threshold,
    }
