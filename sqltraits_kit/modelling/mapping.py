"""Which warehouse tables and columns hold profiles, orders and activity (`TableMapping`), and
the cutoff instant every point-in-time step agrees on (`to_instant`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import ConfigError, UnknownTableError

if TYPE_CHECKING:
    from sqltraits_kit.warehouse import Warehouse

__all__ = ["CHURN_ON", "TableMapping", "to_instant"]

CHURN_ON = ("orders", "activity")
_OPTIONAL_FIELDS = ("profile_created_at", "tracks_table", "track_event", "pages_table")


@dataclass(frozen=True, kw_only=True)
class TableMapping:
    """Which warehouse tables and columns hold profiles, orders and activity.

    The defaults fit the demo sample and Segment's warehouse schema (``users``, ``tracks``,
    ``pages`` and one table per track event such as ``order_completed``). Set
    ``profile_created_at`` to None when profiles have no creation time: a profile then exists
    from its first event. Set ``tracks_table`` or ``pages_table`` to None when there is none.
    """

    profiles_table: str = "users"
    profile_id: str = "id"
    profile_created_at: str | None = "created_at"
    orders_table: str = "order_completed"
    order_profile_id: str = "user_id"
    order_timestamp: str = "timestamp"
    order_revenue: str = "revenue"
    tracks_table: str | None = "tracks"
    track_profile_id: str = "user_id"
    track_timestamp: str = "timestamp"
    track_event: str | None = "event"
    pages_table: str | None = "pages"
    page_profile_id: str = "user_id"
    page_timestamp: str = "timestamp"

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in _OPTIONAL_FIELDS:
                continue
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(
                    f"table mapping: {f.name} must be a non-empty name, got {value!r}"
                )

    def to_dict(self) -> dict[str, str | None]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], /) -> TableMapping:
        """Build from a mapping as written by :meth:`to_dict`; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"table mapping: unknown key(s) {', '.join(unknown)} "
                f"(known: {', '.join(sorted(known))})"
            )
        return cls(**{k: (None if v in ("", None) else v) for k, v in values.items()})

    def activity_sources(self) -> list[tuple[str, str, str]]:
        """(table, profile id column, timestamp column) of the mapped activity tables."""
        out = []
        if self.tracks_table:
            out.append((self.tracks_table, self.track_profile_id, self.track_timestamp))
        if self.pages_table:
            out.append((self.pages_table, self.page_profile_id, self.page_timestamp))
        return out

    def validate(self, wh: Warehouse) -> None:
        """Check that every mapped table and column exists with a usable type."""
        checks: list[tuple[str, str, str]] = [(self.profiles_table, self.profile_id, "id")]
        if self.profile_created_at:
            checks.append((self.profiles_table, self.profile_created_at, "time"))
        checks += [
            (self.orders_table, self.order_profile_id, "id"),
            (self.orders_table, self.order_timestamp, "time"),
            (self.orders_table, self.order_revenue, "number"),
        ]
        for table, id_col, ts_col in self.activity_sources():
            checks += [(table, id_col, "id"), (table, ts_col, "time")]
        if self.tracks_table and self.track_event:
            checks.append((self.tracks_table, self.track_event, "any"))
        schemas: dict[str, Any] = {}
        for table, column, role in checks:
            if table not in schemas:
                schemas[table] = wh.table(table).schema()
            schema = schemas[table]
            if column not in schema:
                raise UnknownTableError(
                    f"column {column!r} not found in table {table!r} "
                    f"(columns: {', '.join(schema.names)})"
                )
            dtype = schema[column]
            if role == "time" and not (dtype.is_timestamp() or dtype.is_date()):
                raise ConfigError(
                    f"column {table}.{column} must be a timestamp or date to serve as a time, "
                    f"is {dtype}"
                )
            if role == "number" and not dtype.is_numeric():
                raise ConfigError(f"column {table}.{column} must be numeric (revenue), is {dtype}")


def to_instant(value: dt.date | dt.datetime | str, *, name: str = "cutoff") -> dt.datetime:
    """A naive UTC datetime from a date (its midnight), a datetime or an ISO string."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise ConfigError(
                f"{name} must be an ISO date such as 2026-05-01, got {value!r}"
            ) from None
    if isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    raise ConfigError(f"{name} must be a date, datetime or ISO string, got {value!r}")
