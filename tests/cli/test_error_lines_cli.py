"""Issue 17 item 13: a refused write key is said once, as an error line, not four times."""

from __future__ import annotations

import pyarrow as pa

from sqltraits_kit.cli import main
from sqltraits_kit.warehouse import connect


def test_a_wrong_write_key_is_one_error_line(tmp_path, segment_server, capsys, monkeypatch):
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    wh = connect(url, create=True)
    wh.con.create_table("scores", pa.table({"user_id": ["u1", "u2"], "score": [0.1, 0.2]}))
    wh.close()
    monkeypatch.setenv("SEGMENT_WRITE_KEY", "not_the_servers_key")
    for name in ("SQLTRAITS_DB_URL", "SEGMENT_REGION", "SEGMENT_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    code = main(["sync", "--db", url, "--table", "scores", "--endpoint", segment_server.url])
    out = capsys.readouterr()
    text = out.out + out.err
    assert code != 0 and "Traceback" not in text
    lines = [line for line in text.splitlines() if "401" in line]
    assert len(lines) == 1, text
    assert "error" in lines[0].lower() or "failed" in lines[0].lower(), text


def test_no_write_key_names_the_keys_the_example_file_uses(tmp_path, capsys, monkeypatch):
    """Item 8: the hint named a secrets key (segment_write_key) the example file does not use."""
    from tests.support import ROOT

    for name in ("SEGMENT_WRITE_KEY", "SQLTRAITS_DB_URL", "SEGMENT_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    wh = connect(url, create=True)
    wh.con.create_table("scores", pa.table({"user_id": ["u1"], "score": [0.1]}))
    wh.close()
    assert main(["sync", "--db", url, "--table", "scores"]) == 2
    err = capsys.readouterr().err
    assert "SEGMENT_WRITE_KEY" in err and "sqltraits standin" in err
    example = (ROOT / ".streamlit" / "secrets.toml.example").read_text()
    assert "write_key under [segment]" in err
    assert "[segment]" in example and "# write_key = " in example
    assert "segment_write_key" not in err
