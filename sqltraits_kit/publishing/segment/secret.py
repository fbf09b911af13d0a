"""The kit's one credential type, re-exported for the Segment client."""

from __future__ import annotations

from sqltraits_kit.settings import Secret

__all__ = ["Secret"]
