"""Would another selection rule have picked a churn champion that beats the naive rules?

    python -m benchmarks.bench_selection [--dataset CDNOW|sample] [--horizons 60,90,120]

Not a timing benchmark and not written to RESULTS.md: it prints, per horizon, every churn
candidate's ROC AUC on the test window (w0) and on the two validation windows before it (w1,
the one ``estimator="auto"`` chooses on, and w2 a horizon earlier), each fitted on the three
snapshots before its window as training does, with the baselines and two extra candidates fitted
on recency, frequency and tenure alone; then the champion two rules pick and its test gap to the
best baseline: the kit's rule (w1) and the mean of w1 and w2. The figures quoted in the notes of
the "Model quality" section come from here.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import _harness as h

RFT = ["days_since_last_order", "orders_count", "days_since_first_order"]
EXTRA = {"logistic_rft": "logistic", "gbm_small_rft": "gbm_small"}


def _window(snaps: dict, w: int, feats: list[str], horizon: int) -> tuple[dict, dict, np.ndarray]:
    from sklearn.metrics import roc_auc_score

    from sqltraits_kit.modelling import baselines as bl
    from sqltraits_kit.modelling import selection as sel
    from sqltraits_kit.modelling.champion import pair_or_none
    from sqltraits_kit.modelling.estimators import CANDIDATES
    from sqltraits_kit.modelling.evaluation import thread_limit

    fit = {"horizon_days": horizon, "seed": 0, "threads": thread_limit}
    before = [snaps[j] for j in range(w + 1, w + 4) if snaps[j].rows]
    frame = snaps[w].frame
    y = frame["churned"].to_numpy(float)
    names = [c for c in CANDIDATES["churn"] if c != "blend"]
    fitted, _ = sel.fit_candidates("churn", names, before, feats, **fit)
    preds, _ = sel.predict_all("churn", fitted, frame)
    for extra, base in EXTRA.items():
        alone, _ = sel.fit_candidates("churn", [base], before, RFT, **fit)
        if base in alone:
            preds[extra] = sel.predict("churn", alone[base].model, frame)
    aucs = {n: float(roc_auc_score(y, p)) for n, p in preds.items()}
    pair = pair_or_none(before[0].frame, [])
    for n, s in bl.baseline_scores("churn", frame, horizon_days=horizon, btyd=pair).items():
        aucs[f"baseline: {n}"] = float(roc_auc_score(y, s))
    return aucs, preds, y


def _pick(res: dict, windows: tuple[int, ...]) -> tuple[str, float, list[str]]:
    """The kit's choice (best candidate or the blend of each family's best) by mean AUC over
    ``windows``; returns it, its test AUC and the blend's members."""
    from sklearn.metrics import roc_auc_score

    from sqltraits_kit.modelling.estimators import CANDIDATES, FAMILIES

    names = [c for c in CANDIDATES["churn"] if c != "blend"]
    score = {n: float(np.mean([res[w][0][n] for w in windows])) for n in names}
    members = [max(fam, key=lambda n: score[n]) for fam in FAMILIES["churn"]]

    def blend_auc(w: int) -> float:
        return float(roc_auc_score(res[w][2], np.mean([res[w][1][m] for m in members], axis=0)))

    score["blend"] = float(np.mean([blend_auc(w) for w in windows]))
    champion = max(score, key=lambda n: score[n])
    test = blend_auc(0) if champion == "blend" else res[0][0][champion]
    return champion, test, members


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", choices=["CDNOW", "sample"], default="CDNOW")
    p.add_argument("--horizons", default="60,90,120")
    p.add_argument("--customers", type=int, default=h.QUICK_CUSTOMERS)
    p.add_argument("--seed", type=int, default=h.DEFAULT_SEED)
    args = p.parse_args(argv)

    from benchmarks.bench_models import _cdnow
    from sqltraits_kit.modelling import training
    from sqltraits_kit.modelling.features import (
        DEFAULT_WINDOWS,
        TableMapping,
        data_end,
        feature_columns,
    )
    from sqltraits_kit.warehouse import connect

    with tempfile.TemporaryDirectory() as tmp:
        mapping: Any
        if args.dataset == "CDNOW":
            path = Path(tmp) / "cdnow.duckdb"
            mapping = _cdnow(path)
        else:
            path, mapping = h.ensure_sample(args.customers, args.seed), TableMapping()
        wh = connect(f"duckdb:///{path}", read_only=True)
        try:
            windows = sorted(DEFAULT_WINDOWS)
            feats = feature_columns(mapping, windows=windows)
            for horizon in (int(x) for x in args.horizons.split(",")):
                _, test_cutoff = training._cutoffs(data_end(wh, mapping), None, horizon)
                snaps, _ = training._pull_snapshots(
                    wh,
                    mapping,
                    list(range(6)),
                    test_cutoff=test_cutoff,
                    horizon_days=horizon,
                    windows=windows,
                    churn_on="orders",
                    max_rows=training.MAX_ROWS,
                    spec=None,
                    report=lambda *_: None,
                )
                res = {w: _window(snaps, w, feats, horizon) for w in (0, 1, 2)}
                print(
                    f"\n**{args.dataset}, churn, {horizon} d** (test cutoff {test_cutoff:%Y-%m-%d})"
                )
                print("\n| | AUC w2 | AUC w1 (validation) | AUC w0 (test) |\n|---|---|---|---|")
                for n in res[0][0]:
                    print(f"| {n} | " + " | ".join(f"{res[w][0][n]:.4f}" for w in (2, 1, 0)) + " |")
                base, best = max((v, n) for n, v in res[0][0].items() if n.startswith("baseline"))
                print()
                for rule, ws in (("w1 (the kit's rule)", (1,)), ("mean of w1 and w2", (1, 2))):
                    champion, test, members = _pick(res, ws)
                    print(
                        f"- {rule}: {champion} (blend members {members}) -> test {test:.4f}, "
                        f"{test - base:+.4f} against {best} ({base:.4f})"
                    )
        finally:
            wh.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
