"""LEARN twin towers over frozen content embeddings, with an optional learned item-ID part.

Every item enters the model as one input vector ``[model_dim]``:

    input(item) = LayerNorm(adaptor(prepare(content)) + id_vector)

``adaptor`` is a linear map of the frozen LLM content embedding (content_dim -> model_dim);
``prepare`` whitens the content (:mod:`learnrec.shared.model.whitening`, fitted on the training
catalogue) when :attr:`LearnConfig.whiten_content`, else passes it through;
``id_vector`` is the item's row of a learned ID table, or zeros for an item without a row (a
new item, or one whose ID was dropped in training). :attr:`LearnConfig.item_ids` chooses:

- ``"hybrid"`` (default): content + ID. Rows are trained with *ID dropout* (each occurrence
  loses its ID with probability ``id_dropout``), so the content-only input of a new item lies
  in the same space as the hybrid input of a trained one;
- ``"none"``: content only (the paper's model);
- ``"only"``: ID only (an ablation; a new item is then unknown to the model).

The table has no fixed size: its rows are indexed by the caller (``-1`` = no row) and grow as
items appear (:meth:`LearnModel.grow_ids`).

Preference module = the input above + learned positions + a small pre-norm transformer with
causal attention + linear projection (model_dim -> output_dim). The user vector is the output at
the last real position, L2-normalised. The item tower (:attr:`LearnConfig.item_tower`):

- ``"shared"`` (default): the same weights, each item encoded alone (a sequence of one), in
  training exactly as at serving time;
- ``"none"`` (the paper's variant c, content only): a learned linear projection of the content.

Served vectors (:meth:`LearnModel.served_user`, :meth:`LearnModel.served_item`, what the ONNX
export and the offline scorer use): the towers' outputs, followed, when
:attr:`LearnConfig.content_blend` ``w`` > 0, by the item's normalised content (item side) and
``w`` x the normalised mean of the history's normalised content (user side), so that one dot
product scores ``towers + w * cosine(history content, item content)``: the towers' score blended
with the untrained content-similarity scorer, ``w`` chosen on validation after training
(:mod:`learnrec.trainer.content_blend`). Its vectors are :attr:`LearnModel.vector_dim` wide.

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

from learnrec.shared.model.whitening import fit_whitening, whiten

ItemTower = Literal["shared", "none"]
ItemIds = Literal["hybrid", "none", "only"]


@dataclass
class LearnConfig:
    """Hyperparameters of :class:`LearnModel` (all plain values: they go into checkpoints)."""

    content_dim: int
    model_dim: int = 64
    num_layers: int = 2
    num_heads: int = 2
    ffn_mult: int = 2
    dropout: float = 0.2
    output_dim: int = 64
    max_len: int = 50
    item_tower: ItemTower = "shared"
    item_ids: ItemIds = "hybrid"
    id_dropout: float = 0.25
    id_scale: float = 1.0  # ID vector = scale * row: with Adam, scales how fast rows learn
    id_rows: int = 0  # rows of the ID table now (it grows; checkpoints record its size)
    whiten_content: bool = False  # whiten the content before the adaptor (fit_whitening)
    whitening_eps: float = 0.05  # the eigenvalue floor, relative to the mean eigenvalue
    content_blend: float = 0.0  # weight of the content cosine in the served score (0: off)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def vector_dim(self) -> int:
        """Width of the served vectors: ``output_dim``, plus ``content_dim`` with a content blend."""
        return self.output_dim + (self.content_dim if self.content_blend else 0)

    @property
    def uses_ids(self) -> bool:
        return self.item_ids != "none"


def dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout with probability ``p`` (identity at 0): a uniform-draw mask, about a
    third cheaper on CPU than ``F.dropout``'s Bernoulli sampling, which dominated small steps."""
    if p <= 0:
        return x
    return x * ((torch.rand(x.shape, device=x.device) >= p) * (1.0 / (1.0 - p)))


def causal_mask(max_len: int) -> torch.Tensor:
    """Additive attention mask [max_len, max_len]: 0 on and below the diagonal, -inf above."""
    return torch.full((max_len, max_len), float("-inf")).triu(1)


