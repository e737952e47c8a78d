"""Members of a trainer group run in spawned processes by the unit tests (a spawned process
imports its target by module name, so it lives here rather than in a test module)."""

from __future__ import annotations

import datetime
import random

import numpy as np
import torch
import torch.distributed as dist

from learnrec.shared.config import Settings
from learnrec.shared.model.towers import LearnConfig, LearnModel
from learnrec.shared.schemas import InteractionEvent
from learnrec.trainer.config import TrainConfig
from learnrec.trainer.content import ContentTable
from learnrec.trainer.group_step import Report, plan_round, train_released
from learnrec.trainer.online import OnlineTrainer

DIM = 8
ITEMS = 30


def small_trainer(**overrides) -> OnlineTrainer:
    """The same small model on every member (seeded), every item known, IDs from the first event
    (``overrides``: of its training config)."""
    torch.manual_seed(0)
    table = ContentTable(DIM)
    vectors = np.random.default_rng(0).standard_normal((ITEMS, DIM)).astype(np.float32)
    table.update([f"i{k}" for k in range(ITEMS)], vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    cfg = TrainConfig.from_settings(Settings()).override(batch_size=16, negatives=12, audit=True, gate_events=0,
                                                         id_min_count=1, replay_fraction=0.0).override(**overrides)
    model = LearnModel(LearnConfig(DIM, model_dim=32, num_layers=1, output_dim=16, max_len=8))
    return OnlineTrainer(model, table, cfg, encoder="test")


def member_events(rank: int, n: int) -> list[InteractionEvent]:
    """``n`` events of this member's own users (a user's events all go to one member) on its
    own half of the items."""
    rng = random.Random(rank)
    out = []
    for k in range(n):
        u = 3 * rank + rng.randrange(3)
        out.append(InteractionEvent(event_id=f"r{rank}e{k}", user_id=f"u{u}", item_id=f"i{(u * 5 + k) % (ITEMS // 2) + rank * ITEMS // 2}"))
    return out


def run_member(rank: int, size: int, store_path: str, events_per_round: list[int], results) -> None:
    """Train ``events_per_round[rank]`` new events a round for three rounds (a last round
    flushes), then report the weights and counters."""
    torch.set_num_threads(1)
    store = dist.FileStore(store_path, size)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=size, timeout=datetime.timedelta(seconds=60))
    try:
        trainer = small_trainer()
        trainer.auto_step = False
        events = member_events(rank, 4 * events_per_round[rank])
        for round_ in range(4):
            chunk = events[round_ * events_per_round[rank] : (round_ + 1) * events_per_round[rank]]
            trainer.add(chunk)
            plan = plan_round(Report(released=trainer.released, added=len(chunk), idle=round_ == 3,
                                     leaving=False), batch_size=16)
            train_released(trainer, plan.steps, 16)
        results.put((rank, {k: v.numpy().copy() for k, v in trainer.model.state_dict().items()},  # not shared memory
                     list(trainer.ids.items), trainer.steps, trainer.trained, dict(trainer.audit)))
    finally:
        dist.destroy_process_group()
