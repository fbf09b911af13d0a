"""Train: churn or LTV models on the warehouse tables, judged out of time beside a reference."""

from __future__ import annotations

import json
import tomllib

import pandas as pd
import streamlit as st

import app_state
from sqltraits_kit.errors import ConfigError, SqlTraitsError
from sqltraits_kit.modelling import charts
from sqltraits_kit.modelling.baselines import BASELINES
from sqltraits_kit.modelling.feature_spec import FeatureSpec
from sqltraits_kit.modelling.features import TableMapping
from sqltraits_kit.modelling.registry import Registry
from sqltraits_kit.modelling.training import ESTIMATORS, default_cutoff, save_result, train_model
from sqltraits_kit.warehouse import Warehouse

ESTIMATOR_LABELS = {
    "auto": "auto: every candidate, the best on a validation window wins",
    "gbm": "gradient boosting (HistGradientBoosting)",
    "gbm_small": "gradient boosting, shallow (small data)",
    "logistic": "logistic regression (baseline)",
    "poisson": "Poisson GLM (baseline)",
    "tweedie": "Tweedie GLM",
    "bgnbd": "BG/NBD on the feature table",
    "mbgnbd": "modified BG/NBD on the feature table",
    "blend": "blend: the best of each family, averaged",
    "btyd": "BG/NBD + Gamma-Gamma (buy-till-you-die)",
}
MAPPING_FIELDS = {
    "profiles_table": ("Profiles table", None),
    "profile_id": ("Profile id", "profiles_table"),
    "profile_created_at": ("Profile created at", "profiles_table"),
    "orders_table": ("Orders table", None),
    "order_profile_id": ("Order profile id", "orders_table"),
    "order_timestamp": ("Order timestamp", "orders_table"),
    "order_revenue": ("Order revenue", "orders_table"),
    "tracks_table": ("Tracks table", None),
    "track_profile_id": ("Track profile id", "tracks_table"),
    "track_timestamp": ("Track timestamp", "tracks_table"),
    "track_event": ("Track event name", "tracks_table"),
    "pages_table": ("Pages table", None),
    "page_profile_id": ("Page profile id", "pages_table"),
    "page_timestamp": ("Page timestamp", "pages_table"),
}
OPTIONAL = ("profile_created_at", "tracks_table", "track_event", "pages_table")
NONE = "(none)"


@st.cache_data(ttl=300, show_spinner="Finding the latest cutoff in the warehouse…")
def latest_cutoff(url: str, _wh: Warehouse, mapping_json: str, horizon_days: int) -> str:
    mapping = TableMapping.from_dict(json.loads(mapping_json))
    return default_cutoff(_wh, mapping, horizon_days=horizon_days).isoformat()


@st.cache_data(ttl=300, show_spinner=False)
def columns_of(url: str, _wh: Warehouse, table: str) -> list[str]:
    return [name for name, _type in _wh.describe(table)]


def mapping_editor(wh: Warehouse) -> TableMapping:
    """Selectboxes for every mapped table and column, starting from the defaults."""
    defaults = TableMapping().to_dict()
    tables = wh.tables()
    chosen: dict[str, str | None] = {}
    left, right = st.columns(2)
    for i, (field, (label, table_field)) in enumerate(MAPPING_FIELDS.items()):
        with left if i % 2 == 0 else right:
            if table_field is None:
                options = tables
            else:
                table = chosen.get(table_field)
                if table is None:
                    continue  # no such table mapped: its columns are moot
                options = columns_of(wh.url, wh, table)
            if field in OPTIONAL:
                options = [NONE, *options]
            default = defaults[field] if defaults[field] in options else options[0]
            value = st.selectbox(
                label,
                options,
                index=options.index(default),
                key=f"train_map_{field}",
                persist_state="session",
            )
            chosen[field] = None if value == NONE else value
    return TableMapping.from_dict(chosen)


