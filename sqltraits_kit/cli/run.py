"""sqltraits run: the scheduled job for one trait set — score, validate, drift gate, sync.

Made for cron and orchestrators: one command, ``--json`` prints one JSON object (the keys of
``sqltraits sync --json`` first), and the exit status is sync's: 0 every row delivered, 1 some
rows failed (recorded and sent again next run), 2 usage/configuration error or a refused gate.
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "run",
        help="score, validate, drift-gate and publish one trait set (for cron/orchestrators)",
        description=__doc__.split("\n\n")[1],
    )
    p.add_argument("trait_set", metavar="TRAIT_SET_FILE", help="a trait-set TOML file")
    p.add_argument("--db", help="warehouse URL (default: $SQLTRAITS_DB_URL; one is required)")
    p.add_argument("--models-dir", help="model registry (default: $SQLTRAITS_MODELS_DIR or models)")
    p.add_argument("--no-score", action="store_true", help="publish the table as it is")
    p.add_argument("--dry-run", action="store_true", help="score and check, send nothing")
    p.add_argument("--allow-drift", action="store_true", help="publish despite drift")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    from sqltraits_kit.cli.sync import add_run_limits

    add_run_limits(p)
    return p


def run(args: argparse.Namespace) -> int:
    import json
    import sys

    from sqltraits_kit.cli import env_settings, required_db_url
    from sqltraits_kit.publishing.sync import make_client
    from sqltraits_kit.traits.traitset import TraitSet
    from sqltraits_kit.warehouse import connect
    from sqltraits_kit.workflows.pipeline import run_trait_set

    settings = env_settings()
    url = required_db_url(args, settings, why="a scheduled run never defaults to the demo sample")
    trait_set = TraitSet.load(args.trait_set)
    client = None if args.dry_run else make_client(settings)

    def progress(message: str, fraction: float) -> None:
        if not args.quiet:
            print(f"[{fraction:4.0%}] {message}", file=sys.stderr, flush=True)

    wh = connect(url)
    try:
        result = run_trait_set(
            wh,
            trait_set,
            registry=args.models_dir or settings.models_dir,
            client=client,
            score=not args.no_score,
            dry_run=args.dry_run,
            allow_drift=args.allow_drift,
            progress=progress,
            wait=args.wait,
            max_duration=args.max_duration or None,
        )
    finally:
        if client is not None:
            client.close()
        wh.close()
    if args.json:
        print(json.dumps(result.to_dict(), default=str))
    else:
        for step in result.steps:
            print(step)
    return result.exit_code
