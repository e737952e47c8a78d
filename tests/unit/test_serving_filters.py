"""serving.filters: the filter semantics and the search that widens until k items match."""

import asyncio

import numpy as np
import pytest

from learnrec.serving import filters
from learnrec.serving.filters import NO_FILTER, ItemFacts, ItemFilter, filtered, parse_attributes
from learnrec.serving.index import ItemIndex


def test_a_filter_matches_category_and_every_attribute():
    facts = ItemFacts("lenses", {"mount": "EF", "colour": "black"})
    assert ItemFilter(category="lenses").matches(facts)
    assert not ItemFilter(category="bags").matches(facts)
    assert ItemFilter(attributes=(("mount", "EF"), ("colour", "black"))).matches(facts)
    assert not ItemFilter(attributes=(("mount", "EF"), ("colour", "red"))).matches(facts)
    assert not ItemFilter(category="lenses").matches(ItemFacts())
    assert not NO_FILTER.reads_facts and ItemFilter(category="x").reads_facts


def test_attribute_pairs_are_parsed_or_refused_by_name():
    assert parse_attributes(["a=b", "c=d=e", "f="]) == (("a", "b"), ("c", "d=e"), ("f", ""))
    for bad in ("novalue", "=b"):
        with pytest.raises(ValueError, match="name=value"):
            parse_attributes([bad])


def _index(n: int = 5000) -> tuple[ItemIndex, np.ndarray]:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((n, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = ItemIndex(8, exact_below=1000)
    index.upsert([f"i{n}" for n in range(n)], vectors)
    return index, vectors


def test_a_rare_category_still_fills_k_and_keeps_the_order(monkeypatch):
    index, vectors = _index()
    rare = {f"i{n}" for n in range(0, 5000, 97)}  # 52 items of 5,000
    reads: list[int] = []

    async def read(ids):
        reads.append(len(ids))
        return {i: ItemFacts("rare" if i in rare else "common") for i in ids}

    query = vectors[1]
    got = asyncio.run(filtered(lambda n: index.search(query, n), 10, ItemFilter(category="rare"), read))
    truth = [i for i, _ in index.search(query, 5000) if i in rare][:10]
    assert [i for i, _ in got] == truth
    assert len(reads) > 1 and sum(reads) <= 5000  # it widened, and read no item twice

    monkeypatch.setattr(filters, "MAX_CANDIDATES", 100)  # the cap: short, never unbounded
    got = asyncio.run(filtered(lambda n: index.search(query, n), 10, ItemFilter(category="rare"), read))
    assert len(got) < 10 and all(i in rare for i, _ in got)


def test_no_filter_reads_nothing():
    index, vectors = _index(50)

    async def read(ids):
        raise AssertionError("no facts needed")

    assert len(asyncio.run(filtered(lambda n: index.search(vectors[0], n), 7, NO_FILTER, read))) == 7
