"""Hyperparameter grid on the validation split, the same procedure for every model.

    python -m bench.tune --dataset ml-100k --model sasrec --grid dropout=0.2,0.5 lr=0.001,0.003
    python -m bench.tune --dataset amazon-scientific --model learn --grid dropout=0.2,0.5 lr=0.001,0.003
    python -m bench.tune --dataset amazon-scientific --model learn --split cold --grid id_dropout=0.25,0.5

Every configuration of the grid is trained with the same offline
:class:`~learnrec.trainer.config.TrainConfig` (``--minutes`` of wall time, early stopping on
validation NDCG@10) and scored on the validation split only; the test split is never looked at.
Keys are fields of the model's config (``LearnConfig`` / ``SASRecConfig``) or training settings
(:meth:`~learnrec.trainer.config.TrainConfig.override`: ``lr``, ``batch_size``, ``max_steps``...).
On the cold split, validation has its own cold items (:func:`learnrec.trainer.data.cold_start`) and each
record adds the best model's validation figures per group (``valid_groups``: warm and cold).
Appends one record per configuration to ``bench/results/tuning-<dataset>-<model>[-cold].json``
and prints it.
"""

from __future__ import annotations

import argparse
import fcntl
import itertools
import json
import os
from dataclasses import fields, replace
from pathlib import Path

import torch

from learnrec.shared.model.encoder import ContentEncoder, EmbeddingCache
from learnrec.shared.model.towers import LearnConfig
from learnrec.trainer.baselines import SASREC_TRAIN, SASRecConfig, sasrec_scorer, train_sasrec
from learnrec.trainer.config import TrainConfig
from learnrec.trainer.data import data_path, load_dataset, make_split
from learnrec.trainer.evaluate import evaluate
from learnrec.trainer.offline import default_configs, learn_scorer, train_offline

RESULTS = Path(__file__).resolve().parent / "results"


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def _split(settings: dict, model_class: type) -> tuple[dict, dict]:
    """``settings`` -> (the fields of ``model_class``, the rest: training settings)."""
    names = {f.name for f in fields(model_class)}
    return ({k: v for k, v in settings.items() if k in names},
            {k: v for k, v in settings.items() if k not in names})


def learn_configs(settings: dict, content_dim: int, **budget) -> tuple[LearnConfig, TrainConfig]:
    """LEARN's default configs with ``settings`` (``LearnConfig`` fields or training settings)
    and the ``budget`` (training settings such as ``max_minutes``, ``seed``) applied."""
    model_cfg, train_cfg = default_configs(content_dim)
    model_kw, train_kw = _split(settings, LearnConfig)
    return replace(model_cfg, **model_kw), train_cfg.override(**budget, **train_kw)


def sasrec_configs(settings: dict, **budget) -> tuple[SASRecConfig, TrainConfig]:
    """SASRec's default configs with ``settings`` and the ``budget`` applied."""
    model_kw, train_kw = _split(settings, SASRecConfig)
    return SASRecConfig(**model_kw), SASREC_TRAIN.override(**budget, **train_kw)


def tuning_path(results: Path, dataset: str, model: str, split: str = "loo") -> Path:
    return results / f"tuning-{dataset}-{model}{'' if split == 'loo' else '-' + split}.json"


def best_settings(results: Path, dataset: str, model: str, split: str = "loo") -> dict | None:
    """The settings with the best validation NDCG@10 in the split's tuning file (the
    leave-one-out one when the split has none)."""
    path = tuning_path(results, dataset, model, split)
    path = path if path.exists() else tuning_path(results, dataset, model)
    if not path.exists():
        return None
    return max(json.loads(path.read_text()), key=lambda r: r["valid"]["ndcg@10"])["settings"]


def append_record(path: Path, record: dict) -> None:
    """Append ``record`` to the JSON list in ``path`` under an exclusive lock (``path.lock``),
    re-reading the file first: tune processes running side by side on the same model and data set
    keep each other's records. The file is replaced atomically (written aside, then renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        records = json.loads(path.read_text()) if path.exists() else []
        records.append(record)
        aside = path.with_name(path.name + ".tmp")
        aside.write_text(json.dumps(records, indent=2) + "\n")
        os.replace(aside, path)


def run_one(model: str, split, content, settings: dict, minutes: float) -> dict:
    if model == "sasrec":
        trained, report = train_sasrec(split, *sasrec_configs(settings, max_minutes=minutes), progress=False)
        scorer = sasrec_scorer(trained)
    else:
        configs = learn_configs(settings, content.shape[1], max_minutes=minutes)
        trained, inputs, report = train_offline(split, content, *configs, progress=False)
        scorer = learn_scorer(trained, inputs)
    record = {"model": model, "split": split.name, "settings": settings, "valid": report["valid"],
              "steps": report["steps"], "best_step": report["best_step"], "stopped_by": report["stopped_by"],
              "train_seconds": report["train_seconds"], "budget_minutes": minutes}
    if split.name == "cold":
        by_group = evaluate(scorer, split, split.valid)
        record["valid_groups"] = {g: {k: by_group[g][k] for k in ("recall@10", "ndcg@10", "n")}
                                  for g in ("warm", "cold")}
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--model", choices=("learn", "sasrec"), required=True)
    parser.add_argument("--split", choices=("loo", "cold"), default="loo")
    parser.add_argument("--grid", nargs="*", default=[], help="key=v1,v2,...")
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache", type=Path, default=Path(".cache/embeddings"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ds = load_dataset(data_path(args.dataset))
    split = make_split(ds, args.split)
    content = EmbeddingCache(args.cache).encode(ContentEncoder("minilm"), ds.item_texts, progress=True)
    axes = [(k, [_value(v) for v in values.split(",")]) for k, values in (g.split("=", 1) for g in args.grid)]
    path = tuning_path(args.out, ds.name, args.model, args.split)
    for combo in itertools.product(*[values for _, values in axes]):
        settings = {k: v for (k, _), v in zip(axes, combo, strict=True)}
        record = run_one(args.model, split, content, settings, args.minutes) | {"threads": args.threads}
        print(json.dumps(record), flush=True)
        append_record(path, record)


if __name__ == "__main__":
    main()
