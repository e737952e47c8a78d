"""Loaders on small synthetic files, and the leave-one-out and cold-start splits."""

import json

import numpy as np
import pytest

from learnrec.trainer.data import (
    DATASETS,
    SeqDataset,
    cold_start,
    data_path,
    leave_one_out,
    load_dataset,
    load_jsonl,
    load_recbole,
    load_unisrec,
)


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def unisrec_dir(tmp_path):
    d = tmp_path / "Toy"
    d.mkdir()
    _write(d / "Toy.text", ["item_id:token\ttext:token_seq",
                            "A1\tRoll 80 grit. Industrial Abrasives. ACME. ",
                            "B2\tDr. Who's pipette. Lab Supplies. LabCo. "])
    _write(d / "Toy.item2index", ["B2\t1", "A1\t0", "C3\t2"])
    _write(d / "Toy.user2index", ["u0\t0", "u1\t1"])
    _write(d / "Toy.test.inter", ["user_id:token\titem_id_list:token_seq\titem_id:token",
                                  "0\t0 1 2\t1", "1\t2 0\t1"])
    return d


def test_unisrec(unisrec_dir):
    ds = load_unisrec(unisrec_dir)
    assert ds.name == "Toy" and ds.item_ids == ["A1", "B2", "C3"]
    assert ds.item_texts[0] == "Title: Roll 80 grit. Brand: ACME. Category: Industrial Abrasives"
    assert ds.item_texts[1] == "Title: Dr. Who's pipette. Brand: LabCo. Category: Lab Supplies"
    assert ds.item_texts[2] == "Title: C3"  # no text row: the id stands in
    assert [s.tolist() for s in ds.sequences] == [[0, 1, 2, 1], [2, 0, 1]]
    assert load_dataset(unisrec_dir).item_ids == ds.item_ids


def test_recbole_orders_by_time(tmp_path):
    d = tmp_path / "ml"
    d.mkdir()
    _write(d / "ml.inter", ["user_id:token\titem_id:token\trating:float\ttimestamp:float",
                            "1\t10\t5\t300", "1\t20\t3\t100", "2\t10\t4\t50", "1\t30\t1\t200"])
    _write(d / "ml.item", ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq",
                           "10\tToy Story\t1995\tAnimation Comedy", "20\tHeat\t1995\tAction"])
    ds = load_recbole(d)
    assert ds.item_texts[ds.item_ids.index("10")] == "Title: Toy Story (1995). Category: Animation Comedy"
    assert ds.item_texts[ds.item_ids.index("30")] == "Title: 30"
    seq = ds.sequences[ds.user_ids.index("1")]
    assert [ds.item_ids[i] for i in seq] == ["20", "30", "10"]


def test_jsonl_log(tmp_path):
    rows = [
        {"item_id": "a", "title": "Telescope", "brand": "Orion"},
        {"event_id": "e1", "user_id": "u", "item_id": "a", "timestamp": 2.0},
        {"event_id": "e0", "user_id": "u", "item_id": "b", "timestamp": 1.0},
        {"event_id": "e0", "user_id": "u", "item_id": "b", "timestamp": 1.0},  # redelivered
        {"user_id": "bad"},  # invalid: skipped
    ]
    path = tmp_path / "log.jsonl"
    _write(path, [json.dumps(r) for r in rows] + ["not json"])
    ds = load_jsonl(path)
    assert ds.item_texts[ds.item_ids.index("a")] == "Title: Telescope. Brand: Orion"
    assert [ds.item_ids[i] for i in ds.sequences[0]] == ["b", "a"]
    assert load_dataset(path).user_ids == ["u"]


def _toy(n_users=40, n_items=50, seed=0) -> SeqDataset:
    rng = np.random.default_rng(seed)
    seqs = [rng.choice(n_items, size=rng.integers(3, 9), replace=False) for _ in range(n_users)]
    return SeqDataset("toy", [str(i) for i in range(n_items)], [f"Title: {i}" for i in range(n_items)],
                      [str(u) for u in range(n_users)], seqs)


def test_leave_one_out():
    ds = _toy()
    ds.sequences.append(np.array([1, 2]))  # too short to evaluate: trains only
    split = leave_one_out(ds)
    s = ds.sequences[0]
    assert split.train[0].tolist() == s[:-2].tolist()
    assert split.valid.histories[0].tolist() == s[:-2].tolist() and split.valid.targets[0] == s[-2]
    assert split.test.histories[0].tolist() == s[:-1].tolist() and split.test.targets[0] == s[-1]
    assert len(split.test.targets) == 40 and split.train[-1].tolist() == [1, 2]
    refit = split.for_refit()  # a refit also trains on the validation targets, never the test ones
    assert refit.train[0].tolist() == s[:-1].tolist() and refit.train[-1].tolist() == [1, 2]
    assert refit.valid is split.valid and refit.test is split.test


def test_cold_start_removes_items_from_training():
    ds = _toy()
    split = cold_start(ds, fraction=0.1, seed=3, valid_fraction=0.2)
    assert len(split.cold_items) == 5 and len(split.valid_cold_items) == 10
    assert not np.isin(split.valid_cold_items, split.cold_items).any()
    again = cold_start(ds, fraction=0.1, seed=3)
    assert np.array_equal(split.cold_items, again.cold_items)  # the test-cold set does not move
    unknown = np.concatenate([split.cold_items, split.valid_cold_items])
    assert np.array_equal(np.flatnonzero(split.unknown_items()), np.sort(unknown))
    assert split.train_counts()[unknown].sum() == 0
    assert not np.isin(split.valid.targets, split.cold_items).any()
    assert np.isin(split.valid.targets, split.valid_cold_items).any()  # cold start on validation
    assert not any(np.isin(h, split.cold_items).any() for h in split.valid.histories)
    assert np.array_equal(split.test.targets, leave_one_out(ds).test.targets)
    assert not leave_one_out(ds).unknown_items().any()
    refit = split.for_refit()  # the validation targets join training, the unknown items do not
    assert refit.train_counts()[unknown].sum() == 0
    assert refit.train_counts().sum() > split.train_counts().sum()
    assert np.array_equal(refit.unknown_items(), split.unknown_items())


@pytest.mark.skipif(not data_path(DATASETS[0]).exists(), reason="../shared/data not present")
def test_real_amazon_scientific_stats():
    ds = load_dataset(data_path("amazon-scientific"))
    assert (ds.n_items, len(ds.user_ids), sum(map(len, ds.sequences))) == (4385, 8442, 59384)
