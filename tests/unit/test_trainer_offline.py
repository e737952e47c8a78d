"""Offline training, baselines and the ``learnrec train offline`` command on tiny data.

The toy data has structure only a trained sequence model can use: items form one hidden cycle,
and every user walks a stretch of it, so the next item is the successor of the last one. Item
content is random (it says nothing), popularity is flat: both untrained scorers stay near
chance, and a trained model must beat them by a wide margin on held-out targets.
"""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from learnrec.cli.main import main
from learnrec.shared.model import checkpoint
from learnrec.shared.model.towers import LearnConfig, LearnModel
from learnrec.trainer.baselines import (
    SASREC_TRAIN,
    SASRecConfig,
    content_mean_scorer,
    popularity_scorer,
    sasrec_scorer,
    train_sasrec,
)
from learnrec.trainer.config import TrainConfig
from learnrec.trainer.data import SeqDataset, cold_start, leave_one_out
from learnrec.trainer.evaluate import evaluate
from learnrec.trainer.offline import (
    ItemInputs,
    id_items_of,
    learn_scorer,
    next_item_loss,
    train_offline,
)
from learnrec.trainer.windows import cut_windows, length_batches, window_batches

from .tiny_hf import save_tiny_model

N_ITEMS = 40


def _toy(n_users: int = 240, length: int = 8) -> SeqDataset:
    rng = np.random.default_rng(0)
    cycle = rng.permutation(N_ITEMS)
    starts = rng.integers(0, N_ITEMS, size=n_users)
    seqs = [cycle[(s + np.arange(length)) % N_ITEMS] for s in starts]
    return SeqDataset("toy", [str(i) for i in range(N_ITEMS)], [f"Title: {i}" for i in range(N_ITEMS)],
                      [str(u) for u in range(n_users)], seqs)


def _content(dim: int = 12) -> np.ndarray:
    return np.random.default_rng(1).standard_normal((N_ITEMS, dim)).astype(np.float32)


FAST = TrainConfig().override(batch_size=32, lr=3e-3, warmup_steps=10, eval_every=50, patience=3, max_steps=400,
                               max_minutes=2)


def _untrained(split):
    pop = evaluate(popularity_scorer(split), split)["overall"]["recall@10"]
    content = evaluate(content_mean_scorer(_content()), split)["overall"]["recall@10"]
    return pop, content


@pytest.mark.parametrize("item_ids,item_tower", [("hybrid", "shared"), ("only", "shared"), ("none", "none")])
def test_a_trained_learn_model_beats_the_untrained_scorers(item_ids, item_tower):
    split = leave_one_out(_toy())
    cfg = LearnConfig(content_dim=12, model_dim=32, output_dim=16, max_len=8, dropout=0.1,
                      item_ids=item_ids, item_tower=item_tower)
    model, inputs, report = train_offline(split, _content(), cfg, FAST, progress=False)
    assert report["steps"] <= 400 and report["valid"]["step"] == report["best_step"]
    # the report records only what training used: 40 items take the full softmax
    assert "negatives" not in report["train_config"] and report["train_config"]["offline"]["max_steps"] == 400
    assert ("id_min_count" in report["train_config"]) == (item_ids != "none")
    assert report["stopped_by"] in {"patience", "max_steps", "time"}
    learned = evaluate(learn_scorer(model, inputs), split)["overall"]["recall@10"]
    pop, content = _untrained(split)
    assert pop < 0.45 and content < 0.45
    margin = 0.25 if item_ids != "none" else 0.1  # random content is a weak input on its own
    assert learned > max(pop, content) + margin, (learned, pop, content)


def test_sampled_negatives_train_too():
    split = leave_one_out(_toy())
    cfg = LearnConfig(content_dim=12, model_dim=32, output_dim=16, max_len=8, dropout=0.1)
    train = FAST.override(full_softmax_max_items=10, negatives=16)
    model, inputs, report = train_offline(split, _content(), cfg, train, progress=False)
    assert report["train_config"]["negatives"] == 16
    learned = evaluate(learn_scorer(model, inputs), split)["overall"]["recall@10"]
    assert learned > max(_untrained(split)) + 0.25


def test_sasrec_beats_the_untrained_scorers():
    split = leave_one_out(_toy())
    model, report = train_sasrec(split, SASRecConfig(dim=32, max_len=8, dropout=0.1), FAST, progress=False)
    learned = evaluate(sasrec_scorer(model), split)["overall"]["recall@10"]
    assert learned > max(_untrained(split)) + 0.25
    assert report["steps"] >= report["best_step"] > 0
    assert not {"temperature", "negatives", "id_min_count"} & set(report["train_config"])


