"""The ASGI application built from the environment's settings (``uvicorn learnrec.serving.asgi:app``).

A worker process that uvicorn started (``learnrec serve --workers N``) has not run the CLI's
logging setup: it runs it here, so its lines are JSON too."""

import logging

from learnrec.serving.api import create_app
from learnrec.shared.logs import setup_logging

if not logging.getLogger().handlers:
    setup_logging()

app = create_app()
