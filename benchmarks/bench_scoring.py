"""Scoring: in the warehouse vs streamed vs "pull everything, predict, write back", per model kind.

    python -m benchmarks.bench_scoring [--customers N] [--runs R] [--quick]

Set-up (cached under ``benchmarks/out/scoring-c<N>-s<seed>/``): a writable copy of the sample and
a model registry with five models trained on it by ``train_model`` — ``churn`` (gradient
boosting, the default), ``churn-logistic``, ``ltv`` (gradient boosting), ``ltv-poisson`` and
``btyd`` (BG/NBD + Gamma-Gamma). Timed, each in its own process, for every model:

* **in the warehouse** — ``score(..., method="warehouse")``: the model translated to Ibis
  expressions (linear models, BTYD), checked for parity on a sample, scores computed in DuckDB
  and written to the output table (staging → swap). Not possible for tree ensembles.
* **streamed** — ``score(..., method="streamed")``: features leave in Arrow batches, the model
  scores each batch, the scores come back through a Parquet staging file.
* **pull everything** — the notebook way: the model loaded from the registry, the whole feature
  table (or RFM table for BTYD) into one DataFrame, ``predict``, and the scores written back as
  a table. Before 2026-12-07 its timer started after loading the model (about 2-3 s of skops
  import and unpickling that the kit's timer included).

Parity: after the timed runs, each output table is compared with the pulled predictions over
every profile (max absolute difference), beside the timings.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

from benchmarks import _harness as h

AS_OF = "2026-11-01"  # the day after the sample's last event: scores see all of it
#: name -> (kind, estimator)
MODELS: dict[str, tuple[str, str]] = {
    "churn": ("churn", "gbm"),
    "churn-logistic": ("churn", "logistic"),
    "ltv": ("ltv", "gbm"),
    "ltv-poisson": ("ltv", "poisson"),
    "btyd": ("btyd", "btyd"),
}
METHODS = ("warehouse", "streamed", "pull")
#: The kit code the cached models depend on: a change retrains them.
TRAINING_CODE = (
    *h.SAMPLE_CODE,
    "sqltraits_kit/modelling/features.py",
    "sqltraits_kit/modelling/training.py",
    "sqltraits_kit/modelling/btyd.py",
    "sqltraits_kit/modelling/rfm.py",
    "sqltraits_kit/modelling/registry.py",
)


def _table(name: str, method: str) -> str:
    return f"bench_{name.replace('-', '_')}_{method}"


def _train_child(path: str, registry: str) -> dict[str, Any]:
    h.require("sqltraits_kit.modelling.training")
    h.require("sqltraits_kit.modelling.registry")
    from sqltraits_kit.modelling.registry import Registry
    from sqltraits_kit.modelling.training import train_model
    from sqltraits_kit.warehouse import connect

    wh = connect(f"duckdb://{path}", read_only=True)
    reg = Registry(registry)
    seconds = {}
    for name, (kind, estimator) in MODELS.items():
        with h.Timer() as t:
            train_model(wh, kind=kind, estimator=estimator, name=name, registry=reg)
        seconds[name] = round(t.seconds, 1)
    wh.close()
    return {"seconds": sum(seconds.values()), "per_model": seconds}


def prepare(customers: int, seed: int) -> tuple[Path, Path]:
    """The cached writable warehouse copy and the registry with the trained models."""
    sample = h.ensure_sample(customers, seed)
    tag = h.code_tag(*TRAINING_CODE)
    folder = h.OUT / f"scoring-c{customers}-s{seed}-{tag}"

    def build(path: Path) -> None:
        path.mkdir(parents=True)
        shutil.copyfile(sample, path / "warehouse.duckdb")
        print(f"training {len(MODELS)} models on the {customers:,}-customer sample ...")
        result = h.run_child(
            "benchmarks.bench_scoring:_train_child",
            {"path": str(path / "warehouse.duckdb"), "registry": str(path / "models")},
        )
        if "not_measured" in result:
            shutil.rmtree(path)
            raise h.NotMeasured(result["not_measured"])
        print(f"  trained in {result['seconds']:.0f} s: {result['per_model']}")

    folder = h.ensure_file(folder.name, build)
    return folder / "warehouse.duckdb", folder / "models"


def _import_kit() -> None:
    import ibis
    import ibis.backends.duckdb.converter
    import pandas  # noqa: F401
    import pyarrow  # noqa: F401
    import sklearn  # noqa: F401

    ibis.duckdb  # noqa: B018


def kit_score(path: str, registry: str, name: str, method: str) -> dict[str, Any]:
    scoring = h.require("sqltraits_kit.traits.scoring")
    from sqltraits_kit.errors import SqlTraitsError
    from sqltraits_kit.warehouse import connect

    _import_kit()
    wh = connect(f"duckdb://{path}")
    try:
        with h.Timer() as t:
            result = scoring.score(
                wh,
                models=name,
                registry=registry,
                table=_table(name, method),
                as_of=AS_OF,
                method=method,
                keep_history=False,
            )
    except SqlTraitsError as exc:
        return {"seconds": float("nan"), "refused": str(exc).splitlines()[0]}
    finally:
        wh.close()
    run = result.models[0]
    return t.figures(
        rows=result.rows, path=run.path, reason=run.reason, kit_parity=run.parity_max_diff
    )


def pull_score(path: str, registry: str, name: str) -> dict[str, Any]:
    """The whole feature (or RFM) table into pandas, predict, write the scores back."""
    h.require("sqltraits_kit.traits.scoring")
    import datetime as dt

    import pandas as pd

    from sqltraits_kit.modelling.features import TableMapping, build_features
    from sqltraits_kit.modelling.registry import Registry
    from sqltraits_kit.traits.scoring import predict_scores, trait_columns
    from sqltraits_kit.traits.scoring.btyd_path import btyd_numpy
    from sqltraits_kit.warehouse import connect

    _import_kit()
    as_of = dt.datetime.fromisoformat(AS_OF)
    wh = connect(f"duckdb://{path}")
    with h.Timer() as t:
        # Loading the model is timed on both sides: the kit's score() loads it too (through
        # the registry's safe loader, as here).
        loaded = Registry(registry).load(name)
        card = loaded.card
        mapping = TableMapping.from_dict(card.mapping or {})
        if card.kind == "btyd":
            from sqltraits_kit.modelling.rfm import rfm_as_of

            rfm = rfm_as_of(wh, mapping, as_of).to_pandas()
            users = wh.table(mapping.profiles_table).to_pandas()
            created = users[mapping.profile_created_at or "created_at"]
            ids = users.loc[created < as_of, [mapping.profile_id]].drop_duplicates()
            frame = ids.merge(
                rfm, how="left", left_on=mapping.profile_id, right_on="customer_id"
            ).fillna({"frequency": 0, "recency": 0.0, "T": 0.0, "monetary_value": 0.0})
            values = btyd_numpy(loaded.model, frame, float(card.horizon_days))
            cols = dict(zip(trait_columns(card), values.values(), strict=True))
            out = pd.DataFrame({"user_id": frame[mapping.profile_id].to_numpy(), **cols})
        else:
            feats = build_features(wh, mapping, as_of=as_of, windows=card.windows).to_pandas()
            scores = predict_scores(loaded.model, card.kind, feats[list(card.features)])
            out = pd.DataFrame({"user_id": feats["profile_id"], trait_columns(card)[0]: scores})
        wh.con.create_table(_table(name, "pull"), out, overwrite=True)
    wh.close()
    return t.figures(rows=len(out))


def parity(path: str, registry: str, name: str, methods: list[str]) -> dict[str, Any]:
    """Max |output − pulled prediction| over every profile, per method; missing rows counted."""
    import duckdb

    from sqltraits_kit.modelling.registry import Registry
    from sqltraits_kit.traits.scoring import trait_columns

    columns = trait_columns(Registry(registry).card(name))
    con = duckdb.connect(path, read_only=True)
    out: dict[str, Any] = {"seconds": 0.0}
    for method in methods:
        worst = " , ".join(f"max(abs(a.{c} - b.{c}))" for c in columns)
        row = con.execute(
            f"SELECT greatest({worst}), count(*) FILTER (WHERE b.user_id IS NULL), count(*) "
            f"FROM {_table(name, 'pull')} a FULL JOIN {_table(name, method)} b USING (user_id)"
        ).fetchone()
        out[method] = {"max_diff": row[0], "unmatched": row[1], "rows": row[2]}
    con.close()
    return out


def main(argv: list[str] | None = None) -> int:
    p = h.parser("Scoring: in-warehouse vs streamed vs pull-predict-write-back, per model.")
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated model names")
    args = h.parse(p, argv)
    bench = h.Bench("scoring", "Scoring (in-warehouse vs streamed vs pull everything)", args)
    try:
        path, registry = prepare(args.customers, args.seed)
    except h.NotMeasured as exc:
        for name in MODELS:
            bench.not_measured(f"{name}: scoring", str(exc))
        return bench.finish()
    here = "benchmarks.bench_scoring"
    for name in args.models.split(","):
        kind = MODELS[name][0]
        ms: dict[str, h.Measurement] = {}
        for method in METHODS:
            kwargs = {"path": str(path), "registry": str(registry), "name": name}
            if method == "pull":
                ms[method] = bench.measure(f"{here}:pull_score", kwargs)
            else:
                ms[method] = bench.measure(f"{here}:kit_score", {**kwargs, "method": method})
        done = [
            m
            for m in ("warehouse", "streamed")
            if not ms[m].not_measured and "refused" not in ms[m].runs[0]
        ]
        checks = {}
        if not ms["pull"].not_measured and done:
            checks = h.run_child(
                f"{here}:parity",
                {"path": str(path), "registry": str(registry), "name": name, "methods": done},
            )
        pull_s = None if ms["pull"].not_measured else ms["pull"]["seconds"]
        for method in METHODS:
            m = ms[method]
            label = (
                f"{name} ({kind}): "
                + {
                    "warehouse": "in the warehouse",
                    "streamed": "streamed",
                    "pull": "pull everything, predict, write back",
                }[method]
            )
            if m.not_measured:
                bench.not_measured(label, m.not_measured)
                continue
            if "refused" in m.runs[0]:
                bench.add(h.Row(label, "n/a", note=f"refused: {m.runs[0]['refused'][:120]}"))
                continue
            note = f"CPU {m['cpu_seconds']:.1f} s; peak RSS {m['peak_rss_mb']:.0f} MB"
            if method != "pull" and pull_s:
                note += f"; {pull_s / m['seconds']:.2f}x the pull's speed"
            if m.get("path") and m.get("path") != method:
                note += f"; took the {m['path']} path ({m.get('reason')})"
            bench.add(h.Row(label, m["seconds"], "s", note=note))
            if method in checks:
                c = checks[method]
                diff = c["max_diff"]
                kit_check = m.get("kit_parity")
                extra = f"{c['unmatched']} profiles missing"
                if kit_check is not None:
                    extra += f"; the kit's own sample check: {kit_check:.1e}"
                bench.add(
                    h.Row(
                        f"{label}: parity max |Δ| vs pull (all rows)",
                        float("nan") if diff is None else diff,
                        "",
                        "≤ 1e-9",
                        diff is not None and diff <= 1e-9 and c["unmatched"] == 0,
                        note=extra,
                    )
                )
    bench.note(
        f"as_of {AS_OF}; output tables written without history. Times include building the "
        "features in the warehouse (each method builds them once)."
    )
    return bench.finish()


if __name__ == "__main__":
    sys.exit(main())
