"""ModelStep: concurrent requests batched through a real ONNX user tower give each request what
it would get alone; one unit of model work (a tower batch or one search) per event-loop turn;
errors and cancelled requests stay their own."""

import asyncio
import itertools

import numpy as np
import pytest
import torch

from learnrec.serving.index import ItemIndex
from learnrec.serving.model_step import ModelStep
from learnrec.serving.versions import ServingVersion
from learnrec.shared.model.onnx_export import export_version, new_version_id
from learnrec.shared.model.towers import LearnConfig, LearnModel
from learnrec.versions.towers import LoadedVersion, VersionInfo

ITEMS = [f"i{n}" for n in range(40)]
CONTENT_DIM = 12


@pytest.fixture(scope="module")
def version(tmp_path_factory) -> ServingVersion:
    """A hybrid version (ID rows for half the items) over an exact index of 40 items."""
    torch.manual_seed(3)
    model = LearnModel(LearnConfig(content_dim=CONTENT_DIM, model_dim=16, output_dim=8, max_len=6, id_rows=21)).eval()
    with torch.no_grad():
        model.id_table.normal_()
    out = tmp_path_factory.mktemp("models") / new_version_id()
    meta = export_version(model, out, {"encoder": "tiny"}, id_items=ITEMS[:20])
    towers = LoadedVersion(VersionInfo(path=out, **{k: meta[k] for k in VersionInfo.__dataclass_fields__ if k in meta}))
    index = ItemIndex(towers.info.output_dim)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((len(ITEMS), index.dim)).astype(np.float32)
    index.upsert(ITEMS, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    return ServingVersion(towers, index)


def _histories(n: int) -> list[tuple[list[str], np.ndarray]]:
    rng = np.random.default_rng(n)
    out = []
    for length in rng.integers(1, 7, n):  # 1..max_len items, so the batch is padded
        ids = [str(i) for i in rng.choice(ITEMS, length, replace=False)]
        out.append((ids, rng.standard_normal((length, CONTENT_DIM)).astype(np.float32)))
    return out


def _alone(version: ServingVersion, ids: list[str], content: np.ndarray) -> np.ndarray:
    return version.user_vectors(content[None], np.ones((1, len(ids)), np.int64), [ids])[0]


def test_a_batch_gives_each_request_its_own_answer(version) -> None:
    histories = _histories(11)
    sizes: list[int] = []
    step = ModelStep(max_batch=4, observe=sizes.append)

    async def main():
        searches = [step.search(version, ids, content, 5, set(ids)) for ids, content in histories]
        vectors = [step.user_vector(version, ids, content) for ids, content in histories]
        return await asyncio.gather(*searches), await asyncio.gather(*vectors)

    found, vectors = asyncio.run(main())
    assert sizes == [4, 4, 3, 4, 4, 3]  # at most max_batch a turn; the rest in later turns
    for (ids, content), answer, vector in zip(histories, found, vectors, strict=True):
        alone = _alone(version, ids, content)
        np.testing.assert_allclose(vector, alone, atol=1e-5)
        assert [item for item, _ in answer] == [item for item, _ in version.index.search(alone, 5, set(ids))]
        assert not set(ids) & {item for item, _ in answer}


def test_between_two_batches_the_loop_runs_other_callbacks(version) -> None:
    histories = _histories(6)
    order: list[str] = []
    step = ModelStep(max_batch=3, observe=lambda size: order.append(f"batch {size}"))

    async def main():
        requests = [asyncio.ensure_future(step.user_vector(version, ids, c)) for ids, c in histories]
        await asyncio.sleep(0)  # every request is waiting now
        asyncio.get_running_loop().call_soon(order.append, "other")
        await asyncio.gather(*requests)

    asyncio.run(main())
    assert order == ["batch 3", "other", "batch 3"]


class _RecordingIndex:
    """An index that notes each search in ``order``."""

    def __init__(self, index: ItemIndex, order: list[str]) -> None:
        self._index, self._order = index, order

    def search(self, query, k, exclude=()):
        self._order.append("search")
        return self._index.search(query, k, exclude)


def test_each_search_runs_in_a_turn_of_its_own(version) -> None:
    histories = _histories(3)
    order: list[str] = []
    recording = ServingVersion(version._towers, _RecordingIndex(version.index, order))
    step = ModelStep(max_batch=4, observe=lambda size: order.append(f"batch {size}"))

    async def main():
        requests = [asyncio.ensure_future(step.search(recording, ids, c, 5, set(ids))) for ids, c in histories]
        await asyncio.sleep(0)  # every request is waiting now

        def other() -> None:  # a callback of every turn, as the loop's I/O would be
            order.append("other")
            if not all(r.done() for r in requests):
                asyncio.get_running_loop().call_soon(other)

        asyncio.get_running_loop().call_soon(other)
        return await asyncio.gather(*requests)

    found = asyncio.run(main())
    model_work = [i for i, entry in enumerate(order) if entry != "other"]
    assert [order[i] for i in model_work] == ["batch 3", "search", "search", "search"]
    assert all("other" in order[a + 1 : b] for a, b in itertools.pairwise(model_work))  # a turn between each
    for (ids, content), answer in zip(histories, found, strict=True):
        alone = _alone(version, ids, content)
        assert [item for item, _ in answer] == [item for item, _ in version.index.search(alone, 5, set(ids))]


def test_a_failing_batch_fails_its_requests_only(version) -> None:
    step = ModelStep(max_batch=8)
    (ids, content), (ids2, content2) = _histories(2)

    async def main():
        bad = step.user_vector(version, ids, content[:, :5])  # wrong width: the ONNX run fails
        results = await asyncio.gather(bad, return_exceptions=True)
        good = await step.user_vector(version, ids2, content2)
        return results[0], good

    error, good = asyncio.run(main())
    assert isinstance(error, Exception)
    np.testing.assert_allclose(good, _alone(version, ids2, content2), atol=1e-5)


def test_a_cancelled_request_is_left_out_of_its_batch(version) -> None:
    sizes: list[int] = []
    step = ModelStep(max_batch=8, observe=sizes.append)
    (ids, content), (ids2, content2) = _histories(2)

    async def main():
        gone = asyncio.ensure_future(step.user_vector(version, ids, content))
        kept = asyncio.ensure_future(step.user_vector(version, ids2, content2))
        await asyncio.sleep(0)
        gone.cancel()
        return await kept

    asyncio.run(main())
    assert sizes == [1]

