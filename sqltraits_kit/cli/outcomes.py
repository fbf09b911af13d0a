"""sqltraits outcomes: did the published scores come true, and did acting on them work?

For a scheduler: ``--json`` prints one JSON object (``flagged``, ``evaluated``, ``pending``,
``runs``...); exit 0 when no live figure is worse than its model card's by more than the
margin, 1 when some is (``flagged`` names them), 2 for a usage or configuration error.
"""

from __future__ import annotations

import argparse

DESCRIPTION = """\
For each published run of a trait set whose model horizon has passed: the realised outcome of
every profile Segment held (with the label code training uses), live AUC, calibration and lift
(churn) or MAE, total error and decile lift (LTV) per model version and tier beside the model
card's out-of-time figures, and with a [holdout] the treated-vs-control uplift per tier with
95% intervals. Exit 0: no live figure worse than its card by more than the margin; 1: some
are; 2: usage or configuration error."""


def _margin(text: str) -> tuple[str, float]:
    metric, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return metric.strip(), float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected METRIC=NUMBER, got {text!r}") from None


def register(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "outcomes",
        help="live quality of the published scores vs the model cards, and holdout uplift",
        description=DESCRIPTION,
    )
    p.add_argument("--db", help="warehouse URL (default: $SQLTRAITS_DB_URL; one is required)")
    p.add_argument("--trait-set", metavar="FILE", required=True, help="a trait-set TOML file")
    p.add_argument(
        "--models", metavar="DIR", help="model registry (default: $SQLTRAITS_MODELS_DIR)"
    )
    p.add_argument("--sync-key", metavar="NAME", help="the published state (default: the name)")
    p.add_argument(
        "--margin",
        type=_margin,
        action="append",
        default=[],
        metavar="METRIC=N",
        help="how much worse than the card a live figure may be (repeatable), e.g. auc=0.03",
    )
    p.add_argument("--limit", type=int, default=20, metavar="N", help="latest N runs (20)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


def _points(share: float) -> str:
    """A difference of rates in percentage points, signed: ``+1.2 pp``."""
    from sqltraits_kit.formatting import figure

    return f"{'+' if share > 0 else ''}{figure(share * 100, digits=3)} pp"


def _signed(x: float) -> str:
    from sqltraits_kit.formatting import figure

    return f"{'+' if x > 0 else ''}{figure(x)}"


def run(args: argparse.Namespace) -> int:
    import json

    from sqltraits_kit import formatting as fmt
    from sqltraits_kit.cli import env_settings, required_db_url
    from sqltraits_kit.traits.traitset import TraitSet
    from sqltraits_kit.warehouse import connect
    from sqltraits_kit.workflows.outcomes import outcomes

    settings = env_settings()
    url = required_db_url(args, settings, why="outcomes are computed in the warehouse")
    trait_set = TraitSet.load(args.trait_set)  # before connecting: a bad file is exit 2
    registry = args.models or settings.models_dir
    wh = connect(url, read_only=True)
    try:
        report = outcomes(
            wh,
            trait_set,
            registry=registry,
            sync_key=args.sync_key,
            margins=dict(args.margin),
            limit=args.limit,
        )
    finally:
        wh.close()
    if args.json:
        print(json.dumps(report.to_dict(), ensure_ascii=False, default=str))
        return report.exit_code
    if not report.runs:
        print(f"no published run of {report.sync_key!r} yet")
    for r in report.runs:
        as_of = fmt.instant(r.as_of.date()) if r.as_of else fmt.DASH
        print(
            f"run {r.run_id} (scores as of {as_of}): {r.status}"
            + (f" — {r.reason}" if r.reason else "")
        )
        for m in r.models:
            if m.status != "evaluated":
                print(f"  {m.model} {m.kind}: {m.status} — {m.reason}")
                continue
            figures = ", ".join(
                f"{fmt.metric_label(c.metric)} {fmt.metric_value(c.metric, c.live)} "
                f"(card {fmt.metric_value(c.metric, c.card)}){' FLAGGED' if c.flagged else ''}"
                for c in m.comparisons
            )
            rows = fmt.count(m.live.get("rows", 0))
            print(f"  {m.model} {m.kind} on {rows} profiles: {figures}")
        for tier, u in (r.uplift or {}).items():
            if u.get("churn_reduction") is None:
                continue
            lo, hi = u["churn_reduction_ci"]
            rlo, rhi = u["revenue_uplift_ci"]
            print(
                f"  uplift {tier}: churn rate reduced by {_points(u['churn_reduction'])} "
                f"[{_points(lo)}, {_points(hi)}], revenue {_signed(u['revenue_uplift'])} "
                f"[{fmt.figure(rlo)}, {fmt.figure(rhi)}] per profile "
                f"({fmt.count(u['treated_rows'])} treated, {fmt.count(u['control_rows'])} control)"
            )
    return report.exit_code
