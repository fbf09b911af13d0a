"""SQL Traits Kit: warehouse tables -> churn/LTV models -> output table -> Segment traits."""

from __future__ import annotations

__version__ = "0.1.0"
