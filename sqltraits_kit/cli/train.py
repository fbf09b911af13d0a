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
        default="auto",
        help="auto (default: every candidate, the best on a validation window before the test "
        "window wins); churn: logistic, gbm, gbm_small, bgnbd, mbgnbd, pnbd; ltv: poisson, "
        "tweedie, gbm, gbm_small, bgnbd, mbgnbd, pnbd; either: btyd (the BG/NBD + Gamma-Gamma "
        "pair)",
    )
    p.add_argument(
        "--snapshots",
        type=int,
        default=3,
        help="training snapshots a horizon apart, stacked (3; 1 = the training cutoff alone)",
    )
    p.add_argument(
        "--no-refit",
        action="store_true",
        help="save the tested model, not a refit on the latest complete window",
    )
    p.add_argument(
        "--windows",
        metavar="DAYS",
        default="7,30,90",
        help="the feature windows in days, comma-separated (7,30,90); a log younger than the "
        "longest window before the training cutoff needs shorter ones",
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
        "--features",
        metavar="TOML",
        help="a feature spec: your own aggregates and attributes beside (or instead of) the "
        "built-in features",
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

    from sqltraits_kit.cli import env_settings
    from sqltraits_kit.errors import ConfigError
    from sqltraits_kit.modelling.registry import Registry
    from sqltraits_kit.modelling.training import train_model
    from sqltraits_kit.warehouse import connect
    from sqltraits_kit.workflows.project import Project

    settings = env_settings()
    if args.max_rows < 0:
        raise ConfigError(f"--max-rows must be >= 0, got {args.max_rows}")
    try:
        windows = [int(part) for part in args.windows.split(",")]
    except ValueError:
        windows = []
    if not windows or min(windows) < 1:
        raise ConfigError(f"--windows must be whole days >= 1, like 7,30,90; got {args.windows!r}")
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
            windows=windows,
            max_rows=args.max_rows or None,
            snapshots=args.snapshots,
            refit=not args.no_refit,
            feature_spec=args.features,
            progress=progress,
        )
    finally:
        wh.close()
    if args.json:
        print(json.dumps(result.card.to_dict(), allow_nan=False))
    else:
        print(result.to_text(saved_in=str(registry.root) if registry else None))
    return 0
