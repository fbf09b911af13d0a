"""The saved trait-set spec: which table or query becomes which Segment traits, and how.

A trait set is a small TOML file kept under version control (``traitsets/churn.toml``); it is
the unit that gets validated, previewed and published. Example::

    name = "churn"
    kind = "user"                  # "user" -> identify calls, "account" -> group calls
    id_column = "user_id"          # default: user_id (user) / group_id (account)
    table = "churn_traits"         # or: query = "SELECT user_id, ... FROM ..."
    on_remove = "null"             # Segment's rule for profiles that drop out; or "keep"
    drift_threshold = 0.2          # PSI above which a publish needs a second look

    [traits]                       # column -> trait name; omit to publish every column
    churn_probability_90d = "churn_probability"

    [decimals]                     # per numeric trait: round before publishing
    churn_probability = 3

    [tolerance]                    # per numeric trait: smaller changes are not re-sent, nor
                                   # are changes of the traits derived from its column alone
    churn_probability = 0.005

    [relative_tolerance]           # per numeric trait: nor is a change below this share of the
    churn_probability = 0.1        # published value; the larger of the two bounds wins

    [model]                        # what the scoring step runs (optional)
    name = "churn"
    version = "active"
    output_table = "churn_traits"

    [[derived]]                    # tiers from fixed thresholds
    name = "churn_risk_tier"
    type = "tiers"
    column = "churn_probability_90d"
    thresholds = [0.3, 0.7]        # < 0.3 low, [0.3, 0.7) medium, >= 0.7 high
    labels = ["low", "medium", "high"]

    [[derived]]                    # tiers from the data's own quantiles (deciles: bins = 10)
    name = "ltv_decile"
    type = "quantiles"
    column = "predicted_ltv_90d"
    bins = 10                      # labels default to 1..bins (bins = highest values)

    [[derived]]                    # a boolean flag
    name = "high_churn_risk"
    type = "flag"
    column = "churn_probability_90d"
    op = ">="
    value = 0.7

Without ``[traits]`` every column except the identifier and the scoring metadata
(:data:`METADATA_COLUMNS`) becomes a trait named by :func:`snake_case` of the column
(``exclude = [...]`` drops more). Derived traits are computed from the *source* columns, before
rounding.

API (what the sync engine and the Preview page call)::

    ts = TraitSet.load("traitsets/churn.toml")     # TraitSetError names the bad key
    table = resolve(wh, ts)                         # ibis.Table: identifier + traits
    ts.dump("traitsets/churn.toml")                 # or ts.dumps() -> TOML text
    source = source_table(wh, ts)                   # the raw table / read-only query

``resolve`` returns a lazy Ibis expression; the only thing it runs eagerly is one small
aggregate for ``type = "quantiles"`` cut points (so a tier means the same thing for every row of
one publish).

The package: the spec (:mod:`.spec`), its rules and parts (:mod:`.rules`), its TOML writer
(:mod:`.writer`), the read-only query check (:mod:`.queries`) and :func:`resolve`
(:mod:`.resolving`).
"""

from __future__ import annotations

from sqltraits_kit.traits.output import METADATA_COLUMNS
from sqltraits_kit.traits.traitset.queries import check_read_only_query, query_table
from sqltraits_kit.traits.traitset.resolving import resolve, round_trait, source_table
from sqltraits_kit.traits.traitset.rules import (
    DerivedTrait,
    ModelRef,
    TraitSetError,
    snake_case,
)
from sqltraits_kit.traits.traitset.spec import (
    ACCOUNT_IDENTIFIER,
    DEFAULT_DRIFT_THRESHOLD,
    USER_IDENTIFIERS,
    TraitSet,
)

__all__ = [
    "ACCOUNT_IDENTIFIER",
    "DEFAULT_DRIFT_THRESHOLD",
    "METADATA_COLUMNS",
    "USER_IDENTIFIERS",
    "DerivedTrait",
    "ModelRef",
    "TraitSet",
    "TraitSetError",
    "check_read_only_query",
    "query_table",
    "resolve",
    "round_trait",
    "snake_case",
    "source_table",
]
