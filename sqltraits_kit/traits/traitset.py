"""The saved trait-set spec: which table or query becomes which Segment traits, and how.

A trait set is a small TOML file kept under version control (``traitsets/churn.toml``); it is
the unit that gets validated, previewed and published. Example::

    name = "churn"
    kind = "user"                  # "user" -> identify calls, "account" -> group calls
    id_column = "user_id"          # default: user_id (user) / group_id (account)
    table = "churn_traits"         # or: query = "SELECT user_id, ... FROM ..."
    on_remove = "null"             # Segment's rule for profiles that drop out; or "keep"
    drift_threshold = 0.2          # PSI above which a publish needs a second look

    [traits]                       # column -> trait name; omit to publish every column
    churn_probability = "churn_probability"

    [decimals]                     # per numeric trait: round before publishing
    churn_probability = 3

    [tolerance]                    # per numeric trait: smaller changes are not re-sent
    churn_probability = 0.005

    [model]                        # what the scoring step runs (optional)
    name = "churn"
    version = "active"
    output_table = "churn_traits"

    [[derived]]                    # tiers from fixed thresholds
    name = "churn_risk_tier"
    type = "tiers"
    column = "churn_probability"
    thresholds = [0.3, 0.7]        # < 0.3 low, [0.3, 0.7) medium, >= 0.7 high
    labels = ["low", "medium", "high"]

    [[derived]]                    # tiers from the data's own quantiles (deciles: bins = 10)
    name = "ltv_decile"
    type = "quantiles"
    column = "predicted_ltv"
    bins = 10                      # labels default to 1..bins (bins = highest values)

    [[derived]]                    # a boolean flag
    name = "high_churn_risk"
    type = "flag"
    column = "churn_probability"
    op = ">="
    value = 0.7

Without ``[traits]`` every column except the identifier and the scoring metadata
(:data:`METADATA_COLUMNS`) becomes a trait named by :func:`snake_case` of the column
(``exclude = [...]`` drops more). Derived traits are computed from the *source* columns, before
rounding.

API (what the sync engine and the Preview page call)::

    ts = TraitSet.load("traitsets/churn.toml")     # TraitSetError names the bad key
    table = resolve(wh, ts)                         # ibis.Table: identifier + traits
    ts.dump("traitsets/churn.toml")                 # or ts.dumps() -> TOML text
    source = source_table(wh, ts)                   # the raw table / read-only query

``resolve`` returns a lazy Ibis expression; the only thing it runs eagerly is one small
aggregate for ``type = "quantiles"`` cut points (so a tier means the same thing for every row of
one publish).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import math
import operator
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqltraits_kit.errors import ConfigError, UnknownTableError
from sqltraits_kit.traits.output import METADATA_COLUMNS
from sqltraits_kit.warehouse.sandbox import QueryLimitError, check_statement, time_limit

if TYPE_CHECKING:
    import ibis.expr.types as ir

    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "ACCOUNT_IDENTIFIER",
    "DEFAULT_DRIFT_THRESHOLD",
    "METADATA_COLUMNS",
    "USER_IDENTIFIERS",
    "DerivedTrait",
    "ModelRef",
    "TraitSet",
    "TraitSetError",
    "check_read_only_query",
    "query_table",
    "resolve",
    "round_trait",
    "snake_case",
    "source_table",
]

#: Identifier columns Segment SQL Traits accept for user traits (account traits: ``group_id``).
USER_IDENTIFIERS = ("user_id", "email", "anonymous_id")
ACCOUNT_IDENTIFIER = "group_id"
DEFAULT_DRIFT_THRESHOLD = 0.2

Kind = Literal["user", "account"]
OnRemove = Literal["null", "keep"]
DerivedType = Literal["tiers", "quantiles", "flag"]

_KINDS = ("user", "account")
_ON_REMOVE = ("null", "keep")
_OPERATORS = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_FLAG_OPS = tuple(_OPERATORS)
_TOP_KEYS = {
    "name",
    "description",
    "kind",
    "id_column",
    "table",
    "query",
    "on_remove",
    "drift_threshold",
    "exclude",
    "traits",
    "decimals",
    "tolerance",
    "model",
    "derived",
}
_DERIVED_KEYS = {
    "tiers": {"name", "type", "column", "thresholds", "labels"},
    "quantiles": {"name", "type", "column", "bins", "labels"},
    "flag": {"name", "type", "column", "op", "value"},
}
_MODEL_KEYS = {"name", "version", "output_table", "as_of", "also"}


class TraitSetError(ConfigError):
    """A trait-set file or value is wrong; ``key`` names the key (``derived[1].labels``)."""

    def __init__(self, message: str, *, key: str | None = None, path: str | Path | None = None):
        where = ": ".join(str(p) for p in (path, key) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.key = key
        self.path = path


def snake_case(name: str) -> str:
    """Lower snake_case, as Segment keys traits: ``churnProbability`` -> ``churn_probability``.

    Camel case is split (``LTVScore`` -> ``ltv_score``), anything that is not a letter or a digit
    becomes one underscore, and leading/trailing underscores go.
    """
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", str(name))
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", text)
    text = re.sub(r"[^0-9A-Za-z]+", "_", text)
    return text.strip("_").lower()


# --------------------------------------------------------------------------- spec objects


@dataclass(frozen=True, kw_only=True)
class DerivedTrait:
    """A trait computed from one source column: ``tiers``, ``quantiles`` or a boolean ``flag``."""

    name: str
    type: DerivedType
    column: str
    thresholds: tuple[float, ...] = ()
    labels: tuple[str, ...] = ()
    bins: int = 10
    op: str = ">="
    value: float | int | str | bool | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "column": self.column}
        if self.type == "tiers":
            out["thresholds"] = list(self.thresholds)
            out["labels"] = list(self.labels)
        elif self.type == "quantiles":
            out["bins"] = self.bins
            if self.labels:
                out["labels"] = list(self.labels)
        else:
            out["op"] = self.op
            out["value"] = self.value
        return out


@dataclass(frozen=True, kw_only=True)
class ModelRef:
    """The ``[model]`` section: what the scoring step runs before this trait set is published."""

    name: str
    version: str | int | None = None  # a registry version, or "active"
    output_table: str | None = None
    as_of: str | dt.date | dt.datetime | None = None
    # More registry models scored into the same output table ("btyd", "ltv@2"), joined on the id.
    also: tuple[str, ...] = ()

    def refs(self) -> list[str]:
        """Registry references for the scoring step: the main model first."""
        main = self.name
        if self.version not in (None, "", "active", "latest"):
            main = f"{self.name}@{self.version}"
        return [main, *self.also]

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in dataclasses.asdict(self).items() if v is not None and v != ""}
        if self.also:
            out["also"] = list(self.also)
        else:
            out.pop("also", None)
        return out


@dataclass(frozen=True, kw_only=True)
class TraitSet:
    """One trait set. Build it with :meth:`load`, :meth:`from_dict` or the constructor.

    The constructor validates (raising :class:`TraitSetError` naming the key), so an instance is
    always a usable spec. ``traits`` maps source column -> trait name; empty means "every column
    but the identifier, :data:`METADATA_COLUMNS` and ``exclude``", resolved against the source.
    """

    name: str
    table: str | None = None
    query: str | None = None
    kind: Kind = "user"
    id_column: str | None = None  # None: user_id (user) / group_id (account)
    description: str = ""
    traits: Mapping[str, str] = field(default_factory=dict)
    exclude: tuple[str, ...] = ()
    derived: tuple[DerivedTrait, ...] = ()
    decimals: Mapping[str, int] = field(default_factory=dict)
    tolerance: Mapping[str, float] = field(default_factory=dict)
    on_remove: OnRemove = "null"
    drift_threshold: float = DEFAULT_DRIFT_THRESHOLD
    model: ModelRef | None = None
    path: Path | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.id_column is None:
            default = ACCOUNT_IDENTIFIER if self.kind == "account" else "user_id"
            object.__setattr__(self, "id_column", default)
        _validate(self)

    # ---- derived facts
    @property
    def identifier(self) -> str:
        """The identifier's name in the resolved table: Segment's name for it.

        ``group_id`` for account traits; for user traits the id column's own name when it is
        one of :data:`USER_IDENTIFIERS`, else ``user_id`` (alias a column in a ``query`` to send
        it as ``email`` or ``anonymous_id``).
        """
        if self.kind == "account":
            return ACCOUNT_IDENTIFIER
        return self.id_column if self.id_column in USER_IDENTIFIERS else "user_id"

    @property
    def message_type(self) -> Literal["identify", "group"]:
        return "group" if self.kind == "account" else "identify"

    @property
    def source_label(self) -> str:
        return f"table {self.table}" if self.table else "query"

    def trait_map(self, columns: Iterable[str]) -> dict[str, str]:
        """Source column -> trait name for a source with these columns (derived traits excluded).

        Raises :class:`TraitSetError` for a named column the source does not have.
        """
        columns = list(columns)
        if self.traits:
            missing = [c for c in self.traits if c not in columns]
            if missing:
                raise self._error(
                    f"column {missing[0]!r} is not in the {self.source_label} "
                    f"(columns: {', '.join(columns)})",
                    key=f"traits.{missing[0]}",
                )
            return dict(self.traits)
        skip = {self.id_column, *METADATA_COLUMNS, *self.exclude}
        return {c: snake_case(c) for c in columns if c not in skip}

    def trait_names(self, columns: Iterable[str]) -> list[str]:
        """Every trait name the resolved table carries, in order (column traits, then derived)."""
        return [*self.trait_map(columns).values(), *(d.name for d in self.derived)]

    def tolerance_for(self, trait: str) -> float:
        """The change below which a numeric trait is not re-sent (0: any change is sent)."""
        return float(self.tolerance.get(trait, 0.0))

    def with_(self, **changes: Any) -> TraitSet:
        """A validated copy with some fields changed (how the Preview page edits a trait set)."""
        return dataclasses.replace(self, **changes)

    def _error(self, message: str, *, key: str | None = None) -> TraitSetError:
        return TraitSetError(message, key=key, path=self.path)

    # ---- (de)serialisation
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], /, *, path: str | Path | None = None) -> TraitSet:
        """Build from the TOML structure (unknown keys are refused: a typo must not pass)."""
        path = Path(path) if path is not None else None

        def err(message: str, key: str) -> TraitSetError:
            return TraitSetError(message, key=key, path=path)

        if not isinstance(data, Mapping):
            raise err(f"expected a table of settings, got {type(data).__name__}", "")
        unknown = sorted(set(data) - _TOP_KEYS)
        if unknown:
            raise err(f"unknown key (allowed: {', '.join(sorted(_TOP_KEYS))})", unknown[0])
        for key in ("traits", "decimals", "tolerance", "model"):
            if key in data and not isinstance(data[key], Mapping):
                raise err(f"expected a table ([{key}]), got {type(data[key]).__name__}", key)
        derived_raw = data.get("derived", [])
        if not isinstance(derived_raw, list):
            raise err("expected an array of tables ([[derived]])", "derived")
        derived = tuple(
            _derived_from_dict(d, f"derived[{i}]", err) for i, d in enumerate(derived_raw)
        )
        model = None
        if "model" in data:
            raw = data["model"]
            unknown = sorted(set(raw) - _MODEL_KEYS)
            if unknown:
                raise err(
                    f"unknown key (allowed: {', '.join(sorted(_MODEL_KEYS))})",
                    f"model.{unknown[0]}",
                )
            if not isinstance(raw.get("name"), str) or not raw["name"].strip():
                raise err("the model needs a non-empty name", "model.name")
            also = raw.get("also", [])
            if isinstance(also, str) or not isinstance(also, list | tuple):
                raise err("expected a list of registry references", "model.also")
            if not all(isinstance(a, str) and a.strip() for a in also):
                raise err("every entry must be a non-empty model name", "model.also")
            fields = {k: raw[k] for k in _MODEL_KEYS - {"also"} if k in raw}
            model = ModelRef(**fields, also=tuple(a.strip() for a in also))
        exclude = data.get("exclude", ())
        if isinstance(exclude, str) or not isinstance(exclude, list | tuple):
            raise err("expected a list of column names", "exclude")
        kwargs: dict[str, Any] = {
            k: data[k]
            for k in (
                "name",
                "table",
                "query",
                "kind",
                "id_column",
                "description",
                "on_remove",
                "drift_threshold",
            )
            if k in data
        }
        if "name" not in kwargs:
            raise err("a trait set needs a name", "name")
        return cls(
            **kwargs,
            traits=dict(data.get("traits", {})),
            decimals=dict(data.get("decimals", {})),
            tolerance=dict(data.get("tolerance", {})),
            exclude=tuple(exclude),
            derived=derived,
            model=model,
            path=path,
        )

    @classmethod
    def load(cls, path: str | Path, /) -> TraitSet:
        """Read a trait-set TOML file; a missing file or bad TOML is a :class:`TraitSetError`."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise TraitSetError(f"trait-set file not found: {path}") from None
        except OSError as exc:
            raise TraitSetError(f"cannot read trait-set file {path}: {exc.strerror}") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise TraitSetError(f"not valid TOML: {exc}", path=path) from None
        return cls.from_dict(data, path=path)

    def to_dict(self) -> dict[str, Any]:
        """The TOML structure (what :meth:`from_dict` reads back); defaults are left out."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        out["kind"] = self.kind
        out["id_column"] = self.id_column
        if self.table:
            out["table"] = self.table
        if self.query:
            out["query"] = self.query
        out["on_remove"] = self.on_remove
        out["drift_threshold"] = self.drift_threshold
        if self.exclude:
            out["exclude"] = list(self.exclude)
        for key in ("traits", "decimals", "tolerance"):
            value = getattr(self, key)
            if value:
                out[key] = dict(value)
        if self.model is not None:
            out["model"] = self.model.to_dict()
        if self.derived:
            out["derived"] = [d.to_dict() for d in self.derived]
        return out

    def dumps(self) -> str:
        """The trait set as TOML text (stable key order: diffs under version control stay small)."""
        return _toml_dumps(self.to_dict())

    def dump(self, path: str | Path, /) -> Path:
        """Write the TOML file (parent directories are created) and return its path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.dumps(), encoding="utf-8")
        return path