def test_a_refit_on_the_validation_targets_follows_the_validated_path():
    """bench.quality's refit: both models trained again on training + validation targets, for
    the steps and rates that led to the validated weights, without validating."""
    split = leave_one_out(_toy())
    cfg = LearnConfig(content_dim=12, model_dim=32, output_dim=16, max_len=8, dropout=0.1)
    train_cfg = FAST.override(ema_decay=0.9, id_min_count=36)  # about the toy's training count per item
    model, inputs, report = train_offline(split, _content(), cfg, train_cfg, progress=False)
    assert sum(steps for steps, _ in report["path"]) == report["best_step"]
    refit_cfg = train_cfg.override(refit_path=tuple(map(tuple, report["path"])))
    model, refit_inputs, refit = train_offline(split.for_refit(), _content(), cfg, refit_cfg, progress=False)
    assert refit["steps"] == report["best_step"] and refit["stopped_by"] == "path" and "history" not in refit
    assert (refit_inputs.rows >= 0).sum() > (inputs.rows >= 0).sum()  # more data: more items earn an ID row
    learned = evaluate(learn_scorer(model, refit_inputs), split)["overall"]["recall@10"]
    assert learned > max(_untrained(split)) + 0.25
    sasrec_cfg = SASRecConfig(dim=32, max_len=8, dropout=0.1)
    _, report = train_sasrec(split, sasrec_cfg, FAST.override(plateau_decays=1), progress=False)
    path = tuple(map(tuple, report["path"]))
    model, refit = train_sasrec(split.for_refit(), sasrec_cfg, FAST.override(refit_path=path), progress=False)
    assert refit["steps"] == sum(steps for steps, _ in path) and refit["stopped_by"] == "path"
    assert evaluate(sasrec_scorer(model), split)["overall"]["recall@10"] > max(_untrained(split)) + 0.25


def test_sasrec_refuses_the_learn_objective_fields_it_would_ignore():
    split = leave_one_out(_toy())
    for field, value in (("temperature", 0.1), ("negatives", 16), ("id_min_count", 2)):
        with pytest.raises(ValueError, match=field):
            train_sasrec(split, SASRecConfig(dim=8, max_len=8), SASREC_TRAIN.override(**{field: value}))


def test_content_mean_ranks_the_users_cluster_first():
    """Two clusters of 10 items, users stay in one: a content that names the cluster puts the
    10 same-cluster items (minus the history) first."""
    rng = np.random.default_rng(0)
    seqs = [rng.choice(np.arange(10) + 10 * (u % 2), size=6, replace=False) for u in range(60)]
    ds = SeqDataset("clusters", [str(i) for i in range(20)], [""] * 20, [str(u) for u in range(60)], seqs)
    content = np.zeros((20, 2), dtype=np.float32)
    content[:10, 0] = content[10:, 1] = 1.0
    assert evaluate(content_mean_scorer(content), leave_one_out(ds))["overall"]["recall@10"] > 0.9


def test_cold_items_have_no_id_row():
    split = leave_one_out(_toy())
    counts = split.train_counts()
    counts[:5] = 0
    split.train = [s[~np.isin(s, np.arange(5))] for s in split.train]
    cfg = LearnConfig(content_dim=12, model_dim=16, output_dim=8, max_len=8)
    _, inputs, _ = train_offline(split, _content(), cfg, TrainConfig().override(max_steps=1, eval_every=1),
                                 progress=False)
    assert (inputs.rows[:5] == -1).all() and (inputs.rows[5:] >= 0).all()
    assert id_items_of(inputs, [str(i) for i in range(N_ITEMS)]) == [str(i) for i in range(5, N_ITEMS)]