SPEC_EXAMPLE = """replace = false

[[aggregate]]
name = "searches_30d"
table = "tracks"
function = "count"
window_days = 30
where = { event = "Products Searched" }

[[attribute]]
name = "plan"
column = "plan"
categories = ["pro", "enterprise"]
"""


def parse_spec(text: str) -> FeatureSpec | None:
    """The spec typed in the editor, or None when it is empty (a bad one is a ConfigError)."""
    if not text.strip():
        return None
    try:
        return FeatureSpec.from_dict(tomllib.loads(text))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"feature spec: {exc}") from None


def save(registry: Registry) -> None:
    """Button callback: runs before the page, so the page already shows the saved state."""
    try:
        st.session_state["train_result"] = save_result(st.session_state["train_result"], registry)
    except SqlTraitsError as exc:
        st.session_state["train_flash"] = ("error", str(exc))


def activate(registry: Registry, by_ref: dict) -> None:
    """Button callback: the versions table drawn after it shows the new active version."""
    card = by_ref[st.session_state["train_activate_ref"]]
    try:
        registry.set_active(card.name, card.version)
    except SqlTraitsError as exc:
        st.session_state["train_flash"] = ("error", str(exc))
    else:
        message = f"{card.ref} is now the active {card.name!r} model"
        st.session_state["train_flash"] = ("success", message)


def save_section(result, registry: Registry) -> None:
    """The next step after training, right under the result's title (not below the charts)."""
    if result.saved:
        st.success(
            f"Saved as {result.card.ref} in `{registry.root}`.", icon=":material/check_circle:"
        )
        app_state.page_link("pages/score.py", "Score profiles with it", ":material/target:")
    else:
        left, right = st.columns([1, 3], vertical_alignment="center")
        left.button(
            "Save to the registry",
            type="primary",
            key="train_save",
            on_click=save,
            args=(registry,),
            icon=":material/save:",
        )
        right.caption(
            f"Not saved yet: the Score page only sees saved models. Saves as the next version "
            f"of **{result.card.name}**."
        )


def show_result(result, registry: Registry) -> None:
    card = result.card
    st.subheader(f"{card.kind} model · {card.estimator}")
    st.caption(
        f"Trained on {card.training_rows:,} profiles at cutoff {card.cutoff}; tested out of time "
        f"on {card.test_rows:,} profiles at {card.test_cutoff} (horizon {card.horizon_days} days)"
        f" · {result.seconds:.1f} s"
    )
    save_section(result, registry)
    for warning in card.warnings or []:
        st.warning(warning, icon=":material/warning:")
    table = charts.metrics_table(result.metrics, card.comparison)
    has_reference = any(k.startswith("reference_") for k in result.metrics)
    if not has_reference:
        table = table.drop(columns="reference")
    st.dataframe(table, hide_index=True, key="train_metrics")
    st.caption(
        "Best baseline: the best of the naive rules on the same test rows ("
        + "; ".join(
            f"{name}: {what}"
            for kind in (("churn", "ltv") if card.kind == "btyd" else (card.kind,))
            for name, what in BASELINES[kind].items()
            if name in (card.baselines or {})
        )
        + ")."
    )
    if has_reference:
        st.caption(
            "Reference: BG/NBD and Gamma-Gamma with the sample's true population parameters, "
            "fed each customer's order history — the best achievable from orders alone."
        )
    else:
        st.caption("No reference predictor: this warehouse has no `sample_truth` table.")
    if card.selection:
        sel = card.selection
        st.caption(
            f"Champion **{sel['champion']}**: {sel['reason']} (validated at "
            f"{sel['validation_cutoff']} on models fitted before it; the test window was not "
            "used to choose)."
        )
        st.dataframe(charts.candidates_table(sel), hide_index=True, key="train_candidates")
    if card.feature_spec:
        spec = FeatureSpec.from_dict(card.feature_spec)
        st.caption(
            f"Own features ({'instead of' if spec.replace else 'beside'} the built-in set): "
            f"{', '.join(spec.columns())}."
        )
    if card.refit:
        st.caption(
            f"Tested as fitted on {', '.join(card.training_cutoffs or [card.cutoff])}; the model "
            f"saved is refit on {', '.join(card.refit['cutoffs'])} "
            f"({card.refit['training_rows']:,} rows), the latest complete window."
        )
    if card.params:
        unit = {"W": "weeks", "D": "days", "M": "months"}.get(card.params.get("time_unit"), "")
        st.caption(f"Fitted parameters{f' (time in {unit})' if unit else ''}:")
        fitted = [
            {"model": model, "parameter": name, "value": f"{value:.4g}"}
            for model, values in card.params.items()
            if isinstance(values, dict)
            for name, value in values.items()
        ]
        st.dataframe(pd.DataFrame(fitted), hide_index=True, key="train_params")
    figures = charts.evaluation_figures(card.kind, result.tables)
    names = list(figures)
    for start in range(0, len(names), 2):
        cols = st.columns(2)
        for col, name in zip(cols, names[start : start + 2], strict=False):
            with col:
                st.plotly_chart(figures[name], key=f"train_chart_{name}")
    for note in card.notes:
        st.caption(f"Note: {note}")


