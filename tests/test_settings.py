from __future__ import annotations

import logging
import pickle
from pathlib import Path

import pytest

from sqltraits_kit.settings import Destination, Secret, Settings

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


# ---------------------------------------------------------------- console settings (issue 12)


def test_the_single_key_config_is_the_production_destination():
    s = Settings.from_env({"SEGMENT_WRITE_KEY": KEY, "SEGMENT_REGION": "eu"})
    (only,) = s.publish_destinations()
    assert (only.name, only.region, only.endpoint, only.label) == ("production", "eu", None,
                                                                   "production (EU)")  # fmt: skip
    assert only.write_key.reveal() == KEY
    assert only.sync_key("churn") == "churn"
    # nothing configured: production without a key (checks and dry runs still work)
    (bare,) = Settings().publish_destinations()
    assert bare.name == "production" and bare.write_key is None


def test_named_destinations_from_secrets_come_after_production():
    s = Settings.from_mapping(
        {
            "segment": {
                "write_key": KEY,
                "destinations": {
                    "test": {
                        "endpoint": "http://127.0.0.1:8080",
                        "write_key": "test-key-000000",
                        "label": "local test server",
                    },
                    "eu-prod": {"region": "eu", "write_key": "eu-key-00000000"},
                },
            }
        }
    )
    found = s.publish_destinations()
    assert [d.name for d in found] == ["production", "test", "eu-prod"]
    assert [d.label for d in found] == ["production (US)", "local test server", "eu-prod (EU)"]
    test = found[1]
    assert test.endpoint == "http://127.0.0.1:8080" and test.write_key.reveal() == "test-key-000000"
    # a test server's deliveries never count as production's
    assert test.sync_key("table:scores:identify") == "table:scores:identify@test"
    assert KEY not in repr(found) and "test-key" not in repr(s)


def test_destinations_from_the_environment():
    s = Settings.from_env(
        {
            "SQLTRAITS_DESTINATIONS": "staging",
            "SEGMENT_DESTINATION_STAGING_ENDPOINT": "https://collector.internal",
            "SEGMENT_DESTINATION_STAGING_WRITE_KEY": "staging-key-0000",
        }
    )
    (staging,) = s.publish_destinations()  # no production key: only what was configured
    assert staging.label == "staging (collector.internal)"
    assert staging.write_key.reveal() == "staging-key-0000"


@pytest.mark.parametrize(
    ("destinations", "message"),
    [
        ({"Prod!": {"write_key": "k"}}, "destination name"),
        ({"test": {"region": "mars"}}, "region must be"),
        ({"test": {"endpoint": "file:///etc/passwd"}}, "endpoint must be an http"),
        ({"test": {"url": "http://x"}}, "unknown setting"),
    ],
)
def test_bad_destinations_are_named(destinations, message):
    with pytest.raises(ValueError, match=message):
        Settings.from_mapping({"segment": {"destinations": destinations}})


def test_auth_and_publishers_from_secrets_and_env():
    s = Settings.from_mapping(
        {
            "auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "google": {}},
            "sqltraits": {"publishers": ["Ana@Example.com"], "publisher_claim": "groups=pub"},
        }
    )
    assert s.auth_configured and s.auth_providers == ("google",)
    assert s.publishers == ("ana@example.com",) and s.publisher_claim == "groups=pub"
    env = Settings.from_env({"SQLTRAITS_PUBLISHERS": "a@x.com, b@y.com"})
    assert env.publishers == ("a@x.com", "b@y.com") and not env.auth_configured
    with pytest.raises(ValueError, match="e-mail"):
        Settings.from_env({"SQLTRAITS_PUBLISHERS": "admin"})
    with pytest.raises(ValueError, match="CLAIM=VALUE"):
        Settings.from_env({"SQLTRAITS_PUBLISHER_CLAIM": "groups"})


def test_secrets_override_the_environment_field_by_field():
    """An environment URL must not drop the login configured in secrets.toml (it did: the app
    kept whichever of the two had a db_url)."""
    s = Settings.from_sources(
        {"auth": {"client_id": "x"}, "sqltraits": {"publishers": ["a@x.com"]}},
        {"SQLTRAITS_DB_URL": "duckdb:///w.duckdb", "SEGMENT_WRITE_KEY": KEY},
    )
    assert s.auth_configured and s.publishers == ("a@x.com",)
    assert s.db_url == "duckdb:///w.duckdb" and s.segment_write_key.reveal() == KEY
    both = Settings.from_sources({"sqltraits": {"db_url": "duckdb:///s.duckdb"}},
                                 {"SQLTRAITS_DB_URL": "duckdb:///e.duckdb"})  # fmt: skip
    assert both.db_url == "duckdb:///s.duckdb"


def test_destination_keys_never_show():
    d = Destination(name="test", endpoint="http://127.0.0.1:1", write_key=Secret(KEY))
    assert KEY not in repr(d) and KEY not in str(d)