def test_train_offline_command(tmp_path):
    tiny_model_dir = save_tiny_model(tmp_path / "bert", "bert")
    log = tmp_path / "log.jsonl"
    ds = _toy(40)
    lines = [json.dumps({"item_id": i, "title": f"sanding roll {i}"}) for i in ds.item_ids]
    lines += [json.dumps({"event_id": f"{u}-{n}", "user_id": f"u{u}", "item_id": str(i),
                          "timestamp": float(n)})
              for u, s in enumerate(ds.sequences) for n, i in enumerate(s)]
    log.write_text("\n".join(lines) + "\n")
    out = tmp_path / "models"
    assert main(["train", "offline", "--data", str(log), "--out", str(out), "--encoder",
                 str(tiny_model_dir), "--cache", str(tmp_path / "cache"), "--max-steps", "5",
                 "--threads", "1", "--whiten-content", "--ema-decay", "0.99", "--content-blends", "0,0.5",
                 "--refit"]) == 0
    (version,) = [p for p in out.iterdir() if p.name.startswith("v")]
    meta = json.loads((version / "meta.json").read_text())
    assert meta["encoder"] == str(tiny_model_dir.resolve()) and meta["content_dim"] == 16
    model, extra = checkpoint.load(out / "checkpoints" / f"{version.name}.pt")
    assert extra["encoder"] == meta["encoder"] and "overall" in extra["test"]
    assert extra["id_items"] == json.loads((version / "id_items.json").read_text())
    assert extra["train_config"]["offline"]["ema_decay"] == 0.99
    # the published model is the refit: the validated run's 5 steps again, with the validation targets
    assert extra["refit"]["steps"] == 5
    assert [list(segment) for segment in extra["refit"]["train_config"]["offline"]["refit_path"]] == [[5, 1.0]]
    assert model.config.whiten_content and not torch.equal(model.content_whitening, torch.eye(16))
    # the blend chosen on validation, carried into the refit, is what the version serves
    assert extra["content_blend"]["validated"] and set(extra["content_blend"]["valid_ndcg@10"]) == {"0.0", "0.5"}
    assert list(extra["refit"]["train_config"]["offline"]["content_blends"]) == [extra["content_blend"]["chosen"]]
    assert meta["content_blend"] == model.config.content_blend == extra["content_blend"]["chosen"]
    assert meta["output_dim"] == model.vector_dim
    x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    ids = np.zeros((3, meta["id_dim"]), np.float32)
    sess = ort.InferenceSession(str(version / "item_tower.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want = model.served_item(torch.from_numpy(x), torch.from_numpy(ids)).numpy()
    assert np.abs(sess.run(None, {"content": x, "id_embedding": ids})[0] - want).max() <= 1e-4


def test_windows_cover_every_target_once():
    seq = np.arange(23)
    windows = cut_windows([seq, np.arange(1)], max_len=8)
    targets = np.concatenate([w[1:] for w in windows])
    assert sorted(targets.tolist()) == list(range(1, 23))
    assert max(len(w) for w in windows) == 9


def test_length_batches_cover_everything_once_with_little_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 50, size=1000)
    batches = length_batches(lengths, 32, rng)
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(1000))
    assert np.mean([np.ptp(lengths[b]) for b in batches]) < 10  # vs ~45 unsorted


def test_early_stopping_scores_a_fixed_sample_of_a_large_validation_set():
    from learnrec.trainer.data import EvalSet
    from learnrec.trainer.fit import validation_sample

    valid = EvalSet([np.array([k]) for k in range(50)], np.arange(50))
    assert validation_sample(valid, 100, seed=0) is valid
    a, b = validation_sample(valid, 20, seed=0), validation_sample(valid, 20, seed=0)
    assert len(a.targets) == 20 and np.array_equal(a.targets, b.targets)
    assert all(int(h[0]) == t for h, t in zip(a.histories, a.targets, strict=True))


@pytest.mark.parametrize("full_softmax_max_items", [N_ITEMS, 0])
def test_items_unknown_at_training_time_are_never_negatives(full_softmax_max_items):
    """The cold split's items are published after training: what their content says must not
    change the training loss, through the full softmax or the sampled one."""
    split = cold_start(_toy(), fraction=0.2, seed=0)
    unknown = split.unknown_items()
    assert unknown.sum() == len(split.cold_items) + len(split.valid_cold_items) > 0
    cfg = TrainConfig(full_softmax_max_items=full_softmax_max_items, negatives=N_ITEMS)
    model = LearnModel(LearnConfig(content_dim=12, model_dim=16, output_dim=16, max_len=8, item_ids="none"))
    model.eval()  # no dropout: the same batch gives the same loss
    windows = cut_windows(split.train, 8)
    batch = next(window_batches(windows, 16, np.random.default_rng(0)))
    content = _content()
    moved = content.copy()
    moved[unknown] *= -5.0
    losses = []
    for table in (content, moved):
        inputs = ItemInputs(table, np.full(N_ITEMS, -1), unknown)
        losses.append(next_item_loss(model, inputs, batch, cfg, torch.Generator().manual_seed(0)).item())
    assert losses[0] == pytest.approx(losses[1])
    known = ItemInputs(content, np.full(N_ITEMS, -1))
    assert next_item_loss(model, known, batch, cfg, torch.Generator().manual_seed(0)).item() != pytest.approx(losses[0])
