"""The online trainer's core without Kafka: sequences, replay, examples, steps, ID rows, the
held-back events, checkpoints, and train/serve parity."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from learnrec.shared.config import Settings
from learnrec.shared.model import checkpoint
from learnrec.shared.model.onnx_export import export_version
from learnrec.shared.model.towers import LearnConfig, LearnModel
from learnrec.shared.schemas import InteractionEvent
from learnrec.trainer.config import TrainConfig
from learnrec.trainer.content import ContentTable
from learnrec.trainer.examples import collate, examples_from_snapshots
from learnrec.trainer.id_index import IdIndex
from learnrec.trainer.online import OnlineTrainer
from learnrec.trainer.sequences import ReplayBuffer, UserSequences

DIM = 8
ONLINE = TrainConfig.from_settings(Settings())


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


def _events(n: int, users: int = 6, items: int = 30, seed: int = 0, start: int = 0) -> list[InteractionEvent]:
    rng = random.Random(seed)
    out = []
    for k in range(start, start + n):
        u = rng.randrange(users)
        # each user walks through items with a user-specific stride: learnable structure
        out.append(InteractionEvent(event_id=f"e{k}", user_id=f"u{u}", item_id=f"i{(u * 5 + k) % items}"))
    return out


def _trainer(max_len: int = 8, **kw) -> OnlineTrainer:
    cfg = ONLINE.override(**{"batch_size": 16, "negatives": 12, "audit": True, "gate_events": 0, "id_min_count": 1, **kw})
    torch.manual_seed(0)
    model = LearnModel(LearnConfig(DIM, model_dim=32, num_layers=1, output_dim=16, max_len=max_len))
    return OnlineTrainer(model, _table(), cfg, encoder="test")


def test_user_sequences_are_bounded_and_roundtrip():
    seqs = UserSequences(3)
    for item in "abcd":
        seqs.append("u", item)
    assert seqs.get("u") == ["b", "c", "d"]
    again = UserSequences.from_state(seqs.state())
    assert again.append("u", "e") == ["c", "d", "e"]


def test_user_sequences_keep_at_most_max_users_the_least_recently_active_leave():
    seqs = UserSequences(3, max_users=2)
    seqs.append("u1", "a")
    seqs.append("u2", "b")
    seqs.append("u1", "c")  # u1 is active again: u2 is the least recent now
    seqs.append("u3", "d")
    assert len(seqs) == 2 and seqs.get("u2") == [] and seqs.get("u1") == ["a", "c"]
    for n in range(1000):
        seqs.append(f"many{n}", "x")
    assert len(seqs) == 2 and len(seqs.state()["seqs"]) == 2  # the checkpoint is bounded too
    smaller = UserSequences.from_state(seqs.state(), max_users=1)  # a lower cap after a restart
    assert len(smaller) == 1 and smaller.get("many999") == ["x"]


def test_replay_buffer_is_a_bounded_uniform_sample():
    buf = ReplayBuffer(capacity=50, seed=1)
    for k in range(5000):
        buf.offer([str(k), "x"])
    assert len(buf) == 50 and buf.offered == 5000
    firsts = [int(s[0]) for s in buf.sample(50)]
    assert 1000 < np.mean(firsts) < 4000  # not just the first or the last snapshots
    buf.offer(["only-one"])  # too short to form an example
    assert buf.offered == 5000


def test_snapshots_are_cut_into_history_and_next_item():
    history, target = examples_from_snapshots([["1", "2", "3"]], random.Random(0))[0]
    assert history + [target] == ["1", "2", "3"][: len(history) + 1] and history


def test_collate_pads_right_keeps_the_latest_items_and_drops_unknown_ones():
    table, ids = _table(5), IdIndex(["i2", "i0"])
    batch = collate([(["i0", "nope", "i1", "i2"], "i3"), (["i4"], "i0"), (["nope"], "i2")], table, ids, 2)
    assert batch is not None and len(batch) == 2
    assert batch.history_mask.tolist() == [[True, True], [True, False]]
    assert batch.history.tolist() == [[1, 2], [4, 0]]
    assert batch.history_ids.tolist() == [[-1, 0], [-1, -1]]
    assert batch.target.tolist() == [3, 0] and batch.target_ids.tolist() == [-1, 1]


def test_every_event_is_trained_once_and_loss_falls():
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


def test_the_latest_events_are_held_back_until_newer_ones_arrive():
    trainer = _trainer(gate_events=40)
    trainer.add(_events(100))
    trainer.flush()
    assert trainer.trained == 60 and trainer.pending == 40
    assert len(trainer.held_back()) <= 40 and all(h and t for h, t in trainer.held_back())
    trainer.add(_events(10, start=100))
    trainer.flush()
    assert trainer.trained == 70 and trainer.pending == 40
    trainer.release_all()
    assert trainer.trained == 110 and set(trainer.audit.values()) == {1}


def test_items_gain_id_rows_when_their_interactions_are_trained():
    trainer = _trainer()
    assert len(trainer.ids) == 0 and trainer.model.config.id_rows == 0
    trainer.add(_events(64))
    trainer.flush()
    assert len(trainer.ids) > 0 and trainer.model.config.id_rows >= len(trainer.ids)
    # the table was swapped for a larger one: the optimizer trains the new parameter
    assert any(p is trainer.model.id_table for g in trainer.optimizer.param_groups for p in g["params"])
    assert trainer.model.id_table[: len(trainer.ids)].abs().sum(1).gt(0).any()
    before = trainer.model.id_table.detach().clone()
    trainer.add(_events(64, start=64))
    trainer.flush()
    assert not torch.equal(before, trainer.model.id_table[: len(before)].detach())


def test_an_item_gets_its_id_row_after_enough_trained_interactions():
    trainer = _trainer(id_min_count=3)
    clicks = ["i5", "i1", "i6", "i1", "i7", "i1"]  # the first click is no example: no history
    trainer.add([InteractionEvent(event_id=f"x{k}", user_id="w", item_id=i) for k, i in enumerate(clicks)])
    trainer.flush()
    assert trainer.ids.items == ["i1"] and trainer.id_counts == {"i6": 1, "i7": 1}
    assert trainer.model.config.id_rows >= 1


def test_the_history_window_is_the_models_and_scores_match_the_served_towers(tmp_path):
    """Train/serve parity: the trainer feeds the user tower the model's ``max_len`` latest items
    (what serving feeds it: the exported ``max_history``), and its user and item vectors equal
    those of the exported version, every item encoded alone."""
    from learnrec.versions.towers import LoadedVersion, VersionInfo

    trainer = _trainer(max_len=5)
    trainer.add(_events(200))
    trainer.flush()
    history = [f"i{k}" for k in range(12)]
    batch = collate([(history, "i20"), (history[:3], "i7")], trainer.content, trainer.ids, trainer.history_len)
    assert batch.history.shape[1] == 5 and batch.history[0].tolist() == list(range(7, 12))
    trainer.model.eval()
    with torch.no_grad():
        user, item = trainer.vectors(batch)
    meta = export_version(trainer.model, tmp_path / "v", {"encoder": "test"}, trainer.ids.items)
    assert meta["max_history"] == trainer.history_len
    fields = {k: meta[k] for k in VersionInfo.__dataclass_fields__ if k in meta}
    served = LoadedVersion(VersionInfo(path=tmp_path / "v", **fields))
    rows, mask = batch.history.numpy(), batch.history_mask.numpy()
    names = [trainer.content.item_ids(r[m]) for r, m in zip(rows, mask, strict=True)]
    served_user = served.user_vectors(trainer.content.lookup(rows), mask.astype(np.int64), names)
    served_item = served.item_vectors(trainer.content.lookup(batch.target.numpy()), ["i20", "i7"])
    assert np.abs(served_user - user.numpy()).max() < 1e-4
    assert np.abs(served_item - item.numpy()).max() < 1e-4


def test_checkpoint_roundtrip_resumes_the_same_state(tmp_path):
    trainer = _trainer(gate_events=10)
    events = _events(90)
    trainer.add(events[:50], {"t:0": 50})
    path = tmp_path / "online.ckpt"
    trainer.save(path)  # trains the 40 released events; the 10 held back are saved as they are
    assert trainer.trained == 32 + 8 and trainer.pending == 10
    model, extra = checkpoint.load(path)
    resumed = OnlineTrainer.restore(model, extra, _table(), trainer.cfg, "ignored")
    assert resumed.offsets == {"t:0": 50} and resumed.trained == 40 and resumed.encoder == "test"
    assert resumed.sequences.state() == trainer.sequences.state()
    assert list(resumed.holdback) == list(trainer.holdback) and resumed.ids.items == trainer.ids.items
    for a, b in zip(resumed.model.state_dict().values(), trainer.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    resumed.add(events[50:])
    resumed.release_all()
    assert resumed.trained == 90 and set(resumed.audit.values()) == {1}


def test_an_offline_checkpoint_gives_weights_and_id_rows(tmp_path):
    model = LearnModel(LearnConfig(DIM, model_dim=32, num_layers=1, output_dim=16, id_rows=3))
    path = tmp_path / "offline.pt"
    checkpoint.save(path, model, {"id_items": ["i3", "i1", "i9"], "encoder": "test"})
    loaded, extra = checkpoint.load(path)
    trainer = OnlineTrainer.restore(loaded, extra, _table(), ONLINE, "test")
    assert trainer.ids.items == ["i3", "i1", "i9"] and trainer.trained == 0


def test_state_and_checkpoint_stay_flat_under_a_steady_stream_of_new_users(tmp_path):
    """New users keep arriving: past ``max_users`` the trainer's sequences and its checkpoint
    stop growing (before the cap, both grew with every new user)."""
    trainer = _trainer(max_users=40, replay_capacity=50, audit=False)
    sizes, users = [], []
    for round_ in range(8):
        events = [InteractionEvent(event_id=f"r{round_}-{k}", user_id=f"user-{round_}-{k % 30}",
                                   item_id=f"i{(round_ * 7 + k) % 30}") for k in range(120)]
        trainer.add(events)
        trainer.release_all()
        path = tmp_path / f"round{round_}.ckpt"
        trainer.save(path)
        sizes.append(path.stat().st_size)
        users.append(len(trainer.sequences))
    assert users[0] == 30 and users[1:] == [40] * 7  # 30 new users a round, 40 kept
    assert max(sizes[2:]) <= 1.02 * min(sizes[2:])  # flat once the cap is reached


def test_items_out_of_the_catalogue_are_never_negatives():
    trainer = _trainer(negatives=1024)  # more than the catalogue: every catalogue item is drawn
    gone = {f"i{k}" for k in range(20, 30)}
    trainer.content.keep_only({f"i{k}" for k in range(30)} - gone)
    assert trainer.content.catalogue_rows().tolist() == list(range(20))
    looked_up: list[np.ndarray] = []
    lookup = trainer.content.lookup
    trainer.content.lookup = lambda rows: looked_up.append(np.asarray(rows)) or lookup(rows)
    trainer.add(_events(64))
    negatives = [rows for rows in looked_up if rows.ndim == 1 and len(rows) == 20]
    assert negatives and all(sorted(rows.tolist()) == list(range(20)) for rows in negatives)

    trainer.content.update(["i25"], trainer.content.lookup(np.array([25])))  # published again
    trainer.content.update(["new"], np.ones((1, DIM), np.float32), in_catalogue=False)  # unavailable
    assert trainer.content.catalogue_rows().tolist() == [*range(20), 25]


def test_the_step_honours_the_negatives_policy_and_mask_history():
    """Online training reads the same negatives fields as offline training: ``negatives``
    sampled, or all items up to ``full_softmax_max_items``; ``mask_history`` too."""

    def first_step(**kw) -> tuple[float, list[int]]:
        trainer = _trainer(**kw)
        batch = collate([(["i1", "i2", "i3"], "i4"), (["i5"], "i6")], trainer.content, trainer.ids, trainer.history_len)
        looked_up: list[int] = []
        lookup = trainer.content.lookup
        trainer.content.lookup = lambda rows: looked_up.append(np.asarray(rows).shape) or lookup(rows)
        return float(trainer.loss(batch).detach()), [shape[0] for shape in looked_up if len(shape) == 1]

    assert first_step()[1] == [2, 12]  # the targets, then 12 sampled negatives of the 30 items
    assert first_step(full_softmax_max_items=30)[1] == [2, 30]
    assert first_step(negatives=1024)[0] != pytest.approx(first_step(negatives=1024, mask_history=False)[0])


def test_a_step_leaves_the_id_rows_it_did_not_use_as_they_were():
    trainer = _trainer(negatives=4)
    trainer.add(_events(96))
    trainer.flush()  # rows exist, with Adam moments that would carry them on under plain AdamW
    used: list[torch.Tensor] = []
    lookup = trainer.model.id_vectors

    def recording(rows):
        used.append(rows.flatten())
        return lookup(rows)

    trainer.model.id_vectors = recording
    before = trainer.model.id_table.detach().clone()
    trainer.add(_events(16, users=1, start=96))
    trainer.flush()
    touched = torch.zeros(len(before), dtype=torch.bool)
    touched[torch.cat(used).clamp(min=0)] = True
    after = trainer.model.id_table.detach()[: len(before)]
    assert (~touched[: len(trainer.ids)]).any(), "some rows must go unused for the test to mean anything"
    assert torch.equal(after[~touched], before[~touched])
    assert not torch.equal(after[touched], before[touched])
