"""Warehouse access, the bottom stage: a URL becomes a :class:`Warehouse` over an Ibis backend.

Also here: the transaction helper for atomic swaps and the deterministic demo sample. Nothing in
this package imports a stage above it (see ``docs/ARCHITECTURE.md``).
"""

from __future__ import annotations

from sqltraits_kit.warehouse.connection import (
    Warehouse,
    check_user_warehouse_url,
    connect,
    redact_url,
)
from sqltraits_kit.warehouse.copying import SAMPLE_TABLES, copy_tables

__all__ = [
    "SAMPLE_TABLES",
    "Warehouse",
    "check_user_warehouse_url",
    "connect",
    "copy_tables",
    "redact_url",
]
