"""Baselines, trained and scored on the same split as LEARN.

- popularity: training counts;
- content mean: mean of the history's frozen content embeddings against each item's content
  embedding (cosine), no training at all;
- SASRec (Kang & McAuley 2018): item-ID embeddings + learned positions + causal transformer,
  next-item prediction at every position, softmax cross-entropy over all items (the RecBole
  ``CE`` setting used by the published Amazon figures), tied input/output embeddings.
The content-only tower baseline (LEARN item-tower variant c) is :func:`trainer.offline.train_offline`
with ``item_tower="none"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from shared.model.towers import CausalBlock, causal_mask
from trainer.data import Split
from trainer.evaluate import Scorer
from trainer.offline import TrainConfig, fit, length_batches, pad


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


@dataclass
class SASRecConfig:
    dim: int = 64
    num_layers: int = 2
    num_heads: int = 2
    dropout: float = 0.5
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
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            CausalBlock(cfg.dim, cfg.num_heads, 1, cfg.dropout) for _ in range(cfg.num_layers)
        )
        self.norm = nn.LayerNorm(cfg.dim)
        self.register_buffer("causal", causal_mask(cfg.max_len), persistent=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """``ids`` [B, L] shifted item ids (0 = right padding) -> hidden [B, L, dim]."""
        n = ids.shape[1]
        x = self.items(ids) * self.cfg.dim**0.5 + self.positions(torch.arange(n))
        x = self.drop(x)
        for block in self.blocks:
            x = block(x, self.causal[:n, :n])
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
    """Every position of a training sequence predicts the next item (CE over all items)."""
    model = SASRec(split.n_items, cfg)
    seqs = [s[-(cfg.max_len + 1) :] + 1 for s in split.train if len(s) >= 2]

    def epoch(rng: np.random.Generator):
        for users in length_batches([len(s) for s in seqs], train_cfg.batch_size, rng):
            batch = [seqs[u] for u in users]
            inputs, _ = pad([s[:-1] for s in batch])
            labels, _ = pad([s[1:] for s in batch])
            yield inputs, labels

    def loss_fn(batch) -> torch.Tensor:
        inputs, labels = batch
        real = labels > 0  # [B, L]; logits only where there is a next item
        return F.cross_entropy(model.logits(model(inputs)[real]), labels[real] - 1)

    report = fit(model, epoch, loss_fn, lambda: sasrec_scorer(model), split, train_cfg,
                 progress, desc="training sasrec")
    return model, report
