"""Offline quality of LEARN against baselines: same split, same windows, same budget, same run.

    python -m bench.quality --dataset amazon-scientific            # leave-one-out
    python -m bench.quality --dataset amazon-scientific --split cold
    python -m bench.quality --dataset ml-100k
    python -m bench.quality --dataset amazon-scientific --refit --tag refit   # also refitted on validation targets
    python -m bench.quality --dataset ml-100k --models learn,learn-content,learn-id,learn-no-id-dropout --tag ablation
    python -m bench.quality --models learn --encoder-runtime onnx-int8 --tag int8

Trained models (each with the same offline :class:`~learnrec.trainer.config.TrainConfig`: batch, learning-rate
schedule, evaluation every ``eval_every`` steps, early stopping on validation NDCG@10, and at
most ``--minutes`` of wall time; LEARN and SASRec with the settings that won their own grid of
the same size on this data set's validation split, ``bench.tune``, when it was run; on the cold
split the grid run on the cold split's validation, when there is one): ``learn`` (the default: content + ID, ID dropout), the
ablations ``learn-content`` (content only, the paper's model), ``learn-id`` (ID only),
``learn-no-id-dropout``, ``learn-sampled`` (512 sampled negatives instead of the full softmax),
``content`` (the paper's variant c: no item tower), and ``sasrec`` (item IDs). Untrained:
``popularity`` and ``content-mean``. Headline metrics mask the user's history items;
``unmasked`` holds the same without masking. Every trained entry records its budget, steps,
best step and why it stopped. ``--encoder-runtime`` computes the content embeddings with the
torch encoder (the default) or ONNX Runtime fp32 / int8 (shared/model/onnx_encoder.py), each
runtime with its own embedding cache (``<cache>/<runtime>`` for the ONNX ones). Writes
``bench/results/quality-<dataset>[-cold][-<tag>].json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path

import torch

from bench.tune import best_settings, learn_configs, sasrec_configs
from learnrec.shared.model.encoder import ContentEncoder, EmbeddingCache
from learnrec.shared.model.onnx_encoder import RUNTIME_VARIANTS, OnnxContentEncoder
from learnrec.trainer.baselines import (
    content_mean_scorer,
    popularity_scorer,
    sasrec_scorer,
    train_sasrec,
)
from learnrec.trainer.config import TrainConfig
from learnrec.trainer.data import Split, data_path, load_dataset, make_split
from learnrec.trainer.evaluate import evaluate
from learnrec.trainer.fit import refit_config
from learnrec.trainer.offline import learn_scorer, train_offline

RESULTS = Path(__file__).resolve().parent / "results"
GROUPS = ("overall", "warm", "cold", "longtail")
TABLE_METRICS = ("recall@10", "ndcg@10", "recall@20", "ndcg@20", "recall@50", "mrr")
LEARN_VARIANTS = {
    "learn": ({}, {}),
    "learn-content": ({"item_ids": "none"}, {}),
    "learn-id": ({"item_ids": "only"}, {}),
    "learn-no-id-dropout": ({"id_dropout": 0.0}, {}),
    # 512 uniform negatives: on amazon-scientific the share of the catalogue (12%) that the
    # default 2,048 are of a 17,000-item one
    "learn-sampled": ({}, {"full_softmax_max_items": 0, "negatives": 512}),
    "content": ({"item_ids": "none", "item_tower": "none"}, {}),
}
REPORT_KEYS = ("train_seconds", "steps", "best_step", "examples_seen", "stopped_by", "lr_decayed_at", "path", "windows",
               "content_blend")
REFIT_KEYS = ("train_seconds", "steps", "examples_seen", "stopped_by", "windows")


def _trained_entry(train, scorer_of, split: Split, cfg: TrainConfig, refit: bool) -> dict:
    """``train(split, cfg)`` -> (model, [inputs,] report), scored by ``scorer_of(model, [inputs])``.
    With ``refit``, the validated model is scored too (``before_refit``), then the same model is
    trained again on the split's training and validation targets along the validated run's path,
    in what is left of its budget (:func:`learnrec.trainer.fit.refit`), and that one is the entry."""
    *model, report = train(split, cfg)
    again_cfg = refit_config(cfg, report)
    if not refit or again_cfg is None:
        return _entry(scorer_of(*model), split, report, {"skipped": "no budget left"} if refit else None)
    before = _entry(scorer_of(*model), split)
    *model, again = train(split.for_refit(), again_cfg)
    entry = _entry(scorer_of(*model), split, report, {k: again[k] for k in REFIT_KEYS})
    return entry | {"before_refit": {g: before[g] for g in GROUPS}}


def _entry(scorer, split: Split, report: dict | None = None, refit: dict | None = None) -> dict:
    masked = evaluate(scorer, split, mask_history=True)
    entry = {g: masked[g] for g in GROUPS}
    entry["unmasked"] = {g: v for g, v in evaluate(scorer, split, mask_history=False).items() if g in GROUPS}
    if report is not None:
        entry["training"] = {k: report[k] for k in REPORT_KEYS if k in report} | {
            "valid": report["valid"], "budget_minutes": report["train_config"]["offline"]["max_minutes"],
            "train_config": report["train_config"], "model_config": report["model_config"],
            "curve": report["history"]}
    if refit is not None:
        entry["refit"] = refit
    return entry


def markdown(result: dict) -> str:
    lines = [
        f"# Quality: {result['dataset']} ({result['split']} split)",
        "",
        f"Encoder: `{result['encoder']}` ({result['encoder_runtime']}); "
        f"full ranking over all {result['n_items']} items, "
        f"history items masked; {result['n_test']} test users; {result['threads']} CPU threads; "
        f"every trained model at most {result['budget_minutes']} min (training and validation).",
        "",
        "| model | steps | best step | stopped by | seconds |",
        "|---|---:|---:|---|---:|",
    ]
    for name, entry in result["models"].items():
        if "training" in entry:
            t = entry["training"]
            lines.append(f"| {name} | {t['steps']} | {t['best_step']} | {t['stopped_by']} | {t['train_seconds']:.0f} |")
    lines.append("")
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
    parser.add_argument("--encoder-runtime", choices=("torch", *RUNTIME_VARIANTS), default="torch",
                        help="what computes the content embeddings (ONNX ones on --threads)")
    parser.add_argument("--minutes", type=float, default=15.0, help="wall-time budget of every trained model")
    parser.add_argument("--models", default="learn,sasrec,popularity,content-mean",
                        help="comma-separated: " + ", ".join([*LEARN_VARIANTS, "sasrec", "popularity", "content-mean"]))
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--tuned", action=argparse.BooleanOptionalAction, default=True,
                        help="train LEARN and SASRec with the settings that won on validation in "
                             "bench/results/tuning-<dataset>-<model>.json (bench.tune), when there is one")
    parser.add_argument("--refit", action=argparse.BooleanOptionalAction, default=False,
                        help="after the validated run (tested too: before_refit), train LEARN and SASRec "
                             "again on the training and validation targets along that run's path (same "
                             "steps and rates), within the same budget, and test the refitted model")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path(".cache/embeddings"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    ds = load_dataset(args.data or data_path(args.dataset))
    split = make_split(ds, args.split, seed=args.seed)
    if args.encoder_runtime == "torch":
        encoder, cache = ContentEncoder(args.encoder), EmbeddingCache(args.cache)
    else:  # the same model id: the runtime keys its own cache folder
        encoder = OnnxContentEncoder(args.encoder, variant=RUNTIME_VARIANTS[args.encoder_runtime],
                                     threads=args.threads)
        cache = EmbeddingCache(args.cache / args.encoder_runtime)
    content = cache.encode(encoder, ds.item_texts, progress=True)
    budget = {"max_minutes": args.minutes, "seed": args.seed}
    tuned = {m: best_settings(args.out, ds.name, m, args.split) if args.tuned else None for m in ("learn", "sasrec")}
    models: dict[str, dict] = {}
    for name in args.models.split(","):
        if name in LEARN_VARIANTS:
            model_kw, train_kw = LEARN_VARIANTS[name]
            model_cfg, train_cfg = learn_configs(tuned["learn"] or {}, content.shape[1], **budget)
            model_cfg, train_cfg = replace(model_cfg, **model_kw), train_cfg.override(**train_kw)
            entry = _trained_entry(lambda s, c, m=model_cfg: train_offline(s, content, replace(m), c), learn_scorer,
                                   split, train_cfg, args.refit)
            models[name] = entry | {"tuned": tuned["learn"]}
        elif name == "sasrec":
            model_cfg, train_cfg = sasrec_configs(tuned["sasrec"] or {}, **budget)
            entry = _trained_entry(lambda s, c, m=model_cfg: train_sasrec(s, m, c), sasrec_scorer, split, train_cfg, args.refit)
            models[name] = entry | {"tuned": tuned["sasrec"]}
        elif name == "popularity":
            models[name] = _entry(popularity_scorer(split), split)
        elif name == "content-mean":
            models[name] = _entry(content_mean_scorer(content), split)
        else:
            parser.error(f"unknown model {name!r}")
        print(name, json.dumps({k: round(v, 4) for k, v in models[name]["overall"].items()}), flush=True)

    result = {
        "dataset": ds.name,
        "split": args.split,
        "encoder": encoder.model_id,
        "encoder_runtime": args.encoder_runtime,
        "budget_minutes": args.minutes,
        "threads": args.threads,
        "n_items": ds.n_items,
        "n_test": int(len(split.test.targets)),
        "history_masked": True,
        "machine": {"cpus": os.cpu_count(), "torch": torch.__version__},
        "models": models,
    }
    suffix = ("" if args.split == "loo" else f"-{args.split}") + (f"-{args.tag}" if args.tag else "")
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"quality-{ds.name}{suffix}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