def versions_section(registry: Registry) -> None:
    st.subheader("Saved versions")
    cards = registry.list()
    if not cards:
        st.info(f"No saved models in `{registry.root}` yet.")
        return
    active = {name: registry.active(name) for name in {c.name for c in cards}}
    rows = []
    for c in cards:
        current = active[c.name]
        rows.append(
            {
                "model": c.ref,
                "active": current is not None and current.version == c.version,
                "kind": c.kind,
                "estimator": c.estimator,
                "cutoff": c.cutoff,
                "horizon": c.horizon_days,
                "auc": c.metrics.get("auc"),
                "gini": c.metrics.get("gini"),
                "training rows": c.training_rows,
                "created": c.created_at,
            }
        )
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="train_versions")
    st.caption(
        "The Score page and trait sets use a model's active version, or its latest when none "
        "is marked active."
    )
    refs = [c.ref for c in cards]
    by_ref = {c.ref: c for c in cards}

    left, right = st.columns(2)
    with left:
        st.selectbox("Score with", refs, key="train_activate_ref", persist_state="session")
        st.button(
            "Mark as active", key="train_activate", on_click=activate, args=(registry, by_ref)
        )
    if len(refs) < 2:
        right.caption("Save a second version to compare two side by side.")
        return
    with right:
        a = st.selectbox("Compare", refs, index=0, key="train_compare_a", persist_state="session")
        rest = [r for r in refs if r != a]
        b = st.selectbox("with", rest, index=0, key="train_compare_b", persist_state="session")
    ca, cb = by_ref[a], by_ref[b]
    keys = [k for k in dict.fromkeys([*ca.metrics, *cb.metrics]) if not k.endswith("_rows")]
    compare = pd.DataFrame(
        {
            "": ["estimator", "cutoff", "horizon", "features", "training rows", *keys],
            a: [ca.estimator, ca.cutoff, ca.horizon_days, len(ca.features), ca.training_rows]
            + [ca.metrics.get(k) for k in keys],
            b: [cb.estimator, cb.cutoff, cb.horizon_days, len(cb.features), cb.training_rows]
            + [cb.metrics.get(k) for k in keys],
        }
    )
    for column in (a, b):
        compare[column] = compare[column].map(_cell)
    st.dataframe(compare, hide_index=True, key="train_compare")


