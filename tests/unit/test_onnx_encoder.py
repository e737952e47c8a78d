"""The ONNX Runtime content encoder on tiny random models (a BERT, which gets ORT's fusions, and
a Llama decoder): the same vectors as the torch path, the export cache, and the runtime setting.
The int8 bound on MiniLM itself is measured by ``bench.encoder_throughput``."""

import numpy as np
import pytest

from learnrec.shared.config import Settings
from learnrec.shared.model import onnx_encoder
from learnrec.shared.model.encoder import ContentEncoder
from learnrec.shared.model.onnx_encoder import OnnxContentEncoder
from learnrec.stream.item_encoder import load_encoder

from .tiny_hf import save_tiny_model

TEXTS = ["Title: sanding roll. Brand: acme", "Title: pipette", "glass beaker tips tools grit roll",
         "", "roll grit " * 10]


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory):
    return {kind: save_tiny_model(tmp_path_factory.mktemp(kind), kind)
            for kind in ("bert", "llama")}


@pytest.fixture(scope="module")
def settings_dir(tmp_path_factory):
    """A settings.process.cache_dir, its export cache ``onnx-encoders`` shared by the module's tests."""
    return tmp_path_factory.mktemp("cache")


@pytest.mark.parametrize("kind", ["bert", "llama"])
@pytest.mark.parametrize(("variant", "bound"), [("fp32", 0.9999), ("int8", 0.99)])
def test_vectors_match_the_torch_path(tiny_models, settings_dir, kind, variant, bound):
    tiny_model_dir = tiny_models[kind]
    torch_enc = ContentEncoder(str(tiny_model_dir), max_tokens=8, device="cpu", batch_size=2)
    enc = OnnxContentEncoder(str(tiny_model_dir), max_tokens=8, batch_size=2, variant=variant,
                             cache_dir=settings_dir / "onnx-encoders")
    assert (enc.model_id, enc.content_dim) == (torch_enc.model_id, torch_enc.content_dim)
    out = enc.encode(TEXTS)  # padded batches of two, sorted by length
    assert out.shape == (len(TEXTS), 16) and out.dtype == np.float32
    assert np.sum(out * torch_enc.encode(TEXTS), axis=1).min() >= bound
    alone = np.concatenate([enc.encode([t]) for t in TEXTS])  # no padding at all
    assert np.sum(out * alone, axis=1).min() >= bound
    assert enc.encode([]).shape == (0, 16)


def test_the_export_is_cached_and_shared_by_the_variants(tmp_path, monkeypatch):
    model_dir = save_tiny_model(tmp_path / "bert", "bert")
    cache = tmp_path / "cache"
    OnnxContentEncoder(str(model_dir), variant="int8", cache_dir=cache)
    assert sorted(p.name.rsplit("-", 1)[1] for p in cache.iterdir()) == ["fp32", "int8"]

    def fail(*args):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_encoder, "_export_fp32", fail)
    monkeypatch.setattr(onnx_encoder, "_quantize_int8", fail)
    for variant in ("fp32", "int8"):
        enc = OnnxContentEncoder(str(model_dir), variant=variant, cache_dir=cache)
        assert enc.path.parent.name.endswith(f"-{variant}") and enc.encode(TEXTS).shape == (5, 16)


def test_a_concurrent_export_that_finished_first_wins(tmp_path, monkeypatch):
    model_dir = save_tiny_model(tmp_path / "llama", "llama")
    cache = tmp_path / "cache"
    export = onnx_encoder._export_fp32

    def export_while_another_process_does(model, path):
        export(model, path)
        final = cache / path.parent.name[1:].rsplit("-", 1)[0]  # ".<final name>-<random>"
        final.mkdir()
        (final / "model.onnx").write_bytes(path.read_bytes())

    monkeypatch.setattr(onnx_encoder, "_export_fp32", export_while_another_process_does)
    enc = OnnxContentEncoder(str(model_dir), cache_dir=cache)
    assert enc.encode(TEXTS).shape == (5, 16)
    assert [p.name for p in cache.iterdir()] == [enc.path.parent.name]  # no temporary left


@pytest.mark.parametrize("runtime", ["torch", "onnx", "onnx-int8"])
def test_load_encoder_picks_the_runtime_setting(tiny_models, settings_dir, runtime):
    tiny_model_dir = tiny_models["bert"]
    settings = Settings(encoder=str(tiny_model_dir), encoder_runtime=runtime,
                        cache_dir=settings_dir)
    enc = load_encoder(settings)
    if runtime == "torch":
        assert type(enc) is ContentEncoder
    else:
        assert enc.variant == onnx_encoder.RUNTIME_VARIANTS[runtime]
        assert enc.path.is_relative_to(settings_dir / "onnx-encoders")
    assert enc.model_id == str(tiny_model_dir.resolve())
