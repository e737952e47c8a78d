"""One JSON object per log line, safe for any message text, with ``extra=`` fields kept."""

from __future__ import annotations

import json
import logging

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"t", "level", "logger", "msg", ...extra, "exc"}`` per record."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"t": self.formatTime(record), "level": record.levelname, "logger": record.name,
                 "msg": record.getMessage()}
        entry |= {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def use_json_logs() -> None:
    """Give every root handler the JSON formatter."""
    for handler in logging.getLogger().handlers:
        handler.setFormatter(JsonFormatter())
