"""sqltraits sync: publish the changed traits of a table, query or trait set to Segment.

Scripts and schedulers rely on this contract: ``--json`` prints one JSON object that starts with
``run_id, status, rows, new, changed, removed, unchanged, sent, failed, requests, duration_s``;
exit status 0 when every row was delivered, 1 when some rows failed (they are recorded and sent
again by the next run), 2 for a usage or configuration error — including a publish refused by a
gate (validation, drift) that needs a person to look. The write key comes from
``SEGMENT_WRITE_KEY`` only, never from an argument (it would show in ``ps`` and shell history).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

DESCRIPTION = """\
Publish the new and changed profiles of a table, a SELECT or a trait set to Segment as
identify (user) or group (account) traits. Only rows whose values changed since the last
acknowledged publish are sent; profiles that left the result get their traits set to null
(--on-remove keep leaves them alone). A run killed at any point is resumed by the next run.
Write key: $SEGMENT_WRITE_KEY. Exit 0: every row delivered; 1: some rows failed (recorded, sent
again next run); 2: usage/configuration error or a publish refused by the validation or drift
gate. --dry-run sends nothing (exit 2 if the publish would be refused, 1 if rows would be
rejected)."""


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0 or value != value:
        raise argparse.ArgumentTypeError("must be >= 0 (0 = no client-side limit)")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "sync",
        help="publish changed traits to Segment (diffed, resumable, rate-limited)",
        description=DESCRIPTION,
    )
    p.add_argument("--db", help="warehouse URL (default: $SQLTRAITS_DB_URL; one is required)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--table", metavar="NAME", help="a table: every other column is a trait")
    source.add_argument("--query", metavar="SQL", help="a single read-only SELECT")
    source.add_argument("--trait-set", metavar="FILE", help="a trait-set TOML file")
    p.add_argument("--id-column", help="identifier column (user_id; group_id for --kind group)")
    p.add_argument(
        "--kind", choices=("identify", "group"), help="identify (user traits, default) or group"
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument(
        "--region", choices=("us", "eu"), help="Segment region (default: $SEGMENT_REGION or us)"
    )
    where.add_argument("--endpoint", metavar="URL", help="Tracking API base URL (overrides region)")
    p.add_argument(
        "--on-remove",
        choices=("null", "keep"),
        help="profiles that left the result: null their traits (Segment's rule, default) or keep",
    )
    p.add_argument("--dry-run", action="store_true", help="send nothing: counts, payloads, time")
    p.add_argument(
        "--max-requests-per-second",
        type=_non_negative,
        metavar="N",
        help="client-side limit (default: $SQLTRAITS_MAX_REQUESTS_PER_SECOND or 20; 0 = none)",
    )
    p.add_argument(
        "--max-events-per-second",
        type=_non_negative,
        metavar="N",
        help="client-side limit (default: $SQLTRAITS_MAX_EVENTS_PER_SECOND or 1000; 0 = none)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--allow-drift",
        action="store_true",
        help="publish even if drift from the last publish is over the threshold",
    )
    p.add_argument(
        "--allow-invalid",
        action="store_true",
        help="publish even if the contract check fails (bad rows are then reported per row)",
    )
    p.add_argument(
        "--retry-failed", action="store_true", help="send only rows that failed in earlier runs"
    )
    p.add_argument(
        "--sync-key",
        metavar="NAME",
        help="name of the published state to diff against (default: the trait set's name, "
        "table:<name>:<kind> or query:<hash>:<kind>)",
    )
    p.add_argument(
        "--batch-size", type=_positive_int, default=500, metavar="N", help="messages per request"
    )
    p.add_argument(
        "--commit-interval",
        type=_non_negative,
        default=1.0,
        metavar="SECONDS",
        help="how often acknowledged rows are committed to the state (default 1; after a crash "
        "at most this much acknowledged work is sent again, with the same message ids)",
    )
    add_run_limits(p)
    return p


def add_run_limits(p: argparse.ArgumentParser) -> None:
    """--wait and --max-duration (shared with `sqltraits run`)."""
    p.add_argument(
        "--wait",
        nargs="?",
        const=True,
        default=False,
        type=_non_negative,
        metavar="SECONDS",
        help="if another run is publishing this sync key to this destination, wait for it "
        "(at most SECONDS if given) instead of exiting 2",
    )
    p.add_argument(
        "--max-duration",
        type=_non_negative,
        metavar="SECONDS",
        help="stop sending after this long (between batches); the rows not sent are sent by "
        "the next run, exit 1 (0 = no limit)",
    )


def dry_run_command(args: argparse.Namespace, url: str, settings, run: Callable) -> int:
    """A publishing command's ``--dry-run``: ``run(wh, destination)`` on a read-only connection,
    against the destination the settings configure; prints the report, returns the exit code."""
    from sqltraits_kit.warehouse import connect
    from sqltraits_kit.workflows.pipeline import publish_exit_code

    wh = connect(url, read_only=True)
    try:
        report = run(wh, _configured_destination(settings, args))
    finally:
        wh.close()
    print(report.to_json() if args.json else report.to_text())
    return publish_exit_code(report, allow_drift=args.allow_drift, allow_invalid=args.allow_invalid)


def publish_command(args: argparse.Namespace, url: str, settings, client, run: Callable) -> int:
    """A publishing command's run: ``run(wh)`` on the connection publishes use (memory capped,
    :meth:`Settings.for_publishing`); closes ``client``; prints the result, returns the exit
    code."""
    from sqltraits_kit.warehouse import connect
    from sqltraits_kit.workflows.pipeline import publish_exit_code

    wh = connect(url, settings=settings.for_publishing())
    try:
        result = run(wh)
    finally:
        client.close()
        wh.close()
    print(result.to_json() if args.json else result.to_text())
    return publish_exit_code(result)


def _configured_destination(settings, args: argparse.Namespace) -> str | None:
    """Where a publish with these settings would go (None without a write key): no network."""
    from sqltraits_kit.errors import ConfigError
    from sqltraits_kit.publishing.sync import make_client
    from sqltraits_kit.publishing.sync.destination import client_destination

    try:
        client = make_client(settings, region=args.region, endpoint=args.endpoint)
    except ConfigError:
        return None
    try:
        return client_destination(client)
    finally:
        client.close()


def _progress_printer(*, quiet: bool):
    """A progress callback printing one line every 2 s to an interactive stderr (else None)."""
    import sys
    import time

    if quiet or not sys.stderr.isatty():
        return None  # a scheduler's log: no callback at all, ten times a second
    shown = {"at": 0.0}

    def progress(p) -> None:
        now = time.monotonic()
        if now - shown["at"] >= 2 or p.phase == "done":
            shown["at"] = now
            print(
                f"[{p.fraction:4.0%}] {p.phase}: {p.sent:,} sent, {p.failed:,} failed of "
                f"{p.total:,} ({p.requests:,} requests)",
                file=sys.stderr,
                flush=True,
            )

    return progress


def run(args: argparse.Namespace) -> int:

    from sqltraits_kit.cli import env_settings, required_db_url
    from sqltraits_kit.publishing.sync import Query, dry_run, make_client, sync

    settings = env_settings()
    url = required_db_url(args, settings, why="a publish never defaults to the demo sample")
    if args.trait_set:
        from sqltraits_kit.traits.traitset import TraitSet

        source = TraitSet.load(args.trait_set)  # before connecting: a bad file is exit 2
    elif args.table:
        source = args.table
    else:
        source = Query(args.query)
    rps = args.max_requests_per_second
    eps = args.max_events_per_second
    rps = settings.max_requests_per_second if rps is None else rps
    eps = settings.max_events_per_second if eps is None else eps
    options = {
        "kind": args.kind,
        "id_column": args.id_column,
        "on_remove": args.on_remove,
        "sync_key": args.sync_key,
        "only_failed": args.retry_failed,
        "batch_size": args.batch_size,
    }

    if args.dry_run:
        return dry_run_command(
            args,
            url,
            settings,
            lambda wh, destination: dry_run(
                wh,
                source,
                max_requests_per_second=rps,
                max_events_per_second=eps,
                destination=destination,
                **options,
            ),
        )
    client = make_client(
        settings,
        region=args.region,
        endpoint=args.endpoint,
        max_requests_per_second=rps,
        max_events_per_second=eps,
    )
    return publish_command(
        args,
        url,
        settings,
        client,
        lambda wh: sync(
            wh,
            source,
            client=client,
            allow_drift=args.allow_drift,
            allow_invalid=args.allow_invalid,
            commit_seconds=args.commit_interval,
            progress=_progress_printer(quiet=args.json),
            wait=args.wait,
            max_duration=args.max_duration or None,
            **options,
        ),
    )
