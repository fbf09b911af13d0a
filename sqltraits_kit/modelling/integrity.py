"""Checks that make a loaded model safe to score with: its features, and its trees' structure.

The registry already refuses artifacts with untrusted types; trusted types can still hold
wrong values. Two kinds matter:

- **Feature order.** A model takes its columns by position. The card's ``features`` list is
  what scoring selects from the warehouse; a card edited to list them in another order would
  give every profile a wrong score. The fitted model knows its own columns
  (``feature_names_in_``): scoring follows them, and a card that lists another set is refused.
- **Tree structure.** scikit-learn's tree predictors are compiled code that follows the node
  arrays without bounds checks: a child index or feature index out of range (an artifact edited
  and its checksum recomputed) reads or writes outside the arrays and can crash the process,
  which in the app is the server of every user. :func:`check_structure` walks every tree before
  the first prediction and refuses what a fitted tree can never look like.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from sqltraits_kit.errors import ModelLoadError

__all__ = ["check_structure", "expected_features"]

_TREE_LEAF = -1  # sklearn.tree._tree.TREE_LEAF


def expected_features(model: Any, card: Any) -> list[str]:
    """The feature columns in the order ``model`` takes them, checked against ``card``.

    A card listing the same names in another order is followed by name (the model's order);
    a card listing other names, or a duplicate, is a :class:`ModelLoadError`. A model fitted
    without column names only has a count to check: then the card's order is the one used.
    """
    ref = getattr(card, "ref", "model")
    listed = [str(f) for f in card.features]
    duplicates = sorted({f for f in listed if listed.count(f) > 1})
    if duplicates:
        raise ModelLoadError(f"model {ref}: its card lists {', '.join(duplicates)} twice")
    fitted = getattr(model, "feature_names_in_", None)
    if fitted is None:
        count = getattr(model, "n_features_in_", None)
        if count is not None and int(count) != len(listed):
            raise ModelLoadError(
                f"model {ref} takes {int(count)} features, its card lists {len(listed)}; "
                "it was not scored"
            )
        return listed
    names = [str(f) for f in fitted]
    if set(names) != set(listed) or len(names) != len(listed):
        missing = sorted(set(names) - set(listed))
        extra = sorted(set(listed) - set(names))
        parts = []
        if missing:
            parts.append(f"the model needs {', '.join(missing)}, which the card does not list")
        if extra:
            parts.append(f"the card lists {', '.join(extra)}, which the model was not fitted on")
        raise ModelLoadError(
            f"model {ref}: its card does not match the fitted model ({'; '.join(parts)}); "
            "it was edited or belongs to another model, and was not scored"
        )
    return names


def check_structure(model: Any, ref: str) -> None:
    """Refuse a model whose trees could make the compiled predictors leave their arrays."""
    for where, estimator in _estimators(model, ref):
        n_features = _n_features(estimator, where)
        if hasattr(estimator, "_predictors"):
            _check_hist_gradient_boosting(estimator, where, n_features)
        tree = getattr(estimator, "tree_", None)
        if tree is not None:
            _check_tree(tree, where, n_features)


def _estimators(model: Any, ref: str) -> Iterator[tuple[str, Any]]:
    """Every estimator inside ``model``: pipeline steps, ensembles' members, then itself."""
    stack: list[tuple[str, Any]] = [(f"model {ref}", model)]
    while stack:
        where, est = stack.pop()
        steps = getattr(est, "steps", None)
        if isinstance(steps, list):
            for name, step in steps:
                stack.append((f"{where}, step {name!r}", step))
            continue
        members = getattr(est, "estimators_", None)
        if members is not None and not isinstance(members, str):
            flat = np.asarray(members, dtype=object).ravel()
            for i, member in enumerate(flat):
                stack.append((f"{where}, estimator {i}", member))
        yield where, est


def _n_features(estimator: Any, where: str) -> int | None:
    count = getattr(estimator, "n_features_in_", None)
    if count is None:
        return None
    if not isinstance(count, int | np.integer) or int(count) < 1:
        raise ModelLoadError(f"{where}: n_features_in_ is {count!r}, not a positive count")
    return int(count)


def _refuse(where: str, what: str) -> ModelLoadError:
    return ModelLoadError(
        f"{where}: {what}. A fitted model never looks like this: the artifact was edited, and "
        "it was not scored"
    )


def _check_hist_gradient_boosting(est: Any, where: str, n_features: int | None) -> None:
    from sklearn.ensemble._hist_gradient_boosting.common import PREDICTOR_RECORD_DTYPE

    if n_features is None:
        raise _refuse(where, "the gradient-boosting model does not say how many features it takes")
    # Categorical splits index bitsets built from the bin mapper's values; the kit's models have
    # none, so any is refused rather than checked.
    for owner in (est, getattr(est, "_bin_mapper", None)):
        flags = getattr(owner, "is_categorical_", None)
        if flags is not None and np.asarray(flags, dtype=bool).any():
            raise _refuse(where, "it has categorical features, which the kit never trains")
    predictors = getattr(est, "_predictors", None)
    per_iteration = getattr(est, "n_trees_per_iteration_", None)
    if not isinstance(predictors, list) or not isinstance(per_iteration, int | np.integer):
        raise _refuse(where, "its trees are not a list of iterations")
    for i, trees in enumerate(predictors):
        if not isinstance(trees, list) or len(trees) != int(per_iteration):
            raise _refuse(where, f"iteration {i} does not hold {per_iteration} tree(s)")
        for k, predictor in enumerate(trees):
            nodes = getattr(predictor, "nodes", None)
            tree = f"tree {i}.{k}"
            if not isinstance(nodes, np.ndarray) or nodes.dtype != PREDICTOR_RECORD_DTYPE:
                raise _refuse(where, f"{tree} has no node array of the predictor's layout")
            if nodes.ndim != 1 or len(nodes) == 0:
                raise _refuse(where, f"{tree} has {nodes.shape} nodes")
            inner = nodes["is_leaf"] == 0
            if (nodes["is_categorical"][inner] != 0).any():
                raise _refuse(where, f"{tree} has a categorical split")
            _check_nodes(
                f"{where}, {tree}",
                inner=inner,
                left=nodes["left"].astype(np.int64),
                right=nodes["right"].astype(np.int64),
                feature=nodes["feature_idx"].astype(np.int64),
                n_features=n_features,
            )


def _check_tree(tree: Any, where: str, n_features: int | None) -> None:
    """A DecisionTree's ``tree_`` (also inside GradientBoosting and forests)."""
    try:
        left = np.asarray(tree.children_left, dtype=np.int64)
        right = np.asarray(tree.children_right, dtype=np.int64)
        feature = np.asarray(tree.feature, dtype=np.int64)
        count = int(tree.node_count)
    except (AttributeError, TypeError, ValueError) as exc:
        raise _refuse(where, f"its tree arrays are unreadable ({exc})") from None
    if n_features is None:
        n_features = int(getattr(tree, "n_features", 0)) or None
    if n_features is None:
        raise _refuse(where, "the tree does not say how many features it takes")
    if count < 1 or not len(left) == len(right) == len(feature) == count:
        raise _refuse(where, f"its tree arrays do not all hold node_count={count} nodes")
    inner = left != _TREE_LEAF
    if (inner != (right != _TREE_LEAF)).any():
        raise _refuse(where, "a node has one child")
    _check_nodes(where, inner=inner, left=left, right=right, feature=feature, n_features=n_features)


def _check_nodes(
    where: str,
    *,
    inner: np.ndarray,
    left: np.ndarray,
    right: np.ndarray,
    feature: np.ndarray,
    n_features: int,
) -> None:
    """Children and features in range, and a tree: from the root, every node reached once."""
    n = len(inner)
    bad_feature = np.flatnonzero(inner & ((feature < 0) | (feature >= n_features)))
    if bad_feature.size:
        i = int(bad_feature[0])
        raise _refuse(where, f"node {i} splits on feature {feature[i]} of {n_features}")
    for name, child in (("left", left), ("right", right)):
        bad = np.flatnonzero(inner & ((child < 1) | (child >= n)))
        if bad.size:
            i = int(bad[0])
            raise _refuse(where, f"node {i} has {name} child {child[i]} (the tree has {n} nodes)")
    seen = np.zeros(n, dtype=bool)
    seen[0] = True
    frontier = np.array([0])
    while frontier.size:  # one step per level: a cycle or a shared node shows as a second visit
        parents = frontier[inner[frontier]]
        children = np.concatenate([left[parents], right[parents]])
        if seen[children].any() or np.unique(children).size != children.size:
            raise _refuse(where, "its nodes do not form a tree (a node is reached twice)")
        seen[children] = True
        frontier = children
