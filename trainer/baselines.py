"""Baselines, trained and scored on the same split as LEARN.

- popularity: training counts;
- content mean: mean of the history's frozen content embeddings against each item's content
  embedding (cosine), no training at all;
- SASRec (Kang & McAuley 2018): item-ID embeddings + learned positions + causal transformer,
  next-item prediction at every position of the same training windows as LEARN, softmax
  cross-entropy over all items (the RecBole ``CE`` setting used by the published Amazon
  figures), tied input/output embeddings, trained by the same loop (:func:`learnrec.trainer.fit.fit`).
The content-only tower baseline (LEARN item-tower variant c) is :func:`learnrec.trainer.offline.train_offline`
with ``item_tower="none"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from learnrec.shared.model.loss import full_softmax_loss
from learnrec.shared.model.towers import CausalBlock, causal_mask, dropout
from learnrec.trainer.config import TrainConfig
from learnrec.trainer.data import Split
from learnrec.trainer.evaluate import Scorer
from learnrec.trainer.fit import fit
from learnrec.trainer.offline import excluded_negatives, window_items
from learnrec.trainer.windows import cut_windows, pad, window_batches


def popularity_scorer(split: Split) -> Scorer:
    counts = torch.as_tensor(split.train_counts(), dtype=torch.float32)
    return lambda histories: counts.expand(len(histories), -1)


def content_mean_scorer(content: np.ndarray, max_len: int = 50) -> Scorer:
    """Cosine of the (normalised) mean history content embedding with every item's."""
    items = F.normalize(torch.as_tensor(content, dtype=torch.float32), dim=-1)

    def score(histories: Sequence[np.ndarray]) -> torch.Tensor:
        user = torch.stack([items[torch.as_tensor(h[-max_len:])].mean(0) for h in histories])
        return F.normalize(user, dim=-1) @ items.T

    return score


# SASRec's defaults (the budget is set per run): the best mean validation rank over
# amazon-scientific and ml-100k in bench.tune's grid, as for LEARN (docs/MODEL.md)
SASREC_TRAIN = TrainConfig(lr=1e-3)
# LEARN's objective fields: SASRec's loss is its own (every item, raw dot products, an ID each)
SASREC_UNUSED = ("temperature", "full_softmax_max_items", "negatives", "id_min_count")


@dataclass
class SASRecConfig:
    dim: int = 64
    num_layers: int = 2
    num_heads: int = 2
    dropout: float = 0.2
    max_len: int = 50


class SASRec(nn.Module):
    """Item ids ``0..n-1`` are stored shifted by one: row 0 of the table is padding."""

    def __init__(self, n_items: int, cfg: SASRecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.items = nn.Embedding(n_items + 1, cfg.dim, padding_idx=0)
        self.positions = nn.Embedding(cfg.max_len, cfg.dim)
        for emb in (self.items, self.positions):
            nn.init.normal_(emb.weight, std=0.02)
        self.blocks = nn.ModuleList(CausalBlock(cfg.dim, cfg.num_heads, 1) for _ in range(cfg.num_layers))
        self.norm = nn.LayerNorm(cfg.dim)
        self.register_buffer("causal", causal_mask(cfg.max_len), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids`` [B, L] shifted item ids (0 = right padding) -> hidden [B, L, dim]."""
        n = ids.shape[1]
        p = self.cfg.dropout if self.training else 0.0
        x = dropout(self.items(ids) * self.cfg.dim**0.5 + self.positions(torch.arange(n)), p)
        for block in self.blocks:
            x = block(x, self.causal[:n, :n], p)
        return self.norm(x)

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., dim] -> [..., n_items] scores of every real item."""
        return hidden @ self.items.weight[1:].T


def sasrec_scorer(model: SASRec) -> Scorer:
    def score(histories: Sequence[np.ndarray]) -> torch.Tensor:
        ids, mask = pad([h[-model.cfg.max_len :] + 1 for h in histories])
        hidden = model(ids)
        last = hidden[torch.arange(len(ids)), mask.sum(1) - 1]
        return model.logits(last)

    return score


def train_sasrec(
    split: Split, cfg: SASRecConfig, train_cfg: TrainConfig, progress: bool = True
) -> tuple[SASRec, dict]:
    """Every position of every training window predicts the next item: cross-entropy over all
    items; with ``mask_history`` the window's other items are not negatives, nor ever are the
    split's unknown items (as for LEARN). ``SASREC_UNUSED`` fields set in ``train_cfg`` raise."""
    train_cfg.require_defaults(SASREC_UNUSED, "SASRec's loss is a softmax over every item's ID")
    torch.manual_seed(train_cfg.seed)
    model = SASRec(split.n_items, cfg)
    windows = cut_windows(split.train, cfg.max_len)
    batches = window_batches(windows, train_cfg.batch_size, np.random.default_rng(train_cfg.seed))
    unknown = torch.as_tensor(split.unknown_items())
    unknown = unknown if unknown.any() else None

    def loss_fn(batch) -> torch.Tensor:
        ids, mask, targets = batch
        real = targets >= 0  # [B, L]; logits only where there is a next item
        hidden = model((ids + 1).masked_fill(~mask, 0))[real]  # [R, dim]
        own = window_items(ids, mask, targets, split.n_items)[real.nonzero()[:, 0]] if train_cfg.mask_history else None
        excluded = excluded_negatives(own, unknown, len(hidden))
        return full_softmax_loss(hidden, model.items.weight[1:], targets[real], 1.0, excluded)

    report = fit(model, batches, loss_fn, lambda: sasrec_scorer(model), split, train_cfg,
                 progress, desc="training sasrec", unused=SASREC_UNUSED)
    report["model_config"] = asdict(cfg)
    report["windows"] = len(windows)
    return model, report
