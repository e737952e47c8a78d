"""Offline training of the LEARN towers on a :class:`~learnrec.trainer.data.Split`.

Content embeddings are frozen and precomputed: ``content`` float32 [n_items, content_dim]. The
objective is next-item prediction at every position of every training window
(:mod:`learnrec.trainer.windows`): the user vector at position ``i`` against the item at ``i + 1``,
every item encoded alone by the item tower, as serving encodes it. Negatives are the whole
catalogue up to :attr:`TrainConfig.full_softmax_max_items` items, else a uniform sample of
``negatives`` items with the logQ correction (docs/MODEL.md has the measurements).
The items of the user's window are not negatives for it (``mask_history``), and items that
do not exist yet at training time (``Split.unknown_items``: the cold split's) are no negatives.

Item IDs: an item gets a row in the ID table when it occurs in the training sequences
(:func:`id_rows`); every other item (a cold one) is represented by its content alone.
Content whitening, when the model's config asks for it, is fitted on the content of the items
training knows (the cold split's unknown items are left out, as they are of the negatives).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from learnrec.shared.model.loss import full_softmax_loss, sampled_softmax_loss
from learnrec.shared.model.towers import LearnConfig, LearnModel
from learnrec.trainer.config import TrainConfig
from learnrec.trainer.content_blend import choose_content_blend
from learnrec.trainer.data import Split
from learnrec.trainer.evaluate import Scorer
from learnrec.trainer.fit import fit
from learnrec.trainer.windows import cut_windows, pad, window_batches


def default_configs(content_dim: int, seed: int = 0) -> tuple[LearnConfig, TrainConfig]:
    """The defaults: the configuration with the best mean validation rank over amazon-scientific
    and ml-100k in ``bench.tune``'s grid (docs/MODEL.md; bench/results/tuning-*-learn.json)."""
    return LearnConfig(content_dim=content_dim), TrainConfig(seed=seed)


def id_rows(train_counts: np.ndarray, min_count: int = 1) -> np.ndarray:
    """Row of each item in the ID table: rows ``0..k-1`` for the ``k`` items that occur at
    least ``min_count`` times in training (in item order), -1 for the others. int64 [n_items]."""
    rows = np.full(len(train_counts), -1, dtype=np.int64)
    seen = np.flatnonzero(train_counts >= max(1, min_count))
    rows[seen] = np.arange(len(seen))
    return rows


def id_items_of(inputs: ItemInputs, item_ids: Sequence[str]) -> list[str]:
    """The item id of each ID-table row (``item_ids``: the data set's ids by item index)."""
    rows = inputs.rows.numpy()
    order = np.flatnonzero(rows >= 0)
    return [item_ids[i] for i in order[np.argsort(rows[order])]]


