"""The local test server as a destination (issue 17): offered without a key, bound to 127.0.0.1."""

from __future__ import annotations

import pyarrow as pa

from sqltraits_kit.publishing import local
from sqltraits_kit.publishing.sync import make_client, sync
from sqltraits_kit.settings import Secret, Settings


def test_offered_first_without_a_write_key_and_not_once_one_is_configured():
    names = [d.name for d in local.publish_destinations(Settings())]
    assert names == ["local", "production"]
    keyed = Settings(segment_write_key=Secret("wk_live_0123456789abcdef"))
    assert [d.name for d in local.publish_destinations(keyed)] == ["production"]


def test_a_publish_to_it_is_what_it_holds(duckdb_wh, unique_name):
    dest = local.resolve(local.publish_destinations(Settings())[0])
    assert dest.endpoint.startswith("http://127.0.0.1:") and dest.write_key is not None
    assert local.local_destination().endpoint == dest.endpoint  # one server per process
    rows = {"user_id": ["a", "b"], "score": [0.25, 0.5]}
    duckdb_wh.con.create_table(unique_name, pa.table(rows))
    client = make_client(write_key=dest.write_key, endpoint=dest.endpoint)
    try:
        assert sync(duckdb_wh, unique_name, client=client).sent == 2
    finally:
        client.close()
    held = {r["identifier"]: r for r in local.local_holdings()}
    assert held["a"]["score"] == 0.25 and held["b"]["score"] == 0.5


def test_the_secrets_example_copied_as_is_opens_the_demo_and_the_local_test_server():
    """Issue 17 item 1: a newcomer copies .streamlit/secrets.toml.example unchanged."""
    import tomllib
    from pathlib import Path

    example = Path(__file__).resolve().parents[1] / ".streamlit" / "secrets.toml.example"
    settings = Settings.from_mapping(tomllib.loads(example.read_text()))
    assert settings.db_url is None  # the demo sample, not an absolute path that does not exist
    assert local.publish_destinations(settings)[0].name == "local"
