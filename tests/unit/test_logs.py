"""Log lines are valid JSON whatever the message holds, and keep ``extra`` fields: the
``event_id`` an interaction is traced by, from the history updater to the online trainer."""

import json
import logging
from dataclasses import dataclass

from learnrec.shared.logs import JsonFormatter


def test_json_formatter_escapes_and_keeps_extra_fields():
    record = logging.LogRecord("stream", logging.INFO, __file__, 1, 'bad "quoted" %s', ("text",), None)
    record.announced = {"v1": 2}
    entry = json.loads(JsonFormatter().format(record))
    assert entry["msg"] == 'bad "quoted" text'
    assert entry["announced"] == {"v1": 2} and entry["level"] == "INFO" and entry["logger"] == "stream"


def _json_lines(caplog) -> list[dict]:
    return [json.loads(JsonFormatter().format(r)) for r in caplog.records]


def test_json_formatter_emits_the_event_id_of_a_trace_line():
    logger = logging.getLogger("learnrec.stream.history_updater")
    record = logger.makeRecord(logger.name, logging.DEBUG, __file__, 1, "history event", (), None,
                               extra={"event_id": "ev-42", "offset": 7})
    line = JsonFormatter().format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["event_id"] == "ev-42" and entry["offset"] == 7 and entry["level"] == "DEBUG"


class _Redis:
    """What HistoryHandler needs of a client: its script, which here applies everything."""

    def register_script(self, _script):
        return lambda keys, args: [(len(keys) - 4) // 3, 0, 0]


def _interactions(n: int):
    from learnrec.shared.schemas import InteractionEvent
    from learnrec.shared.worker import Accepted

    @dataclass
    class Record:
        topic: str
        partition: int
        offset: int

    return [Accepted(Record("interactions", 0, i), InteractionEvent(event_id=f"ev-{i}", user_id="u", item_id=f"i{i}"))
            for i in range(n)]


def test_the_history_updater_traces_each_event_id_at_debug_only(caplog):
    from learnrec.shared.config import Settings
    from learnrec.shared.redis_keys import RedisKeys
    from learnrec.stream.history_updater import HistoryHandler

    handler = HistoryHandler(_Redis(), RedisKeys("t"), Settings())  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="learnrec.stream.history_updater"):
        handler(_interactions(3))
    assert not [e for e in _json_lines(caplog) if "event_id" in e]  # nothing per event at INFO
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="learnrec.stream.history_updater"):
        handler(_interactions(3))
    traced = [e for e in _json_lines(caplog) if "event_id" in e]
    assert [e["event_id"] for e in traced] == ["ev-0", "ev-1", "ev-2"]
    assert traced[0]["offset"] == 0 and traced[0]["user_id"] == "u"


def test_the_online_trainer_traces_each_event_id_it_consumes_at_debug_only(caplog):
    import numpy as np

    from learnrec.shared.config import Settings
    from learnrec.trainer.config import TrainConfig
    from learnrec.trainer.content import ContentTable
    from learnrec.trainer.online import OnlineTrainer
    from learnrec.trainer.worker import TrainerLoop

    table = ContentTable(4)
    table.update(["i0", "i1"], np.eye(2, 4, dtype=np.float32))
    trainer = OnlineTrainer.from_scratch(table, TrainConfig.from_settings(Settings()).override(gate_events=10), "test")
    loop = TrainerLoop(Settings(), trainer, registry=None)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="learnrec.trainer.worker"):
        loop.handle(_interactions(2))
    assert not [e for e in _json_lines(caplog) if "event_id" in e]
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="learnrec.trainer.worker"):
        loop.handle(_interactions(3))  # the first two again: fenced
    traced = [e for e in _json_lines(caplog) if "event_id" in e]
    assert [(e["event_id"], e["fenced"]) for e in traced] == [("ev-0", True), ("ev-1", True), ("ev-2", False)]


def test_the_process_setup_writes_one_json_object_per_line_even_for_tracebacks(monkeypatch):
    import io

    from learnrec.shared.logs import setup_logging

    out = io.StringIO()
    monkeypatch.setenv("LEARNREC_LOG_LEVEL", "debug")
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging(stream=out)
        log = logging.getLogger("learnrec.test")
        log.debug('a "quoted" {brace} message\nover two lines', extra={"event_id": "e1"})
        try:
            raise ValueError('bad "value"')
        except ValueError:
            log.exception("failed")
        logging.getLogger("kafka.conn").info("not shown: kafka logs warnings only")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    entries = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["msg"] for e in entries] == ['a "quoted" {brace} message\nover two lines', "failed"]
    assert entries[0]["event_id"] == "e1" and entries[0]["level"] == "DEBUG"
    assert 'ValueError: bad "value"' in entries[1]["exc"]
