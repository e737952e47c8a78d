"""The shared training loop's schedule: plateaus (back to the best weights at a lower rate, then
stop) and validating a moving average of the weights."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from learnrec.trainer import fit as fit_module
from learnrec.trainer.config import TrainConfig
from learnrec.trainer.data import EvalSet, Split

EVERY = 3
LR = 0.01


def _run(monkeypatch, scores: list[float], **schedule):
    """Train one weight on a loss whose gradient is always 1 (so each AdamW step moves it by the
    learning rate) against scripted validation NDCG ``scores``. -> (report, weight per step,
    weight at each evaluation)."""
    weight = torch.nn.Parameter(torch.zeros(1))
    model = torch.nn.Module()
    model.weight = weight
    after_step, at_eval, script = [], [], iter(scores)

    def loss_fn(_batch):
        after_step.append(float(weight.detach()))
        return weight.sum()

    def fake_evaluate(_scorer, _split, _valid):
        at_eval.append(float(weight.detach()))
        return {"overall": {"recall@10": 0.0, "ndcg@10": next(script)}}

    monkeypatch.setattr(fit_module, "evaluate", fake_evaluate)
    empty = EvalSet([], np.zeros(0, dtype=np.int64))
    split = Split("loo", 1, [], empty, empty)
    cfg = TrainConfig(lr=LR, weight_decay=0.0, warmup_steps=1).override(
        eval_every=EVERY, max_steps=1000, max_minutes=5, **schedule)
    report = fit_module.fit(model, itertools.repeat(None), loss_fn, lambda: None, split, cfg, progress=False)
    return report, after_step, at_eval


def test_a_plateau_goes_back_to_the_best_weights_at_a_lower_rate_then_stops(monkeypatch):
    scores = [0.1, 0.2, 0.1, 0.1, 0.3, 0.2, 0.2]
    report, after_step, at_eval = _run(monkeypatch, scores, patience=2, plateau_decays=1, lr_decay=0.5)
    assert report["lr_decayed_at"] == [4 * EVERY]
    assert report["best_step"] == 5 * EVERY and report["steps"] == 7 * EVERY
    assert report["stopped_by"] == "patience"
    # the first step after the plateau starts from the weights of the best evaluation (the 2nd)
    assert after_step[4 * EVERY] == pytest.approx(at_eval[1])
    moves = np.abs(np.diff(after_step))
    assert moves[EVERY:4 * EVERY - 1] == pytest.approx(LR, rel=1e-3)  # the full rate before
    assert moves[4 * EVERY:] == pytest.approx(LR * 0.5, rel=1e-3)  # half of it after
    assert float(report["valid"]["ndcg@10"]) == 0.3
    # the kept weights' path: the steps up to the 2nd evaluation at the full rate, then the
    # steps from the plateau's restore to the 5th at half of it
    assert report["path"] == [[2 * EVERY, 1.0], [EVERY, 0.5]]


def test_without_plateau_decays_the_first_plateau_stops(monkeypatch):
    report, _, _ = _run(monkeypatch, [0.1, 0.2, 0.1, 0.1], patience=2)
    assert report["lr_decayed_at"] == [] and report["steps"] == 4 * EVERY
    assert report["best_step"] == 2 * EVERY and report["stopped_by"] == "patience"


def test_with_ema_the_average_is_validated_and_kept_while_training_goes_on_from_the_live_weights(monkeypatch):
    decay = 0.9
    report, after_step, at_eval = _run(monkeypatch, [0.1, 0.2, 0.1], patience=1, ema_decay=decay)
    average, expected = 0.0, []
    for step in range(len(after_step) - 1):  # after_step[k + 1]: the live weight after step k
        keep = min(decay, (1 + step) / (10 + step))
        average = keep * average + (1 - keep) * after_step[step + 1]
        if (step + 1) % EVERY == 0:
            expected.append(average)
    assert at_eval[:2] == pytest.approx(expected[:2], rel=1e-4)
    assert abs(at_eval[1]) < abs(after_step[2 * EVERY])  # the average lags the live weight
    moves = np.abs(np.diff(after_step))
    assert moves == pytest.approx(LR, rel=1e-3)  # validating never moved the live weights
    assert report["best_step"] == 2 * EVERY and report["steps"] == 3 * EVERY


def _refit(path, **schedule):
    """Refit one weight (gradient always 1) along ``path``. -> (report, weight per step, final weight)."""
    weight = torch.nn.Parameter(torch.zeros(1))
    model = torch.nn.Module()
    model.weight = weight
    after_step = []

    def loss_fn(_batch):
        after_step.append(float(weight.detach()))
        return weight.sum()

    cfg = TrainConfig(lr=LR, weight_decay=0.0, warmup_steps=1).override(
        refit_path=path, max_minutes=5, **schedule)
    report = fit_module.fit(model, itertools.repeat(None), loss_fn, lambda: None, None, cfg, progress=False)
    return report, after_step, float(weight.detach())


def test_a_refit_follows_the_path_without_validating():
    report, after_step, final = _refit(((4, 1.0), (3, 0.5)))
    assert report["steps"] == 7 and report["stopped_by"] == "path"
    moves = np.abs(np.diff([*after_step, final]))
    assert moves[:4] == pytest.approx(LR, rel=1e-3) and moves[4:] == pytest.approx(LR * 0.5, rel=1e-3)


def test_a_refit_with_ema_keeps_the_average_and_restarts_from_it_where_a_restore_did():
    decay = 0.9
    report, after_step, final = _refit(((4, 1.0), (2, 0.5)), ema_decay=decay)
    live = [*after_step[1:4], after_step[3] - LR]  # the live weight after steps 0..3
    average = 0.0
    for step, value in enumerate(live):
        average += (1 - min(decay, (1 + step) / (10 + step))) * (value - average)
    assert after_step[4] == pytest.approx(average, rel=1e-4)  # the 2nd segment starts from the average
    for step, value in ((4, after_step[5]), (5, after_step[5] - LR * 0.5)):
        average += (1 - min(decay, (1 + step) / (10 + step))) * (value - average)
    assert final == pytest.approx(average, rel=1e-4)  # what the refit keeps is the average


def test_a_refit_gets_the_validated_path_and_what_is_left_of_the_budget():
    cfg = TrainConfig().override(max_minutes=10)
    again = fit_module.refit_config(cfg, {"train_seconds": 240.0, "path": [[600, 1.0], [200, 0.09]]})
    assert again.offline.refit_path == ((600, 1.0), (200, 0.09)) and again.offline.max_minutes == 6
    assert again.offline.content_blends == (0.0,)  # a run without a blend report: none
    blended = fit_module.refit_config(cfg, {"train_seconds": 240.0, "path": [[600, 1.0]],
                                            "content_blend": {"chosen": 0.3}})
    assert blended.offline.content_blends == (0.3,)  # the validated run's weight, not a new choice
    assert fit_module.refit_config(cfg, {"train_seconds": 600.0, "path": [[600, 1.0]]}) is None
