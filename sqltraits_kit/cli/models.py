"""sqltraits models: list the model registry, or mark a version as the one to score with."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("models", help="list saved models; --activate NAME@VERSION to score with it")
    p.add_argument(
        "--models-dir", help="model registry folder (default: $SQLTRAITS_MODELS_DIR or models)"
    )
    p.add_argument("--name", help="only this model")
    p.add_argument("--activate", metavar="NAME@VERSION", help="mark this version as active")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from sqltraits_kit import formatting as fmt
    from sqltraits_kit.cli import env_settings
    from sqltraits_kit.errors import ConfigError
    from sqltraits_kit.modelling.registry import ModelCard, Registry, parse_ref

    registry = Registry(Path(args.models_dir or env_settings().models_dir))
    if args.activate:
        name, version = parse_ref(args.activate)
        if version is None:
            raise ConfigError(f"--activate needs NAME@VERSION, got {args.activate!r}")
        card = registry.set_active(name, version)
        if args.json:
            print(json.dumps({"active": card.ref}))
        else:
            print(f"{card.ref} is now the active {card.name!r} model")
        return 0
    cards = registry.list(args.name)
    active = {n: registry.active(n) for n in {c.name for c in cards}}

    def is_active(card: ModelCard) -> bool:
        current = active[card.name]
        return current is not None and current.version == card.version

    if args.json:
        rows = [{**c.to_dict(), "active": is_active(c)} for c in cards]
        print(json.dumps({"models_dir": str(registry.root), "models": rows}, allow_nan=False))
        return 0
    if not cards:
        print(f"no models in {registry.root}")
        return 0
    print(f"{'model':<24} {'kind':<6} {'estimator':<9} {'cutoff':<10} {'h':>4}  metrics")
    for c in cards:
        mark = "*" if is_active(c) else " "
        main = [k for k in ("auc", "gini", "mae") if c.metrics.get(k) is not None]
        figures = ", ".join(
            f"{fmt.metric_label(k)} {fmt.metric_value(k, c.metrics[k])}" for k in main
        )
        print(
            f"{mark}{c.ref:<23} {c.kind:<6} {c.estimator:<9} {c.cutoff:<10} "
            f"{c.horizon_days:>4}  {figures}"
        )
    print("* active")
    return 0
