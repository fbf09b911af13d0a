"""The connection a publish runs on is capped at SQLTRAITS_SYNC_MEMORY_LIMIT (issue 15: sync's
memory grew with the table because DuckDB could use 80% of RAM before spilling)."""

from __future__ import annotations

import pytest

from sqltraits_kit.settings import Settings
from sqltraits_kit.warehouse import connect


def test_for_publishing_caps_duckdb_at_the_sync_limit(sample_file):
    settings = Settings.from_env({"SQLTRAITS_SYNC_MEMORY_LIMIT": "300MB"})
    assert settings.query_memory_limit == "2GB"
    assert settings.for_publishing().query_memory_limit == "300MB"
    wh = connect(f"duckdb://{sample_file}", read_only=True, settings=settings.for_publishing())
    try:
        limit = wh.con.con.sql("SELECT current_setting('memory_limit')").fetchone()[0]
    finally:
        wh.close()
    assert limit.endswith("MiB") and 280 <= float(limit.split()[0]) <= 300, limit


def test_a_malformed_sync_limit_names_the_setting():
    with pytest.raises(ValueError, match="sync_memory_limit must be a size such as"):
        Settings.from_env({"SQLTRAITS_SYNC_MEMORY_LIMIT": "lots"})
