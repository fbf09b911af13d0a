"""Score: every profile with saved model versions, as of a date, into the output table.

The panels are :mod:`app_views.score`'s; the rules (which table may be written, what a trait set
needs from it) are the library's.
"""

from __future__ import annotations

import streamlit as st

import app_state
from app_views import score as view
from sqltraits_kit.modelling.registry import Registry

st.title("Score")
st.caption(
    "Score every profile with saved models and write one row per profile to the output "
    "production table. Linear models and BG/NBD run inside the warehouse once a parity check "
    "against scikit-learn passes; other models stream the features through the model in batches."
)

wh = app_state.warehouse()
settings = app_state.settings()
registry = Registry(settings.models_dir, signing_key=settings.model_signing_key)
with app_state.user_errors():
    cards = view.usable_cards(wh, registry)
    sets = app_state.trait_sets(wh, scored_only=True)
    picked = view.pick_models(registry, cards, sets)
    as_of, target, method, id_column = view.run_options(wh, picked, sets)
    blocked = view.check_target(wh, target, picked, sets)

    if st.button(
        "Score",
        type="primary",
        disabled=not picked or blocked,
        key="score_run",
        icon=":material/target:",
    ):
        view.run_score(
            wh,
            registry,
            [card.ref for card in picked],
            table=target,
            as_of=as_of,
            id_column=id_column,
            method=method,
        )

    done = st.session_state.get("score_result")
    if done:
        view.show_result(wh, done)
