"""Content whitening: the fit, the model's use of it, checkpoints, and the offline trainer's fit."""

import numpy as np
import pytest
import torch

from learnrec.shared.model import checkpoint
from learnrec.shared.model.towers import LearnConfig, LearnModel
from learnrec.shared.model.whitening import fit_whitening, whiten


def _anisotropic(n=500, d=16, seed=0):
    """Unit vectors sharing one strong direction (mean cosine well above 0), like a sentence encoder's."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) * np.linspace(0.05, 1.0, d) + 3.0 * np.eye(d)[0]
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_whitened_content_has_identity_covariance_and_no_common_direction():
    x = _anisotropic()
    mean, matrix = fit_whitening(x, eps=0.0)
    white = (torch.from_numpy(x) - mean) @ matrix
    cov = (white.T @ white / len(x)).numpy()
    assert np.abs(cov - np.eye(16)).max() < 1e-3
    unit = whiten(torch.from_numpy(x), mean, matrix).numpy()
    assert np.allclose(np.linalg.norm(unit, axis=1), 1.0, atol=1e-5)
    off_diagonal = ~np.eye(len(x), dtype=bool)
    assert (x @ x.T)[off_diagonal].mean() > 0.5  # before: one shared direction
    assert abs((unit @ unit.T)[off_diagonal].mean()) < 0.05  # after: none


def test_eps_floors_the_small_directions():
    x = _anisotropic()
    _, exact = fit_whitening(x, eps=0.0)
    _, floored = fit_whitening(x, eps=1.0)
    assert np.linalg.norm(floored.numpy(), axis=0).max() < np.linalg.norm(exact.numpy(), axis=0).max()


def test_fit_refuses_too_few_vectors():
    with pytest.raises(ValueError, match="at least two"):
        fit_whitening(np.ones((1, 4)), eps=0.05)


def _model(whiten_content: bool) -> LearnModel:
    torch.manual_seed(0)
    return LearnModel(LearnConfig(content_dim=16, model_dim=32, output_dim=8, max_len=6, id_rows=3,
                                  whiten_content=whiten_content)).eval()


def test_a_model_whitens_its_content_once_fitted_and_checkpoints_keep_the_fit(tmp_path):
    x = torch.from_numpy(_anisotropic())
    model = _model(True)
    unfitted = model.item_tower(x[:4])
    assert torch.allclose(model.prepare(x[:4]), x[:4], atol=1e-6)  # identity until fitted
    model.fit_whitening(x.numpy())
    assert not torch.allclose(model.item_tower(x[:4]), unfitted, atol=1e-3)
    assert torch.allclose(model.prepare(x[:4]), whiten(x[:4], *fit_whitening(x.numpy(), 0.05)), atol=1e-6)
    loaded, _ = checkpoint.load(checkpoint.save(tmp_path / "m.pt", model))
    assert torch.equal(loaded.item_tower(x[:4]), model.item_tower(x[:4]))


def test_a_model_without_whitening_has_no_whitening_state():
    model = _model(False)
    model.fit_whitening(_anisotropic())  # a no-op
    assert not any("content_" in name for name in model.state_dict())
