"""A versioned model registry in a folder: skops artifacts plus a JSON model card per version.

Layout::

    models/<name>/v<version>/card.json     # the model card (always)
    models/<name>/v<version>/model.skops   # the fitted scikit-learn pipeline (not for BTYD)
    models/<name>/ACTIVE                   # the version to score with

Artifacts are written with skops, never pickle, and loaded only after three checks: the file's
SHA-256 matches the card, every type named anywhere in the artifact is on :data:`TRUSTED_TYPES`
(an explicit list, no blanket ``trusted=True``), and skops' own audit passes with that list. A
file that fails any check is refused with :class:`~sqltraits_kit.errors.ModelLoadError` and never
deserialised. Once deserialised, the trees' node arrays and the card's feature list are checked
(:mod:`sqltraits_kit.modelling.integrity`) before anything predicts with them. BTYD models
need no artifact: their fitted parameters live in the card.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import io
import json
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqltraits_kit.errors import ConfigError, ModelLoadError
from sqltraits_kit.modelling import signing
from sqltraits_kit.modelling.integrity import check_structure, expected_features

__all__ = [
    "KINDS",
    "TRUSTED_TYPES",
    "LoadedModel",
    "ModelCard",
    "Registry",
    "artifact_types",
    "parse_ref",
]

KINDS = ("churn", "ltv", "btyd")
_CARD = "card.json"
_ARTIFACT = "model.skops"
_ACTIVE = "ACTIVE"
_OPTIONAL_KEYS = (
    "training_cutoffs",
    "baselines",
    "comparison",
    "warnings",
    "selection",
    "refit",
    "origin",
    "feature_spec",
)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

#: Every type a model artifact may contain: the candidates :mod:`sqltraits_kit.modelling.estimators`
#: builds (logistic / Poisson / Tweedie GLMs with an arcsinh + scaling front, histogram gradient
#: boosting, BTYD on features, blends of those) and the containers and numpy values inside them.
#: Anything else is refused at load time.
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


@dataclass(kw_only=True)
class ModelCard:
    """What a model is, what it was trained on, and how well it did out of time."""

    name: str
    kind: str  # churn | ltv | btyd
    estimator: str
    features: list[str]
    mapping: dict[str, Any]
    cutoff: str  # ISO date: the training cutoff (history before it, labels from it on)
    horizon_days: int
    metrics: dict[str, Any]
    training_rows: int
    data_fingerprint: str
    version: int = 0  # assigned by Registry.save
    test_cutoff: str | None = None  # ISO date of the out-of-time test set
    test_rows: int = 0
    windows: list[int] = field(default_factory=lambda: [7, 30, 90])
    churn_on: str = "orders"
    library_versions: dict[str, str] = field(default_factory=dict)
    created_at: str = ""
    warehouse: str = ""
    params: dict[str, Any] | None = None  # BTYD: the fitted parameters
    artifact: str | None = None  # file name of the skops artifact in the version folder
    artifact_sha256: str | None = None
    notes: list[str] = field(default_factory=list)
    signature: str | None = None  # HMAC of the rest, when a signing key is configured
    # Added by the champion/baseline training (absent from older cards, left out when None so
    # an older card's signature still verifies):
    training_cutoffs: list[str] | None = None  # the tested model's stacked snapshots
    baselines: dict[str, dict[str, Any]] | None = None  # each baseline's test metrics
    comparison: list[dict[str, Any]] | None = None  # per metric: model vs best baseline
    warnings: list[str] | None = None  # where the model does not beat a baseline
    selection: dict[str, Any] | None = None  # auto: every candidate's figures, why it won
    refit: dict[str, Any] | None = None  # the saved model's refit on the latest window
    origin: dict[str, Any] | None = None  # a model registered from outside the kit
    feature_spec: dict[str, Any] | None = None  # features beyond the built-in set

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in _OPTIONAL_KEYS:
            if out.get(key) is None:
                del out[key]
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=False, allow_nan=False)

    @classmethod
    def from_dict(cls, values: dict[str, Any], /) -> ModelCard:
        known = {f.name for f in dataclasses.fields(cls)}
        # Cards from a newer version may carry more keys; the ones we know must be right.
        kept = {k: v for k, v in values.items() if k in known}
        try:
            card = cls(**kept)
        except TypeError as exc:
            raise ModelLoadError(f"model card is incomplete: {exc}") from None
        if card.kind not in KINDS:
            raise ModelLoadError(f"model card has unknown kind {card.kind!r} (known: {KINDS})")
        return card


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to score with: the fitted object and its card."""

    model: Any
    card: ModelCard

    @property
    def features(self) -> list[str]:
        """The feature columns in the order the fitted model takes them (not the card's order,
        should the two differ); a card that lists other features is a :class:`ModelLoadError`."""
        return expected_features(self.model, self.card) if self.card.kind != "btyd" else []


