"""Cost of one LEARN training step against the catalogue size: full softmax vs sampled.

    python -m bench.softmax_cost [--items 2000 5000 10000 20000 50000] [--threads 2]

Random 384-d content, a batch of ``--batch`` windows of ``--length`` items, the default model;
for each catalogue size the step (forward, backward, AdamW) is timed with every item as a
negative and with ``--negatives`` sampled ones, alternating, medians of ``--repeats``. The
full softmax runs the item tower over the whole catalogue every step, so its cost grows with
the catalogue; the sampled one does not. Writes ``bench/results/softmax-cost.json``; the
threshold in :class:`learnrec.trainer.config.TrainConfig` (``full_softmax_max_items``) is chosen
from it (docs/MODEL.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from learnrec.shared.model.towers import LearnModel
from learnrec.trainer.offline import ItemInputs, default_configs, next_item_loss

RESULTS = Path(__file__).resolve().parent / "results"


def _batch(n_items: int, batch: int, length: int, rng: np.random.Generator):
    ids = torch.from_numpy(rng.integers(0, n_items, size=(batch, length)))
    targets = torch.from_numpy(rng.integers(0, n_items, size=(batch, length)))
    return ids, torch.ones(batch, length, dtype=torch.bool), targets


def step_seconds(n_items: int, sampled: bool, args, rng: np.random.Generator) -> list[float]:
    model_cfg, train_cfg = default_configs(384)
    model_cfg.id_rows = n_items
    train_cfg = train_cfg.override(full_softmax_max_items=0 if sampled else n_items, negatives=args.negatives)
    content = rng.standard_normal((n_items, 384)).astype(np.float32)
    inputs = ItemInputs(content / np.linalg.norm(content, axis=1, keepdims=True), np.arange(n_items))
    model = LearnModel(model_cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    times = []
    for k in range(args.repeats + 1):
        batch = _batch(n_items, args.batch, args.length, rng)
        started = time.perf_counter()
        loss = next_item_loss(model, inputs, batch, train_cfg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if k:  # the first step warms up allocations
            times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, nargs="+", default=[2000, 5000, 10000, 20000, 50000])
    parser.add_argument("--negatives", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--length", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "softmax-cost.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    for n in args.items:
        full, sampled = [], []
        for _ in range(2):  # alternate, so drift on a shared machine hits both
            full += step_seconds(n, False, args, rng)
            sampled += step_seconds(n, True, args, rng)
        row = {"items": n, "full_ms": round(1000 * statistics.median(full), 1),
               "sampled_ms": round(1000 * statistics.median(sampled), 1)}
        row["full_over_sampled"] = round(row["full_ms"] / row["sampled_ms"], 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    result = {"what": "one LEARN training step (forward, backward, AdamW), medians", "negatives": args.negatives,
              "batch": args.batch, "length": args.length, "threads": args.threads,
              "machine": {"cpus": os.cpu_count(), "torch": torch.__version__}, "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
