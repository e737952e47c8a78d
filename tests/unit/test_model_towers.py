"""LearnModel: shapes, normalisation, causality, padding and item-tower variants."""

import pytest
import torch

from shared.model import checkpoint
from shared.model.towers import LearnConfig, LearnModel


def _model(**kw) -> LearnModel:
    torch.manual_seed(0)
    return LearnModel(LearnConfig(content_dim=12, model_dim=16, output_dim=8, max_len=6, **kw)).eval()


def test_user_tower_shape_and_norm():
    model = _model()
    out = model.user_tower(torch.randn(3, 5, 12), torch.ones(3, 5, dtype=torch.bool))
    assert out.shape == (3, 8)
    assert torch.allclose(out.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_right_padding_does_not_change_user_vector():
    model = _model()
    content = torch.randn(1, 3, 12)
    short = model.user_tower(content, torch.ones(1, 3))
    padded = torch.cat([content, torch.randn(1, 2, 12)], dim=1)
    long = model.user_tower(padded, torch.tensor([[1, 1, 1, 0, 0]]))
    assert torch.allclose(short, long, atol=1e-6)


def test_attention_is_causal():
    model = _model()
    content = torch.randn(1, 4, 12)
    changed = content.clone()
    changed[0, 3] += 1.0
    a, b = model.encode_sequence(content), model.encode_sequence(changed)
    assert torch.allclose(a[:, :3], b[:, :3], atol=1e-6)
    assert not torch.allclose(a[:, 3], b[:, 3])


@pytest.mark.parametrize("variant", ["shared", "itemwise", "none"])
def test_item_tower_variants(variant):
    model = _model(item_tower=variant)
    items = torch.randn(4, 12)
    alone = model.item_tower(items)
    assert alone.shape == (4, 8)
    assert torch.allclose(alone.norm(dim=-1), torch.ones(4), atol=1e-5)
    seq = model.item_sequence_tower(items.view(2, 2, 12))
    assert seq.shape == (2, 2, 8)
    # The first target of a sequence, and every target when items are encoded alone, equals
    # the serving-time (alone) encoding.
    assert torch.allclose(seq[:, 0], alone.view(2, 2, 8)[:, 0], atol=1e-5)
    if variant != "shared":
        assert torch.allclose(seq.reshape(4, 8), alone, atol=1e-5)


def test_unknown_variant_rejected():
    with pytest.raises(ValueError):
        _model(item_tower="bogus")


def test_checkpoint_round_trip(tmp_path):
    model = _model(item_tower="none")
    path = checkpoint.save(tmp_path / "sub" / "model.pt", model, {"step": 7, "offsets": {"0": 3}})
    loaded, extra = checkpoint.load(path)
    assert extra == {"step": 7, "offsets": {"0": 3}}
    assert loaded.config == model.config
    x = torch.randn(2, 12)
    assert torch.equal(loaded.item_tower(x), model.item_tower(x))
    assert not list(tmp_path.joinpath("sub").glob("*.tmp"))


def test_encode_by_length_matches_encode_sequence_at_real_positions():
    model = _model()
    x, lengths = torch.randn(7, 6, 12), torch.tensor([1, 6, 2, 3, 5, 1, 4])
    real = torch.arange(6)[None, :] < lengths[:, None]
    grouped = model.encode_by_length(x, lengths)
    assert torch.allclose(grouped[real], model.encode_sequence(x)[real], atol=1e-5)
    assert not grouped[~real].any()
