from __future__ import annotations

import duckdb
import numpy as np
import pytest

from sqltraits_kit.errors import ConfigError
from sqltraits_kit.warehouse.sample import SAMPLE_TODAY, SampleParameters, build_sample

TABLES = ("users", "accounts", "tracks", "pages", "order_completed", "sample_truth")


def _fingerprints(path) -> dict[str, tuple]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            t: con.sql(f"SELECT count(*), bit_xor(hash(COLUMNS(*))) FROM {t}").fetchone()
            for t in TABLES
        }
    finally:
        con.close()


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """Large enough that population parameters show through the noise."""
    path = tmp_path_factory.mktemp("big") / "s.duckdb"
    build_sample(path, customers=20_000, seed=11)
    return duckdb.connect(str(path), read_only=True)


def test_same_seed_same_bytes_of_data(tmp_path, sample_file):
    again = tmp_path / "again.duckdb"
    build_sample(again, customers=2_000, seed=3)
    assert _fingerprints(again) == _fingerprints(sample_file)
    other = tmp_path / "other.duckdb"
    build_sample(other, customers=2_000, seed=4)
    assert _fingerprints(other) != _fingerprints(sample_file)


def test_segment_shaped_tables_and_columns(sample_file):
    con = duckdb.connect(str(sample_file), read_only=True)
    cols = {
        t: [r[0] for r in con.sql(f"DESCRIBE {t}").fetchall()]
        for t in ("users", "accounts", "tracks", "pages", "order_completed")
    }
    assert cols["users"] == ["id", "email", "name", "created_at", "plan", "country", "account_id"]
    assert cols["accounts"] == ["id", "name", "industry", "employees", "plan"]
    assert cols["tracks"][:4] == ["id", "user_id", "event", "timestamp"]
    assert cols["pages"][:4] == ["id", "user_id", "path", "timestamp"]
    assert cols["order_completed"][:5] == ["id", "user_id", "timestamp", "revenue", "products"]
    # every event belongs to a known user, every user to a known account, ids are unique
    assert con.sql(
        "SELECT count(*) FROM order_completed o ANTI JOIN users u ON o.user_id = u.id"
    ).fetchone() == (0,)
    assert con.sql(
        "SELECT count(*) FROM users u ANTI JOIN accounts a ON u.account_id = a.id"
    ).fetchone() == (0,)
    for t in ("users", "tracks", "pages", "order_completed"):
        assert con.sql(f"SELECT count(*) = count(DISTINCT id) FROM {t}").fetchone() == (True,)


def test_about_two_years_of_utc_history_ending_today(sample_file):
    con = duckdb.connect(str(sample_file), read_only=True)
    for t in ("tracks", "pages", "order_completed"):
        lo, hi = con.sql(f'SELECT min("timestamp"), max("timestamp") FROM {t}').fetchone()
        assert hi < SAMPLE_TODAY
        assert (SAMPLE_TODAY - lo).days >= 700
    first_order = con.sql(
        "SELECT count(*) FROM users u JOIN (SELECT user_id, min(timestamp) AS f FROM "
        "order_completed GROUP BY 1) o ON o.user_id = u.id WHERE o.f < u.created_at"
    ).fetchone()
    assert first_order == (0,)


def test_truth_matches_the_population_parameters(big):
    p = SampleParameters()
    lam, drop = np.array(
        big.sql("SELECT purchase_rate, dropout_prob FROM sample_truth").fetchall()
    ).T
    # Gamma(r, alpha) mean r/alpha; Beta(a, b) mean a/(a+b)
    assert lam.mean() == pytest.approx(p.r / p.alpha, rel=0.05)
    assert drop.mean() == pytest.approx(p.a / (p.a + p.b), rel=0.05)
    # spend: E[p/nu] = p * v / (q - 1)
    aov = big.sql("SELECT avg(revenue) FROM order_completed").fetchone()[0]
    assert aov == pytest.approx(p.p * p.v / (p.q - 1), rel=0.08)


def test_dropout_share_is_recovered_from_the_orders(big):
    """Customers the truth says are dead stop ordering; the alive ones keep going."""
    dead_share, dead_recent, alive_recent = big.sql(
        f"""
        WITH last AS (SELECT user_id, max(timestamp) AS last_order FROM order_completed GROUP BY 1)
        SELECT avg(CASE WHEN NOT alive_at_end THEN 1 ELSE 0 END),
               avg(CASE WHEN last_order > TIMESTAMP '{SAMPLE_TODAY}' - INTERVAL 90 DAY
                        THEN 1 ELSE 0 END) FILTER (WHERE NOT alive_at_end
                            AND dropout_at < TIMESTAMP '{SAMPLE_TODAY}' - INTERVAL 90 DAY),
               avg(CASE WHEN last_order > TIMESTAMP '{SAMPLE_TODAY}' - INTERVAL 90 DAY
                        THEN 1 ELSE 0 END) FILTER (WHERE alive_at_end AND purchase_rate > 0.2)
        FROM sample_truth JOIN last USING (user_id)
        """
    ).fetchone()
    assert 0.25 < dead_share < 0.6
    assert dead_recent == 0.0  # nobody orders after their dropout
    assert alive_recent > 0.8


