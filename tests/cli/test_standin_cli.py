"""The demo's last step without a Segment account: publish to the local stand-in, then look."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

from sqltraits_kit.cli import main


def test_publish_to_the_local_standin_and_show_what_it_holds(sample_file, tmp_path, capsys):
    db = tmp_path / "wh.duckdb"
    shutil.copyfile(sample_file, db)
    proc = subprocess.Popen(
        [sys.executable, "-m", "sqltraits_kit", "standin", "--port", "0", "--write-key", "k1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        banner = proc.stdout.readline()
        assert "nothing leaves this machine" in banner
        url = banner.split(" on ", 1)[1].split(" ", 1)[0]
        assert url.startswith("http://127.0.0.1:")
        env = {**os.environ, "SEGMENT_ENDPOINT": url, "SEGMENT_WRITE_KEY": "k1"}
        query = "SELECT id AS user_id, plan FROM users ORDER BY id LIMIT 25"
        cli = [sys.executable, "-m", "sqltraits_kit", "sync", "--db", f"duckdb:///{db}"]
        sent = subprocess.run(
            [*cli, "--query", query, "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert sent.returncode == 0, sent.stderr
        assert json.loads(sent.stdout)["sent"] == 25
        assert main(["standin", "--show", url, "--json"]) == 0
        held = json.loads(capsys.readouterr().out)["profiles"]
        assert len(held) == 25
        assert all(set(traits) == {"plan"} for traits in held.values())
        assert main(["standin", "--show", url]) == 0
        assert "25 users hold traits (local stand-in" in capsys.readouterr().out
    finally:
        proc.terminate()
        proc.wait(10)


def test_show_reads_only_a_local_standin(capsys):
    assert main(["standin", "--show", "https://api.segment.io"]) == 2
    assert "local stand-in only" in capsys.readouterr().err
