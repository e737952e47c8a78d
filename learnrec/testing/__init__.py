"""Test support for projects that use learnrec: the pytest plugin (:mod:`learnrec.testing.plugin`,
loaded automatically once learnrec is installed) and what its fixtures are made of."""

from learnrec.testing.encoder import BagOfWordsEncoder
from learnrec.testing.live_server import LiveServer, free_port, wait_until
from learnrec.testing.servers import Servers, ServersUnavailable

__all__ = ["BagOfWordsEncoder", "LiveServer", "Servers", "ServersUnavailable", "free_port", "wait_until"]
