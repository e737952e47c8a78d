"""Training-core throughput: ``OnlineTrainer.add`` alone (no Kafka, no Redis).

``python -m bench.trainer_core [--threads 1 2]`` feeds a synthetic stream (``--users`` users,
Zipf-popular items with random unit ``--content-dim`` content) to the trainer with the default
settings: ``--warmup`` events first (untimed), then ``--events`` timed. Pin it to cores with
``taskset -c 0,1`` for the 2-core figure. Prints JSON (and writes it with ``--out``).

The ID table's cost: ``--id-rows 0 100000 1000000`` gives the trainer's ID table that many rows
before it starts (the table of a catalogue with that many trained items), and ``--optimizers lazy
dense`` runs each size with the trainer's optimizer (:mod:`learnrec.trainer.lazy_adamw`: only the
rows a step used are updated) and with plain ``torch.optim.AdamW`` over a dense gradient (every
row, every step: what the trainer did before), alternating in one run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from learnrec.shared.config import Settings
from learnrec.shared.schemas import InteractionEvent
from learnrec.trainer.config import TrainConfig
from learnrec.trainer.content import ContentTable
from learnrec.trainer.id_index import grow_model
from learnrec.trainer.online import OnlineTrainer


def synthetic_events(n: int, users: int, items: int, seed: int = 1) -> list[InteractionEvent]:
    """``n`` events: uniform users, Zipf(0.8)-popular items ``i0..i{items-1}``."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, items + 1) ** 0.8
    chosen = rng.choice(items, size=n, p=popularity / popularity.sum())
    who = rng.integers(0, users, size=n)
    return [InteractionEvent(event_id=f"b{k}", user_id=f"u{who[k]}", item_id=f"i{chosen[k]}") for k in range(n)]


def bench(threads: int, events: int, warmup: int, users: int, items: int, dim: int, chunk: int = 500,
          id_rows: int = 0, optimizer: str = "lazy") -> dict:
    """Trained events per second of one fresh trainer over ``events`` after ``warmup``, its ID
    table grown to ``id_rows`` first, with the trainer's optimizer (``lazy``) or AdamW (``dense``)."""
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((items, dim)).astype(np.float32)
    content = ContentTable(dim)
    content.update([f"i{k}" for k in range(items)], vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    settings = Settings()
    cfg = TrainConfig.from_settings(settings)
    trainer = OnlineTrainer.from_scratch(content, cfg, "bench-random", settings.trainer.item_ids)
    if optimizer == "dense":
        trainer.model.sparse_id_grads = False
        trainer.optimizer = torch.optim.AdamW(trainer.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    grow_model(trainer.model, trainer.optimizer, id_rows)
    stream = synthetic_events(warmup + events, users, items)
    for start in range(0, warmup, chunk):
        trainer.add(stream[start : min(start + chunk, warmup)])
    trainer.release_all()
    steps, started = trainer.steps, time.perf_counter()
    for start in range(warmup, warmup + events, chunk):
        trainer.add(stream[start : min(start + chunk, warmup + events)])
    trainer.release_all()
    seconds = time.perf_counter() - started
    return {"torch_threads": threads, "optimizer": optimizer, "id_table_rows": trainer.model.config.id_rows,
            "events": events, "seconds": round(seconds, 2), "trained_per_s": round(events / seconds, 1),
            "steps": trainer.steps - steps, "ms_per_step": round(1000 * seconds / max(1, trainer.steps - steps), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--events", type=int, default=9_000)
    parser.add_argument("--warmup", type=int, default=3_000)
    parser.add_argument("--users", type=int, default=3_000)
    parser.add_argument("--items", type=int, default=5_000)
    parser.add_argument("--content-dim", type=int, default=384)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--id-rows", type=int, nargs="+", default=[0], help="ID table rows before the start")
    parser.add_argument("--optimizers", nargs="+", choices=("lazy", "dense"), default=["lazy"])
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    runs = []
    for _, rows, threads, optimizer in itertools.product(range(args.repeats), args.id_rows, args.threads,
                                                        args.optimizers):
        runs.append(bench(threads, args.events, args.warmup, args.users, args.items, args.content_dim,
                          id_rows=rows, optimizer=optimizer))
        print(json.dumps(runs[-1]), flush=True)  # progress: each run as it ends
    result = {"command": "python -m bench.trainer_core " + " ".join(sys.argv[1:]), "runs": runs, "machine": {"cpus": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)),
                                       "torch": torch.__version__,
                                       "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}}
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
