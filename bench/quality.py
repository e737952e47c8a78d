"""Offline quality of LEARN against baselines, same split, same run.

    python -m bench.quality --dataset amazon-scientific            # leave-one-out
    python -m bench.quality --dataset amazon-scientific --split cold
    python -m bench.quality --dataset ml-100k --compare-encoder smollm2

Models: ``learn`` (default settings), ``content`` (LEARN without item tower, variant c),
``content-mean`` (mean of the history's frozen content embeddings, untrained), ``sasrec``
(item IDs), ``popularity``; with ``--compare-encoder X`` also ``learn[X]`` and
``content-mean[X]``. Headline metrics mask the user's history items; ``unmasked`` holds the
same without masking. Writes ``bench/results/quality-<dataset>[-cold].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, replace
from pathlib import Path

import torch

from shared.model.encoder import ContentEncoder, EmbeddingCache
from trainer.baselines import (
    SASRecConfig,
    content_mean_scorer,
    popularity_scorer,
    sasrec_scorer,
    train_sasrec,
)
from trainer.data import data_path, load_dataset, make_split
from trainer.evaluate import evaluate
from trainer.offline import TrainConfig, default_configs, learn_scorer, train_offline

RESULTS = Path(__file__).resolve().parent / "results"
GROUPS = ("overall", "warm", "cold", "longtail")
TABLE_METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20", "recall@50", "mrr")


def _content(name: str, texts: list[str], cache: Path) -> tuple[str, object]:
    encoder = ContentEncoder(name)
    return encoder.model_id, EmbeddingCache(cache).encode(encoder, texts, progress=True)


def _entry(scorer, split, seconds: float | None = None) -> dict:
    masked = evaluate(scorer, split, mask_history=True)
    entry = {g: masked[g] for g in GROUPS}
    entry["unmasked"] = {g: v for g, v in evaluate(scorer, split, mask_history=False).items() if g in GROUPS}
    if seconds is not None:
        entry["train_seconds"] = round(seconds, 1)
    return entry


def markdown(result: dict) -> str:
    lines = [
        f"# Quality: {result['dataset']} ({result['split']} split)",
        "",
        f"Encoder: `{result['encoder']}`; full ranking over all {result['n_items']} items, "
        f"history items masked; {result['n_test']} test users. LEARN training took "
        f"{result['train_seconds']:.0f} s on {result['threads']} CPU threads.",
        "",
    ]
    for group in GROUPS:
        n = next(iter(result["models"].values()))[group].get("n", 0)
        lines += [f"## {group} ({n} test users)", "",
                  "| model | " + " | ".join(TABLE_METRICS) + " |",
                  "|---|" + "---:|" * len(TABLE_METRICS)]
        for name, entry in result["models"].items():
            row = entry[group]
            cells = [f"{row[m]:.4f}" if m in row else "-" for m in TABLE_METRICS]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## overall without history masking", "",
              "| model | recall@10 | ndcg@10 |", "|---|---:|---:|"]
    for name, entry in result["models"].items():
        row = entry["unmasked"]["overall"]
        lines.append(f"| {name} | {row['recall@10']:.4f} | {row['ndcg@10']:.4f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="amazon-scientific")
    parser.add_argument("--data", type=Path, default=None, help="default ../shared/data/<dataset>")
    parser.add_argument("--split", choices=("loo", "cold"), default="loo")
    parser.add_argument("--encoder", default="minilm")
    parser.add_argument("--compare-encoder", default=None)
    parser.add_argument("--max-minutes", type=float, default=None, help="per trained model")
    parser.add_argument("--sasrec-minutes", type=float, default=10.0)
    parser.add_argument("--content-minutes", type=float, default=5.0)
    parser.add_argument("--models", default="learn,sasrec,popularity,content-mean,content",
                        help="comma-separated; also learn-dense (the paper's in-batch loss)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path(".cache/embeddings"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    ds = load_dataset(args.data or data_path(args.dataset))
    split = make_split(ds, args.split)
    encoder_id, content = _content(args.encoder, ds.item_texts, args.cache)
    model_cfg, train_cfg = default_configs(content.shape[1])
    if args.max_minutes is not None:
        train_cfg.max_minutes = args.max_minutes
    content_t = torch.as_tensor(content)
    models: dict[str, dict] = {}

    wanted = args.models.split(",")
    learn_seconds = 0.0
    if "learn" in wanted:
        learn, report = train_offline(split, content, model_cfg, train_cfg)
        models["learn"] = _entry(learn_scorer(learn, content_t), split, report["train_seconds"])
        models["learn"]["best_epoch"] = report["best_epoch"]
        learn_seconds = report["train_seconds"]
    if "learn-dense" in wanted:  # the paper's loss: dense all-action, in-batch negatives
        dense_cfg = replace(train_cfg, loss="dense", negatives="batch")
        dense, report = train_offline(split, content, model_cfg, dense_cfg)
        models["learn-dense"] = _entry(learn_scorer(dense, content_t), split, report["train_seconds"])
    if "sasrec" in wanted:
        sasrec_train = TrainConfig(batch_size=128, lr=2e-3, max_minutes=args.sasrec_minutes,
                                   patience=train_cfg.patience)
        sasrec, report = train_sasrec(split, SASRecConfig(), sasrec_train)
        models["sasrec"] = _entry(sasrec_scorer(sasrec), split, report["train_seconds"])
        models["sasrec"]["best_epoch"] = report["best_epoch"]
    if "popularity" in wanted:
        models["popularity"] = _entry(popularity_scorer(split), split)
    if "content-mean" in wanted:
        models["content-mean"] = _entry(content_mean_scorer(content), split)
    if "content" in wanted:  # variant c: no item tower, content projected only
        content_model, report = train_offline(
            split, content, replace(model_cfg, item_tower="none"),
            replace(train_cfg, max_minutes=args.content_minutes))
        models["content"] = _entry(learn_scorer(content_model, content_t), split,
                                   report["train_seconds"])
    if args.compare_encoder:
        other_id, other = _content(args.compare_encoder, ds.item_texts, args.cache)
        cfg_o, _ = default_configs(other.shape[1])
        other_model, report = train_offline(split, other, cfg_o, train_cfg)
        models[f"learn[{other_id}]"] = _entry(
            learn_scorer(other_model, torch.as_tensor(other)), split, report["train_seconds"])
        models[f"content-mean[{other_id}]"] = _entry(content_mean_scorer(other), split)

    result = {
        "dataset": ds.name,
        "split": args.split,
        "models": models,
        "encoder": encoder_id,
        "train_seconds": round(learn_seconds, 1),
        "threads": args.threads,
        "n_items": ds.n_items,
        "n_test": int(len(split.test.targets)),
        "history_masked": True,
        "model_config": model_cfg.to_dict(),
        "train_config": asdict(train_cfg),
    }
    suffix = "" if args.split == "loo" else f"-{args.split}"
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"quality-{ds.name}{suffix}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