def _derived_from_dict(raw: Any, key: str, err: Any) -> DerivedTrait:
    if not isinstance(raw, Mapping):
        raise err("expected a table with name, type and column", key)
    kind = raw.get("type")
    if kind not in _DERIVED_KEYS:
        raise err(f"type must be one of {', '.join(_DERIVED_KEYS)}, got {kind!r}", f"{key}.type")
    unknown = sorted(set(raw) - _DERIVED_KEYS[kind])
    if unknown:
        allowed = ", ".join(sorted(_DERIVED_KEYS[kind]))
        raise err(f"not a key of a {kind!r} trait (allowed: {allowed})", f"{key}.{unknown[0]}")
    for name in ("name", "column"):
        if not isinstance(raw.get(name), str) or not raw[name].strip():
            raise err("must be a non-empty string", f"{key}.{name}")
    values = dict(raw)
    for name in ("thresholds", "labels"):
        if name in values:
            if not isinstance(values[name], list):
                raise err("expected a list", f"{key}.{name}")
            values[name] = tuple(values[name])
    return DerivedTrait(**values)


# --------------------------------------------------------------------------- validation


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _validate(ts: TraitSet) -> None:
    def err(message: str, key: str) -> TraitSetError:
        return TraitSetError(message, key=key, path=ts.path)

    if not isinstance(ts.name, str) or not ts.name.strip():
        raise err("must be a non-empty string", "name")
    if ts.kind not in _KINDS:
        raise err(f"must be 'user' (identify) or 'account' (group), got {ts.kind!r}", "kind")
    if (ts.table is None) == (ts.query is None):
        raise err("set exactly one of `table` (a table name) or `query` (a SELECT)", "table")
    if ts.table is not None and (not isinstance(ts.table, str) or not ts.table.strip()):
        raise err("must be a non-empty table name", "table")
    if ts.query is not None:
        if not isinstance(ts.query, str) or not ts.query.strip():
            raise err("must be a non-empty SELECT statement", "query")
        try:
            check_read_only_query(ts.query)
        except ConfigError as exc:
            raise err(str(exc), "query") from None
    if not isinstance(ts.id_column, str) or not ts.id_column.strip():
        raise err(f"must be a non-empty column name, got {ts.id_column!r}", "id_column")
    if not isinstance(ts.description, str):
        raise err("must be a string", "description")
    if ts.on_remove not in _ON_REMOVE:
        raise err(
            f"must be 'null' (Segment's rule: traits of profiles that drop out are set to null) "
            f"or 'keep', got {ts.on_remove!r}",
            "on_remove",
        )
    if not _is_number(ts.drift_threshold) or not ts.drift_threshold > 0:
        raise err(f"must be a number > 0 (PSI), got {ts.drift_threshold!r}", "drift_threshold")
    for column in ts.exclude:
        if not isinstance(column, str) or not column:
            raise err(f"must list column names, got {column!r}", "exclude")
    if ts.exclude and ts.traits:
        raise err("use either [traits] (an explicit list) or `exclude`, not both", "exclude")

    names: dict[str, str] = {}  # trait name -> key that defines it
    for column, trait in ts.traits.items():
        key = f"traits.{column}"
        if not isinstance(column, str) or not column:
            raise err("column names must be non-empty strings", "traits")
        if not isinstance(trait, str) or not trait.strip():
            raise err(f"trait name must be a non-empty string, got {trait!r}", key)
        if column == ts.id_column:
            raise err(f"{column!r} is the identifier column, not a trait", key)
        if trait in names:
            raise err(f"trait name {trait!r} is also given by {names[trait]}", key)
        names[trait] = key
    for i, d in enumerate(ts.derived):
        _validate_derived(d, f"derived[{i}]", err)
        if d.name in names:
            raise err(
                f"trait name {d.name!r} is also given by {names[d.name]}", f"derived[{i}].name"
            )
        names[d.name] = f"derived[{i}].name"
    for trait in names:
        if trait == ts.identifier:
            raise err(f"trait name {trait!r} is the identifier's name", names[trait])

    derived_names = {d.name for d in ts.derived}
    for key, mapping in (("decimals", ts.decimals), ("tolerance", ts.tolerance)):
        for trait, value in mapping.items():
            where = f"{key}.{trait}"
            if trait in derived_names:
                raise err("derived traits are tiers or flags, not numbers", where)
            if ts.traits and trait not in ts.traits.values():
                raise err(f"no trait {trait!r} in [traits]", where)
            if key == "decimals" and (
                not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 12
            ):
                raise err(f"must be a whole number of decimals from 0 to 12, got {value!r}", where)
            if key == "tolerance" and (
                not _is_number(value) or not math.isfinite(value) or value < 0
            ):
                raise err(f"must be a number >= 0, got {value!r}", where)
    if ts.model is not None:
        m = ts.model
        if m.version is not None and not isinstance(m.version, str | int):
            raise err("must be a registry version or a name such as 'active'", "model.version")
        if m.output_table is not None and not (isinstance(m.output_table, str) and m.output_table):
            raise err("must be a table name", "model.output_table")
        if m.as_of is not None and not isinstance(m.as_of, str | dt.date):
            raise err("must be a date, a datetime or a string", "model.as_of")


