"""The parity check's two parts on their own: the rows it samples and the difference it measures.

test_scoring_parity.py feeds whole broken translations through ``score``; these pin what a
NaN-blind or off-by-one parity check would get wrong, in milliseconds: a NaN on one side is an
infinite difference (never "equal"), NaN on both sides is agreement, and the sample is every
k-th profile by id, the same rows on every backend and every run.
"""

from __future__ import annotations

import math

import ibis
import numpy as np
import pytest

from sqltraits_kit.traits.scoring.scratch import max_diff, systematic_sample

NAN = float("nan")


@pytest.mark.parametrize(
    ("reference", "candidate", "expected"),
    [
        ([0.1, 0.5, 0.9], [0.1, 0.5, 0.9], 0.0),
        ([0.1, 0.5, 0.9], [0.1, 0.5 + 1e-3, 0.9], pytest.approx(1e-3)),
        ([0.1, 0.5, 0.9], [0.1, 0.5 - 2e-3, 0.9], pytest.approx(2e-3)),  # absolute, not signed
        ([0.1, 0.5, 0.9], [0.2, 0.5, 0.5], pytest.approx(0.4)),  # the largest, not the first
        ([0.1, 0.5, 0.9], [0.1, NAN, 0.9], math.inf),  # NaN in the SQL only: never equal
        ([0.1, NAN, 0.9], [0.1, 0.5, 0.9], math.inf),  # NaN in scikit-learn only
        ([0.1, NAN, 0.9], [0.1, NAN, 0.9], 0.0),  # both missing: they agree
        ([0.1, NAN, 0.9], [0.1, NAN, 0.95], pytest.approx(0.05)),
        ([1.0], [math.inf], math.inf),
        ([], [], 0.0),
    ],
)
def test_max_diff(reference, candidate, expected):
    got = max_diff(np.array(reference), np.array(candidate))
    assert isinstance(got, float)
    assert got == expected


def test_max_diff_reads_any_array_like_as_floats():
    assert max_diff([1, 2, 3], np.array([1.0, 2.0, 3.5], dtype=np.float32)) == 0.5
    assert max_diff(np.array([None, 1.0], dtype=object), [NAN, 1.0]) == 0.0
    assert max_diff([NAN, 1.0], np.array([None, 1.0], dtype=object)) == 0.0
    assert max_diff([0.5, 1.0], np.array([None, 1.0], dtype=object)) == math.inf


def _profiles(n: int):
    # ids in an order that is not the insertion order, so the sort is what picks the rows
    ids = [f"p{(i * 101) % n:03d}" for i in range(n)]  # 101 is prime to every n used
    return ibis.memtable({"profile_id": ids, "x": [int(i[1:]) for i in ids]})


def _ids(table) -> list[str]:
    return table.execute()["profile_id"].tolist()


def test_the_sample_is_every_kth_profile_by_id():
    # 100 profiles, 10 rows: step 10; row_number() is 0-based in Ibis, so p000, p010, ...
    sample = systematic_sample(_profiles(100), 100, 10)
    assert _ids(sample) == [f"p{i:03d}" for i in range(0, 100, 10)]
    assert sample.columns == ("profile_id", "x")  # no helper column left behind


def test_the_sample_takes_at_most_the_rows_asked_for():
    # 105 profiles, 10 rows: step 10 picks 11 profiles; only the first 10 by id are kept
    got = _ids(systematic_sample(_profiles(105), 105, 10))
    assert got == [f"p{i:03d}" for i in range(0, 100, 10)]


@pytest.mark.parametrize("rows", [200, 0])
def test_more_rows_than_profiles_or_none_asked_for_takes_every_profile(rows):
    # step max(1, 50 // 200) = 1 (and rows=0 divides by 1, not 0): every profile, in id order
    got = _ids(systematic_sample(_profiles(50), 50, rows))
    assert got == ([f"p{i:03d}" for i in range(50)] if rows else [])
