"""Read published traits back through Segment's Profile API and compare them with what we sent.

After a publish, a spot check of N profiles answers "did it land as we think?": the acknowledged
state (what we believe Segment holds) is compared trait by trait with what the Profile API
returns. A 200 from the Tracking API does not prove the data was stored, so this is the only
end-to-end proof short of looking in Segment's UI.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqltraits_kit.errors import ConfigError

if TYPE_CHECKING:
    from sqltraits_kit.publishing.segment import ProfileClient
    from sqltraits_kit.traits.traitset import TraitSet
    from sqltraits_kit.warehouse import Warehouse

__all__ = ["Mismatch", "ReadbackReport", "spot_check"]


@dataclass(frozen=True)
class Mismatch:
    identifier: str
    trait: str
    expected: Any
    actual: Any


@dataclass
class ReadbackReport:
    checked: int
    matched: int
    missing: list[str] = field(default_factory=list)  # profiles the Profile API does not know
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing and not self.mismatches

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "matched": self.matched,
            "missing": self.missing,
            "mismatches": [m.__dict__ for m in self.mismatches],
            "ok": self.ok,
        }


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if isinstance(expected, int | float) and isinstance(actual, int | float):
        return math.isclose(expected, actual, rel_tol=1e-9, abs_tol=1e-12)
    return expected == actual


def spot_check(
    wh: Warehouse,
    source: TraitSet | str,
    /,
    *,
    client: ProfileClient,
    sample: int = 20,
    destination: str | None = None,
) -> ReadbackReport:
    """Compare ``sample`` published profiles of ``source`` (a trait set or sync key) with Segment.

    Profiles are drawn at random from the published snapshot; a trait we published as null must
    be null (or absent) in Segment. ``destination``: the snapshot of that destination (see
    :mod:`sqltraits_kit.publishing.sync.destination`; default: the one last published to).
    """
    import ibis

    from sqltraits_kit.publishing.segment import to_json_value
    from sqltraits_kit.publishing.sync import published_snapshot
    from sqltraits_kit.traits.traitset import TraitSet

    if sample < 1:
        raise ConfigError(f"sample must be at least 1, got {sample}")
    snapshot = published_snapshot(wh, source, destination=destination)
    if snapshot is None:
        raise ConfigError(f"nothing was published yet for {getattr(source, 'name', source)!r}")
    if isinstance(source, TraitSet):
        ident, account = source.identifier, source.kind == "account"
    else:
        ident = snapshot.columns[0]
        account = ident == "group_id"
    rows = snapshot.order_by(ibis.random()).limit(sample).to_pyarrow().to_pylist()
    report = ReadbackReport(checked=len(rows), matched=0)
    for row in rows:
        identifier = str(row.pop(ident))
        actual = client.get_traits(
            identifier,
            collection="accounts" if account else "users",
            id_type="group_id" if account else "user_id",
        )
        if actual is None:
            report.missing.append(identifier)
            continue
        bad = [
            Mismatch(identifier, trait, to_json_value(value), actual.get(trait))
            for trait, value in row.items()
            if not _same(to_json_value(value), actual.get(trait))
        ]
        report.mismatches.extend(bad)
        report.matched += not bad
    return report
