"""The ASGI application built from the environment's settings (``uvicorn serving.asgi:app``)."""

from learnrec.serving.api import create_app

app = create_app()
