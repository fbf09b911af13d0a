"""The trait set: which table or query becomes which Segment traits, and how (see the package).

One frozen dataclass, built from TOML (:meth:`TraitSet.load`), a dict or the constructor; the
constructor runs :func:`~sqltraits_kit.traits.traitset.rules.validate_spec`, so every instance is
a usable spec.
"""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.traits.holdout import Holdout
from sqltraits_kit.traits.output import METADATA_COLUMNS, renamed_column
from sqltraits_kit.traits.traitset.rules import (
    TOP_KEYS,
    DerivedTrait,
    Kind,
    ModelRef,
    OnRemove,
    TraitSetError,
    derived_from_dict,
    model_from_dict,
    snake_case,
    validate_spec,
)
from sqltraits_kit.traits.traitset.writer import toml_dumps, toml_merge

__all__ = ["ACCOUNT_IDENTIFIER", "DEFAULT_DRIFT_THRESHOLD", "USER_IDENTIFIERS", "TraitSet"]

#: Identifier columns Segment SQL Traits accept for user traits (account traits: ``group_id``).
USER_IDENTIFIERS = ("user_id", "email", "anonymous_id")
ACCOUNT_IDENTIFIER = "group_id"
DEFAULT_DRIFT_THRESHOLD = 0.2


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
    #: Per trait, a change smaller than this fraction of the published value is not re-sent
    #: either (the bound is the larger of the two).
    relative_tolerance: Mapping[str, float] = field(default_factory=dict)
    on_remove: OnRemove = "null"
    drift_threshold: float = DEFAULT_DRIFT_THRESHOLD
    model: ModelRef | None = None
    holdout: Holdout | None = None  # a control group, published as a boolean trait
    path: Path | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.id_column is None:
            default = ACCOUNT_IDENTIFIER if self.kind == "account" else "user_id"
            object.__setattr__(self, "id_column", default)
        validate_spec(self)

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
                    self.missing_column(missing[0], columns), key=f"traits.{missing[0]}"
                )
            return dict(self.traits)
        skip = {self.id_column, *METADATA_COLUMNS, *self.exclude}
        return {c: snake_case(c) for c in columns if c not in skip}

    def missing_column(self, column: str, columns: Iterable[str]) -> str:
        """The error for a ``column`` this trait set reads that its source lacks, with what the
        column became when a model now writes it under another name (:func:`renamed_column`)."""
        columns = list(columns)
        message = (
            f"column {column!r} is not in the {self.source_label} (columns: {', '.join(columns)})"
        )
        hint = renamed_column(column, columns)
        return f"{message}; {hint}" if hint else message

    def check_columns(self, columns: Iterable[str]) -> None:
        """Raise :class:`TraitSetError` for the first column this trait set reads (``[traits]``,
        then ``[[derived]]``) that a source with ``columns`` would lack."""
        columns = list(columns)
        self.trait_map(columns)
        for i, d in enumerate(self.derived):
            if d.column not in columns:
                raise self._error(
                    self.missing_column(d.column, columns), key=f"derived[{i}].column"
                )

    def trait_names(self, columns: Iterable[str]) -> list[str]:
        """Every trait name the resolved table carries, in order (column traits, derived, then
        the holdout flag)."""
        names = [*self.trait_map(columns).values(), *(d.name for d in self.derived)]
        return [*names, self.holdout_trait] if self.holdout_trait else names

    @property
    def holdout_trait(self) -> str | None:
        """The name of the holdout flag trait (None without a ``[holdout]``)."""
        return self.holdout.trait_name(self.name) if self.holdout is not None else None

    def tolerance_for(self, trait: str) -> float:
        """The change below which a numeric trait is not re-sent (0: any change is sent)."""
        return float(self.tolerance.get(trait, 0.0))

    def tolerance_followers(self) -> dict[str, str]:
        """Derived trait -> the column trait whose tolerance it follows.

        A tier, decile or flag computed from a column that is also published as a trait with a
        ``[tolerance]`` is re-sent only together with that trait: when the value moved by less
        than the tolerance, Segment keeps the old value *and* the old tier, which agree with each
        other. Without this, a value wobbling across a tier boundary (or a decile's cut point
        moving under it) would re-send the profile every run whatever the tolerance says.
        """
        out: dict[str, str] = {}
        mapping = dict(self.traits) or self.trait_map(d.column for d in self.derived)
        for d in self.derived:
            trait = mapping.get(d.column)
            if trait is not None and (
                self.tolerance_for(trait) > 0 or self.relative_tolerance.get(trait, 0.0) > 0
            ):
                out[d.name] = trait
        return out

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
        unknown = sorted(set(data) - TOP_KEYS)
        if unknown:
            raise err(f"unknown key (allowed: {', '.join(sorted(TOP_KEYS))})", unknown[0])
        for key in ("traits", "decimals", "tolerance", "relative_tolerance", "model", "holdout"):
            if key in data and not isinstance(data[key], Mapping):
                raise err(f"expected a table ([{key}]), got {type(data[key]).__name__}", key)
        derived_raw = data.get("derived", [])
        if not isinstance(derived_raw, list):
            raise err("expected an array of tables ([[derived]])", "derived")
        derived = tuple(
            derived_from_dict(d, f"derived[{i}]", err) for i, d in enumerate(derived_raw)
        )
        model = model_from_dict(data["model"], err) if "model" in data else None
        holdout = None
        if "holdout" in data:
            try:
                holdout = Holdout.from_dict(data["holdout"])
            except ConfigError as exc:
                key, _, message = str(exc).partition(": ")
                raise err(message, key) from None
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
            relative_tolerance=dict(data.get("relative_tolerance", {})),
            exclude=tuple(exclude),
            derived=derived,
            model=model,
            holdout=holdout,
            path=path,
        )

    @classmethod
    def loads(cls, text: str, /, *, path: str | Path | None = None) -> TraitSet:
        """Read TOML text (what :meth:`dumps` writes); ``path`` only names it in errors."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise TraitSetError(f"not valid TOML: {exc}", path=path) from None
        return cls.from_dict(data, path=path)

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
        return cls.loads(text, path=path)

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
        for key in ("traits", "decimals", "tolerance", "relative_tolerance"):
            value = getattr(self, key)
            if value:
                out[key] = dict(value)
        if self.model is not None:
            out["model"] = self.model.to_dict()
        if self.holdout is not None:
            out["holdout"] = self.holdout.to_dict()
        if self.derived:
            out["derived"] = [d.to_dict() for d in self.derived]
        return out

    def dumps(self) -> str:
        """The trait set as TOML text (stable key order: diffs under version control stay small)."""
        return toml_dumps(self.to_dict())

    def dumps_over(self, text: str, /) -> str:
        """The TOML text of an existing file ``text`` changed to hold this trait set, its
        comments and layout kept (what :meth:`dump` writes over an existing file)."""
        return toml_merge(text, self.to_dict())

    def dump(self, path: str | Path, /) -> Path:
        """Write the TOML file (parent directories are created) and return its path.

        Over an existing file, only what changed is rewritten: comments and layout stay.
        The file is replaced in one rename, never left half-written.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            old = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            old = ""
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(self.dumps_over(old), encoding="utf-8")
        tmp.replace(path)
        return path
