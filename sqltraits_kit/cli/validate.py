"""sqltraits validate: check a table, query or trait set against Segment's SQL-trait contract.

Exit status: 0 when no error-level rule fails (warnings allowed), 1 when one does, 2 for usage
or configuration errors (unknown table, bad trait-set file, a query that is not a SELECT, a query
that calls a refused function or runs past the time or memory budget).
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "validate",
        help="check a table, query or trait set against Segment's SQL-trait rules",
        description="Check a table, a SELECT or a trait set against Segment's SQL-trait "
        "contract (identifier, duplicates, 25 columns, 16 KB records, types, NaN, reserved "
        "names). Exit 0: no errors; 1: an error-level rule failed; 2: usage error.",
    )
    p.add_argument("--db", help="warehouse URL (default: $SQLTRAITS_DB_URL, else the demo sample)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--table", help="table to validate as it is")
    source.add_argument("--query", metavar="SQL", help="a single SELECT to validate (read-only)")
    source.add_argument(
        "--trait-set", metavar="FILE", help="a trait-set TOML file: validate the resolved table"
    )
    p.add_argument(
        "--id-column",
        help="identifier column (default: user_id/email/anonymous_id, group_id for accounts; "
        "a trait set names its own)",
    )
    p.add_argument(
        "--kind", choices=("user", "account"), help="user (identify) or account (group) traits"
    )
    p.add_argument(
        "--allow-reserved",
        action="append",
        default=[],
        metavar="NAME",
        help="a reserved trait name you mean to write (repeatable)",
    )
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    return p


def run(args: argparse.Namespace) -> int:
    import json

    from sqltraits_kit.cli import env_settings
    from sqltraits_kit.errors import ConfigError
    from sqltraits_kit.traits.contract import validate
    from sqltraits_kit.warehouse import connect
    from sqltraits_kit.warehouse.sandbox import query_budget

    if args.trait_set and (args.id_column or args.kind):
        raise ConfigError("--id-column and --kind come from the trait set; do not pass them too")
    trait_set = None
    if args.trait_set:
        from sqltraits_kit.traits.traitset import TraitSet

        trait_set = TraitSet.load(args.trait_set)  # before connecting: a bad file is exit 2
    url = args.db or env_settings().db_url
    wh = connect(url, read_only=True)
    try:
        if trait_set is not None:
            from sqltraits_kit.traits.traitset import resolve

            table = resolve(wh, trait_set)
            id_column, kind, what = trait_set.identifier, trait_set.kind, args.trait_set
        else:
            if args.table:
                table, what = wh.table(args.table), f"table {args.table}"
            else:
                from sqltraits_kit.traits.traitset import query_table

                table, what = query_table(wh, args.query), "query"
            id_column, kind = args.id_column, args.kind or "user"
        # Reads only: one READ ONLY transaction on PostgreSQL, and the query budget on both.
        with query_budget(wh):
            report = validate(
                table, id_column=id_column, kind=kind, allow_reserved=args.allow_reserved
            )
    finally:
        wh.close()
    if args.json:
        out = {"warehouse": wh.display_url, "source": what, **report.to_dict()}
        print(json.dumps(out, ensure_ascii=False))
    else:
        print(f"validating {what} in {wh.display_url}")
        print(report.summary())
    return 0 if report.ok else 1
