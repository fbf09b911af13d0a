"""What the Train page asks before it trains: the table mapping (saved, else guessed, with the
reasons), the columns that fit each field, whether the mapping is usable yet, and which models a
trait set needs (the guided path: train exactly those).

A page only shows these; the rules live here so the CLI and notebooks can ask the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from sqltraits_kit.errors import SqlTraitsError
from sqltraits_kit.modelling.features import TableMapping
from sqltraits_kit.modelling.mapping_guess import guess_mapping
from sqltraits_kit.traits.output import LEGACY_COLUMNS, column_model
from sqltraits_kit.traits.scoring import trait_columns
from sqltraits_kit.workflows.catalog import model_names, renamed_columns

if TYPE_CHECKING:
    from sqltraits_kit.modelling.registry import ModelCard
    from sqltraits_kit.traits.traitset import TraitSet
    from sqltraits_kit.warehouse import Warehouse

__all__ = [
    "ESTIMATOR_LABELS",
    "MAPPING_FIELDS",
    "MappingField",
    "MappingProposal",
    "NeededModel",
    "check_mapping",
    "column_choices",
    "needed_models",
    "propose_mapping",
]

Role = Literal["table", "id", "time", "number", "any"]


@dataclass(frozen=True)
class MappingField:
    """One field of :class:`TableMapping` as a form shows it."""

    label: str
    table_field: str | None  # the table field whose columns it lists; None: a table itself
    role: Role
    optional: bool = False


MAPPING_FIELDS: dict[str, MappingField] = {
    "profiles_table": MappingField("Profiles table", None, "table"),
    "profile_id": MappingField("Profile id", "profiles_table", "id"),
    "profile_created_at": MappingField("Profile created at", "profiles_table", "time", True),
    "orders_table": MappingField("Orders table", None, "table"),
    "order_profile_id": MappingField("Order profile id", "orders_table", "id"),
    "order_timestamp": MappingField("Order timestamp", "orders_table", "time"),
    "order_revenue": MappingField("Order revenue", "orders_table", "number"),
    "tracks_table": MappingField("Tracks table", None, "table", True),
    "track_profile_id": MappingField("Track profile id", "tracks_table", "id"),
    "track_timestamp": MappingField("Track timestamp", "tracks_table", "time"),
    "track_event": MappingField("Track event name", "tracks_table", "any", True),
    "pages_table": MappingField("Pages table", None, "table", True),
    "page_profile_id": MappingField("Page profile id", "pages_table", "id"),
    "page_timestamp": MappingField("Page timestamp", "pages_table", "time"),
}

ESTIMATOR_LABELS = {
    "auto": "auto: every candidate, the best on a validation window wins",
    "gbm": "gradient boosting (HistGradientBoosting)",
    "gbm_small": "gradient boosting, shallow (small data)",
    "logistic": "logistic regression (baseline)",
    "poisson": "Poisson GLM (baseline)",
    "tweedie": "Tweedie GLM",
    "bgnbd": "BG/NBD on the feature table",
    "mbgnbd": "modified BG/NBD on the feature table",
    "pnbd": "Pareto/NBD on the feature table",
    "blend": "blend: the best of each family, averaged",
    "btyd": "BG/NBD + Gamma-Gamma (buy-till-you-die)",
}


@dataclass(frozen=True)
class MappingProposal:
    """The mapping a form starts from: field -> table or column (None: not mapped), where it
    came from, a reason per field, and what could not be found."""

    values: dict[str, str | None]
    source: Literal["project", "guess", "none"]
    reasons: dict[str, str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()


def propose_mapping(wh: Warehouse, /, *, saved: TableMapping | None = None) -> MappingProposal:
    """The project's mapping for ``wh`` when one was saved and still fits it, else a guess from
    names, types and counts (:func:`~sqltraits_kit.modelling.mapping_guess.guess_mapping`)."""
    if saved is not None:
        problems = check_mapping(wh, saved.to_dict())[1]
        if not problems:
            reasons = dict.fromkeys(MAPPING_FIELDS, "saved in the project file")
            return MappingProposal(saved.to_dict(), "project", reasons)
    guess = guess_mapping(wh)
    if guess.mapping is None:
        empty: dict[str, str | None] = dict.fromkeys(MAPPING_FIELDS)
        return MappingProposal(empty, "none", {}, guess.problems)
    return MappingProposal(guess.mapping.to_dict(), "guess", dict(guess.reasons), guess.problems)


def _fits(dtype: Any, role: Role) -> bool:
    if role == "time":
        return dtype.is_timestamp() or dtype.is_date()
    if role == "number":
        return dtype.is_numeric() and not dtype.is_boolean()
    if role == "id":
        return dtype.is_string() or dtype.is_integer()
    return True


def column_choices(wh: Warehouse, table: str, role: Role, /) -> list[str]:
    """The columns of ``table`` that can fill a field of this role (a timestamp for a time, a
    number for revenue, a text or integer column for an id), in table order."""
    schema = wh.table(table).schema()
    return [name for name, dtype in schema.items() if _fits(dtype, role)]


def check_mapping(
    wh: Warehouse, values: Mapping[str, str | None], /
) -> tuple[TableMapping | None, list[str]]:
    """(the mapping, []) when ``values`` is usable on ``wh``; else (None, what is wrong).

    Usable: every required field is set, each table and column exists, and times are
    timestamps, revenue is numeric (:meth:`TableMapping.validate`).
    """
    problems = [
        f"{spec.label}: choose one"
        for name, spec in MAPPING_FIELDS.items()
        if not spec.optional
        and not values.get(name)
        and (spec.table_field is None or values.get(spec.table_field))
    ]
    if problems:
        return None, problems
    clean: dict[str, str | None] = {}
    for name, spec in MAPPING_FIELDS.items():
        if spec.table_field is not None and not values.get(spec.table_field):
            continue  # a column of a table that is not mapped: moot
        if values.get(name) or spec.optional:
            clean[name] = values.get(name) or None
    try:
        mapping = TableMapping.from_dict(clean)
        mapping.validate(wh)
    except SqlTraitsError as exc:
        return None, [str(exc)]
    return mapping, []


# --------------------------------------------------------------------------- the guided path


@dataclass(frozen=True)
class NeededModel:
    """A model a trait set scores: its registry name, what to train it as, the columns of the
    trait set it provides, and the saved version that does (None: train it)."""

    name: str
    kind: str  # churn | ltv | btyd
    estimator: str  # what the guided path trains it with
    columns: tuple[str, ...]
    horizon_days: int | None = None  # when a column names one (churn_probability_180d)
    saved: ModelCard | None = None
    missing: tuple[str, ...] = ()  # columns the saved version does not write
    # what a missing column became: the trait set, not the model, needs an edit
    renamed: tuple[str, ...] = ()

    @property
    def ready(self) -> bool:
        return self.saved is not None and not self.missing

    @property
    def train_kind(self) -> str:
        """The Train page's "Predict" choice for it (the BTYD pair is trained as an LTV model)."""
        return "ltv" if self.kind == "btyd" else self.kind