def _validate_derived(d: DerivedTrait, key: str, err: Any) -> None:
    if d.type == "tiers":
        t = d.thresholds
        if not t or not all(_is_number(x) and math.isfinite(x) for x in t):
            raise err("need a non-empty list of finite numbers", f"{key}.thresholds")
        if any(b <= a for a, b in itertools.pairwise(t)):
            raise err(f"must be strictly increasing, got {list(t)}", f"{key}.thresholds")
        if len(d.labels) != len(t) + 1:
            raise err(
                f"expected {len(t) + 1} labels for {len(t)} thresholds, got {len(d.labels)}",
                f"{key}.labels",
            )
    elif d.type == "quantiles":
        if not isinstance(d.bins, int) or isinstance(d.bins, bool) or not 2 <= d.bins <= 100:
            raise err(f"must be a whole number from 2 to 100, got {d.bins!r}", f"{key}.bins")
        if d.labels and len(d.labels) != d.bins:
            raise err(f"expected {d.bins} labels, got {len(d.labels)}", f"{key}.labels")
    else:
        if d.op not in _FLAG_OPS:
            raise err(f"must be one of {' '.join(_FLAG_OPS)}, got {d.op!r}", f"{key}.op")
        if d.value is None or (isinstance(d.value, float) and not math.isfinite(d.value)):
            raise err("needs a finite value to compare with", f"{key}.value")
        if not isinstance(d.value, int | float | str | bool):
            raise err(f"must be a number, a string or a boolean, got {d.value!r}", f"{key}.value")
    if d.labels and not all(isinstance(x, str) and x for x in d.labels):
        raise err("labels must be non-empty strings", f"{key}.labels")
    if len(set(d.labels)) != len(d.labels):
        raise err(f"labels must be distinct, got {list(d.labels)}", f"{key}.labels")