def test_web_activity_fades_before_dropout(big):
    before, long_before = big.sql(
        """
        WITH d AS (SELECT t.user_id, t.dropout_at FROM sample_truth t
                   JOIN users u ON u.id = t.user_id
                   WHERE t.dropout_at IS NOT NULL AND NOT t.alive_at_end
                     AND t.dropout_at > u.created_at + INTERVAL 120 DAY)
        SELECT count(*) FILTER (WHERE p.timestamp BETWEEN d.dropout_at - INTERVAL 28 DAY
                                                     AND d.dropout_at),
               count(*) FILTER (WHERE p.timestamp BETWEEN d.dropout_at - INTERVAL 112 DAY
                                                     AND d.dropout_at - INTERVAL 84 DAY)
        FROM pages p JOIN d USING (user_id)
        """
    ).fetchone()
    assert before < 0.8 * long_before


def test_parameters_are_stored_for_reference_models(sample_file):
    con = duckdb.connect(str(sample_file), read_only=True)
    stored = dict(con.sql("SELECT name, value FROM sample_parameters").fetchall())
    p = SampleParameters()
    assert stored["r"] == p.r and stored["alpha"] == p.alpha and stored["v"] == p.v
    assert stored["seed"] == 3 and stored["customers"] == 2_000


def test_refuses_nonsense(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        build_sample(tmp_path / "x.duckdb", customers=0)
    (tmp_path / "y.duckdb").write_text("keep me")
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        build_sample(tmp_path / "y.duckdb", customers=10, overwrite=False)
    assert (tmp_path / "y.duckdb").read_text() == "keep me"


def test_a_memory_cap_spills_to_disk_and_changes_no_data(tmp_path, big):
    # 20,000 customers need far more than 48 MB while building: DuckDB must spill to the folder
    # beside the file (and remove it), and the tables must be the same as without the cap.
    capped = tmp_path / "capped.duckdb"
    spill = tmp_path / "capped.duckdb.spill"
    spilled: set[str] = set()

    def watch(_msg: str, _frac: float) -> None:
        if spill.is_dir():
            spilled.update(p.name for p in spill.iterdir())

    build_sample(capped, customers=20_000, seed=11, memory_limit="48MB", progress=watch)
    assert spilled, "the build never spilled: the cap did not bite"
    reference = {
        t: big.sql(f"SELECT count(*), bit_xor(hash(COLUMNS(*))) FROM {t}").fetchone()
        for t in TABLES
    }
    assert _fingerprints(capped) == reference
    assert not spill.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["capped.duckdb"]


def test_a_memory_cap_that_is_not_a_size_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="memory_limit must be a size"):
        build_sample(tmp_path / "s.duckdb", customers=10, memory_limit="lots")
    assert not (tmp_path / "s.duckdb").exists()


def test_customers_are_drawn_in_chunks_each_with_its_own_stream(tmp_path, monkeypatch):
    import sqltraits_kit.warehouse.sample as sample

    monkeypatch.setattr(sample, "LATENT_CHUNK", 300)
    paths = [tmp_path / "a.duckdb", tmp_path / "b.duckdb"]
    for path in paths:
        build_sample(path, customers=1_000, seed=5)
    assert _fingerprints(paths[0]) == _fingerprints(paths[1])  # chunked, still deterministic
    con = duckdb.connect(str(paths[0]), read_only=True)
    try:
        ids = [r[0] for r in con.sql("SELECT id FROM users ORDER BY id").fetchall()]
        assert ids == [f"u{i:08d}" for i in range(1, 1_001)]  # 4 chunks, no gap, no repeat
        rates = con.sql(
            "SELECT purchase_rate FROM sample_truth WHERE user_id IN "
            "('u00000001', 'u00000301', 'u00000601', 'u00000901') ORDER BY user_id"
        ).fetchall()
        assert len(set(rates)) == 4  # chunk k > 0 does not replay chunk 0's stream
    finally:
        con.close()
    # a sample no larger than a chunk is drawn as one: the same as with the default chunk
    small = tmp_path / "small.duckdb"
    build_sample(small, customers=300, seed=5)
    monkeypatch.setattr(sample, "LATENT_CHUNK", 1_000_000)
    again = tmp_path / "again.duckdb"
    build_sample(again, customers=300, seed=5)
    assert _fingerprints(small) == _fingerprints(again)
