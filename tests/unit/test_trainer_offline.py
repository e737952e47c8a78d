"""Offline training, baselines and the ``learnrec train offline`` command on tiny data."""

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from shared.cli import main
from shared.model import checkpoint
from shared.model.towers import LearnConfig
from trainer.baselines import (
    SASRecConfig,
    content_mean_scorer,
    popularity_scorer,
    sasrec_scorer,
    train_sasrec,
)
from trainer.data import SeqDataset, leave_one_out
from trainer.evaluate import evaluate
from trainer.offline import TrainConfig, learn_scorer, train_offline

from .tiny_hf import save_tiny_model


def _toy() -> SeqDataset:
    """Two clusters of items; users stay within one cluster."""
    rng = np.random.default_rng(0)
    seqs = [rng.choice(np.arange(10) + 10 * (u % 2), size=6, replace=False) for u in range(60)]
    return SeqDataset("toy", [str(i) for i in range(20)], [f"Title: {i}" for i in range(20)],
                      [str(u) for u in range(60)], seqs)


FAST = TrainConfig(epochs=2, batch_size=16, patience=1)


@pytest.mark.parametrize("variant,loss", [("shared", "dense"), ("none", "next"), ("itemwise", "last"),
                                          ("shared", "next")])
def test_train_offline_runs_and_reports(variant, loss):
    split = leave_one_out(_toy())
    content = np.random.default_rng(1).standard_normal((20, 12)).astype(np.float32)
    cfg = LearnConfig(content_dim=12, model_dim=16, output_dim=8, max_len=8, item_tower=variant)
    model, report = train_offline(split, content, cfg, TrainConfig(**{**FAST.__dict__, "loss": loss}),
                                  progress=False)
    assert 1 <= report["epochs_run"] <= 2 and report["valid"]["n"] == 60
    res = evaluate(learn_scorer(model, torch.as_tensor(content)), split)
    assert 0.0 <= res["overall"]["recall@10"] <= 1.0


def test_baselines():
    split = leave_one_out(_toy())
    model, report = train_sasrec(split, SASRecConfig(dim=16, max_len=8), FAST, progress=False)
    sas = evaluate(sasrec_scorer(model), split)["overall"]
    pop = evaluate(popularity_scorer(split), split)["overall"]
    # cluster-aware content: one-hot of the cluster
    content = np.zeros((20, 2), dtype=np.float32)
    content[:10, 0] = content[10:, 1] = 1.0
    cm = evaluate(content_mean_scorer(content), split)["overall"]
    assert cm["recall@10"] > 0.9  # 10 same-cluster items minus history, all rank first
    assert 0.0 <= sas["ndcg@10"] <= 1.0 and 0.0 <= pop["ndcg@10"] <= 1.0


def test_train_offline_command(tmp_path):
    tiny_model_dir = save_tiny_model(tmp_path / "bert", "bert")
    log = tmp_path / "log.jsonl"
    ds = _toy()
    lines = [json.dumps({"item_id": i, "title": f"sanding roll {i}"}) for i in ds.item_ids]
    lines += [json.dumps({"event_id": f"{u}-{n}", "user_id": f"u{u}", "item_id": str(i),
                          "timestamp": float(n)})
              for u, s in enumerate(ds.sequences) for n, i in enumerate(s)]
    log.write_text("\n".join(lines) + "\n")
    out = tmp_path / "models"
    assert main(["train", "offline", "--data", str(log), "--out", str(out), "--encoder",
                 str(tiny_model_dir), "--cache", str(tmp_path / "cache"), "--epochs", "1",
                 "--threads", "1"]) == 0
    (version,) = [p for p in out.iterdir() if p.name.startswith("v")]
    meta = json.loads((version / "meta.json").read_text())
    assert meta["encoder"] == str(tiny_model_dir.resolve()) and meta["content_dim"] == 16
    model, extra = checkpoint.load(out / "checkpoints" / f"{version.name}.pt")
    assert extra["encoder"] == meta["encoder"] and "overall" in extra["test"]
    x = np.random.default_rng(0).standard_normal((3, 16)).astype(np.float32)
    sess = ort.InferenceSession(str(version / "item_tower.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        want = model.item_tower(torch.from_numpy(x)).numpy()
    assert np.abs(sess.run(None, {"content": x})[0] - want).max() <= 1e-4


def test_length_batches_cover_everything_once_with_little_padding():
    from trainer.offline import length_batches

    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 50, size=1000)
    batches = length_batches(lengths, 32, rng)
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(1000))
    assert np.mean([np.ptp(lengths[b]) for b in batches]) < 10  # vs ~45 unsorted
