"""The content blend's weight, chosen on validation once the towers are trained.

A served score is ``towers + w * cosine(history content, item content)``
(:meth:`learnrec.shared.model.towers.LearnModel.served_user`): the trained towers blended with
the untrained content-similarity scorer, which ranks items that the towers know little about
(new items, items without an ID row) better than the towers' content-only path does
(docs/MODEL.md). ``w`` is a post-training choice, like the early-stopping step: each weight of
the grid is scored on the same validation sample that early stopping used (NDCG@10, history
masked) and the best one is kept (ties: the smaller weight). Its seconds count as training time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from learnrec.shared.model.towers import LearnModel
from learnrec.trainer.config import TrainConfig
from learnrec.trainer.data import Split
from learnrec.trainer.evaluate import Scorer, evaluate
from learnrec.trainer.fit import validation_sample


def choose_content_blend(model: LearnModel, make_scorer: Callable[[], Scorer], split: Split,
                         cfg: TrainConfig) -> dict:
    """Set ``model.config.content_blend`` to the best of ``cfg``'s ``content_blends`` on
    validation, scoring with ``make_scorer()`` (the model's served scores); a model that reads
    no content keeps 0. -> report (JSON-ready): the weight chosen, each weight's validation
    NDCG@10, the seconds taken."""
    schedule = cfg.require_offline()
    weights: Sequence[float] = schedule.content_blends if model.config.item_ids != "only" else (0.0,)
    if len(weights) <= 1:
        model.config.content_blend = float(weights[0]) if weights else 0.0
        return {"chosen": model.config.content_blend, "validated": False, "seconds": 0.0}
    start = time.monotonic()
    valid = validation_sample(split.valid, schedule.valid_users, cfg.seed)
    scores = {}
    for weight in weights:
        model.config.content_blend = float(weight)
        scores[float(weight)] = evaluate(make_scorer(), split, valid)["overall"]["ndcg@10"]
    model.config.content_blend = max(scores, key=lambda w: (scores[w], -w))
    return {"chosen": model.config.content_blend, "validated": True,
            "valid_ndcg@10": {str(w): round(v, 5) for w, v in scores.items()},
            "seconds": round(time.monotonic() - start, 1)}
