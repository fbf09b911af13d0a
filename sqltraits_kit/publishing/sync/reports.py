"""What a sync reports: progress, the gate verdicts, the result of a run, a dry run."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sqltraits_kit import formatting as fmt
from sqltraits_kit.errors import ConfigError
from sqltraits_kit.publishing.sync.destination import display

if TYPE_CHECKING:
    from sqltraits_kit.traits.contract import ContractReport
    from sqltraits_kit.traits.drift import DriftReport

__all__ = ["RESULT_KEYS", "DryRunReport", "SyncProgress", "SyncRefused", "SyncResult", "Verdicts"]

#: The keys of ``--json`` / ``to_dict()`` that scripts rely on, in order.
RESULT_KEYS = (
    "run_id",
    "status",
    "rows",
    "new",
    "changed",
    "removed",
    "unchanged",
    "sent",
    "failed",
    "requests",
    "duration_s",
)


#: Contract errors ``allow_invalid`` never lets through: a trait that would change who the
#: profile is (``email``, ``id``, ``user_id``... overwrite identifiers in Segment). Bad
#: identifiers are handled per row instead: recorded as failed rows with their reason.
NEVER_OVERRIDDEN = frozenset({"identity_trait_names"})


class SyncRefused(ConfigError):
    """A gate (validation, drift, an empty result) stopped the publish; nothing was sent."""

    def __init__(self, message: str, *, verdicts: Verdicts | None = None) -> None:
        super().__init__(message)
        self.verdicts = verdicts


# --------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class SyncProgress:
    """Where a run is; handed to the ``progress`` callback on the caller's thread."""

    phase: Literal["checking", "diffing", "sending", "finishing", "done"]
    run_id: str | None = None
    total: int = 0  # rows to send in this attempt
    sent: int = 0
    failed: int = 0
    requests: int = 0
    elapsed: float = 0.0

    @property
    def fraction(self) -> float:
        if self.phase == "done":
            return 1.0
        return min(1.0, (self.sent + self.failed) / self.total) if self.total else 0.0


@dataclass(frozen=True)
class Verdicts:
    """The checks a publish must pass: Segment's contract and drift against the snapshot."""

    validation: ContractReport
    drift: DriftReport | None  # None: nothing published yet under this sync key
    drift_threshold: float
    published_profiles: int

    @property
    def validation_ok(self) -> bool:
        return self.validation.ok

    @property
    def drift_over(self) -> list[str]:
        return [] if self.drift is None else self.drift.over_threshold(self.drift_threshold)

    @property
    def max_psi(self) -> float | None:
        return None if self.drift is None else self.drift.max_psi

    @property
    def bad_identifiers(self) -> bool:
        """The contract found rows with a missing, blank or duplicate identifier."""
        rules = ("identifier_not_null", "identifier_not_empty", "identifier_unique")
        return any(e.name in rules for e in self.validation.errors)

    @property
    def empties_published(self) -> bool:
        """The result is empty while profiles are published: a publish would null them all."""
        return (self.validation.rows or 0) == 0 and self.published_profiles > 0

    def problems(self, *, allow_drift: bool = False, allow_invalid: bool = False) -> list[str]:
        out = []
        errors = [
            e for e in self.validation.errors if not allow_invalid or e.name in NEVER_OVERRIDDEN
        ]
        if errors:
            failed = "; ".join(f"{e.name}: {e.message}" for e in errors)
            cannot = " (allow_invalid cannot override this)" if allow_invalid else ""
            out.append(f"the table breaks Segment's SQL-trait contract{cannot} ({failed})")
        if self.drift_over and not allow_drift:
            traits = ", ".join(
                f"{t} (PSI {fmt.figure(self.drift.psi[t].psi)})"  # type: ignore[union-attr]
                for t in self.drift_over
            )
            out.append(
                f"drift over the threshold {fmt.figure(self.drift_threshold)} against what was "
                f"last published: {traits}; review it in the Preview, then override explicitly "
                "(allow_drift / --allow-drift)"
            )
        if self.empties_published and not allow_drift:
            out.append(
                f"the result is empty: publishing it would set the traits of all "
                f"{self.published_profiles:,} published profiles to null; override explicitly "
                "(allow_drift / --allow-drift) if that is intended"
            )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "validation_ok": self.validation_ok,
            "validation_errors": [e.name for e in self.validation.errors],
            "validation_warnings": [w.name for w in self.validation.warnings],
            "max_psi": self.max_psi,
            "drift_threshold": self.drift_threshold,
            "drift_over": self.drift_over,
            "published_profiles": self.published_profiles,
        }


