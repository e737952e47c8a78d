"""ItemIndex: exact and HNSW search, upserts, exclusions, large k, the background graph build."""

import threading

import hnswlib
import numpy as np
import pytest

from learnrec.serving import index as index_module
from learnrec.serving.index import ItemIndex


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture
def catalogue() -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(0)
    return [f"i{n}" for n in range(3000)], _unit(rng.standard_normal((3000, 16)))


def _truth(vectors: np.ndarray, query: np.ndarray, k: int) -> list[int]:
    return list(np.argsort(-(vectors @ query), kind="stable")[:k])


@pytest.mark.parametrize("exact_below", [10**6, 100])
def test_search_finds_the_nearest_items(catalogue, exact_below: int) -> None:
    ids, vectors = catalogue
    index = ItemIndex(16, exact_below=exact_below, ef=200)
    for start in range(0, len(ids), 700):
        index.upsert(ids[start : start + 700], vectors[start : start + 700])
    index.wait_built()
    assert len(index) == 3000 and index.approximate == (exact_below == 100)
    rng = np.random.default_rng(1)
    recall = []
    for query in _unit(rng.standard_normal((20, 16))):
        got = index.search(query, 10)
        truth = {ids[i] for i in _truth(vectors, query, 10)}
        recall.append(len(truth & {i for i, _ in got}) / 10)
        scores = [s for _, s in got]
        assert scores == sorted(scores, reverse=True)
        assert scores[0] == pytest.approx(float(vectors[ids.index(got[0][0])] @ query), abs=1e-5)
    assert np.mean(recall) >= (1.0 if exact_below > 3000 else 0.95)


@pytest.mark.parametrize("exact_below", [10**6, 100])
def test_upsert_replaces_a_known_item(catalogue, exact_below: int) -> None:
    ids, vectors = catalogue
    index = ItemIndex(16, exact_below=exact_below)
    index.upsert(ids, vectors)
    index.wait_built()
    query = vectors[5]
    index.upsert(["i5"], -query[None])
    assert len(index) == 3000
    assert "i5" not in [i for i, _ in index.search(query, 5)]
    assert index.search(-query, 1)[0][0] == "i5"
    np.testing.assert_allclose(index.vector("i5"), -query)


@pytest.mark.parametrize("exact_below", [10**6, 100])
def test_exclusions_are_left_out_and_k_is_filled(catalogue, exact_below: int) -> None:
    ids, vectors = catalogue
    index = ItemIndex(16, exact_below=exact_below)
    index.upsert(ids, vectors)
    index.wait_built()
    top = [i for i, _ in index.search(vectors[0], 10)]
    got = [i for i, _ in index.search(vectors[0], 10, exclude=set(top[:5]) | {"unknown"})]
    assert len(got) == 10 and not set(got) & set(top[:5])
    assert got[:5] == top[5:]


def test_large_k_beyond_ef_is_exact(catalogue) -> None:
    ids, vectors = catalogue
    index = ItemIndex(16, exact_below=100, ef=32)
    index.upsert(ids, vectors)
    index.wait_built()
    got = index.search(vectors[7], 1000)
    assert [i for i, _ in got] == [ids[i] for i in _truth(vectors, vectors[7], 1000)]


def test_small_and_empty_index() -> None:
    index = ItemIndex(4)
    assert index.search(np.ones(4), 5) == []
    index.upsert(["a", "b"], _unit(np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=np.float32)))
    assert [i for i, _ in index.search(np.array([1, 0.1, 0, 0]), 5)] == ["a", "b"]
    assert index.search(np.array([1, 0, 0, 0]), 5, exclude={"a", "b"}) == []
    assert index.vector("zzz") is None and "a" in index


@pytest.mark.parametrize("exact_below", [10**6, 100])
def test_removed_items_are_never_returned_until_upserted_again(catalogue, exact_below: int) -> None:
    ids, vectors = catalogue
    index = ItemIndex(16, exact_below=exact_below)
    index.upsert(ids[:2000], vectors[:2000])
    top = [i for i, _ in index.search(vectors[0], 10)]
    index.remove(top[:4] + ["unknown"])
    index.remove(top[:1])  # twice: no effect
    index.upsert(ids[2000:], vectors[2000:])  # the graph may be built during the removals
    index.wait_built()
    assert len(index) == 2996 and top[0] not in index and index.vector(top[0]) is None
    for k, exclude in ((10, set()), (10, set(top[4:6])), (2000, set())):
        got = [i for i, _ in index.search(vectors[0], k, exclude)]
        assert len(got) == k and not set(got) & (set(top[:4]) | exclude)
    truth = [ids[i] for i in _truth(vectors, vectors[0], 10) if ids[i] not in top[:4]][:6]
    assert [i for i, _ in index.search(vectors[0], 6)] == truth

    index.upsert(top[:1], vectors[ids.index(top[0])][None])
    assert top[0] in index and index.search(vectors[0], 1)[0][0] == top[0]


def test_searches_and_upserts_never_wait_for_the_graph_build(catalogue, monkeypatch) -> None:
    """The build's first pass is held until the test lets it go: meanwhile searches answer
    (exactly) and upserts and removals go on; the swapped-in graph holds all of them."""
    ids, vectors = catalogue
    started, release = threading.Event(), threading.Event()

    class HeldIndex(hnswlib.Index):
        first = True

        def add_items(self, *args, **kwargs):
            if HeldIndex.first:
                HeldIndex.first = False
                started.set()
                assert release.wait(10)
            return super().add_items(*args, **kwargs)

    monkeypatch.setattr(index_module.hnswlib, "Index", HeldIndex)
    index = ItemIndex(16, exact_below=1000)
    index.upsert(ids[:1500], vectors[:1500])
    assert started.wait(10)
    index.upsert(ids[1500:], vectors[1500:])  # during the build
    index.upsert(["i3"], -vectors[3][None])
    index.remove(["i0"])
    assert not index.approximate
    exact = [i for i, _ in index.search(vectors[0], 10)]
    assert exact == [ids[i] for i in _truth(vectors, vectors[0], 11) if i != 0][:10]
    release.set()
    index.wait_built(10)
    assert index.approximate and len(index) == 2999
    for n in (0, 1600, 2999):
        got = [i for i, _ in index.search(vectors[n], 5)]
        assert got[0] == (ids[n] if n else ids[_truth(vectors, vectors[0], 2)[1]])
    assert index.search(-vectors[3], 1)[0][0] == "i3"


def test_save_and_load_keep_rows_removals_and_the_graph(catalogue, tmp_path) -> None:
    ids, vectors = catalogue
    index = ItemIndex(16, exact_below=100, ef=200)
    index.upsert(ids, vectors)
    index.wait_built()
    index.remove(["i1", "i2"])
    index.save(tmp_path / "saved")
    loaded = ItemIndex.load(tmp_path / "saved", 16, exact_below=100, ef=200)
    assert loaded.approximate and len(loaded) == 2998 and "i1" not in loaded
    for n in (0, 5, 2999):
        assert loaded.search(vectors[n], 10) == index.search(vectors[n], 10)
    loaded.upsert(["i1", "new"], vectors[[1, 7]])
    assert "i1" in loaded and {i for i, _ in loaded.search(vectors[7], 2)} == {"i7", "new"}
