"""sqltraits mapping: guess the table mapping of a warehouse, with the reason for each choice."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "mapping", help="guess which tables and columns hold profiles, orders and activity"
    )
    p.add_argument("--db", help="warehouse URL (default: the demo sample)")
    p.add_argument("--save", metavar="FILE", help="write the mapping as JSON (for --mapping)")
    p.add_argument(
        "--save-project",
        action="store_true",
        help="keep the mapping in the project file (sqltraits.toml) for this warehouse",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from sqltraits_kit.modelling.mapping_guess import guess_mapping
    from sqltraits_kit.warehouse import connect
    from sqltraits_kit.workflows.project import Project

    wh = connect(args.db, read_only=True)
    guess = guess_mapping(wh)
    if args.save_project and guess.mapping is not None:
        Project().save(wh.url, mapping=guess.mapping)
    if args.save and guess.mapping is not None:
        Path(args.save).write_text(json.dumps(guess.mapping.to_dict(), indent=2) + "\n")
    if args.json:
        print(json.dumps(guess.to_dict()))
    else:
        for field, reason in guess.reasons.items():
            print(f"{field:<20} {reason}")
        for problem in guess.problems:
            print(f"problem: {problem}")
        if args.save and guess.mapping is not None:
            print(f"saved to {args.save}; check it, then: sqltraits train --mapping {args.save}")
        if args.save_project and guess.mapping is not None:
            print(f"kept in {Project().path} for {wh.display_url}: `sqltraits train` uses it")
    return 0 if guess.complete else 1
