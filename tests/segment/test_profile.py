from __future__ import annotations

import base64
import logging

import pytest

from sqltraits_kit.publishing.segment import (
    ProfileAPIError,
    ProfileClient,
    RetryPolicy,
    build_encoded_message,
    pack_batches,
)
from tests.support.segment import PROFILE_TOKEN, SPACE_ID


def publish(client, kind, traits_by_id):
    msgs = (
        build_encoded_message(kind, identifier=ident, traits=traits, run_id="r")
        for ident, traits in traits_by_id.items()
    )
    assert client.send_batches(pack_batches(msgs)).ok


def test_reads_back_user_traits_across_pages(segment_client, profile_client):
    traits = {f"trait_{i:03}": i / 7 for i in range(150)}  # more than one 100-trait page
    publish(segment_client, "identify", {"u 1/é": traits})  # needs URL quoting
    assert profile_client.get_traits("u 1/é") == traits


def test_include_and_accounts(segment_client, profile_client):
    publish(segment_client, "group", {"acme": {"ltv": 120.5, "plan": "gold"}})
    got = profile_client.get_traits(
        "acme", collection="accounts", id_type="group_id", include=["ltv"]
    )
    assert got == {"ltv": 120.5}


def test_unknown_profile_is_none(segment_server, profile_client):
    assert profile_client.get_traits("nobody") is None


def test_wrong_space_is_none(segment_server, segment_client):
    publish(segment_client, "identify", {"u1": {"a": 1}})
    other = ProfileClient(PROFILE_TOKEN, space_id="spa_other", endpoint=segment_server.url)
    assert other.get_traits("u1") is None


def test_bad_token_raises_without_showing_it(segment_server, caplog):
    caplog.set_level(logging.DEBUG)
    token = "pt_WRONG_" + "z" * 20
    client = ProfileClient(
        token, space_id=SPACE_ID, endpoint=segment_server.url, retry=RetryPolicy(max_retries=0)
    )
    with pytest.raises(ProfileAPIError) as info:
        client.get_traits("u1")
    assert info.value.status == 401
    basic = base64.b64encode(f"{token}:".encode()).decode()
    for text in (str(info.value), repr(client), caplog.text):
        assert token not in text and basic not in text


def test_hosts():
    assert (
        ProfileClient("t", space_id="s").base
        == "https://profiles.segment.com/v1/spaces/s/collections"
    )
    eu = ProfileClient("t", space_id="s", region="eu")
    assert eu.base.startswith("https://profiles.euw1.segment.com/")
