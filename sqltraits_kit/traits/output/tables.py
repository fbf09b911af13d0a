"""Output production tables: their names, the metadata that marks them, the runs they hold."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.warehouse.kit_tables import (
    HISTORY_SUFFIX,
    SCRATCH_PREFIX,
    is_history_table,
    is_kit_table,
)

if TYPE_CHECKING:
    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "HISTORY_SUFFIX",
    "METADATA_COLUMNS",
    "STAGING_PREFIX",
    "OutputRun",
    "OutputWrite",
    "check_output_target",
    "check_table_name",
    "history_table",
    "is_output_table",
    "new_run_id",
    "output_tables",
]

#: Run metadata every output row carries: what marks an output production table, and never a
#: trait unless a trait set names it (:mod:`sqltraits_kit.traits.traitset` reads it from here).
METADATA_COLUMNS = ("model_name", "model_version", "scored_at", "run_id")
#: The staging tables of output runs (a name no output table may take).
STAGING_PREFIX = f"{SCRATCH_PREFIX}staging_"
# PostgreSQL truncates identifiers at 63 bytes; the history table adds the suffix.
_MAX_NAME = 63 - len(HISTORY_SUFFIX)
NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True)
class OutputWrite:
    """What one write did."""

    table: str
    history_table: str | None
    run_id: str
    rows: int
    columns: tuple[str, ...]
    atomic: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class OutputRun:
    """One run in ``<output>_history``."""

    run_id: str
    scored_at: dt.datetime | None
    model_name: str | None
    model_version: str | None
    rows: int
    current: bool

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["scored_at"] = self.scored_at.isoformat() if self.scored_at else None
        return out


def new_run_id(when: dt.datetime | None = None) -> str:
    """A run id that sorts by time and is unique: ``20261101T120000Z_3f9a1c2b``."""
    when = (when or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return f"{when:%Y%m%dT%H%M%SZ}_{uuid.uuid4().hex[:8]}"


def check_table_name(name: str, *, what: str = "output table") -> str:
    """``name`` if it is a lower snake_case identifier short enough for every engine."""
    if not isinstance(name, str) or not NAME.match(name) or len(name) > _MAX_NAME:
        raise ConfigError(
            f"{what} name {name!r} must be lower snake_case (letters, digits, '_'; not starting "
            f"with a digit) and at most {_MAX_NAME} characters"
        )
    if name.startswith(STAGING_PREFIX) or name.endswith(HISTORY_SUFFIX):
        raise ConfigError(f"{what} name {name!r} is reserved for the kit's own tables")
    return name


def history_table(table: str) -> str:
    """The history table of an output table."""
    return f"{table}{HISTORY_SUFFIX}"


def is_output_table(wh: Warehouse, table: str, /) -> bool:
    """Whether ``table`` is an output production table: it carries :data:`METADATA_COLUMNS`.

    Scoring swaps an output table in whole, so it only ever writes over one of these (or a new
    name), never over an input table such as ``users``.
    """
    return set(METADATA_COLUMNS) <= set(wh.table(table).columns)


def check_output_target(wh: Warehouse, table: str, /) -> None:
    """Refuse (:class:`ConfigError`) to score into an existing table that is not an output
    table (:func:`is_output_table`): the swap would replace it."""
    if wh.has_table(table) and not is_output_table(wh, table):
        raise ConfigError(
            f"{table!r} exists and is not an output table (it has no "
            f"{', '.join(METADATA_COLUMNS)} columns); choose another name"
        )


def output_tables(wh: Warehouse, /, *, outputs_only: bool = True) -> list[str]:
    """The tables a user may pick as a trait source: never the kit's own tables nor history.

    ``outputs_only``: only output production tables (:func:`is_output_table`); otherwise every
    other table too.
    """
    return [
        name
        for name in wh.tables()
        if not is_kit_table(name)
        and not is_history_table(name)
        and (not outputs_only or is_output_table(wh, name))
    ]
