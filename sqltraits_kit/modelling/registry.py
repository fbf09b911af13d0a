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

import dataclasses
import datetime as dt
import json
import os
import re
from pathlib import Path
from typing import Any

from sqltraits_kit.errors import ConfigError, ModelLoadError
from sqltraits_kit.modelling import signing
from sqltraits_kit.modelling.artifacts import TRUSTED_TYPES, artifact_types, check_types, sha256
from sqltraits_kit.modelling.cards import KINDS, LoadedModel, ModelCard, library_versions, parse_ref
from sqltraits_kit.modelling.integrity import check_structure, expected_features

__all__ = [
    "KINDS",
    "TRUSTED_TYPES",
    "LoadedModel",
    "ModelCard",
    "Registry",
    "artifact_types",
    "library_versions",
    "parse_ref",
]

_CARD = "card.json"
_ARTIFACT = "model.skops"
_ACTIVE = "ACTIVE"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


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
            check_types(payload, f"model {card.name!r}", action="saved")
            card.artifact, card.artifact_sha256 = _ARTIFACT, sha256(payload)
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
        digest = sha256(data)
        if digest != card.artifact_sha256:
            raise ModelLoadError(
                f"model {card.ref}: {path} does not match its card (sha256 {digest[:12]}… != "
                f"{card.artifact_sha256[:12]}…); it was changed after saving and was not loaded"
            )
        check_types(data, f"model {card.ref}")
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
        check_types(sio.dumps(model), f"model {name!r}", action="registered")
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