def _kind_of_name(name: str, card: ModelCard | None) -> str | None:
    if card is not None:
        return card.kind
    low = name.lower()
    return next((kind for kind in ("btyd", "ltv", "churn") if kind in low), None)


def _horizons(
    by_kind: dict[str, list[str]], kinds: dict[str, str], latest: dict[str, ModelCard]
) -> dict[str, int | None]:
    """The horizon each model serves, when the columns name one. Several models of one kind (a
    90-day and a 180-day churn model) split the horizons: a saved model takes its card's, the
    others those left, in the trait set's order."""
    out: dict[str, int | None] = {}
    for kind, columns in by_kind.items():
        horizons = list(dict.fromkeys(d for c in columns if (d := column_model(c)[1]) is not None))
        names = [n for n, k in kinds.items() if k == kind]
        if len(names) < 2:
            out.update({n: (horizons[-1] if horizons else None) for n in names})
            continue
        out.update({n: int(latest[n].horizon_days) for n in names if n in latest})
        free = iter([h for h in horizons if h not in out.values()])
        out.update({n: next(free, None) for n in names if n not in latest})
    return out


def needed_models(trait_set: TraitSet, cards: Iterable[ModelCard], /) -> list[NeededModel]:
    """The models ``trait_set`` needs (its ``[model]`` names), each with the saved card that
    serves it and the columns that card does not write.

    The kind of each model comes from its saved card, else from its name, else from the columns
    the trait set reads, named from the model and its horizon (:func:`column_model`:
    ``churn_probability_180d`` a 180-day churn model, ``predicted_ltv_90d`` a 90-day LTV model,
    ``p_alive`` / ``expected_purchases_90d`` the BG/NBD pair). A column named as before the
    horizon (``churn_probability``) is missing from every model, with a note in ``renamed``
    saying what the saved model writes instead.
    """
    latest: dict[str, ModelCard] = {}
    for card in cards:
        if card.name not in latest or card.version > latest[card.name].version:
            latest[card.name] = card
    needed_columns = list(
        dict.fromkeys([*trait_set.traits, *(d.column for d in trait_set.derived)])
    )
    by_kind: dict[str, list[str]] = {}
    for column in needed_columns:
        kind, _ = column_model(column)
        if kind is not None:
            by_kind.setdefault(kind, []).append(column)
    names = model_names(trait_set)
    kinds: dict[str, str] = {}
    for name in names:
        kind = _kind_of_name(name, latest.get(name))
        if kind is not None:
            kinds[name] = kind
    for name in names:  # names that say nothing take the kinds still unclaimed, in order
        if name not in kinds:
            free = [k for k in by_kind if k not in kinds.values()]
            if free:
                kinds[name] = free[0]
    horizon = _horizons(by_kind, kinds, latest)
    out = []
    for name in names:
        kind = kinds.get(name)
        if kind is None:
            continue
        card = latest.get(name)
        days = horizon.get(name)
        columns = tuple(by_kind.get(kind, ()))
        if sum(k == kind for k in kinds.values()) > 1:  # each takes its own horizon's columns
            columns = tuple(c for c in columns if column_model(c)[1] in (None, days))
        missing: tuple[str, ...] = ()
        renamed: tuple[str, ...] = ()
        if card is not None:
            written = trait_columns(card)
            missing = tuple(c for c in columns if c not in written)
            # a name from before the horizon: an edit of the trait set, not another model
            old = [c for c in missing if c in LEGACY_COLUMNS]
            renamed = tuple(renamed_columns(old, columns=written))
        out.append(
            NeededModel(
                name=name,
                kind=kind,
                estimator="btyd" if kind == "btyd" else "auto",
                columns=columns,
                horizon_days=days,
                saved=card,
                missing=missing,
                renamed=renamed,
            )
        )
    return out