@dataclass(frozen=True)
class SyncResult:
    """What a publish run did. ``to_dict()`` starts with the CLI's ``--json`` contract."""

    run_id: str
    sync_key: str
    source: str
    kind: str
    status: Literal["succeeded", "partial", "failed"]
    rows: int
    new: int
    changed: int
    removed: int
    unchanged: int
    sent: int
    failed: int
    requests: int
    duration_s: float
    unsent: int = 0  # not attempted: the run stopped early (Segment unreachable)
    uncertain: int = 0  # re-sent because an earlier delivery was never acknowledged
    destination: str | None = None  # endpoint#write-key fingerprint (see .destination)
    send_seconds: float = 0.0
    attempt: int = 1
    error: str | None = None
    errors: tuple[str, ...] = ()
    verdicts: Verdicts | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.unsent == 0

    @property
    def resumed(self) -> bool:
        return self.attempt > 1

    @property
    def messages_per_second(self) -> float:
        return self.sent / self.send_seconds if self.send_seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: getattr(self, k) for k in RESULT_KEYS}
        out["duration_s"] = round(self.duration_s, 3)
        out.update(
            sync_key=self.sync_key,
            source=self.source,
            kind=self.kind,
            unsent=self.unsent,
            uncertain=self.uncertain,
            destination=display(self.destination),
            attempt=self.attempt,
            send_seconds=round(self.send_seconds, 3),
            messages_per_second=round(self.messages_per_second, 1),
            error=self.error,
            errors=list(self.errors),
        )
        return out

    def to_json(self) -> str:
        """One line of JSON (the CLI's ``--json``)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, default=str)

    def to_text(self) -> str:
        """What the run did, for a person (the CLI's output)."""
        where = display(self.destination) if self.destination else "Segment"
        lines = [
            f"published {self.source} (sync key {self.sync_key}) to {where}: "
            f"run {self.run_id} {self.status}"
            + (f" (resumed, attempt {self.attempt})" if self.resumed else ""),
            f"  {self.rows:,} rows: {self.new:,} new, {self.changed:,} changed, "
            f"{self.removed:,} removed, {self.unchanged:,} unchanged",
        ]
        if self.uncertain:
            lines.append(
                f"  {self.uncertain:,} of them re-sent because an earlier send was never "
                "acknowledged, or never reached (Segment may hold either value)"
            )
        lines.append(
            f"  sent {self.sent:,}, failed {self.failed:,} in {self.requests:,} requests, "
            f"{fmt.seconds(self.duration_s)} ({fmt.count(self.messages_per_second)} messages/s)"
        )
        lines += [f"  failed: {error}" for error in self.errors]
        if self.error:
            lines.append(f"  {self.error}")
        if self.failed:
            lines.append(
                "  see `sqltraits history --failed`; the next run sends the failed rows again"
            )
        return "\n".join(lines)


@dataclass(frozen=True)
class DryRunReport:
    """What a publish would do, computed without any network call or warehouse write."""

    sync_key: str
    source: str
    kind: str
    on_remove: str
    rows: int
    new: int
    changed: int
    removed: int
    unchanged: int
    to_send: int
    requests: int
    requests_exact: bool  # False above EXACT_DRY_RUN_ROWS: estimated from the sample's sizes
    payload_bytes: int
    rejected: int  # rows that would be refused before sending (value or size)
    rejections: tuple[tuple[str, str], ...]  # first few (identifier, reason)
    sample: tuple[str, ...]  # exact JSON of the first messages (message ids differ per run)
    expected_seconds: float | None  # at the configured rate limit; None without a limit
    max_requests_per_second: float | None
    max_events_per_second: float | None
    verdicts: Verdicts | None = field(default=None, repr=False, compare=False)
    duration_s: float = 0.0
    uncertain: int = 0  # to send again because an earlier delivery was never acknowledged
    destination: str | None = None  # the destination whose state the diff read (None: none)

    def problems(self, *, allow_drift: bool = False, allow_invalid: bool = False) -> list[str]:
        if self.verdicts is None:
            return []
        return self.verdicts.problems(allow_drift=allow_drift, allow_invalid=allow_invalid)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "run_id": None,
            "status": "dry_run",
            "rows": self.rows,
            "new": self.new,
            "changed": self.changed,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "sent": 0,
            "failed": self.rejected,
            "requests": self.requests,
            "duration_s": round(self.duration_s, 3),
        }
        out.update(
            sync_key=self.sync_key,
            source=self.source,
            kind=self.kind,
            on_remove=self.on_remove,
            to_send=self.to_send,
            uncertain=self.uncertain,
            destination=display(self.destination) if self.destination else None,
            requests_exact=self.requests_exact,
            payload_bytes=self.payload_bytes,
            rejections=[list(x) for x in self.rejections],
            expected_duration_s=self.expected_seconds,
            max_requests_per_second=self.max_requests_per_second,
            max_events_per_second=self.max_events_per_second,
            sample=list(self.sample),
            verdicts=self.verdicts.to_dict() if self.verdicts else None,
        )
        return out

    def to_json(self) -> str:
        """One line of JSON (the CLI's ``--json``)."""
        return json.dumps(self.to_dict(), ensure_ascii=False, default=str)

    def to_text(self) -> str:
        """What a publish would do, for a person (the CLI's output)."""
        lines = [f"dry run of {self.source} (sync key {self.sync_key}): nothing sent"]
        if self.destination:
            lines.append(f"  compared with what {display(self.destination)} acknowledged")
        if self.uncertain:
            lines.append(
                f"  {self.uncertain:,} profiles would be re-sent: an earlier delivery was never "
                "acknowledged"
            )
        approx = "" if self.requests_exact else "about "
        lines += [
            f"  {self.rows:,} rows: {self.new:,} new, {self.changed:,} changed, "
            f"{self.removed:,} removed, {self.unchanged:,} unchanged",
            f"  would send {self.to_send:,} messages in {approx}{self.requests:,} requests "
            f"({fmt.figure(self.payload_bytes / 1e6, digits=2)} MB)",
        ]
        if self.expected_seconds is not None:
            lines.append(
                f"  expected duration {fmt.seconds(self.expected_seconds)} at "
                f"{_limit(self.max_requests_per_second, 'requests')}, "
                f"{_limit(self.max_events_per_second, 'events')}"
            )
        if self.rejected:
            lines.append(f"  {self.rejected:,} rows would be rejected, e.g.:")
            lines += [f"    {ident}: {reason}" for ident, reason in self.rejections[:5]]
        lines += [f"  REFUSED: {problem}" for problem in self.problems()]
        lines += [f"  {payload}" for payload in self.sample]
        return "\n".join(lines)


def _limit(per_second: float | None, unit: str) -> str:
    """``20 requests/s``, or ``no requests limit`` (0 or None)."""
    return fmt.rate(per_second, unit=unit) if per_second else f"no {unit} limit"
