"""The one logging setup of every learnrec process: one JSON object per line, safe for any
message text and tracebacks, with ``extra=`` fields kept as keys."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import TextIO

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """``{"t", "level", "logger", "pid", "msg", ...extra, "exc"}`` per record."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {"t": self.formatTime(record), "level": record.levelname, "logger": record.name,
                 "pid": record.process, "msg": record.getMessage()}
        entry |= {k: v for k, v in vars(record).items() if k not in _STANDARD}
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str)


def setup_logging(verbose: bool = False, stream: TextIO | None = None) -> None:
    """JSON lines on ``stream`` (stderr) for the whole process, replacing any other root
    handler; level DEBUG when ``verbose`` (kept in ``LEARNREC_LOG_LEVEL`` for child processes,
    such as the API's workers), else ``LEARNREC_LOG_LEVEL`` (INFO). Kafka's client logs only
    warnings; Python warnings become log records; Hugging Face's progress bars stay off (they
    are not log lines)."""
    if verbose:
        os.environ["LEARNREC_LOG_LEVEL"] = "DEBUG"
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # read when transformers loads
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    level = os.environ.get("LEARNREC_LOG_LEVEL", "INFO").upper()
    logging.basicConfig(level=level, handlers=[handler], force=True)
    logging.captureWarnings(True)
    logging.getLogger("kafka").setLevel(logging.WARNING)
