"""sqltraits verify: read N published profiles back through the Profile API and compare."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "verify",
        help="spot-check published traits through Segment's Profile API",
        description="Token: $SEGMENT_PROFILE_API_TOKEN, space: $SEGMENT_SPACE_ID "
        "(endpoint: $SEGMENT_PROFILE_ENDPOINT or the region's host). Exit 0: all match; "
        "1: mismatches or missing profiles; 2: usage/configuration error.",
    )
    p.add_argument("--db", help="warehouse URL (default: $SQLTRAITS_DB_URL)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--trait-set", metavar="FILE", help="the trait set that was published")
    source.add_argument("--sync-key", metavar="KEY", help="the sync key (e.g. table:NAME:identify)")
    p.add_argument("--sample", type=int, default=20, help="profiles to check (20)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def run(args: argparse.Namespace) -> int:
    import json

    from sqltraits_kit.cli import env_settings, required_db_url
    from sqltraits_kit.errors import ConfigError
    from sqltraits_kit.publishing.segment import ProfileClient
    from sqltraits_kit.traits.traitset import TraitSet
    from sqltraits_kit.warehouse import connect
    from sqltraits_kit.workflows.readback import spot_check

    settings = env_settings()
    if settings.profile_api_token is None or not settings.profile_space_id:
        raise ConfigError(
            "set SEGMENT_PROFILE_API_TOKEN and SEGMENT_SPACE_ID to read profiles back"
        )
    url = required_db_url(args, settings, why="name the warehouse that was published from")
    source = TraitSet.load(args.trait_set) if args.trait_set else args.sync_key
    client = ProfileClient(
        settings.profile_api_token,
        space_id=settings.profile_space_id,
        region=settings.segment_region,
        endpoint=settings.profile_endpoint,
    )
    wh = connect(url, read_only=True)
    try:
        report = spot_check(wh, source, client=client, sample=args.sample)
    finally:
        client.close()
        wh.close()
    if args.json:
        print(json.dumps(report.to_dict(), default=str))
    else:
        print(f"checked {report.checked:,} profiles: {report.matched:,} match")
        for ident in report.missing:
            print(f"  missing in Segment: {ident}")
        for m in report.mismatches:
            print(f"  {m.identifier} {m.trait}: expected {m.expected!r}, Segment has {m.actual!r}")
    return 0 if report.ok else 1
