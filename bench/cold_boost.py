"""Would a boost for content-only items lift cold start? A post-hoc check, chosen on validation.

    python -m bench.cold_boost --dataset amazon-scientific --split cold

Trains LEARN once (the tuned settings and budget of ``bench.quality``), then multiplies the
scores of every item without a trained ID row (new items, and items under ``id_min_count``) by
each factor of ``--scales`` and reports validation and test Recall@10 / NDCG@10 per group. The
factor a user would deploy is the one with the best validation NDCG@10 (the early-stopping
metric); test figures are printed beside it only to show what the trade-off costs. Writes
``bench/results/cold-boost-<dataset>[-cold].json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from bench.tune import best_settings, learn_configs
from learnrec.shared.model.encoder import ContentEncoder, EmbeddingCache
from learnrec.trainer.data import data_path, load_dataset, make_split
from learnrec.trainer.evaluate import evaluate
from learnrec.trainer.offline import learn_scorer, train_offline

RESULTS = Path(__file__).resolve().parent / "results"


def _figures(report: dict) -> dict:
    return {group: {"recall@10": round(m.get("recall@10", 0.0), 4), "ndcg@10": round(m.get("ndcg@10", 0.0), 4),
                    "n": m["n"]} for group, m in report.items()}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="amazon-scientific")
    parser.add_argument("--split", choices=("loo", "cold"), default="cold")
    parser.add_argument("--scales", default="1,1.005,1.01,1.015,1.02,1.03,1.05,1.1")
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path(".cache/embeddings"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    ds = load_dataset(data_path(args.dataset))
    split = make_split(ds, args.split, seed=0)
    content = EmbeddingCache(args.cache).encode(ContentEncoder("minilm"), ds.item_texts, progress=True)
    tuned = best_settings(args.out, ds.name, "learn", args.split) or {}
    model_cfg, train_cfg = learn_configs(tuned, content.shape[1], max_minutes=args.minutes, seed=0)
    model, inputs, report = train_offline(split, content, model_cfg, train_cfg)
    base = learn_scorer(model, inputs)
    content_only = inputs.rows < 0  # [n_items]: no trained ID row

    rows = []
    for scale in (float(s) for s in args.scales.split(",")):
        def boosted(histories, scale=scale):
            scores = base(histories)
            return torch.where(content_only, scores * scale, scores)
        row = {"scale": scale, "valid": _figures(evaluate(boosted, split, split.valid)),
               "test": _figures(evaluate(boosted, split))}
        rows.append(row)
        print(json.dumps(row), flush=True)
    chosen = max(rows, key=lambda r: r["valid"]["overall"]["ndcg@10"])
    result = {
        "dataset": ds.name, "split": args.split, "tuned": tuned, "threads": args.threads,
        "budget_minutes": args.minutes, "steps": report["steps"], "best_step": report["best_step"],
        "stopped_by": report["stopped_by"], "content_only_items": int(content_only.sum()),
        "chosen_on_validation": chosen["scale"], "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.split == "loo" else f"-{args.split}"
    (args.out / f"cold-boost-{ds.name}{suffix}.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"chosen on validation NDCG@10: scale {chosen['scale']}")
    return result


if __name__ == "__main__":
    main()
