"""Offline training of the LEARN towers on a :class:`~trainer.data.Split`.

Content embeddings are frozen and precomputed: ``content`` float32 [n_items, content_dim].
Losses (:class:`TrainConfig` ``loss``):

- ``"next"`` (default): every history position against the next item, the whole catalogue
  (each item encoded alone, as at serving time) as negatives, the user's own items masked;
- ``"dense"`` (the paper's dense all-action loss): each epoch every user's training sequence
  is cut once at a random point; the last ``n_history`` positions before the cut are paired
  with every one of the ``n_target`` items after it; negatives are the other users' targets
  in the batch (``negatives="batch"``, with a logQ correction) or the catalogue;
- ``"last"``: the last history position against the first target, in-batch negatives.

The default is the one the figures favour: on amazon-scientific the dense in-batch loss peaks
after one epoch and then loses full-ranking recall (docs/MODEL.md). Early stopping on the
valid split's NDCG@10 (history masked); the best epoch's weights are kept.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from shared.model.loss import dense_all_action_loss, last_position_loss, recency_weights
from shared.model.towers import LearnConfig, LearnModel
from trainer.data import Split
from trainer.evaluate import Scorer, evaluate

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    epochs: int = 200
    batch_size: int = 512
    lr: float = 1e-3
    weight_decay: float = 0.01
    loss: Literal["dense", "next", "last"] = "next"
    n_history: int = 10
    n_target: int = 10
    temperature: float = 0.05
    recency: bool = False
    logq: bool = True
    negatives: Literal["batch", "catalogue"] = "batch"
    mask_history: bool = True
    patience: int = 5
    max_minutes: float = 10.0
    seed: int = 0


def default_configs(content_dim: int, seed: int = 0) -> tuple[LearnConfig, TrainConfig]:
    """The settings the published figures use (bench/results/quality-*.md)."""
    return LearnConfig(content_dim=content_dim), TrainConfig(seed=seed)


def pad(seqs: Sequence[np.ndarray], fill: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad int sequences. -> (ids int64 [B, L], mask bool [B, L])."""
    width = max(1, max(len(s) for s in seqs))
    ids = np.full((len(seqs), width), fill, dtype=np.int64)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = s
    lengths = torch.as_tensor([len(s) for s in seqs])
    return torch.from_numpy(ids), torch.arange(width)[None, :] < lengths[:, None]


