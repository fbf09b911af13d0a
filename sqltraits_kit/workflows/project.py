"""The project file: a team's choices per warehouse, read by the app, the CLI and notebooks.

``sqltraits.toml`` at the project root (beside ``traitsets/``) keeps, for each warehouse, the
table mapping, the model horizon, the output table and the trait sets in use. A file rather than
the kit's schema in the warehouse because these are decisions a team reviews and versions with
its trait sets (a pull request shows a changed mapping), they must be readable before any
warehouse connection works, and the kit's schema may be read-only for the people who look::

    # Choices per warehouse; written by `sqltraits mapping --save-project` and the app.
    [warehouses."duckdb://sample_data/sample.duckdb"]
    horizon_days = 90
    output_table = "churn_traits"
    trait_sets = ["traitsets/churn.toml"]

    [warehouses."duckdb://sample_data/sample.duckdb".mapping]
    profiles_table = "users"
    profile_id = "id"
    ...

A warehouse is named by its URL with any password removed (never stored). The file is edited
with tomlkit, so saving keeps the comments and layout people wrote.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.modelling.features import TableMapping
from sqltraits_kit.warehouse import redact_url

__all__ = ["PROJECT_FILE", "Project", "WarehouseChoices"]

PROJECT_FILE = "sqltraits.toml"
_HEADER = (
    "SQL Traits Kit project: the choices made for each warehouse (table mapping, horizon,\n"
    "output table, trait sets). Read by the app, the CLI and notebooks; keep it in git."
)


@dataclass(frozen=True)
class WarehouseChoices:
    """What the team chose for one warehouse; ``None`` means "not chosen yet"."""

    mapping: TableMapping | None = None
    horizon_days: int | None = None
    output_table: str | None = None
    trait_sets: tuple[str, ...] = field(default_factory=tuple)

    def to_toml(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.horizon_days is not None:
            out["horizon_days"] = self.horizon_days
        if self.output_table:
            out["output_table"] = self.output_table
        if self.trait_sets:
            out["trait_sets"] = list(self.trait_sets)
        if self.mapping is not None:
            # TOML has no null: an absent optional table is written as "".
            out["mapping"] = {k: v or "" for k, v in self.mapping.to_dict().items()}
        return out

    @classmethod
    def from_toml(cls, values: Any, *, where: str) -> WarehouseChoices:
        if not isinstance(values, dict):
            raise ConfigError(f"{where} must be a table")
        known = {"mapping", "horizon_days", "output_table", "trait_sets"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
        horizon = values.get("horizon_days")
        if horizon is not None and (
            isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1
        ):
            raise ConfigError(f"{where}.horizon_days must be a whole number >= 1, got {horizon!r}")
        sets = values.get("trait_sets", [])
        if not isinstance(sets, list) or not all(isinstance(s, str) for s in sets):
            raise ConfigError(f"{where}.trait_sets must be a list of file paths")
        mapping = values.get("mapping")
        if mapping is not None:
            if not isinstance(mapping, dict):
                raise ConfigError(f"{where}.mapping must be a table")
            try:
                mapping = TableMapping.from_dict(dict(mapping))
            except ConfigError as exc:
                raise ConfigError(f"{where}.mapping: {exc}") from None
        return cls(
            mapping=mapping,
            horizon_days=horizon,
            output_table=values.get("output_table") or None,
            trait_sets=tuple(sets),
        )


class Project:
    """The project file at ``path`` (default ``./sqltraits.toml``); a missing file is empty."""

    def __init__(self, path: str | Path = PROJECT_FILE) -> None:
        import tomlkit

        self.path = Path(path)
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            text = ""
        except OSError as exc:
            raise ConfigError(f"cannot read the project file {self.path}: {exc}") from None
        try:
            self._doc = tomlkit.parse(text)
        except tomlkit.exceptions.TOMLKitError as exc:
            raise ConfigError(f"{self.path} is not valid TOML: {exc}") from None

    @staticmethod
    def key(url: str) -> str:
        """How a warehouse is named in the file: its URL without a password."""
        return redact_url(url)

    def warehouses(self) -> list[str]:
        return list(self._doc.get("warehouses", {}))

    def choices(self, url: str) -> WarehouseChoices:
        """The choices for the warehouse at ``url`` (empty when none were saved)."""
        key = self.key(url)
        values = self._doc.get("warehouses", {}).get(key)
        if values is None:
            return WarehouseChoices()
        return WarehouseChoices.from_toml(
            values.unwrap() if hasattr(values, "unwrap") else values,
            where=f"{self.path} [warehouses.{key!r}]",
        )

    def save(self, url: str, /, **changes: Any) -> WarehouseChoices:
        """Update the choices for ``url`` (keyword per field) and write the file in place.

        Fields not named keep their value; other warehouses, comments and layout are kept.
        """
        import tomlkit

        fields = {f.name for f in dataclasses.fields(WarehouseChoices)}
        unknown = sorted(set(changes) - fields)
        if unknown:
            raise ConfigError(f"unknown project choice(s): {', '.join(unknown)}")
        if "trait_sets" in changes:
            changes["trait_sets"] = tuple(changes["trait_sets"])
        new = dataclasses.replace(self.choices(url), **changes)
        if not self._doc.get("warehouses") and not self._doc.body:
            self._doc.add(tomlkit.comment(_HEADER.replace("\n", "\n# ")))
        if "warehouses" not in self._doc:
            self._doc.add("warehouses", tomlkit.table(is_super_table=True))
        table = self._doc["warehouses"]
        key = self.key(url)
        section = table.get(key)
        if section is None:
            section = tomlkit.table()
            table.add(key, section)
        wanted = new.to_toml()
        for name in list(section):
            if name not in wanted:
                del section[name]
        for name, value in wanted.items():
            if name == "mapping":
                current = section.get("mapping")
                if current is None:
                    section.add("mapping", tomlkit.table())
                    current = section["mapping"]
                for k, v in value.items():
                    current[k] = v
            else:
                section[name] = value
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(tomlkit.dumps(self._doc))
        tmp.replace(self.path)  # never a half-written project file
        return new

    def mapping_for(self, url: str, *, mapping_file: str | None = None) -> TableMapping:
        """The mapping to use: ``mapping_file`` (JSON) if given, else the project's, else the
        demo/Segment default."""
        if mapping_file:
            return _mapping_from_json(mapping_file)
        return self.choices(url).mapping or TableMapping()


def _mapping_from_json(path: str) -> TableMapping:
    import json

    try:
        values = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--mapping {path}: {exc}") from None
    if not isinstance(values, dict):
        raise ConfigError(f"--mapping {path} must hold a JSON object")
    return TableMapping.from_dict(values)
