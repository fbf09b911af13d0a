"""Holdouts: a control group chosen by a salted hash of the identifier, published as a trait.

A trait set may declare one::

    [holdout]
    share = 0.1           # a tenth of the profiles
    salt = "churn-2026"   # fixed: the same profiles stay in the group run after run
    name = "churn_holdout"  # the boolean trait (default: <trait set>_holdout)

A profile is in the control group when the first 28 bits of ``md5(salt + ":" + identifier)``,
read as a number, fall below ``share * 2**28``. The hash is computed in the warehouse (Ibis
calls the engine's own ``md5``, which DuckDB and PostgreSQL both have and compute alike), and
it depends on nothing but the identifier and the salt: not on the scores, the run, the model
version or the engine. So the group is stable across runs and model versions; changing the
salt draws a new one. :func:`in_holdout` computes the same flag in Python.

Marketers exclude the flag from every campaign audience (``<name> = true``); the outcome
report (:mod:`sqltraits_kit.workflows.outcomes`) then compares treated and control per tier.
Two trait sets that share a ``name`` and ``salt`` share one control group.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import ConfigError

if TYPE_CHECKING:
    import ibis.expr.types as ir

__all__ = ["HOLDOUT_KEYS", "Holdout", "holdout_flag", "in_holdout"]

HOLDOUT_KEYS = {"share", "salt", "name"}
#: Hex digits of the hash read as the number compared with the share (28 bits: fits int64
#: arithmetic on every engine, resolution 4e-9).
_DIGITS = 7
_SCALE = 16**_DIGITS
_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


@dataclass(frozen=True, kw_only=True)
class Holdout:
    """A control group: ``share`` of the profiles, chosen by ``salt``, flagged as trait ``name``
    (None: ``<trait set name>_holdout``)."""

    share: float
    salt: str
    name: str | None = None

    def __post_init__(self) -> None:
        problem = check(self)
        if problem is not None:
            key, message = problem
            raise ConfigError(f"holdout.{key}: {message}")

    def trait_name(self, trait_set: str) -> str:
        """The boolean trait the flag is published as."""
        return self.name or f"{re.sub(r'[^a-z0-9_]+', '_', trait_set.lower())}_holdout"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"share": self.share, "salt": self.salt}
        if self.name:
            out["name"] = self.name
        return out

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], /) -> Holdout:
        if not isinstance(raw, Mapping):
            raise ConfigError("holdout: expected a table with share and salt")
        unknown = sorted(set(raw) - HOLDOUT_KEYS)
        if unknown:
            allowed = ", ".join(sorted(HOLDOUT_KEYS))
            raise ConfigError(f"holdout.{unknown[0]}: not a key of [holdout] (allowed: {allowed})")
        for key in ("share", "salt"):
            if key not in raw:
                raise ConfigError(f"holdout.{key}: required (share: a fraction, salt: a string)")
        return cls(**{k: raw[k] for k in HOLDOUT_KEYS if k in raw})


def check(h: Holdout) -> tuple[str, str] | None:
    """The first (key, problem) of a holdout spec, or None when it is usable."""
    share = h.share
    if isinstance(share, bool) or not isinstance(share, int | float) or not math.isfinite(share):
        return "share", f"must be a number, got {share!r}"
    if not 0 < share < 1:
        return "share", f"must be between 0 and 1 (a fraction of the profiles), got {share!r}"
    if not isinstance(h.salt, str) or not h.salt.strip():
        return "salt", "must be a non-empty string (fixed: it decides who is in the group)"
    if h.name is not None and (not isinstance(h.name, str) or not _NAME.match(h.name)):
        return "name", f"must be a lower snake_case trait name, got {h.name!r}"
    return None


@functools.cache
def _md5() -> Any:
    import ibis

    # The engine's own md5 (DuckDB, PostgreSQL, Snowflake...); Ibis' hexdigest is DuckDB-only.
    @ibis.udf.scalar.builtin(name="md5")
    def md5(text: str) -> str: ...

    return md5


def holdout_flag(
    identifier: ir.Value, /, *, share: float, salt: str | ir.StringValue
) -> ir.BooleanValue:
    """True for the profiles in the control group; null for a null identifier.

    ``salt`` may be a string column (one control group per row's salt: for simulations)."""
    import ibis

    if isinstance(salt, str):
        Holdout(share=share, salt=salt)  # the same checks as a trait set's
        prefix = ibis.literal(f"{salt}:")
    else:
        Holdout(share=share, salt="column")
        prefix = salt + ":"
    digest = _md5()(prefix + identifier.cast("string"))
    hex_digits = ibis.literal("0123456789abcdef")
    number = ibis.literal(0, "int64")
    for i in range(_DIGITS):
        number = number * 16 + hex_digits.find(digest.substr(i, 1)).cast("int64")
    threshold = math.floor(share * _SCALE)
    return ibis.ifelse(identifier.isnull(), ibis.null("boolean"), number < threshold)


def in_holdout(identifier: Any, /, *, share: float, salt: str) -> bool:
    """The same flag in Python (the identifier as the warehouse casts it to a string)."""
    Holdout(share=share, salt=salt)
    digest = hashlib.md5(f"{salt}:{identifier}".encode(), usedforsecurity=False).hexdigest()
    return int(digest[:_DIGITS], 16) < math.floor(share * _SCALE)
