"""Log lines are valid JSON whatever the message holds, and keep ``extra`` fields."""

import json
import logging

from stream.logs import JsonFormatter


def test_json_formatter_escapes_and_keeps_extra_fields():
    record = logging.LogRecord("stream", logging.INFO, __file__, 1, 'bad "quoted" %s', ("text",), None)
    record.announced = {"v1": 2}
    entry = json.loads(JsonFormatter().format(record))
    assert entry["msg"] == 'bad "quoted" text'
    assert entry["announced"] == {"v1": 2} and entry["level"] == "INFO" and entry["logger"] == "stream"
