"""What a model artifact may contain: the trusted types, read from the skops schema unloaded."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from typing import Any

from sqltraits_kit.errors import ModelLoadError

#: Every type a model artifact may contain: the candidates :mod:`sqltraits_kit.modelling.estimators`
#: builds (logistic / Poisson / Tweedie GLMs with an arcsinh + clipping + scaling front,
#: histogram gradient boosting, BTYD on features, blends of those) and the containers and numpy
#: values inside them. Anything else is refused at load time.
TRUSTED_TYPES: tuple[str, ...] = (
    "builtins.bool",
    "builtins.dict",
    "builtins.float",
    "builtins.int",
    "builtins.list",
    "builtins.NoneType",
    "builtins.str",
    "builtins.tuple",
    "numpy.arcsinh",
    "numpy.bool_",
    "numpy.dtype",
    "numpy.float32",
    "numpy.float64",
    "numpy.int32",
    "numpy.int64",
    "numpy.ndarray",
    "numpy.random._generator.Generator",
    "numpy.random._mt19937.MT19937",
    "numpy.random._pcg64.PCG64",
    "numpy.random.mtrand.RandomState",
    "numpy.uint8",
    "numpy.uint32",
    "numpy.uint64",
    "sklearn._loss._loss.CyHalfBinomialLoss",
    "sklearn._loss._loss.CyHalfPoissonLoss",
    "sklearn._loss._loss.CyHalfTweedieLoss",
    "sklearn._loss.link.Interval",
    "sklearn._loss.link.LogitLink",
    "sklearn._loss.link.LogLink",
    "sklearn._loss.loss.HalfBinomialLoss",
    "sklearn._loss.loss.HalfPoissonLoss",
    "sklearn._loss.loss.HalfTweedieLoss",
    "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
    "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.linear_model._glm.glm.PoissonRegressor",
    "sklearn.linear_model._glm.glm.TweedieRegressor",
    "sklearn.linear_model._logistic.LogisticRegression",
    "sklearn.pipeline.Pipeline",
    "sklearn.preprocessing._data.MinMaxScaler",
    "sklearn.preprocessing._data.StandardScaler",
    "sklearn.preprocessing._function_transformer.FunctionTransformer",
    "sklearn.preprocessing._label.LabelEncoder",
    # Reviewed for models registered from outside (Registry.register): forests and single trees
    # (their node arrays are checked by integrity.check_structure), plain linear regressors, the
    # imputer.
    "sklearn.ensemble._forest.ExtraTreesClassifier",
    "sklearn.ensemble._forest.ExtraTreesRegressor",
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.ensemble._forest.RandomForestRegressor",
    "sklearn.impute._base.SimpleImputer",
    "sklearn.linear_model._base.LinearRegression",
    "sklearn.linear_model._ridge.Ridge",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._classes.DecisionTreeRegressor",
    "sklearn.tree._classes.ExtraTreeClassifier",
    "sklearn.tree._classes.ExtraTreeRegressor",
    "sklearn.tree._tree.Tree",
    # The kit's own candidates (modelling/estimators.py): plain attributes, fitted parameters
    # as dicts of floats, members that are themselves checked type by type.
    "sqltraits_kit.modelling.estimators.Blend",
    "sqltraits_kit.modelling.estimators.BtydOnFeatures",
)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def artifact_types(data: bytes) -> set[str]:
    """Every ``module.Class`` a skops artifact names, read from its schema without loading it."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ModelLoadError(f"not a skops artifact: {type(exc).__name__}: {exc}") from None
    found: set[str] = set()
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            module, cls = node.get("__module__"), node.get("__class__")
            if isinstance(module, str) and isinstance(cls, str):
                found.add(f"{module}.{cls}")
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return found


def check_types(data: bytes, where: str, *, action: str = "loaded") -> None:
    import skops.io as sio

    untrusted = sorted(artifact_types(data) - set(TRUSTED_TYPES))
    try:
        untrusted += [t for t in sio.get_untrusted_types(data=data) if t not in TRUSTED_TYPES]
    except Exception as exc:
        raise ModelLoadError(f"{where}: cannot audit the artifact: {exc}") from None
    if untrusted:
        raise ModelLoadError(
            f"{where} contains types that are not on the trusted list and was not {action}: "
            f"{', '.join(sorted(set(untrusted)))}"
        )
