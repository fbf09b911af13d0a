"""sqltraits score: score every profile with registry models into the output production table."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "score",
        help="score every profile with saved models into the output production table",
        description=(
            "Score every profile that existed before --as-of with one or more saved models and "
            "write one row per profile to --table (staged, checked, swapped in atomically; every "
            "run is kept in <table>_history). Linear models and BG/NBD run inside the warehouse "
            "once a parity check against scikit-learn/numpy passes; other models are streamed."
        ),
    )
    p.add_argument("--db", help="warehouse URL (default: SQLTRAITS_DB_URL, else the demo sample)")
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="NAME[@VERSION]",
        help="model to score with (repeatable; without @VERSION the active, else latest, version)",
    )
    p.add_argument("--table", default="churn_traits", help="output table (churn_traits)")
    p.add_argument("--as-of", help="score as of this date, YYYY-MM-DD (default: the latest data)")
    p.add_argument("--models-dir", help="model registry folder (default: SQLTRAITS_MODELS_DIR)")
    p.add_argument("--id-column", default="user_id", help="name of the identifier column (user_id)")
    p.add_argument(
        "--method",
        choices=("auto", "warehouse", "streamed"),
        default="auto",
        help="auto: in the warehouse where proven equal, else streamed (auto)",
    )
    p.add_argument(
        "--batch-rows", type=int, default=100_000, help="rows per streamed batch (100000)"
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    return p


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from sqltraits_kit import formatting as fmt
    from sqltraits_kit.cli import env_settings
    from sqltraits_kit.modelling.registry import Registry
    from sqltraits_kit.traits.scoring import score
    from sqltraits_kit.warehouse import connect

    settings = env_settings()
    registry = Registry(args.models_dir or settings.models_dir)

    def progress(message: str, fraction: float) -> None:
        if not args.quiet:
            print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    wh = connect(args.db or settings.db_url)
    try:
        result = score(
            wh,
            models=args.model,
            table=args.table,
            registry=registry,
            as_of=args.as_of,
            id_column=args.id_column,
            method=args.method,
            batch_rows=args.batch_rows,
            progress=progress,
        )
    finally:
        wh.close()
    if args.json:
        print(json.dumps({"warehouse": wh.display_url, **result.to_dict()}))
        return 0
    print(
        f"wrote {fmt.count(result.rows)} rows to {result.table} as of "
        f"{fmt.instant(result.as_of.date())} in {fmt.seconds(result.seconds)} "
        f"(run {result.run_id})"
    )
    for m in result.models:
        where = "in the warehouse" if m.path == "warehouse" else "streamed"
        print(f"  {m.ref:<24} {where}: {m.reason}")
    for note in result.notes:
        print(f"  note: {note}")
    return 0