def _cell(value) -> str:
    """Metrics to 4 significant digits; a missing one as a dash, not 'None'."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) else str(value)


st.title("Train")
st.caption(
    "Features are computed in the warehouse as of a cutoff; labels look at the horizon after it. "
    "Every model is tested on a later cutoff, never on a random split across time."
)

with app_state.user_errors():
    wh = app_state.warehouse()
    settings = app_state.settings()
    registry = Registry(settings.models_dir, signing_key=settings.model_signing_key)

    kind = st.radio(
        "Predict", ["churn", "ltv"], horizontal=True, key="train_kind", persist_state="session"
    )
    estimators = list(ESTIMATORS[kind])
    estimator = st.selectbox(
        "Estimator",
        estimators,
        format_func=lambda e: ESTIMATOR_LABELS.get(e, e),
        key=f"train_estimator_{kind}",
        persist_state="session",
    )
    left, right = st.columns(2)
    with left:
        horizon = int(
            st.number_input(
                "Horizon (days)", 7, 730, 90, step=1, key="train_horizon", persist_state="session"
            )
        )
        churn_on = "orders"
        if kind == "churn":
            churn_on = st.radio(
                "Churned means no…",
                ["orders", "activity"],
                format_func=lambda v: "order" if v == "orders" else "activity at all",
                horizontal=True,
                key="train_churn_on",
                persist_state="session",
            )
    with st.expander("Table mapping", expanded=False):
        mapping = mapping_editor(wh)
    with st.expander("Your own features (feature spec)", expanded=False):
        spec_text = st.text_area(
            "Feature spec (TOML)",
            value="",
            height=200,
            placeholder=SPEC_EXAMPLE,
            key="train_feature_spec",
            persist_state="session",
            help="Aggregates over any event table and profile attributes, added to the "
            "built-in features (replace = true: instead of them). Empty: the built-in set.",
        )
        feature_spec = parse_spec(spec_text)
        if feature_spec is not None:
            st.caption(f"Adds {', '.join(feature_spec.columns())}.")
    with right:
        latest = latest_cutoff(wh.url, wh, json.dumps(mapping.to_dict()), horizon)
        auto = st.toggle(
            "Latest possible cutoff", value=True, key="train_auto_cutoff", persist_state="session"
        )
        cutoff = latest
        if auto:
            st.caption(f"Cutoff {latest}: the latest whose out-of-time test labels are complete.")
        else:
            cutoff = st.date_input(
                "Training cutoff",
                value=pd.Timestamp(latest).date(),
                key="train_cutoff",
                persist_state="session",
            ).isoformat()
        # The BG/NBD pair gets its own name: trait sets score it beside the churn or LTV model
        # ("also = ['btyd']"), and saved as "churn" it would become that model's next version.
        name = st.text_input(
            "Save as",
            value="btyd" if estimator == "btyd" else kind,
            key=f"train_name_{kind}_{estimator}",
            persist_state="session",
            help="The registry name: a new version of it is saved. Trait sets refer to models "
            "by this name (traitsets/churn.toml scores 'churn' and 'btyd').",
        )

    if st.button("Train", type="primary", key="train_run", icon=":material/model_training:"):
        with st.status("Training…", expanded=True) as status:
            bar = st.progress(0.0)

            def progress(message: str, fraction: float) -> None:
                bar.progress(min(max(fraction, 0.0), 1.0), text=message)

            try:
                st.session_state["train_result"] = train_model(
                    wh,
                    kind=kind,
                    mapping=mapping,
                    cutoff=cutoff,
                    horizon_days=horizon,
                    estimator=estimator,
                    name=name.strip() or kind,
                    churn_on=churn_on,
                    feature_spec=feature_spec,
                    progress=progress,
                )
                status.update(label="Trained", state="complete", expanded=False)
            except SqlTraitsError:
                status.update(label="Training failed", state="error")
                raise

    flash = st.session_state.pop("train_flash", None)
    if flash is not None and flash[0] == "error":
        st.error(flash[1], icon=":material/error:")
    result = st.session_state.get("train_result")
    if result is not None:
        show_result(result, registry)
        with st.expander("Model card"):
            st.json(result.card.to_dict())

    st.divider()
    if flash is not None and flash[0] == "success":
        st.success(flash[1], icon=":material/check_circle:")
    versions_section(registry)