class CausalBlock(nn.Module):
    """Pre-norm transformer block with causal self-attention. ``[B, L, H] -> [B, L, H]``."""

    def __init__(self, dim: int, heads: int, ffn_mult: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError("model_dim must be a multiple of num_heads")
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.ffn_in = nn.Linear(dim, ffn_mult * dim)
        self.ffn_out = nn.Linear(ffn_mult * dim, dim)

    def forward(self, x: torch.Tensor, causal: torch.Tensor, p: float = 0.0) -> torch.Tensor:
        """``x`` [B, L, H]; ``causal`` [L, L] additive mask (0 or -inf above the diagonal);
        ``p`` the dropout probability (0 in evaluation)."""
        b, n, h = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, h // self.heads).unbind(2)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # [B, heads, L, h/heads]
        scores = q @ k.transpose(-1, -2) / math.sqrt(h // self.heads) + causal
        attn = dropout(torch.softmax(scores, dim=-1), p)
        x = x + dropout(self.out((attn @ v).transpose(1, 2).reshape(b, n, h)), p)
        hidden = dropout(F.gelu(self.ffn_in(self.norm2(x))), p)
        return x + dropout(self.ffn_out(hidden), p)


class LearnModel(nn.Module):
    """Twin towers over content embeddings (+ item IDs); see the module docstring.

    ``id_vecs`` arguments are ID vectors ``[..., model_dim]`` shaped like the content's leading
    dimensions (from :meth:`id_vectors`), or None (no IDs: zeros).
    """

    def __init__(self, config: LearnConfig) -> None:
        super().__init__()
        if config.item_ids not in ("hybrid", "none", "only"):
            raise ValueError(f"unknown item_ids {config.item_ids!r}")
        if config.item_tower not in ("shared", "none"):
            raise ValueError(f"unknown item_tower {config.item_tower!r}")
        if config.item_tower == "none" and config.uses_ids:
            raise ValueError("item_tower='none' (variant c) is content only: use item_ids='none'")
        self.config = config
        self.adaptor = nn.Linear(config.content_dim, config.model_dim)
        self.input_norm = nn.LayerNorm(config.model_dim)
        # Zero rows: an item's input is content-only until its row is trained.
        self.id_table = nn.Parameter(torch.zeros(config.id_rows, config.model_dim))
        self.sparse_id_grads = False  # the ID table's gradient as a sparse tensor of the rows used (online training)
        self.positions = nn.Embedding(config.max_len, config.model_dim)
        nn.init.normal_(self.positions.weight, std=0.02)
        self.blocks = nn.ModuleList(
            CausalBlock(config.model_dim, config.num_heads, config.ffn_mult) for _ in range(config.num_layers)
        )
        self.norm = nn.LayerNorm(config.model_dim)
        self.projection = nn.Linear(config.model_dim, config.output_dim)
        if config.item_tower == "none":
            self.item_projection = nn.Linear(config.content_dim, config.output_dim)
        self.register_buffer("causal", causal_mask(config.max_len), persistent=False)
        if config.whiten_content:  # the identity (up to normalising) until fit_whitening
            self.register_buffer("content_mean", torch.zeros(config.content_dim))
            self.register_buffer("content_whitening", torch.eye(config.content_dim))

    # -- content --------------------------------------------------------------------------------

    def fit_whitening(self, content) -> None:
        """Fit the content whitening on a catalogue's content embeddings float [N, D] (the
        items training knows); a no-op unless :attr:`LearnConfig.whiten_content`."""
        if self.config.whiten_content:
            mean, matrix = fit_whitening(content, self.config.whitening_eps)
            self.content_mean.copy_(mean)
            self.content_whitening.copy_(matrix)

    def prepare(self, content: torch.Tensor) -> torch.Tensor:
        """The adaptor's input: ``content`` [..., D] -> [..., D], whitened when configured."""
        if not self.config.whiten_content:
            return content
        return whiten(content, self.content_mean, self.content_whitening)

    # -- item IDs -------------------------------------------------------------------------------

    def grow_ids(self, rows: int) -> nn.Parameter | None:
        """Make the ID table at least ``rows`` long (new rows are zero). Returns the replaced
        parameter when it grew (an optimizer holding it must swap it), else None."""
        old = self.id_table
        if rows <= old.shape[0]:
            return None
        grown = torch.zeros(rows, self.config.model_dim, dtype=old.dtype, device=old.device)
        grown[: old.shape[0]] = old.detach()
        self.id_table = nn.Parameter(grown)
        self.config.id_rows = rows
        return old

    def id_vectors(self, rows: torch.Tensor) -> torch.Tensor | None:
        """ID vectors of table rows: ``rows`` int64 [...] (-1 = no row) -> float [..., model_dim],
        or None when the model uses no IDs. In training each row is dropped (zeros) with
        probability ``id_dropout``."""
        if not self.config.uses_ids:
            return None
        keep = rows >= 0
        if self.training and self.config.id_dropout > 0 and self.config.item_ids == "hybrid":
            keep = keep & (torch.rand(rows.shape, device=rows.device) >= self.config.id_dropout)
        if not len(self.id_table):
            return torch.zeros(*rows.shape, self.config.model_dim, device=rows.device)
        vectors = F.embedding(rows.clamp(min=0), self.id_table, sparse=self.sparse_id_grads)
        return vectors * (keep[..., None] * self.config.id_scale)

    def embed(self, content: torch.Tensor | None, id_vecs: torch.Tensor | None = None,
              adapted: torch.Tensor | None = None) -> torch.Tensor:
        """Item inputs: ``content`` [..., D] (+ ``id_vecs`` [..., H]) -> [..., H]. ``adapted``
        [..., H], when given, is ``adaptor(prepare(content))`` computed already (training reuses the
        catalogue's) and ``content`` is not read."""
        if self.config.item_ids == "only":  # the content is ignored
            x = id_vecs if id_vecs is not None else self.input_norm.weight.new_zeros(self.config.model_dim)
        else:
            x = self.adaptor(self.prepare(content)) if adapted is None else adapted
            x = x if id_vecs is None else x + id_vecs
        return self.input_norm(x)

    # -- towers ---------------------------------------------------------------------------------

    def encode_sequence(self, content: torch.Tensor | None, id_vecs: torch.Tensor | None = None,
                        regularise: bool = True, adapted: torch.Tensor | None = None) -> torch.Tensor:
        """Per-position outputs, not normalised. ``content`` [B, L, D] -> [B, L, out].

        Position ``i`` sees positions ``0..i`` only; ``L`` must be at most ``max_len``. Dropout
        applies in training when ``regularise`` (the user side; item vectors are computed
        without it, as at serving time). ``adapted``: see :meth:`embed`.
        """
        x = self.embed(content, id_vecs, adapted)
        n = x.shape[1]
        p = self.config.dropout if self.training and regularise else 0.0
        x = dropout(x + self.positions(torch.arange(n, device=x.device)), p)
        causal = self.causal[:n, :n]
        for block in self.blocks:
            x = block(x, causal, p)
        return self.projection(self.norm(x))

    def user_tower(
        self, content: torch.Tensor, mask: torch.Tensor, id_vecs: torch.Tensor | None = None
    ) -> torch.Tensor:
        """User vectors. ``content`` [B, L, D] float32, ``mask`` [B, L] (bool or 0/1, right
        padded, at least one real item per row) -> [B, out] L2-normalised, at the last real
        position."""
        out = self.encode_sequence(content, id_vecs)
        last = (mask.long().sum(dim=1) - 1).clamp(min=0)  # [B]
        picked = out.gather(1, last.view(-1, 1, 1).expand(-1, 1, out.shape[-1])).squeeze(1)
        return F.normalize(picked, dim=-1)

    def item_tower(self, content: torch.Tensor, id_vecs: torch.Tensor | None = None,
                   adapted: torch.Tensor | None = None) -> torch.Tensor:
        """Item vectors, each item encoded alone, without dropout (as at serving time; ID dropout
        still applies to ``id_vecs``). ``content`` [B, D] -> [B, out] normalised. ``adapted``:
        see :meth:`embed`."""
        if self.config.item_tower == "none":
            return F.normalize(self.item_projection(self.prepare(content)), dim=-1)
        ids = None if id_vecs is None else id_vecs.unsqueeze(1)
        one = None if adapted is None else adapted.unsqueeze(1)
        out = self.encode_sequence(content.unsqueeze(1), ids, regularise=False, adapted=one)
        return F.normalize(out.squeeze(1), dim=-1)

    # -- served vectors -------------------------------------------------------------------------

    @property
    def vector_dim(self) -> int:
        """Width of the served vectors (:attr:`LearnConfig.vector_dim`)."""
        return self.config.vector_dim

    def served_user(self, content: torch.Tensor, mask: torch.Tensor,
                    id_vecs: torch.Tensor | None = None) -> torch.Tensor:
        """User vectors as served: ``content`` [B, L, D], ``mask`` [B, L] -> [B, vector_dim]
        (:meth:`user_tower`, then ``content_blend`` x the normalised mean of the real items'
        normalised content)."""
        user = self.user_tower(content, mask, id_vecs)
        if not self.config.content_blend:
            return user
        real = mask.to(content.dtype).unsqueeze(-1)  # [B, L, 1]
        mean = F.normalize((F.normalize(content, dim=-1) * real).sum(dim=1), dim=-1)  # [B, D]
        return torch.cat([user, self.config.content_blend * mean], dim=-1)

    def served_item(self, content: torch.Tensor, id_vecs: torch.Tensor | None = None) -> torch.Tensor:
        """Item vectors as served: ``content`` [B, D] -> [B, vector_dim] (:meth:`item_tower`,
        then the normalised content)."""
        item = self.item_tower(content, id_vecs)
        if not self.config.content_blend:
            return item
        return torch.cat([item, F.normalize(content, dim=-1)], dim=-1)
