"""bench.tune: the grid keys and the committed tuning results still build the configs."""

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from bench.tune import RESULTS, append_record, best_settings, learn_configs, sasrec_configs


@pytest.mark.parametrize("dataset,split", [("amazon-scientific", "loo"), ("ml-100k", "loo"),
                                           ("amazon-scientific", "cold")])
def test_the_committed_tuned_settings_apply(dataset, split):
    learn = best_settings(RESULTS, dataset, "learn", split)
    model_cfg, train_cfg = learn_configs(learn, 384, max_minutes=1.5, seed=3)
    assert (model_cfg.model_dim, model_cfg.dropout, model_cfg.id_dropout) == (
        learn["model_dim"], learn["dropout"], learn["id_dropout"])
    assert (train_cfg.lr, train_cfg.seed, train_cfg.offline.max_minutes) == (learn["lr"], 3, 1.5)
    sasrec = best_settings(RESULTS, dataset, "sasrec", split)
    model_cfg, train_cfg = sasrec_configs(sasrec, max_minutes=1.5)
    assert (model_cfg.dim, model_cfg.dropout, train_cfg.lr, train_cfg.offline.max_minutes) == (
        sasrec["dim"], sasrec["dropout"], sasrec["lr"], 1.5)


def test_grid_keys_may_be_any_training_setting_of_offline_training():
    schedule = {"batch_size": 64, "weight_decay": 0.0, "warmup_steps": 3, "eval_every": 10, "patience": 2,
                "max_steps": 50, "valid_users": 7}
    _, train_cfg = learn_configs({**schedule, "negatives": 16, "full_softmax_max_items": 0}, 16)
    assert (train_cfg.batch_size, train_cfg.offline.max_steps, train_cfg.negatives) == (64, 50, 16)
    _, train_cfg = sasrec_configs(schedule)
    assert (train_cfg.offline.eval_every, train_cfg.offline.valid_users) == (10, 7)
    with pytest.raises(ValueError, match="gate_events: online training only"):
        learn_configs({"gate_events": 3}, 16)
    with pytest.raises(ValueError, match="unknown training settings: nope"):
        sasrec_configs({"nope": 1})


def test_records_appended_side_by_side_are_all_kept(tmp_path):
    path = tmp_path / "results" / "tuning-toy-learn.json"
    append_record(path, {"n": -1})
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda n: append_record(path, {"n": n}), range(40)))
    records = json.loads(path.read_text())
    assert records[0] == {"n": -1} and sorted(r["n"] for r in records[1:]) == list(range(40))
    assert not list(path.parent.glob("*.tmp"))
