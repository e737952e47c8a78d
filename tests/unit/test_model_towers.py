"""LearnModel: shapes, normalisation, causality, padding, item IDs and item-tower variants."""

import pytest
import torch

from learnrec.shared.model import checkpoint
from learnrec.shared.model.towers import LearnConfig, LearnModel


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


@pytest.mark.parametrize("variant", ["shared", "none"])
def test_item_tower_encodes_each_item_alone(variant):
    model = _model(item_tower=variant, item_ids="none")
    items = torch.randn(4, 12)
    alone = model.item_tower(items)
    assert alone.shape == (4, 8)
    assert torch.allclose(alone.norm(dim=-1), torch.ones(4), atol=1e-5)
    one_by_one = torch.cat([model.item_tower(items[i : i + 1]) for i in range(4)])
    assert torch.allclose(alone, one_by_one, atol=1e-6)


def test_unknown_or_inconsistent_variants_rejected():
    with pytest.raises(ValueError):
        _model(item_tower="bogus")
    with pytest.raises(ValueError):
        _model(item_ids="bogus")
    with pytest.raises(ValueError, match="content only"):
        _model(item_tower="none", item_ids="hybrid")


def test_an_item_without_an_id_row_is_its_content_alone():
    model = _model(id_rows=3)
    with torch.no_grad():
        model.id_table.normal_()
    content = torch.randn(2, 12)
    rows = torch.tensor([1, -1])
    hybrid = model.item_tower(content, model.id_vectors(rows))
    assert not torch.allclose(hybrid[0], model.item_tower(content[:1])[0])
    assert torch.allclose(hybrid[1], model.item_tower(content[1:])[0], atol=1e-6)


def test_id_dropout_drops_rows_in_training_only():
    model = _model(id_rows=1, id_dropout=0.5)
    with torch.no_grad():
        model.id_table.fill_(1.0)
    rows = torch.zeros(10_000, dtype=torch.long)
    assert model.id_vectors(rows).abs().sum(-1).gt(0).all()  # eval: every row kept
    kept = model.train().id_vectors(rows).abs().sum(-1).gt(0).float().mean()
    assert 0.45 < kept < 0.55


def test_content_only_and_id_only_models():
    assert _model(item_ids="none").id_vectors(torch.tensor([0])) is None
    only = _model(item_ids="only", id_rows=2)
    with torch.no_grad():
        only.id_table.normal_()
    rows = only.id_vectors(torch.tensor([0, 0]))
    a = only.item_tower(torch.randn(2, 12), rows)
    assert torch.allclose(a[0], a[1], atol=1e-6)  # the content is ignored


def test_grow_ids_keeps_rows_and_zero_fills():
    model = _model(id_rows=2)
    with torch.no_grad():
        model.id_table.fill_(3.0)
    old = model.grow_ids(5)
    assert old is not None and model.config.id_rows == 5
    assert torch.equal(model.id_table[:2], torch.full((2, 16), 3.0))
    assert not model.id_table[2:].any()
    assert model.grow_ids(4) is None


def test_checkpoint_round_trip(tmp_path):
    model = _model(id_rows=4)
    model.grow_ids(6)
    with torch.no_grad():
        model.id_table.normal_()
    path = checkpoint.save(tmp_path / "sub" / "model.pt", model, {"step": 7, "offsets": {"0": 3}})
    loaded, extra = checkpoint.load(path)
    assert extra == {"step": 7, "offsets": {"0": 3}}
    assert loaded.config == model.config
    x, rows = torch.randn(2, 12), torch.tensor([5, -1])
    assert torch.equal(loaded.item_tower(x, loaded.id_vectors(rows)), model.item_tower(x, model.id_vectors(rows)))
    assert not list(tmp_path.joinpath("sub").glob("*.tmp"))


def test_served_vectors_add_the_weighted_content_cosine_to_the_towers_score():
    """served_user . served_item = user_tower . item_tower + w * cosine(normalised mean of the
    history's normalised content, the item's content), computed by hand; w = 0 serves the towers."""
    torch.manual_seed(5)
    model = LearnModel(LearnConfig(content_dim=12, model_dim=16, output_dim=8, content_blend=0.3)).eval()
    history, mask = torch.randn(2, 4, 12), torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    items = torch.randn(5, 12)
    with torch.no_grad():
        served = model.served_user(history, mask) @ model.served_item(items).T
        towers = model.user_tower(history, mask) @ model.item_tower(items).T
    assert model.vector_dim == 8 + 12
    for b, n in enumerate((2, 4)):
        mean = torch.stack([h / h.norm() for h in history[b, :n]]).mean(0)
        cosine = (items @ mean) / (items.norm(dim=1) * mean.norm())
        assert torch.allclose(served[b], towers[b] + 0.3 * cosine, atol=1e-5)
    model.config.content_blend = 0.0
    assert model.vector_dim == 8
    assert torch.equal(model.served_item(items), model.item_tower(items))
