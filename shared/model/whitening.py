"""PCA whitening of frozen content embeddings, fitted once on a training catalogue.

Sentence encoders are anisotropic: MiniLM's vectors of unrelated items have a mean cosine of
about 0.29 (amazon-scientific), so most of each vector is a direction every item shares and the
differences between items live in a few small directions. Whitening centres the vectors and
rescales their principal directions to unit variance, so that every direction the catalogue
varies in starts on an equal footing for the adaptor (docs/MODEL.md has the measurement).

    whitened(x) = normalize((x - mean) @ matrix)

``matrix`` = ``U diag(1 / sqrt(s + eps * mean(s)))`` from the eigendecomposition ``U diag(s) U^T``
of the covariance: ``eps`` (relative to the mean eigenvalue) keeps the smallest directions, which
are mostly noise, from being blown up. The fit is a pure function; the model keeps its result in
two buffers (:class:`~learnrec.shared.model.towers.LearnModel`), so checkpoints, the ONNX towers and
a new item at serving time all use the same transform.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def fit_whitening(content: np.ndarray, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """``content`` float [N, D] (N >= 2) -> (mean float32 [D], matrix float32 [D, D])."""
    x = np.asarray(content, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"whitening needs at least two content vectors [N, D], got shape {x.shape}")
    mean = x.mean(axis=0)
    centred = x - mean
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / len(x))
    eigenvalues = np.clip(eigenvalues, 0.0, None)
    floor = eps * max(float(eigenvalues.mean()), 1e-12)
    matrix = eigenvectors / np.sqrt(eigenvalues + floor)
    return torch.as_tensor(mean, dtype=torch.float32), torch.as_tensor(matrix, dtype=torch.float32)


def whiten(content: torch.Tensor, mean: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """``content`` [..., D] -> [..., D] whitened and L2-normalised."""
    return F.normalize((content - mean) @ matrix, dim=-1)
