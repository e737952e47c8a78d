"""The content blend's weight is chosen on validation after training (trainer/content_blend.py)."""

import numpy as np
import torch

from learnrec.shared.model.towers import LearnConfig, LearnModel
from learnrec.trainer.config import TrainConfig
from learnrec.trainer.content_blend import choose_content_blend
from learnrec.trainer.data import SeqDataset, leave_one_out
from learnrec.trainer.evaluate import evaluate
from learnrec.trainer.offline import ItemInputs, id_rows, learn_scorer, train_offline

GRID = TrainConfig().override(content_blends=(0.0, 0.5, 2.0))


def _clusters(n: int = 6):
    """``n`` clusters of 10 items whose content names the cluster; each user stays in one."""
    rng = np.random.default_rng(0)
    seqs = [rng.choice(np.arange(10) + 10 * (u % n), size=6, replace=False) for u in range(20 * n)]
    ds = SeqDataset("clusters", [str(i) for i in range(10 * n)], [""] * 10 * n, [str(u) for u in range(20 * n)], seqs)
    content = rng.normal(0.0, 0.2, (10 * n, 8)).astype(np.float32)
    content[np.arange(10 * n), np.arange(10 * n) // 10] += 1.0
    return leave_one_out(ds), content


def _untrained(split, content, **kw):
    torch.manual_seed(0)
    rows = id_rows(split.train_counts())
    model = LearnModel(LearnConfig(content_dim=8, model_dim=16, output_dim=8, max_len=6,
                                   id_rows=int(rows.max()) + 1, **kw)).eval()
    return model, ItemInputs(content, rows)


def test_validation_chooses_a_blend_where_the_content_knows_what_the_towers_do_not():
    split, content = _clusters()
    model, inputs = _untrained(split, content)
    towers = evaluate(learn_scorer(model, inputs), split)["overall"]["ndcg@10"]
    report = choose_content_blend(model, lambda: learn_scorer(model, inputs), split, GRID)
    assert report["validated"] and set(report["valid_ndcg@10"]) == {"0.0", "0.5", "2.0"}
    scores = report["valid_ndcg@10"]
    assert report["chosen"] == model.config.content_blend > 0
    assert scores[str(report["chosen"])] == max(scores.values()) > scores["0.0"]
    blended = evaluate(learn_scorer(model, inputs), split)["overall"]["ndcg@10"]
    assert blended > towers + 0.05, (blended, towers)  # on test too: the users' cluster comes first


def test_one_weight_is_set_without_validating_and_an_id_only_model_keeps_none():
    split, content = _clusters()
    model, inputs = _untrained(split, content)
    fixed = choose_content_blend(model, lambda: learn_scorer(model, inputs), split,
                                 GRID.override(content_blends=(0.3,)))
    assert fixed == {"chosen": 0.3, "validated": False, "seconds": 0.0} and model.config.content_blend == 0.3
    ids_only, inputs = _untrained(split, content, item_ids="only")
    report = choose_content_blend(ids_only, lambda: learn_scorer(ids_only, inputs), split, GRID)
    assert report["chosen"] == ids_only.config.content_blend == 0.0 and not report["validated"]


def test_training_reports_the_choice_and_counts_its_seconds():
    split, content = _clusters()
    cfg = LearnConfig(content_dim=8, model_dim=16, output_dim=8, max_len=6, content_blend=5.0)
    train = GRID.override(batch_size=32, eval_every=20, patience=1, max_steps=40, warmup_steps=5)
    model, _, report = train_offline(split, content, cfg, train, progress=False)
    blend = report["content_blend"]
    assert blend["validated"] and model.config.content_blend == blend["chosen"] in (0.0, 0.5, 2.0)
    assert report["train_seconds"] >= blend["seconds"] >= 0
    assert report["model_config"]["content_blend"] == blend["chosen"]
