"""LEARN twin towers over frozen content embeddings.

Preference module = linear content adaptor (content_dim -> model_dim) + learned positions + a
small pre-norm transformer with causal attention + linear projection (model_dim -> output_dim).
The user vector is the output at the last real position, L2-normalised. The item tower is,
depending on :attr:`LearnConfig.item_tower`:

- ``"shared"`` (paper variant a, default): the same weights; in training it runs causally over
  a user's target sequence, at serving time an item is encoded alone (a sequence of one);
- ``"itemwise"`` (variant b): the same weights, but every item is always encoded alone;
- ``"none"`` (variant c): no transformer, only a learned linear projection of the content.

Padding is on the right (real items first), so causal attention alone keeps padding out of
every real position's output: no key-padding mask is needed, which keeps the ONNX graph plain.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

ItemTower = Literal["shared", "itemwise", "none"]


@dataclass
class LearnConfig:
    """Hyperparameters of :class:`LearnModel` (all plain values: they go into checkpoints)."""

    content_dim: int
    model_dim: int = 128
    num_layers: int = 2
    num_heads: int = 2
    ffn_mult: int = 2
    dropout: float = 0.2
    output_dim: int = 64
    max_len: int = 50
    item_tower: ItemTower = "shared"

    def to_dict(self) -> dict:
        return asdict(self)


def causal_mask(max_len: int) -> torch.Tensor:
    """Additive attention mask [max_len, max_len]: 0 on and below the diagonal, -inf above."""
    return torch.full((max_len, max_len), float("-inf")).triu(1)


class CausalBlock(nn.Module):
    """Pre-norm transformer block with causal self-attention. ``[B, L, H] -> [B, L, H]``."""

    def __init__(self, dim: int, heads: int, ffn_mult: int, dropout: float) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError("model_dim must be a multiple of num_heads")
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, ffn_mult * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_mult * dim, dim)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, causal: torch.Tensor) -> torch.Tensor:
        """``x`` [B, L, H]; ``causal`` [L, L] additive mask (0 or -inf above the diagonal)."""
        b, n, h = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, h // self.heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, heads, L, h/heads]
        scores = q @ k.transpose(-1, -2) / math.sqrt(h // self.heads) + causal
        attn = self.drop(torch.softmax(scores, dim=-1))
        x = x + self.drop(self.out((attn @ v).transpose(1, 2).reshape(b, n, h)))
        return x + self.drop(self.ffn(self.norm2(x)))


class LearnModel(nn.Module):
    """Twin towers over content embeddings; see the module docstring for the variants."""

    def __init__(self, config: LearnConfig) -> None:
        super().__init__()
        self.config = config
        # LayerNorm after the adaptor: unit-norm content vectors have tiny coordinates, and
        # the positions must not drown them.
        self.adaptor = nn.Sequential(
            nn.Linear(config.content_dim, config.model_dim), nn.LayerNorm(config.model_dim)
        )
        self.positions = nn.Embedding(config.max_len, config.model_dim)
        nn.init.normal_(self.positions.weight, std=0.02)
        self.blocks = nn.ModuleList(
            CausalBlock(config.model_dim, config.num_heads, config.ffn_mult, config.dropout)
            for _ in range(config.num_layers)
        )
        self.norm = nn.LayerNorm(config.model_dim)
        self.drop = nn.Dropout(config.dropout)
        self.projection = nn.Linear(config.model_dim, config.output_dim)
        if config.item_tower == "none":
            self.item_projection = nn.Linear(config.content_dim, config.output_dim)
        elif config.item_tower not in ("shared", "itemwise"):
            raise ValueError(f"unknown item_tower {config.item_tower!r}")
        self.register_buffer("causal", causal_mask(config.max_len), persistent=False)

    def encode_sequence(self, content: torch.Tensor) -> torch.Tensor:
        """Per-position outputs, not normalised. ``content`` [B, L, D] -> [B, L, out].

        Position ``i`` sees positions ``0..i`` only; ``L`` must be at most ``max_len``.
        """
        n = content.shape[1]
        pos = self.positions(torch.arange(n, device=content.device))
        x = self.drop(self.adaptor(content) + pos)
        causal = self.causal[:n, :n]
        for block in self.blocks:
            x = block(x, causal)
        return self.projection(self.norm(x))

    def encode_by_length(self, content: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """:meth:`encode_sequence` over right-padded rows, run in groups of similar length.

        ``content`` [B, L, D], ``lengths`` int64 [B] (real items per row) -> [B, L, out]. A row
        of length ``n`` runs padded to the next power of two (at most ``L``) instead of ``L``,
        so short rows cost little; the outputs at real positions are those of
        :meth:`encode_sequence` (causal attention keeps padding out of them), the rest are 0.
        """
        b, n, _ = content.shape
        width = torch.pow(2, torch.log2(lengths.clamp(min=1).float()).ceil()).long().clamp(max=n)  # [B]
        parts, order = [], []
        for w in width.unique().tolist():
            rows = (width == w).nonzero().squeeze(1)
            parts.append(F.pad(self.encode_sequence(content[rows, :w]), (0, 0, 0, n - w)))
            order.append(rows)
        out = torch.cat(parts)[torch.argsort(torch.cat(order))]  # rows back in batch order
        return out * (torch.arange(n, device=content.device)[None, :] < lengths[:, None])[..., None]

    def user_tower(self, content: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """User vectors. ``content`` [B, L, D] float32, ``mask`` [B, L] (bool or 0/1, right
        padded, at least one real item per row) -> [B, out] L2-normalised, at the last real
        position."""
        out = self.encode_sequence(content)
        last = (mask.long().sum(dim=1) - 1).clamp(min=0)  # [B]
        picked = out.gather(1, last.view(-1, 1, 1).expand(-1, 1, out.shape[-1])).squeeze(1)
        return F.normalize(picked, dim=-1)

    def item_tower(self, content: torch.Tensor) -> torch.Tensor:
        """Item vectors, each item encoded alone. ``content`` [B, D] -> [B, out] normalised."""
        if self.config.item_tower == "none":
            return F.normalize(self.item_projection(content), dim=-1)
        return F.normalize(self.encode_sequence(content.unsqueeze(1)).squeeze(1), dim=-1)

    def item_sequence_tower(self, content: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Training-time item vectors for a target sequence. ``content`` [B, T, D] ->
        [B, T, out] normalised: causal over the sequence for ``"shared"``, per item otherwise.
        ``lengths`` [B] (optional, right padding): run by length (:meth:`encode_by_length`)."""
        if self.config.item_tower == "shared":
            out = self.encode_sequence(content) if lengths is None else self.encode_by_length(content, lengths)
            return F.normalize(out, dim=-1)
        b, t, d = content.shape
        return self.item_tower(content.reshape(b * t, d)).view(b, t, -1)
