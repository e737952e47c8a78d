"""Full-ranking metrics on hand-computed examples."""

import math

import numpy as np
import pytest
import torch

from learnrec.trainer.data import EvalSet, Split
from learnrec.trainer.evaluate import evaluate, longtail_items, metrics, ranks


def _fixed(scores):
    table = torch.tensor(scores, dtype=torch.float32)
    return lambda histories: table[: len(histories)]


def test_ranks_with_and_without_history_mask():
    data = EvalSet([np.array([0]), np.array([3, 1])], np.array([2, 0]))
    scorer = _fixed([[0.9, 0.1, 0.5, 0.3], [0.2, 0.8, 0.1, 0.9]])
    assert ranks(scorer, data, mask_history=False).tolist() == [1, 2]
    assert ranks(scorer, data, mask_history=True).tolist() == [0, 0]


def test_ties_count_against_the_target():
    data = EvalSet([np.array([0])], np.array([1]))
    assert ranks(_fixed([[1.0, 1.0, 1.0, 0.0]]), data, mask_history=False).tolist() == [2]


def test_metrics_by_hand():
    m = metrics(np.array([0, 4, 15, 100]))
    assert m["recall@10"] == pytest.approx(0.5)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(6)) / 4)
    assert m["recall@20"] == pytest.approx(0.75)
    assert m["recall@50"] == pytest.approx(0.75)
    assert m["mrr"] == pytest.approx((1 + 1 / 5 + 1 / 16 + 1 / 101) / 4)


def test_longtail_is_the_least_popular_80_percent():
    assert longtail_items(np.array([5, 0, 9, 1, 3])).tolist() == [True, True, False, True, True]


def test_groups():
    # item 3 never trains (cold); counts 0:3, 1:1, 2:1, 3:0
    split = Split("loo", 4, [np.array([0, 1]), np.array([0, 2]), np.array([0])],
                  EvalSet([], np.zeros(0, dtype=np.int64)),
                  EvalSet([np.array([0]), np.array([1]), np.array([2])], np.array([3, 0, 1])))
    res = evaluate(_fixed([[0, 0, 0, 1.0], [1.0, 0, 0, 0], [0, 0, 0, 1.0]]), split)
    assert res["overall"]["n"] == 3 and res["overall"]["recall@10"] == 1.0
    assert res["cold"]["n"] == 1 and res["warm"]["n"] == 2
    assert res["longtail"]["n"] == 2  # targets 3 and 1 are among the 3 least popular items
    assert res["overall"]["mrr"] == pytest.approx((1 + 1 + 1 / 3) / 3)
