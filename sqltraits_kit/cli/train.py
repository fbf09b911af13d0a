"""sqltraits train: train a churn or LTV model out of time, save it, print its model card."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "train",
        help="train a churn or LTV model on warehouse tables and save it to the model registry",
        description="Features before the cutoff, labels over the horizon after it; evaluated on a "
        "later cutoff (cutoff + horizon), never on a random split across time.",
    )
    p.add_argument("--db", help="warehouse URL (default: $SQLTRAITS_DB_URL, else the demo sample)")
    p.add_argument("--model", required=True, choices=("churn", "ltv"), help="what to predict")
    p.add_argument("--name", help="registry name (default: the model kind)")
    p.add_argument(
        "--cutoff", help="training cutoff date YYYY-MM-DD (default: latest data - 2 horizons)"
    )
    p.add_argument(
        "--horizon-days",
        type=int,
        help="label horizon in days (default: the project's for this warehouse, else 90)",
    )
    p.add_argument(
        "--estimator",
        help="churn: gbm (default), logistic, btyd; ltv: gbm (default), poisson, btyd",
    )
    p.add_argument(
        "--churn-on",
        choices=("orders", "activity"),
        default="orders",
        help="churn means no order (default) or no activity at all in the horizon",
    )
    p.add_argument(
        "--mapping",
        help="JSON file with the table mapping (keys as in TableMapping; default: the project "
        "file's mapping for this warehouse (sqltraits.toml), else the sample/Segment names)",
    )
    p.add_argument(
        "--models-dir", help="model registry folder (default: $SQLTRAITS_MODELS_DIR or models)"
    )
    p.add_argument(
        "--max-rows",
        type=int,
        default=250_000,
        help="at most this many profiles per cutoff, every k-th by id (250000; 0 = all)",
    )
    p.add_argument("--no-save", action="store_true", help="evaluate only, do not save")
    p.add_argument("--json", action="store_true", help="print the model card as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return p


def run(args: argparse.Namespace) -> int:
    import json
    import sys
    from pathlib import Path

    from sqltraits_kit.errors import ConfigError
    from sqltraits_kit.modelling.registry import Registry
    from sqltraits_kit.modelling.training import train_model
    from sqltraits_kit.settings import Settings
    from sqltraits_kit.warehouse import connect
    from sqltraits_kit.workflows.project import Project

    settings = Settings.from_env()
    if args.max_rows < 0:
        raise ConfigError(f"--max-rows must be >= 0, got {args.max_rows}")
    registry = None if args.no_save else Registry(Path(args.models_dir or settings.models_dir))

    def progress(message: str, fraction: float) -> None:
        if not args.quiet:
            print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    wh = connect(args.db or settings.db_url, read_only=True, progress=progress)
    project = Project()
    mapping = project.mapping_for(wh.url, mapping_file=args.mapping)
    horizon = args.horizon_days or project.choices(wh.url).horizon_days or 90
    try:
        result = train_model(
            wh,
            kind=args.model,
            mapping=mapping,
            cutoff=args.cutoff,
            horizon_days=horizon,
            estimator=args.estimator,
            name=args.name,
            registry=registry,
            churn_on=args.churn_on,
            max_rows=args.max_rows or None,
            progress=progress,
        )
    finally:
        wh.close()
    card = result.card
    if args.json:
        print(json.dumps(card.to_dict(), allow_nan=False))
        return 0
    where = f"saved as {card.ref} in {registry.root}" if result.saved else "not saved"
    print(f"{card.kind} model ({card.estimator}) {where}, trained in {result.seconds:.1f} s")
    print(f"  cutoff {card.cutoff} -> test {card.test_cutoff}, horizon {card.horizon_days} days")
    print(f"  rows: {card.training_rows:,} training, {card.test_rows:,} test")
    for key, value in card.metrics.items():
        if key.startswith("reference_") or key.endswith("_rows"):
            continue
        ref = card.metrics.get(f"reference_{key}")
        shown = "n/a" if value is None else f"{value:.4g}"
        line = f"  {key:<18} {shown}"
        if ref is not None:
            line += f"   (reference {ref:.4g})"
        print(line)
    if card.params:
        print(f"  parameters: {json.dumps(card.params)}")
    for note in card.notes:
        print(f"  note: {note}")
    return 0