class ItemInputs:
    """The frozen content table and the ID rows, as tensors, with the lookups training needs.
    ``unknown`` bool [N]: items that are never negatives in training (None: all are)."""

    def __init__(self, content: np.ndarray, rows: np.ndarray, unknown: np.ndarray | None = None) -> None:
        self.content = torch.as_tensor(content, dtype=torch.float32)  # [N, D]
        self.rows = torch.as_tensor(rows, dtype=torch.int64)  # [N]
        self.unknown = None if unknown is None or not unknown.any() else torch.as_tensor(unknown)
        self.known = torch.arange(len(rows)) if self.unknown is None else (~self.unknown).nonzero()[:, 0]
        self._prepared: torch.Tensor | None = None  # model.prepare(content), computed once

    def adapted(self, model: LearnModel) -> torch.Tensor:
        """The adaptor's output for the whole catalogue [N, H]. The prepared (whitened)
        content is computed on the first call: the whitening stays fixed while training."""
        if self._prepared is None:
            with torch.no_grad():
                self._prepared = model.prepare(self.content)
        return model.adaptor(self._prepared)

    def __len__(self) -> int:
        return len(self.rows)

    def items(self, model: LearnModel, index: torch.Tensor | None = None) -> torch.Tensor:
        """Item-tower vectors of catalogue items ``index`` [M] (all when None) -> [M, out]."""
        content = self.content if index is None else self.content[index]
        rows = self.rows if index is None else self.rows[index]
        return model.item_tower(content, model.id_vectors(rows))

    def sequence(self, model: LearnModel, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Content [B, L, D] and ID vectors [B, L, H] (or None) of item indices ``ids`` [B, L]."""
        return self.content[ids], model.id_vectors(self.rows[ids])


def learn_scorer(model: LearnModel, inputs: ItemInputs, batch: int = 4096) -> Scorer:
    """Scores as served: user vectors (last ``max_len`` history items) x item vectors of all
    items (:meth:`LearnModel.served_user`, ``served_item``: the content blend included)."""
    model.eval()
    with torch.no_grad():
        items = torch.cat([
            model.served_item(inputs.content[i : i + batch], model.id_vectors(inputs.rows[i : i + batch]))
            for i in range(0, len(inputs), batch)])

    def score(histories: Sequence[np.ndarray]) -> torch.Tensor:
        ids, mask = pad([h[-model.config.max_len :] for h in histories])
        content, id_vecs = inputs.sequence(model, ids)
        return model.served_user(content, mask, id_vecs) @ items.T

    return score


def window_items(ids: torch.Tensor, mask: torch.Tensor, targets: torch.Tensor, n_items: int) -> torch.Tensor:
    """bool [B, n_items]: the items of each window (inputs and targets)."""
    seen = torch.zeros(len(ids), n_items, dtype=torch.bool)
    seen.scatter_(1, ids.masked_fill(~mask, 0), mask)
    seen.scatter_(1, targets.clamp(min=0), targets >= 0)
    return seen


def excluded_negatives(own: torch.Tensor | None, unknown: torch.Tensor | None, rows: int) -> torch.Tensor | None:
    """bool [R, N] (or None: nothing excluded): each row's own window items ``own`` [R, N]
    and the catalogue's ``unknown`` items [N]."""
    if unknown is None:
        return own
    return unknown.expand(rows, -1) if own is None else own | unknown


def next_item_loss(model: LearnModel, inputs: ItemInputs, batch, cfg: TrainConfig,
                   rng: torch.Generator | None = None) -> torch.Tensor:
    """The loss of one batch ``(ids [B, L], mask [B, L], targets [B, L])`` (see the module)."""
    ids, mask, targets = batch
    n = len(inputs)
    full = cfg.full_softmax(n)
    real = targets >= 0
    if full and model.config.item_ids != "only":  # the catalogue's adapted content serves both sides
        adapted = inputs.adapted(model)  # [N, H]
        catalogue = model.item_tower(inputs.content, model.id_vectors(inputs.rows), adapted)
        out = model.encode_sequence(None, model.id_vectors(inputs.rows[ids]), adapted=adapted[ids])
    else:
        catalogue = inputs.items(model) if full else None
        out = model.encode_sequence(*inputs.sequence(model, ids))  # [B, L, out]
    user = F.normalize(out[real], dim=-1)  # [R, out]
    target = targets[real]  # [R]
    owner = real.nonzero()[:, 0]  # [R] the row's window
    own = window_items(ids, mask, targets, n) if cfg.mask_history else None  # [B, N]
    if full:
        excluded = excluded_negatives(None if own is None else own[owner], inputs.unknown, len(target))
        return full_softmax_loss(user, catalogue, target, cfg.temperature, excluded)
    known = len(inputs.known)
    k = min(cfg.negatives, known)
    negatives = inputs.known[torch.randperm(known, generator=rng)[:k]]  # [K] uniform, without replacement
    excluded = negatives[None, :] == target[:, None]  # [R, K]
    if own is not None:
        excluded |= own[owner][:, negatives]
    return sampled_softmax_loss(user, inputs.items(model, target), inputs.items(model, negatives),
                                cfg.temperature, math.log(k / known), excluded)


def train_offline(
    split: Split,
    content: np.ndarray,
    model_cfg: LearnConfig,
    cfg: TrainConfig,
    progress: bool = True,
) -> tuple[LearnModel, ItemInputs, dict]:
    """Train LEARN on ``split.train`` over frozen ``content`` [n_items, content_dim], early-stop
    on ``split.valid``, then choose the content blend on it (:mod:`learnrec.trainer.content_blend`;
    its seconds count in ``train_seconds``). -> (best model in eval mode, its item inputs, report)."""
    torch.manual_seed(cfg.seed)
    model_cfg.content_blend = 0.0  # early stopping validates the towers; the blend is chosen after
    rows = id_rows(split.train_counts(), cfg.id_min_count)
    if model_cfg.uses_ids:
        model_cfg.id_rows = int(rows.max()) + 1
    inputs = ItemInputs(content, rows, split.unknown_items())
    model = LearnModel(model_cfg)
    model.fit_whitening(inputs.content[inputs.known].numpy())  # on the items training knows
    windows = cut_windows(split.train, model_cfg.max_len)
    batches = window_batches(windows, cfg.batch_size, np.random.default_rng(cfg.seed))
    # the full softmax samples no negatives; a model without IDs has no ID table
    unused = [name for name, idle in (("negatives", cfg.full_softmax(len(inputs))),
                                      ("id_min_count", not model_cfg.uses_ids)) if idle]
    report = fit(
        model, batches,
        lambda batch: next_item_loss(model, inputs, batch, cfg),
        lambda: learn_scorer(model, inputs),
        split, cfg, progress,
        desc=f"training learn ({model_cfg.item_ids} ids, {model_cfg.item_tower} item tower)", unused=unused,
    )
    report["content_blend"] = choose_content_blend(model, lambda: learn_scorer(model, inputs), split, cfg)
    report["train_seconds"] = round(report["train_seconds"] + report["content_blend"]["seconds"], 1)
    report["model_config"] = model_cfg.to_dict()
    report["windows"] = len(windows)
    return model, inputs, report
