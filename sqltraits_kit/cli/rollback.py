"""sqltraits rollback: re-publish the version an earlier publish run left in Segment.

Same contract as ``sqltraits sync`` (``--json``, exit 0 every row delivered, 1 some rows
failed, 2 usage/configuration error or refused by a gate); the run shows in ``sqltraits
history`` as ``rollback of run X``.
"""

from __future__ import annotations

import argparse

DESCRIPTION = """\
Re-publish what Segment held after an earlier publish run (see `sqltraits history` for run
ids), through the normal sync: gates, dry run and ledger. Only the profiles whose values differ
from that version are sent; profiles published since get null traits. Write key:
$SEGMENT_WRITE_KEY (the run's destination). Exit 0: every row delivered; 1: some rows failed;
2: usage/configuration error or refused by a gate."""


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from sqltraits_kit.cli.sync import add_run_limits

    p = sub.add_parser(
        "rollback",
        help="re-publish the version an earlier publish run left in Segment",
        description=DESCRIPTION,
    )
    p.add_argument("--db", help="warehouse URL (default: $SQLTRAITS_DB_URL; one is required)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--trait-set", metavar="FILE", help="the trait set whose publish to undo")
    which.add_argument("--sync-key", metavar="NAME", help="or the sync key (table:<name>:<kind>)")
    p.add_argument("--run-id", required=True, help="the publish run whose version to restore")
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--region", choices=("us", "eu"), help="Segment region (default: $SEGMENT_REGION or us)"
    )
    where.add_argument("--endpoint", metavar="URL", help="Tracking API base URL (overrides region)")
    p.add_argument(
        "--on-remove",
        choices=("null", "keep"),
        default="null",
        help="profiles published since that run: null their traits (default) or keep them",
    )
    p.add_argument("--dry-run", action="store_true", help="send nothing: what it would send")
    p.add_argument("--allow-drift", action="store_true", help="even if drift is over threshold")
    p.add_argument("--allow-invalid", action="store_true", help="even if the contract fails")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_run_limits(p)
    return p


def run(args: argparse.Namespace) -> int:
    from sqltraits_kit.cli import env_settings, required_db_url
    from sqltraits_kit.cli.sync import dry_run_command, publish_command
    from sqltraits_kit.publishing.sync import make_client, rollback

    settings = env_settings()
    url = required_db_url(args, settings, why="a rollback never defaults to the demo sample")
    if args.trait_set:
        from sqltraits_kit.traits.traitset import TraitSet

        source = TraitSet.load(args.trait_set)  # before connecting: a bad file is exit 2
    else:
        source = args.sync_key
    options = {"on_remove": args.on_remove}
    if args.dry_run:
        return dry_run_command(
            args,
            url,
            settings,
            lambda wh, destination: rollback(
                wh, source, args.run_id, dry_run=True, destination=destination, **options
            ),
        )
    client = make_client(settings, region=args.region, endpoint=args.endpoint)
    return publish_command(  # on the connection `sqltraits sync` publishes on
        args,
        url,
        settings,
        client,
        lambda wh: rollback(
            wh,
            source,
            args.run_id,
            client=client,
            allow_drift=args.allow_drift,
            allow_invalid=args.allow_invalid,
            wait=args.wait,
            max_duration=args.max_duration or None,
            **options,
        ),
    )
