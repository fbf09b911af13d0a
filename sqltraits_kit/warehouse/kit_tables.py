"""What marks a table as the kit's own, in one place: the app, the mapping guess, the Preview and
the Publish page all leave these tables out of the lists a user picks from.

- ``sqltraits_...``: the kit's bookkeeping (sync state, sync keys, runs, failed rows, pending
  rows, leases; on engines without transactional DDL, the tables of output runs behind an
  output view, ``sqltraits_out__<table>__...``);
- ``_sqltraits_...``: scratch tables (the output table's staging, scoring temporaries), dropped
  when the step that made them ends;
- ``<output>_history``: every run of an output production table.
"""

from __future__ import annotations

__all__ = [
    "HISTORY_SUFFIX",
    "KIT_TABLE_PREFIXES",
    "SCRATCH_PREFIX",
    "is_history_table",
    "is_kit_table",
]

#: The prefixes of the kit's own tables (bookkeeping, then scratch).
KIT_TABLE_PREFIXES = ("sqltraits_", "_sqltraits_")
#: The prefix of the kit's scratch tables: ``f"{SCRATCH_PREFIX}staging_..."``.
SCRATCH_PREFIX = "_sqltraits_"
#: An output table's run history is ``<output>{HISTORY_SUFFIX}``.
HISTORY_SUFFIX = "_history"


def is_kit_table(name: str, /) -> bool:
    """A table the kit keeps for itself (never a source to model, preview or publish)."""
    return name.startswith(KIT_TABLE_PREFIXES)


def is_history_table(name: str, /) -> bool:
    """An output table's run history (``<output>_history``)."""
    return name.endswith(HISTORY_SUFFIX)
