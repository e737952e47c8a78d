"""The offline training loop every model shares (LEARN and the SASRec baseline).

AdamW steps over an endless stream of batches; every ``eval_every`` steps the model is scored
on the validation split (NDCG@10, history masked, full ranking) and the best weights are kept.
After ``patience`` evaluations without improvement, training goes back to the best weights (and
their optimizer state) with the learning rate times ``lr_decay``, at most ``plateau_decays``
times (a plateau a lower rate may get past); it stops at the next such plateau, after
``max_steps``, or when ``max_minutes`` of wall time (training and evaluation together) are
spent, whichever comes first (the ``offline`` part of
:class:`~learnrec.trainer.config.TrainConfig`); the report says which, with the steps run, the
best step, the steps where the rate was lowered and the config. With ``ema_decay`` set,
validation scores (and the best weights are) an exponential moving average of the weights, its
decay ``min(ema_decay, (1 + t) / (10 + t))`` at step ``t`` (early averages forget the initial
weights fast); training goes on from the live weights. Steps, not epochs, so a small data set
trains as long as a large one. On a large data set the validation score is taken on a fixed
seeded sample of ``valid_users`` users, so evaluating costs the same everywhere.

The report's ``path`` is how the kept weights were reached: ``[steps, rate factor]`` segments
(a plateau's restore drops the steps after the best evaluation). A config with ``refit_path``
set to such a path is a *refit*: no validation, training follows that path (the same steps at
the same rates, restarting from the average where a restore did) on data that now holds the
validation targets too, and keeps the final (averaged) weights.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Collection, Iterator

import numpy as np
import torch
from tqdm.auto import tqdm

from learnrec.trainer.config import TrainConfig
from learnrec.trainer.data import EvalSet, Split
from learnrec.trainer.evaluate import Scorer, evaluate

log = logging.getLogger(__name__)


def validation_sample(valid: EvalSet, users: int, seed: int) -> EvalSet:
    """``valid`` itself, or a seeded sample of ``users`` of its queries when it has more."""
    if len(valid.targets) <= users:
        return valid
    keep = np.sort(np.random.default_rng(seed).choice(len(valid.targets), users, replace=False))
    return EvalSet([valid.histories[i] for i in keep], valid.targets[keep])


def _lr_factor(step: int, warmup: int) -> float:
    return min(1.0, (step + 1) / max(1, warmup))


def _swap_in(weights: list[torch.Tensor], values: list[torch.Tensor] | None) -> list[torch.Tensor] | None:
    """Copy ``values`` into ``weights`` (nothing when None); -> the weights' previous values."""
    if values is None:
        return None
    previous = [w.detach().clone() for w in weights]
    with torch.no_grad():
        torch._foreach_copy_(weights, values)
    return previous


def _extend(path: list[list], factor: float) -> None:
    """Count one step at rate ``factor`` in ``path`` ([steps, rate factor] segments)."""
    if not path or path[-1][1] != factor:
        path.append([0, factor])
    path[-1][0] += 1


