"""The request deadline and the Retry-After cap are settings, passed to the client."""

from __future__ import annotations

import pytest

from sqltraits_kit.publishing.segment import RetryPolicy
from sqltraits_kit.publishing.sync.client import make_client
from sqltraits_kit.settings import Settings


def test_defaults_bound_every_wait():
    client = make_client(Settings(segment_write_key="wk"))
    assert client.timeout == 15.0 and client.retry.max_rate_limit_wait == 120.0


def test_settings_from_the_environment_reach_the_client():
    env = {
        "SEGMENT_WRITE_KEY": "wk",
        "SQLTRAITS_MAX_REQUEST_SECONDS": "4.5",
        "SQLTRAITS_MAX_RATE_LIMIT_WAIT": "30",
    }
    settings = Settings.from_env(env)
    client = make_client(settings)
    assert (client.timeout, client.retry.max_rate_limit_wait) == (4.5, 30.0)
    # explicit options win over settings
    client = make_client(settings, timeout=2, retry=RetryPolicy(max_rate_limit_wait=5))
    assert (client.timeout, client.retry.max_rate_limit_wait) == (2, 5)


@pytest.mark.parametrize(
    "env",
    [{"SQLTRAITS_MAX_REQUEST_SECONDS": "0"}, {"SQLTRAITS_MAX_RATE_LIMIT_WAIT": "-1"}],
)
def test_nonsense_values_are_refused(env):
    with pytest.raises(ValueError, match="max_request_seconds must be > 0"):
        Settings.from_env(env)