def parse_ref(ref: str) -> tuple[str, int | None]:
    """``NAME`` or ``NAME@VERSION`` -> (name, version or None)."""
    name, _, version = ref.strip().partition("@")
    if not version:
        return name, None
    try:
        number = int(version.removeprefix("v"))
    except ValueError:
        raise ConfigError(f"model reference must be NAME@VERSION, got {ref!r}") from None
    return name, number


def _sha256(data: bytes) -> str:
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


def _check_types(data: bytes, where: str, *, action: str = "loaded") -> None:
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


def library_versions() -> dict[str, str]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from sqltraits_kit import __version__

    out = {"python": platform.python_version(), "sqltraits-kit": __version__}
    for pkg in ("scikit-learn", "skops", "numpy", "scipy", "pandas", "ibis-framework"):
        with contextlib.suppress(PackageNotFoundError):
            out[pkg] = version(pkg)
    return out


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class Registry:
    """Model versions under ``root`` (by default ``Settings.models_dir``, ``models/``)."""

    def __init__(
        self, root: str | Path = Path("models"), *, signing_key: Any = signing.ENVIRONMENT
    ) -> None:
        self.root = Path(root)
        # None: cards are neither signed nor checked. Default: SQLTRAITS_MODEL_SIGNING_KEY.
        self._signing_key = signing.resolve_key(signing_key)

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    @staticmethod
    def _check_name(name: str) -> str:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigError(
                f"model name {name!r} must be 1-64 lower-case letters, digits, '_' or '-', "
                "starting with a letter or digit"
            )
        return name

    def _dir(self, name: str, version: int) -> Path:
        return self.root / self._check_name(name) / f"v{int(version)}"

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir() and _NAME.match(p.name))

    def versions(self, name: str) -> list[int]:
        folder = self.root / self._check_name(name)
        if not folder.is_dir():
            return []
        out = []
        for p in folder.iterdir():
            named = p.is_dir() and p.name.startswith("v") and p.name[1:].isdigit()
            if named and (p / _CARD).exists():
                out.append(int(p.name[1:]))
        return sorted(out)

    def save(self, model: Any, card: ModelCard) -> ModelCard:
        """Store ``model`` as the next version of ``card.name``; returns the card as saved."""
        self._check_name(card.name)
        if card.kind not in KINDS:
            raise ConfigError(f"model kind must be one of {KINDS}, got {card.kind!r}")
        card = dataclasses.replace(card)
        card.created_at = card.created_at or dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        card.library_versions = card.library_versions or library_versions()
        payload: bytes | None = None
        if card.kind == "btyd":
            params = getattr(model, "params", None)
            card.params = params() if callable(params) else card.params
            if not card.params:
                raise ConfigError("a BTYD model card needs its fitted parameters (card.params)")
            card.artifact = card.artifact_sha256 = None
        else:
            import skops.io as sio

            payload = sio.dumps(model)
            # Refuse to write what we would refuse to read.
            _check_types(payload, f"model {card.name!r}", action="saved")
            card.artifact, card.artifact_sha256 = _ARTIFACT, _sha256(payload)
        (self.root / card.name).mkdir(parents=True, exist_ok=True)
        version = (self.versions(card.name) or [0])[-1] + 1
        while True:  # mkdir claims a version atomically, even with two writers at once
            folder = self._dir(card.name, version)
            try:
                folder.mkdir()
                break
            except FileExistsError:
                version += 1
        card.version = version
        if self._signing_key is not None:
            card.signature = signing.sign(card.to_dict(), self._signing_key)
        if payload is not None:
            _write_atomic(folder / _ARTIFACT, payload)
        _write_atomic(folder / _CARD, card.to_json().encode())
        return card

    def card(self, name: str, version: int | None = None) -> ModelCard:
        """The card of a version (None: the active one, else the latest)."""
        version = self._resolve(name, version)
        path = self._dir(name, version) / _CARD
        try:
            values = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelLoadError(f"model {name}@{version} not found in {self.root}") from None
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"model card {path} is unreadable: {exc}") from None
        if not isinstance(values, dict):
            raise ModelLoadError(f"model card {path} is not a JSON object")
        card = ModelCard.from_dict(values)
        if card.name != name or card.version != version:
            raise ModelLoadError(
                f"model card {path} names {card.ref}, not {name}@{version}: it was moved or edited"
            )
        return card

    def list(self, name: str | None = None) -> list[ModelCard]:
        """Every version's card (of one model, or all), by name then version."""
        names = [name] if name is not None else self.names()
        cards = []
        for n in names:
            for v in self.versions(n):
                try:
                    cards.append(self.card(n, v))
                except ModelLoadError:
                    continue  # a broken card is reported when that version is loaded
        return cards

    def _resolve(self, name: str, version: int | None) -> int:
        self._check_name(name)
        if version is not None:
            return int(version)
        active = self._active_version(name)
        if active is not None:
            return active
        versions = self.versions(name)
        if not versions:
            known = ", ".join(self.names()) or "none"
            raise ModelLoadError(f"no model named {name!r} in {self.root} (models: {known})")
        return versions[-1]

    def load(self, name: str, version: int | None = None) -> LoadedModel:
        """Load a version (None: the active one, else the latest) after checking it is intact."""
        card = self.card(name, version)
        if self._signing_key is not None:
            signing.verify(card.to_dict(), self._signing_key, card.ref)
        if card.kind == "btyd":
            from sqltraits_kit.modelling.btyd import BtydPair

            if not card.params:
                raise ModelLoadError(f"BTYD model {card.ref} has no parameters in its card")
            try:
                return LoadedModel(BtydPair.from_params(card.params), card)
            except (KeyError, TypeError, ValueError) as exc:
                raise ModelLoadError(f"BTYD model {card.ref} has bad parameters: {exc}") from None
        return LoadedModel(self._load_artifact(card), card)

    def _load_artifact(self, card: ModelCard) -> Any:
        import skops.io as sio

        if not card.artifact or not card.artifact_sha256:
            raise ModelLoadError(f"model {card.ref} has no artifact recorded in its card")
        if Path(card.artifact).name != card.artifact:
            raise ModelLoadError(f"model {card.ref}: artifact must be a file name, not a path")
        path = self._dir(card.name, card.version) / card.artifact
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"model {card.ref}: cannot read {path}: {exc}") from None
        digest = _sha256(data)
        if digest != card.artifact_sha256:
            raise ModelLoadError(
                f"model {card.ref}: {path} does not match its card (sha256 {digest[:12]}… != "
                f"{card.artifact_sha256[:12]}…); it was changed after saving and was not loaded"
            )
        _check_types(data, f"model {card.ref}")
        try:
            model = sio.loads(data, trusted=list(TRUSTED_TYPES))
        except Exception as exc:
            raise ModelLoadError(f"model {card.ref} could not be loaded: {exc}") from None
        # Trusted types, wrong values: refuse before any prediction can follow them.
        check_structure(model, card.ref)
        expected_features(model, card)
        return model

    def register(
        self,
        model: Any,
        *,
        wh: Any,
        name: str,
        kind: str,
        trained_until: dt.date | dt.datetime | str,
        **options: Any,
    ) -> ModelCard:
        """Save a model fitted outside the kit, with a card of its own out-of-time figures.

        ``model`` is a fitted scikit-learn-compatible estimator or pipeline, fitted on a
        DataFrame of the kit's features (so it names its columns); ``trained_until`` is the day
        its training outcomes end. The kit tests it on ``wh`` over the horizon after that day,
        beside the baselines, and saves it as the next version of ``name`` with the same checks
        as its own models: only types on :data:`TRUSTED_TYPES`, refused before anything runs.
        ``options``: ``mapping``, ``horizon_days``, ``windows``, ``feature_spec``, ``churn_on``,
        ``max_rows`` (as :func:`~sqltraits_kit.modelling.training.train_model` takes them).
        """
        import skops.io as sio

        from sqltraits_kit.modelling.outside import evaluate_outside_model

        self._check_name(name)
        # Refuse what we could not load again before spending a warehouse query on it.
        _check_types(sio.dumps(model), f"model {name!r}", action="registered")
        check_structure(model, name)
        fields = evaluate_outside_model(
            wh, model, kind=kind, trained_until=trained_until, **options
        )
        return self.save(model, ModelCard(name=name, **fields))

    def sign(self, name: str, version: int) -> ModelCard:
        """Sign an existing version's card with this registry's key (for models saved before
        the key was configured: check them first, a signature says "trusted")."""
        if self._signing_key is None:
            raise ConfigError("no model signing key: set SQLTRAITS_MODEL_SIGNING_KEY")
        card = self.card(name, int(version))
        card.signature = signing.sign(card.to_dict(), self._signing_key)
        _write_atomic(self._dir(name, card.version) / _CARD, card.to_json().encode())
        return card

    def _active_version(self, name: str) -> int | None:
        path = self.root / self._check_name(name) / _ACTIVE
        try:
            text = path.read_text().strip()
        except FileNotFoundError:
            return None
        return int(text) if text.isdigit() else None

    def set_active(self, name: str, version: int) -> ModelCard:
        """Mark ``name@version`` as the version to score with."""
        card = self.card(name, int(version))
        _write_atomic(self.root / name / _ACTIVE, f"{card.version}\n".encode())
        return card

    def active(self, name: str) -> ModelCard | None:
        """The card of the version marked active, or None when none is."""
        version = self._active_version(name)
        return None if version is None else self.card(name, version)
