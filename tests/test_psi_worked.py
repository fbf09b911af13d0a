"""PSI anchored to numbers worked by hand from its definition, on DuckDB and PostgreSQL.

The PSI tests in test_drift.py and test_preview.py compare `population_stability` with a numpy
re-implementation written alongside it; a mistake shared by both (a log the wrong way round,
shares of the wrong total, a bin boundary on the wrong side) would pass. These examples are
small enough to check on paper:

    PSI = sum over bins of (current share - baseline share) * ln(current share / baseline share)

with the baseline's quantiles as cuts, bins closed on the left, a bin for nulls when either
side has one, and each share floored at epsilon (1e-4) so an empty bin stays finite.
"""

from __future__ import annotations

import math

import pyarrow as pa
import pytest

from sqltraits_kit.traits.drift import EPSILON, population_stability


def _put(wh, name: str, values: list[float | None]):
    return wh.con.create_table(name, obj=pa.table({"x": pa.array(values, pa.float64())}))


def test_psi_of_two_bins_worked_by_hand(wh, unique_name):
    # Baseline 1, 1, 2, 3, 3: its median (the one cut for 2 bins) is 2, an actual value, so
    # every quantile method agrees. Bins: x < 2 and x >= 2.
    #   baseline: 2 of 5 below, 3 of 5 at or above -> shares 0.4, 0.6
    #   current 1, 2, 3, 3, 3: 1 of 5 below, 4 of 5 above -> shares 0.2, 0.8
    #   PSI = (0.2 - 0.4) ln(0.2/0.4) + (0.8 - 0.6) ln(0.8/0.6)
    #       = 0.2 ln 2 + 0.2 ln(4/3) = 0.2 ln(8/3) = 0.2 * 0.98083 = 0.196166
    base = _put(wh, f"{unique_name}_b", [1, 1, 2, 3, 3])
    cur = _put(wh, f"{unique_name}_c", [1, 2, 3, 3, 3])

    got = population_stability(cur, base, column="x", bins=2)

    assert [(b.label, b.baseline, b.current) for b in got.bins] == [("< 2", 2, 1), (">= 2", 3, 4)]
    assert got.psi == pytest.approx(0.2 * math.log(8 / 3), abs=1e-12)
    assert got.psi == pytest.approx(0.196166, abs=1e-6)


def test_psi_with_an_empty_bin_and_a_null_bin_worked_by_hand(wh, unique_name):
    # Same baseline (5 rows, cut 2). Current: nine 1s and a null (10 rows), so a null bin
    # appears and each side's shares are of its own row count.
    #   bin     baseline           current
    #   x < 2   2/5 = 0.4          9/10 = 0.9
    #   x >= 2  3/5 = 0.6          0/10 -> floored at 1e-4
    #   null    0/5 -> 1e-4        1/10 = 0.1
    #   PSI = (0.9 - 0.4) ln(0.9/0.4)     =  0.5    * 0.810930  = 0.405465
    #       + (1e-4 - 0.6) ln(1e-4/0.6)   = -0.5999 * -8.699515 = 5.218839
    #       + (0.1 - 1e-4) ln(0.1/1e-4)   =  0.0999 * 6.907755  = 0.690085
    #       = 6.314389
    base = _put(wh, f"{unique_name}_b", [1, 1, 2, 3, 3])
    cur = _put(wh, f"{unique_name}_c", [1] * 9 + [None])

    got = population_stability(cur, base, column="x", bins=2)

    assert EPSILON == 1e-4
    assert [(b.baseline, b.current) for b in got.bins] == [(2, 9), (3, 0), (0, 1)]
    expected = (
        (0.9 - 0.4) * math.log(0.9 / 0.4)
        + (1e-4 - 0.6) * math.log(1e-4 / 0.6)
        + (0.1 - 1e-4) * math.log(0.1 / 1e-4)
    )
    assert got.psi == pytest.approx(expected, abs=1e-12)
    assert got.psi == pytest.approx(6.314389, abs=1e-6)
