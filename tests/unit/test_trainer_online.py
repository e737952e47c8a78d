"""The online trainer's core without Kafka: sequences, replay, examples, steps, checkpoints."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from shared.model.towers import LearnConfig, LearnModel
from shared.schemas import InteractionEvent
from trainer import checkpointing
from trainer.content import ContentTable
from trainer.examples import collate, examples_from_events, examples_from_snapshots
from trainer.online import OnlineTrainer, TrainConfig
from trainer.sequences import ReplayBuffer, UserSequences

DIM = 8


@pytest.fixture(autouse=True)
def _one_thread():
    """Two intra-op threads on a busy 2-core machine are many times slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _table(n_items: int = 30) -> ContentTable:
    table = ContentTable(DIM)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n_items, DIM)).astype(np.float32)
    table.update([f"i{k}" for k in range(n_items)], vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    return table


def _events(n: int, users: int = 6, items: int = 30, seed: int = 0) -> list[InteractionEvent]:
    rng = random.Random(seed)
    out = []
    for k in range(n):
        u = rng.randrange(users)
        # each user walks through items with a user-specific stride: learnable structure
        out.append(InteractionEvent(event_id=f"e{k}", user_id=f"u{u}", item_id=f"i{(u * 5 + k) % items}"))
    return out


def _trainer(**kw) -> OnlineTrainer:
    cfg = TrainConfig(batch_size=16, audit=True, **kw)
    torch.manual_seed(0)
    model = LearnModel(LearnConfig(DIM, model_dim=32, num_layers=1, output_dim=16, max_len=cfg.history_len))
    return OnlineTrainer(model, _table(), cfg, encoder="test")


def test_user_sequences_are_bounded_and_roundtrip():
    seqs = UserSequences(3)
    for item in "abcd":
        seqs.append("u", item)
    assert seqs.get("u") == ["b", "c", "d"]
    again = UserSequences.from_state(seqs.state())
    assert again.append("u", "e") == ["c", "d", "e"]


def test_replay_buffer_is_a_bounded_uniform_sample():
    buf = ReplayBuffer(capacity=50, seed=1)
    for k in range(5000):
        buf.offer([str(k), "x"])
    assert len(buf) == 50 and buf.offered == 5000
    firsts = [int(s[0]) for s in buf.sample(50)]
    assert 1000 < np.mean(firsts) < 4000  # not just the first or the last snapshots
    buf.offer(["only-one"])  # too short to form an example
    assert buf.offered == 5000


def test_examples_split_history_and_targets():
    examples = examples_from_events(
        {"a": ["x", "y"], "b": []}, {"a": ["z", "w", "v"], "b": ["p", "q", "r"], "c": ["s"]}, max_targets=2
    )
    assert examples == [[(["x", "y"], ["z", "w"]), (["p"], ["q", "r"])], [(["x", "y", "z", "w"], ["v"])]]
    cut = examples_from_snapshots([["1", "2", "3"]], random.Random(0))[0]
    assert cut[0] + cut[1] == ["1", "2", "3"] and cut[0] and cut[1]


def test_collate_pads_right_and_drops_unknown_items():
    table = _table(5)
    batch = collate([(["i0", "nope", "i1", "i2"], ["i3"]), (["i4"], ["i0", "i1"]), (["nope"], ["i2"])], table, 2, 10)
    assert batch is not None and len(batch) == 2
    assert batch.history_mask.tolist() == [[True, True], [True, False]]
    assert batch.target_mask.tolist() == [[True, False], [True, True]]
    hist, tgt = batch.content(table)
    assert hist.shape == (2, 2, DIM) and tgt.shape == (2, 2, DIM)


def test_every_event_is_trained_once_and_loss_falls():
    torch.manual_seed(0)
    trainer = _trainer(lr=3e-3)
    events = _events(1600)
    losses = []
    for start in range(0, len(events), 16):
        trainer.add(events[start : start + 16])
        losses.append(trainer.last_loss)
    trainer.flush()
    assert trainer.trained == 1600 and trainer.pending == 0
    assert set(trainer.audit.values()) == {1} and len(trainer.audit) == 1600
    assert np.mean(losses[-20:]) < np.mean(losses[1:21])


def test_checkpoint_roundtrip_resumes_the_same_state(tmp_path):
    trainer = _trainer()
    events = _events(90)
    trainer.add(events[:50], {"t:0": 50})
    path = tmp_path / "online.ckpt"
    trainer.save(path)  # flushes the 50 - 48 = 2 pending events first
    assert trainer.pending == 0
    model, extra = checkpointing.load(path)
    resumed = OnlineTrainer.restore(model, extra, _table(), trainer.cfg, "ignored")
    assert resumed.offsets == {"t:0": 50} and resumed.trained == 50 and resumed.encoder == "test"
    assert resumed.sequences.state() == trainer.sequences.state()
    for a, b in zip(resumed.model.state_dict().values(), trainer.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    resumed.add(events[50:])
    resumed.flush()
    assert resumed.trained == 90 and set(resumed.audit.values()) == {1}
