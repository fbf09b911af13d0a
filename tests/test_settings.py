from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest

from sqltraits_kit.settings import Secret, Settings

KEY = "wk_live_0123456789abcdef"


def test_from_env_reads_every_field():
    s = Settings.from_env(
        {
            "SQLTRAITS_DB_URL": "postgres://u@h/db",
            "SQLTRAITS_MODELS_DIR": "/tmp/m",
            "SEGMENT_WRITE_KEY": KEY,
            "SEGMENT_REGION": "EU",
            "SQLTRAITS_MAX_REQUESTS_PER_SECOND": "0",
            "SQLTRAITS_SAMPLE_CUSTOMERS": "1000",
        }
    )
    assert s.db_url == "postgres://u@h/db" and s.models_dir == Path("/tmp/m")
    assert s.segment_region == "eu" and s.max_requests_per_second == 0
    assert s.sample_customers == 1000
    assert s.segment_write_key.reveal() == KEY


def test_from_mapping_accepts_secrets_toml_sections():
    s = Settings.from_mapping(
        {
            "sqltraits": {"db_url": "duckdb:///x.duckdb"},
            "segment": {"write_key": KEY, "region": "us"},
        }
    )
    assert s.db_url == "duckdb:///x.duckdb"
    assert s.segment_write_key == Secret(KEY)
    flat = Settings.from_mapping({"SEGMENT_WRITE_KEY": KEY})
    assert flat.segment_write_key.reveal() == KEY


def test_empty_values_mean_unset():
    s = Settings.from_env({"SEGMENT_WRITE_KEY": "  ", "SQLTRAITS_DB_URL": ""})
    assert s.segment_write_key is None and s.db_url is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SEGMENT_REGION": "mars"}, "segment_region"),
        ({"SQLTRAITS_MAX_EVENTS_PER_SECOND": "fast"}, "SQLTRAITS_MAX_EVENTS_PER_SECOND"),
        ({"SQLTRAITS_MAX_EVENTS_PER_SECOND": "-1"}, ">= 0"),
    ],
)
def test_bad_values_are_named(env, message):
    with pytest.raises(ValueError, match=message):
        Settings.from_env(env)


def test_the_key_never_shows(caplog):
    s = Settings.from_env({"SEGMENT_WRITE_KEY": KEY})
    secret = s.segment_write_key
    logging.getLogger("test").warning("settings %s %r %s", s, s, secret)
    shown = [repr(s), str(s), repr(secret), str(secret), f"{secret}", f"{secret!r}", caplog.text]
    assert not any(KEY in text for text in shown)
    assert secret.masked() == "••••cdef"
    assert secret.redact(f"Authorization for {KEY}") == "Authorization for ***"
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(secret)
