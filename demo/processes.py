"""Start and stop the system's components as child processes of the demo."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    """A TCP port nothing listens on now (for the serving API)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Component:
    """One ``learnrec`` subcommand running in its own process, logging to a file."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "learnrec.cli", *self.argv],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 20.0) -> int | None:
        """SIGTERM (finish the batch, commit, exit), then SIGKILL after ``timeout_s``."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


class Fleet:
    """All components of one demo run; stops them in reverse start order."""

    def __init__(self) -> None:
        self.components: list[Component] = []

    def start(self, component: Component) -> Component:
        component.start()
        self.components.append(component)
        return component

    def check(self) -> None:
        for component in self.components:
            if not component.alive():
                raise RuntimeError(f"{component.name} exited early:\n{component.log_tail()}")

    def stop(self) -> dict[str, int | None]:
        codes = {}
        for component in reversed(self.components):
            codes[component.name] = component.stop()
        return codes

    def wait_until(self, predicate, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            self.check()
            time.sleep(0.2)
        raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
