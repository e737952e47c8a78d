"""The prequential replay's pieces on a tiny JSON-lines log: stream order, scoring, the curve."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from learnrec.shared.config import Settings
from learnrec.shared.model.towers import LearnConfig, LearnModel
from learnrec.shared.schemas import InteractionEvent
from learnrec.trainer.config import TrainConfig
from learnrec.trainer.content import ContentTable
from learnrec.trainer.data import load_dataset
from learnrec.trainer.id_index import IdIndex
from learnrec.trainer.online import OnlineTrainer
from learnrec.trainer.prequential import Prequential, ServedModel, curve
from learnrec.trainer.stream_order import event_times, time_ordered


def _log(tmp_path):
    lines = [{"item_id": f"i{k}", "title": f"item {k}"} for k in range(12)]
    # two users whose events interleave in time; the file order is not the time order
    lines += [{"event_id": f"a{k}", "user_id": "a", "item_id": f"i{k}", "timestamp": 10.0 * k} for k in range(6)]
    lines += [{"event_id": f"b{k}", "user_id": "b", "item_id": f"i{k + 6}", "timestamp": 10.0 * k + 5} for k in range(6)]
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return path


def test_stream_is_ordered_by_time_across_users(tmp_path):
    path = _log(tmp_path)
    ds = load_dataset(path)
    stream = time_ordered(ds, event_times(path, ds))
    assert [e.user for e in stream[:4]] == ["a", "b", "a", "b"]
    assert [e.time for e in stream] == sorted(e.time for e in stream)
    assert len(stream) == 12


def test_data_without_timestamps_interleave_users_and_keep_their_order():
    class Fake:
        user_ids = ["a", "b"]
        sequences = [np.arange(5), np.arange(5, 10)]

    times = event_times(Path("/nonexistent-folder"), Fake(), seed=3)
    assert all(np.all(np.diff(t) >= 0) for t in times)


def test_prequential_scores_before_training_and_builds_a_curve():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    n_items, dim = 12, 8
    content = torch.nn.functional.normalize(torch.randn(n_items, dim), dim=-1)
    table = ContentTable(dim)
    item_ids = [f"i{k}" for k in range(n_items)]
    table.update(item_ids, content.numpy())
    cfg = TrainConfig.from_settings(Settings()).override(batch_size=4, gate_events=0, negatives=6, id_min_count=1)
    trainer = OnlineTrainer(LearnModel(LearnConfig(dim, model_dim=16, num_layers=1, output_dim=8, max_len=4)),
                            table, cfg, "test", IdIndex())
    frozen = ServedModel(trainer.model, trainer.ids, content, item_ids)
    evaluation = Prequential(trainer, frozen, content, item_ids, publish_every=4, score_every=1)
    events = [InteractionEvent(event_id=f"e{k}", user_id=f"u{k % 2}", item_id=f"i{k % n_items}") for k in range(24)]
    for start in range(0, 24, 4):
        evaluation.process(events[start : start + 4])
    # every event but each user's first is scored, by every method
    assert {len(h) for h in evaluation.tally.hits.values()} == {22}
    assert trainer.trained == 24 and len(evaluation.publishes) == 6
    assert evaluation.online.rows.ge(0).sum() == len(trainer.ids) > 0  # served with the rows it had
    assert frozen.rows.lt(0).all()
    points = curve(evaluation.tally, points=4)
    assert len(points) == 4 and points[-1]["scored_to"] == 22
    assert set(points[0]) == {"scored_from", "scored_to", "online", "frozen", "popularity"}
