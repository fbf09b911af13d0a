"""The parity check against deliberately broken SQL translations, on both backends.

The scoring tests only ever fed a correct translation (the one failing-parity test sets the
tolerance to 0 and relies on exp() differing in the last bit), so a parity check that ignored
NaN, or that compared the wrong thing, passed them all. Here the translation is broken on
purpose: off by 1e-3 everywhere, or NaN on some rows. The model must then be streamed (from
scikit-learn itself, so the output is exact) with the reason recorded, and
``method="warehouse"`` must refuse instead of writing anything.
"""

from __future__ import annotations

import ibis
import pytest

import sqltraits_kit.traits.scoring as scoring
import sqltraits_kit.traits.scoring.sklearn_path as sklearn_path
from sqltraits_kit.errors import DataError
from sqltraits_kit.traits.output import runs
from sqltraits_kit.traits.scoring import score
from tests.support.models import max_diff, output, sklearn_reference

_translate = sklearn_path.sklearn_expr


def _off_by_a_thousandth(m, features):
    return _translate(m, features) + 1e-3


def _nan_on_some_rows(m, features):
    # Profiles whose id ends in "3" (about a tenth of them) get NaN; the rest are exact.
    nan = ibis.literal(float("nan"), type="float64")
    return ibis.ifelse(features.profile_id.endswith("3"), nan, _translate(m, features))


@pytest.mark.parametrize(
    ("broken", "expected_diff"),
    [(_off_by_a_thousandth, pytest.approx(1e-3, rel=1e-6)), (_nan_on_some_rows, float("inf"))],
    ids=["off-by-1e-3", "nan-on-some-rows"],
)
def test_a_broken_translation_is_streamed_with_the_reason_and_warehouse_refuses(
    wh,
    trained,
    unique_name,
    monkeypatch,
    broken,
    expected_diff,
):
    registry, refs = trained
    monkeypatch.setattr(sklearn_path, "sklearn_expr", broken)

    result = score(wh, models=refs["churn"], table=unique_name, registry=registry)

    (run,) = result.models
    assert run.path == "streamed"
    assert run.reason.startswith("parity check failed: max |SQL - scikit-learn| = ")
    assert f"> {scoring.PARITY_TOLERANCE:g} on {run.parity_rows:,} rows" in run.reason
    assert run.parity_max_diff == expected_diff
    # The scores written are scikit-learn's own, not the broken translation's.
    ref = sklearn_reference(wh, registry, refs["churn"], result.as_of)
    assert max_diff(output(wh, unique_name)["churn_probability_90d"], ref) == 0.0

    with pytest.raises(DataError, match=r"model churn@\d+: parity check failed"):
        score(wh, models=refs["churn"], table=unique_name, registry=registry, method="warehouse")
    assert [r.run_id for r in runs(wh, unique_name)] == [result.run_id]