def _step(weights: list[torch.Tensor], loss: torch.Tensor, opt: torch.optim.Optimizer, sched,
          average: list[torch.Tensor] | None, ema_decay: float, step: int) -> float:
    """One optimizer step on ``loss`` over the trainable ``weights`` (gradient norm clipped at 5),
    then the moving average's update (its warm-up: early averages forget the initial weights
    fast). -> the loss."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(weights, 5.0)
    opt.step()
    sched.step()
    if average is not None:
        keep = min(ema_decay, (1 + step) / (10 + step))
        torch._foreach_lerp_(average, [p.detach() for p in weights], 1 - keep)
    return loss.item()


def refit_config(cfg: TrainConfig, report: dict) -> TrainConfig | None:
    """The config of a refit after the validated run of ``cfg`` that gave ``report``: that run's
    path and content blend, in what is left of its ``max_minutes`` (None when nothing is left)."""
    left = cfg.require_offline().max_minutes - report["train_seconds"] / 60
    if left <= 0:
        return None
    blend = report.get("content_blend", {}).get("chosen", 0.0)
    return cfg.override(refit_path=tuple((steps, factor) for steps, factor in report["path"]), max_minutes=left,
                        content_blends=(blend,))


def refit(model: torch.nn.Module, batches: Iterator, loss_fn: Callable[[object], torch.Tensor],
          cfg: TrainConfig, progress: bool = True, desc: str = "refit", unused: Collection[str] = ()) -> dict:
    """Train ``model`` along ``cfg``'s ``refit_path`` without validation (see the module) and
    keep the final weights (their moving average with ``ema_decay``). -> report (JSON-ready)."""
    schedule = cfg.require_offline()
    factors = [factor for steps, factor in schedule.refit_path for _ in range(steps)]
    if not factors:
        raise ValueError("a refit needs a refit_path of at least one step")
    torch.manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: _lr_factor(s, cfg.warmup_steps) * factors[min(s, len(factors) - 1)])
    weights = [p for p in model.parameters() if p.requires_grad]
    average = [p.detach().clone() for p in weights] if schedule.ema_decay > 0 else None
    started, stopped_by, losses = time.monotonic(), "path", []
    for step in tqdm(range(len(factors)), desc=desc, unit="step", disable=not progress):
        if step and factors[step] != factors[step - 1] and average is not None:
            with torch.no_grad():  # a restore went back to the averaged weights
                torch._foreach_copy_(weights, average)
        model.train()
        losses.append(_step(weights, loss_fn(next(batches)), opt, sched, average, schedule.ema_decay, step))
        if time.monotonic() - started >= schedule.max_minutes * 60:
            stopped_by = "time"
            break
    _swap_in(weights, average)
    model.eval()
    return {
        "train_seconds": round(time.monotonic() - started, 1),
        "steps": len(losses),
        "examples_seen": len(losses) * cfg.batch_size,
        "stopped_by": stopped_by,
        "loss": float(np.mean(losses[-200:])),
        "train_config": cfg.record(unused),
    }


def fit(
    model: torch.nn.Module,
    batches: Iterator,
    loss_fn: Callable[[object], torch.Tensor],
    make_scorer: Callable[[], Scorer],
    split: Split,
    cfg: TrainConfig,
    progress: bool = True,
    desc: str = "training",
    unused: Collection[str] = (),
) -> dict:
    """Train ``model`` on ``batches`` with ``loss_fn(batch) -> scalar``; the best weights (by
    validation NDCG@10 of ``make_scorer()``) are loaded back. ``cfg``: an offline config, of
    which the caller's loss did not use the fields ``unused``. -> report (JSON-ready)."""
    schedule = cfg.require_offline()
    if schedule.refit_path:
        return refit(model, batches, loss_fn, cfg, progress, desc.replace("training", "refit"), unused)
    torch.manual_seed(cfg.seed)
    valid_set = validation_sample(split.valid, schedule.valid_users, cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, best_state, best_step, history = -1.0, copy.deepcopy(model.state_dict()), 0, []
    best_opt, since, decays = copy.deepcopy(opt.state_dict()), 0, []  # decays: steps of the plateaus
    path, best_path = [], []  # [steps, rate factor] segments of the live and of the best weights

    def decayed() -> float:  # the plateau decays so far, multiplied
        return schedule.lr_decay ** len(decays)

    def rate(s: int) -> float:  # the learning rate's factor at step s: warm-up, then the decays
        return _lr_factor(s, cfg.warmup_steps) * decayed()

    sched = torch.optim.lr_scheduler.LambdaLR(opt, rate)
    weights = [p for p in model.parameters() if p.requires_grad]
    average = [p.detach().clone() for p in weights] if schedule.ema_decay > 0 else None
    started = time.monotonic()
    stopped_by, losses, step = "max_steps", [], 0
    bar = tqdm(desc=desc, unit="step", disable=not progress)  # the time budget usually ends it
    while step < schedule.max_steps:
        model.train()
        losses.append(_step(weights, loss_fn(next(batches)), opt, sched, average, schedule.ema_decay, step))
        _extend(path, decayed())
        step += 1
        bar.update(1)
        out_of_time = time.monotonic() - started >= schedule.max_minutes * 60
        if step % schedule.eval_every and not out_of_time and step < schedule.max_steps:
            continue
        model.eval()
        live = _swap_in(weights, average)
        valid = evaluate(make_scorer(), split, valid_set)["overall"]
        history.append({"step": step, "loss": float(np.mean(losses)), "seconds": round(time.monotonic() - started, 1),
                        "recall@10": valid["recall@10"], "ndcg@10": valid["ndcg@10"]})
        losses = []
        since += 1
        if valid["ndcg@10"] > best:
            best, best_state, best_step, since = valid["ndcg@10"], copy.deepcopy(model.state_dict()), step, 0
            best_opt, best_path = copy.deepcopy(opt.state_dict()), copy.deepcopy(path)
        _swap_in(weights, live)
        bar.set_postfix(r10=f"{valid['recall@10']:.4f}", n10=f"{valid['ndcg@10']:.4f}", best=best_step)
        if out_of_time or time.monotonic() - started >= schedule.max_minutes * 60:
            stopped_by = "time"
            break
        if since >= schedule.patience and len(decays) < schedule.plateau_decays:
            model.load_state_dict(best_state)
            opt.load_state_dict(best_opt)
            if average is not None:
                torch._foreach_copy_(average, [p.detach() for p in weights])
            decays.append(step)
            since, path = 0, copy.deepcopy(best_path)
            for group in opt.param_groups:  # the restored state holds the old rate
                group["lr"] = cfg.lr * rate(step)
        elif since >= schedule.patience:
            stopped_by = "patience"
            break
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return {
        "train_seconds": round(time.monotonic() - started, 1),
        "steps": step,
        "best_step": best_step,
        "examples_seen": step * cfg.batch_size,
        "stopped_by": stopped_by,
        "lr_decayed_at": decays,
        "path": best_path,
        "valid": next(h for h in history if h["step"] == best_step),
        "history": history,
        "train_config": cfg.record(unused),
    }