# --------------------------------------------------------------------------- TOML writer

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # not allowed raw in a TOML literal string


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _toml_string(key)


def _toml_string(value: str) -> str:
    # JSON escapes are TOML basic-string escapes; TOML also forbids a raw DEL.
    return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml_value(value: Any, key: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TraitSetError(f"cannot write {value!r}", key=key)
        return repr(value)
    if isinstance(value, str):
        literal_ok = "'''" not in value and not value.endswith("'") and not _CONTROL.search(value)
        if "\n" in value and literal_ok:
            # A multi-line literal string keeps a SQL query readable in the file; the newline
            # after the opening quotes is not part of the value, one before the closing ones is.
            return "'''\n" + value + "'''"
        return _toml_string(value)
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v, key) for v in value) + "]"
    raise TraitSetError(f"cannot write a {type(value).__name__} to TOML", key=key)


def _toml_dumps(data: Mapping[str, Any]) -> str:
    """A TOML writer for the trait-set shape: scalars, lists, tables, one array of tables."""
    lines: list[str] = []
    tables: list[tuple[str, Mapping[str, Any]]] = []
    arrays: list[tuple[str, list[Mapping[str, Any]]]] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            tables.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, Mapping) for v in value):
            arrays.append((key, value))
        else:
            lines.append(f"{_toml_key(key)} = {_toml_value(value, key)}")
    for key, table in tables:
        lines += ["", f"[{_toml_key(key)}]"]
        lines += [f"{_toml_key(k)} = {_toml_value(v, f'{key}.{k}')}" for k, v in table.items()]
    for key, items in arrays:
        for i, item in enumerate(items):
            lines += ["", f"[[{_toml_key(key)}]]"]
            lines += [
                f"{_toml_key(k)} = {_toml_value(v, f'{key}[{i}].{k}')}" for k, v in item.items()
            ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- queries

# Anything that writes, locks or changes the session: refused anywhere in the tree.
_FORBIDDEN_NODES = (
    "DDL",
    "DML",
    "Into",
    "Lock",
    "Command",
    "Drop",
    "Alter",
    "Set",
    "Pragma",
    "Transaction",
    "Commit",
    "Rollback",
    "Use",
    "Attach",
    "Detach",
    "TruncateTable",
)


_DIALECTS = {"postgres": "postgres", "duckdb": "duckdb", "pyspark": "spark"}


def _sqlglot_dialect(wh: Warehouse | None) -> str | None:
    if wh is None:
        return None
    return _DIALECTS.get(wh.backend, wh.backend)


def check_read_only_query(query: str, *, dialect: str | None = None) -> str:
    """Check that ``query`` is one SELECT (or WITH ... SELECT, or a set operation of SELECTs).

    Returns the statement as sqlglot writes it back for ``dialect``: that text, not the user's,
    is what runs, so what was checked is exactly what is executed. Refuses (``ConfigError``)
    several statements, INSERT/UPDATE/DELETE/MERGE (also inside a CTE), SELECT ... INTO,
    FOR UPDATE/SHARE, DDL and commands, and (a second line behind the engine's sandbox, see
    :mod:`sqltraits_kit.warehouse.sandbox`) known functions that reach files, URLs, large objects
    or server settings (``read_text``, ``read_csv``, ``glob``, ``lo_export``, ``set_config``...)
    and tables named like files. Give the kit a read-only warehouse user as well (Segment
    recommends the same for SQL Traits).
    """
    import sqlglot
    from sqlglot import exp

    if not isinstance(query, str) or not query.strip():
        raise ConfigError("the query is empty")
    try:
        statements = [s for s in sqlglot.parse(query, read=dialect) if s is not None]
    except sqlglot.errors.ParseError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "parse error"
        raise ConfigError(f"the query is not valid SQL: {first}") from None
    if len(statements) != 1:
        raise ConfigError(f"the query must be a single SELECT statement, found {len(statements)}")
    (statement,) = statements
    if not isinstance(statement, exp.Query):
        what = statement.key.upper()
        if isinstance(statement, exp.Command):
            what = str(statement.this).split()[0].upper()  # LOAD, CALL, ... as the user wrote it
        raise ConfigError(f"the query must be a SELECT (or WITH ... SELECT), not {what}")
    forbidden = tuple(getattr(exp, name) for name in _FORBIDDEN_NODES if hasattr(exp, name))
    for node in statement.walk():
        if isinstance(node, forbidden):
            what = {"into": "SELECT ... INTO", "lock": "FOR UPDATE/SHARE"}.get(
                node.key, node.key.upper()
            )
            raise ConfigError(f"the query must only read data; it contains {what}")
    check_statement(statement)
    return statement.sql(dialect=dialect)


def query_table(wh: Warehouse, query: str) -> ir.Table:
    """A SELECT as an Ibis table (``wh.con.sql``), checked by :func:`check_read_only_query`."""
    dialect = _sqlglot_dialect(wh)
    checked = check_read_only_query(query, dialect=dialect)
    try:
        with time_limit(wh):
            return wh.con.sql(checked, dialect=dialect)
    except QueryLimitError:
        raise
    except Exception as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "permission" in message.lower() or "disabled by configuration" in message.lower():
            message = f"refused by the warehouse's sandbox: {message}"
        raise ConfigError(f"the query failed in {wh.display_url}: {message}") from None


def source_table(wh: Warehouse, trait_set: TraitSet, /) -> ir.Table:
    """The trait set's source, unmodified: the table, or the checked query."""
    if trait_set.table is not None:
        try:
            return wh.table(trait_set.table)
        except UnknownTableError as exc:
            raise TraitSetError(str(exc), key="table", path=trait_set.path) from None
    return query_table(wh, trait_set.query or "")


# --------------------------------------------------------------------------- resolve


def _numeric(dtype: Any) -> bool:
    return dtype.is_numeric() and not dtype.is_boolean()


def _quantile_cuts(table: ir.Table, column: str, bins: int) -> list[float]:
    col = table[column]
    if col.type().is_floating():
        table = table.filter(~col.isnan() & ~col.isinf())
        col = table[column]
    probs = [i / bins for i in range(1, bins)]
    cuts = table.aggregate(q=col.cast("float64").quantile(probs)).execute()["q"].iloc[0]
    if cuts is None:
        return []
    return [float(c) for c in cuts if c is not None and math.isfinite(float(c))]


def _derived_expr(table: ir.Table, d: DerivedTrait, key: str, ts: TraitSet) -> ir.Value:
    import ibis

    if d.column not in table.columns:
        raise ts._error(
            f"column {d.column!r} is not in the {ts.source_label} "
            f"(columns: {', '.join(table.columns)})",
            key=f"{key}.column",
        )
    col = table[d.column]
    dtype = col.type()
    if d.type in ("tiers", "quantiles") and not _numeric(dtype):
        raise ts._error(f"column {d.column!r} is {dtype}, tiers need a number", key=f"{key}.column")
    missing = col.isnull()
    if dtype.is_floating():
        missing = missing | col.isnan()
    if d.type == "flag":
        try:
            flag = _OPERATORS[d.op](col, d.value)
        except Exception:
            raise ts._error(
                f"cannot compare column {d.column!r} ({dtype}) with {d.value!r}", key=f"{key}.value"
            ) from None
        return ibis.ifelse(missing, ibis.null("boolean"), flag).name(d.name)
    if d.type == "tiers":
        cuts, labels = list(d.thresholds), list(d.labels)
    else:
        cuts = _quantile_cuts(table, d.column, d.bins)
        labels = list(d.labels) if d.labels else list(range(1, d.bins + 1))
    # Highest first: value >= cut_k -> label k+1; duplicate cuts (ties) skip the lower label.
    branches = [(missing, ibis.null("string" if isinstance(labels[0], str) else "int64"))]
    branches += [(col >= cut, labels[i + 1]) for i, cut in reversed(list(enumerate(cuts)))]
    return ibis.cases(*branches, else_=labels[0]).name(d.name)


def round_trait(value: ir.NumericValue, decimals: int, /) -> ir.NumericValue:
    """``value`` rounded to ``decimals`` places, cheaply on every backend.

    Ibis compiles ``round(x, d)`` on PostgreSQL as a round trip through NUMERIC, which made the
    resolved table ~10x slower to aggregate. Floats are rounded as ``round(x * 10^d) / 10^d``
    instead (ties may go to the even neighbour on PostgreSQL); values too large for that to
    be exact, NaN, ±inf and nulls pass through unchanged, so the contract checks still see them.
    Decimals keep the exact ``round``.
    """
    import ibis

    if not value.type().is_floating():
        return value.round(decimals)
    scale = 10**decimals
    exact = value.abs() * scale < 1e15  # false for NaN and ±inf as well (NaN sorts last)
    return ibis.ifelse(exact, (value * scale).round() / scale, value)


def resolve(wh: Warehouse, trait_set: TraitSet, /, *, source: ir.Table | None = None) -> ir.Table:
    """The table to publish: the identifier (named ``trait_set.identifier``) + traits.

    Column traits are renamed to their trait names and rounded per ``[decimals]``; derived traits
    are computed in Ibis from the source columns. Nothing is materialised: the result is a lazy
    expression the contract checks, the Preview page and the sync engine all run in the warehouse.
    ``source``: rows to resolve instead of the trait set's own table or query (one run of the
    history table, resolved exactly like the current one).
    """
    table = source_table(wh, trait_set) if source is None else source
    id_col = trait_set.id_column
    if id_col not in table.columns:
        raise trait_set._error(
            f"identifier column {id_col!r} is not in the {trait_set.source_label} "
            f"(columns: {', '.join(table.columns)})",
            key="id_column",
        )
    mapping = trait_set.trait_map(table.columns)
    schema = table.schema()
    for key in ("decimals", "tolerance"):
        for trait in getattr(trait_set, key):
            column = next((c for c, t in mapping.items() if t == trait), None)
            if column is None:
                raise trait_set._error(
                    f"no trait {trait!r} (traits: {', '.join(mapping.values())})",
                    key=f"{key}.{trait}",
                )
            if not _numeric(schema[column]):
                raise trait_set._error(
                    f"trait {trait!r} (column {column!r}) is {schema[column]}, not a number",
                    key=f"{key}.{trait}",
                )
    names = set(mapping.values())
    for i, d in enumerate(trait_set.derived):
        if d.name in names:
            raise trait_set._error(
                f"trait name {d.name!r} is also a column trait", key=f"derived[{i}].name"
            )
    if trait_set.identifier in names:
        raise trait_set._error(
            f"trait name {trait_set.identifier!r} is the identifier's name", key="traits"
        )
    # Round first, then derive: a tier or flag must agree with the value Segment receives
    # (0.6996 is published as 0.7, so it must also be "high", not "medium").
    rounded = {}
    for column, trait in mapping.items():
        decimals = trait_set.decimals.get(trait)
        if decimals is not None and not schema[column].is_integer():
            rounded[column] = round_trait(table[column], decimals)
    if rounded:
        # keep only what the traits read, so no other source column leaks into the query
        needed = {id_col, *mapping, *(d.column for d in trait_set.derived)}
        table = table.select(**{c: rounded.get(c, table[c]) for c in table.columns if c in needed})
    exprs: dict[str, ir.Value] = {trait_set.identifier: table[id_col]}
    for column, trait in mapping.items():
        exprs[trait] = table[column]
    for i, d in enumerate(trait_set.derived):
        exprs[d.name] = _derived_expr(table, d, f"derived[{i}]", trait_set)
    return table.select(**exprs)