def length_batches(lengths: Sequence[int], batch_size: int, rng: np.random.Generator,
                   pool: int = 16) -> list[np.ndarray]:
    """Shuffled batches of indices, each drawn from a pool of ``pool`` batches sorted by
    length, so a batch pads to about its own length (sequences here are mostly short, the
    longest 50). -> index arrays, in random order."""
    order = rng.permutation(len(lengths))
    lengths = np.asarray(lengths)
    batches = []
    for start in range(0, len(order), batch_size * pool):
        chunk = order[start : start + batch_size * pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def learn_scorer(model: LearnModel, content: torch.Tensor, batch: int = 4096) -> Scorer:
    """Scores = user vectors (last ``max_len`` history items) x item-tower vectors of all items."""
    model.eval()
    with torch.no_grad():
        items = torch.cat([model.item_tower(content[i : i + batch]) for i in range(0, len(content), batch)])

    def score(histories: Sequence[np.ndarray]) -> torch.Tensor:
        ids, mask = pad([h[-model.config.max_len :] for h in histories])
        return model.user_tower(content[ids], mask) @ items.T

    return score


class _Batches:
    """Random cuts of the training sequences into (history, targets) batches."""

    def __init__(self, train: Sequence[np.ndarray], max_len: int, cfg: TrainConfig) -> None:
        self.seqs = [s for s in train if len(s) >= 2]
        self.max_len, self.cfg = max_len, cfg

    def __len__(self) -> int:
        return -(-len(self.seqs) // self.cfg.batch_size)

    def epoch(self, rng: np.random.Generator):
        """Yields (history ids [B, L], history mask [B, L], target ids [B, T], -1 padded)."""
        n_target = self.cfg.n_target if self.cfg.loss == "dense" else 1
        for users in length_batches([len(s) for s in self.seqs], self.cfg.batch_size, rng):
            hist, tgt = [], []
            for u in users:
                s = self.seqs[u]
                if self.cfg.loss == "next":  # every position predicts the next item
                    s = s[-(self.max_len + 1) :]
                    hist.append(s[:-1])
                    tgt.append(s[1:])
                    continue
                cut = int(rng.integers(1, len(s)))
                hist.append(s[max(0, cut - self.max_len) : cut])
                tgt.append(s[cut : cut + n_target])
            ids, mask = pad(hist)
            targets, _ = pad(tgt, fill=-1)
            yield ids, mask, targets


def _next_item_loss(model, content, out, ids, mask, targets, cfg: TrainConfig) -> torch.Tensor:
    """Every real history position ``i`` against the item at ``i + 1`` (``targets[:, i]``):
    each (user, position) is one row of :func:`dense_all_action_loss` with H = T = 1 and the
    whole catalogue as negatives; the user's sequence is masked from them."""
    rows = mask.nonzero(as_tuple=True)  # (user, position) of every real position
    user = F.normalize(out[rows], dim=-1)[:, None, :]  # [R, 1, out]
    target_items = targets[rows][:, None]  # [R, 1]
    item = model.item_tower(content[target_items[:, 0]])[:, None, :]
    own = ids.masked_fill(~mask, -1)[rows[0]] if cfg.mask_history else None  # [R, L]
    return dense_all_action_loss(
        user, torch.ones_like(target_items, dtype=torch.bool), item, target_items, cfg.temperature,
        negatives=model.item_tower(content), negative_items=torch.arange(len(content)),
        masked_items=own,
    )


def _step_loss(
    model: LearnModel, content: torch.Tensor, batch, cfg: TrainConfig, log_pop: torch.Tensor
) -> torch.Tensor:
    """One batch's loss; ``log_pop`` [n_items] log training frequency (for ``cfg.logq``)."""
    ids, mask, targets = batch
    out = model.encode_sequence(content[ids])  # [B, L, out]
    lengths = mask.sum(1)
    if cfg.loss == "next":
        return _next_item_loss(model, content, out, ids, mask, targets, cfg)
    if cfg.loss == "last":
        user = F.normalize(out[torch.arange(len(ids)), lengths - 1], dim=-1)
        item = model.item_tower(content[targets[:, 0]])
        return last_position_loss(user, item, targets[:, 0], cfg.temperature)
    # the last n_history real positions of each user: position lengths-H .. lengths-1
    pos = lengths[:, None] - cfg.n_history + torch.arange(cfg.n_history)[None, :]  # [B, H]
    valid = pos >= 0
    user = F.normalize(out.gather(1, pos.clamp(min=0)[..., None].expand(-1, -1, out.shape[-1])), dim=-1)
    item = model.item_sequence_tower(content[targets.clamp(min=0)])  # [B, T, out]
    weights = recency_weights(cfg.n_history)[None, :].expand_as(pos) if cfg.recency else None
    masked = ids.masked_fill(~mask, -1) if cfg.mask_history else None
    if cfg.negatives == "catalogue":
        every = torch.arange(len(content))
        return dense_all_action_loss(user, valid, item, targets, cfg.temperature, weights,
                                     negatives=model.item_tower(content), negative_items=every,
                                     masked_items=masked)
    log_q = log_pop[targets.clamp(min=0)] if cfg.logq else None
    return dense_all_action_loss(user, valid, item, targets, cfg.temperature, weights, log_q,
                                 masked_items=masked)


def fit(
    model: torch.nn.Module,
    epoch_batches: Callable[[np.random.Generator], Iterable],
    loss_fn: Callable[[object], torch.Tensor],
    make_scorer: Callable[[], Scorer],
    split: Split,
    cfg: TrainConfig,
    progress: bool = True,
    desc: str = "training",
) -> dict:
    """The shared loop: AdamW epochs over ``epoch_batches(rng)``, validation after each epoch
    (NDCG@10 on ``split.valid``, history masked), early stopping after ``patience`` epochs
    without improvement or ``max_minutes``; the best weights are loaded back. -> report."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, best_state, best_epoch, history = -1.0, None, -1, []
    started = time.monotonic()
    bar = tqdm(range(cfg.epochs), desc=desc, unit="epoch", disable=not progress)
    for epoch in bar:
        model.train()
        losses = []
        for batch in epoch_batches(rng):
            loss = loss_fn(batch)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        model.eval()
        valid = evaluate(make_scorer(), split, split.valid)["overall"]
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), **valid})
        if valid["ndcg@10"] > best:
            best, best_state, best_epoch = valid["ndcg@10"], copy.deepcopy(model.state_dict()), epoch
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", r10=f"{valid['recall@10']:.4f}",
                        n10=f"{valid['ndcg@10']:.4f}", best=best_epoch)
        minutes = (time.monotonic() - started) / 60
        if epoch - best_epoch >= cfg.patience or minutes >= cfg.max_minutes:
            break
    bar.close()
    model.load_state_dict(best_state)
    model.eval()
    return {
        "train_seconds": time.monotonic() - started,
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "valid": history[best_epoch],
        "history": history,
        "train_config": asdict(cfg),
    }


def train_offline(
    split: Split,
    content: np.ndarray,
    model_cfg: LearnConfig,
    cfg: TrainConfig,
    progress: bool = True,
) -> tuple[LearnModel, dict]:
    """Train LEARN on ``split.train`` over frozen ``content`` [n_items, content_dim], early-stop
    on ``split.valid``. -> (best model in eval mode, report)."""
    torch.manual_seed(cfg.seed)
    content_t = torch.as_tensor(content, dtype=torch.float32)
    model = LearnModel(model_cfg)
    batches = _Batches(split.train, model_cfg.max_len, cfg)
    counts = torch.as_tensor(split.train_counts(), dtype=torch.float32) + 1.0
    log_pop = (counts / counts.sum()).log()
    report = fit(
        model,
        batches.epoch,
        lambda batch: _step_loss(model, content_t, batch, cfg, log_pop),
        lambda: learn_scorer(model, content_t),
        split,
        cfg,
        progress,
        desc=f"training learn ({model_cfg.item_tower} item tower)",
    )
    report["model_config"] = model_cfg.to_dict()
    return model, report
