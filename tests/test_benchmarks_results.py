"""RESULTS.md keeps what was written by hand when a benchmark rewrites its own section."""

from __future__ import annotations

from benchmarks import _harness as h


def test_writing_a_section_keeps_the_text_between_sections(tmp_path):
    path = tmp_path / "RESULTS.md"
    h.write_section(path, "sync", "sync v1\n")
    h.write_section(path, "sync_memory", "memory v1\n")
    text = path.read_text()
    marker = "<!-- section:sync_memory:end -->\n"
    path.write_text(text.replace(marker, marker + "\nWritten by hand after memory.\n"))
    h.write_section(path, "sync", "sync v2\n")
    h.write_section(path, "diff", "diff v1\n")  # new: before sync, in SECTIONS order
    h.write_section(path, "scale", "scale v1\n")  # not in SECTIONS: at the end
    text = path.read_text()
    assert "Written by hand after memory." in text
    assert "sync v1" not in text
    order = ["diff v1", "sync v2", "memory v1", "Written by hand after memory.", "scale v1"]
    assert [text.index(x) for x in order] == sorted(text.index(x) for x in order)
    assert text.startswith("# Benchmark results")
