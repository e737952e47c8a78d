"""Bringing the system up for a demo run: the environment its processes share, the offline
pre-training of its first model, and its four components."""

from __future__ import annotations

import os
import subprocess
import sys

from learnrec.demo.context import RunContext
from learnrec.demo.processes import Component
from learnrec.demo.sources import DemoData
from learnrec.shared.config import process_env


def component_env(ctx: RunContext, port: int, publish_every_s: float,
                  extra: dict[str, str]) -> dict[str, str]:
    """The environment of every process the run starts: the run's settings, ``extra`` below."""
    return extra | process_env(ctx.settings) | {
        "LEARNREC_SERVING_PORT": str(port),
        "LEARNREC_TRAINER_PUBLISH_EVERY_S": str(publish_every_s),
        "LEARNREC_TRAINER_CHECKPOINT": str((ctx.folder / "trainer" / "online.ckpt").resolve()),
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def pretrain(ctx: RunContext, data: DemoData, minutes: float, env: dict[str, str]) -> dict[str, str]:
    """Train the first model offline on the history (``learnrec train offline``), as a real
    deployment starts from one; returns the settings that make it the bootstrap version and
    the online trainer's starting point."""
    if minutes <= 0 or not data.history:
        return {}
    log = ctx.folder / "history.jsonl"
    with log.open("wb") as fh:
        for event in [*data.catalogue, *data.history]:
            fh.write(event.to_bytes() + b"\n")
    ctx.console.print(f"pre-training offline on {len(data.history)} past interactions "
                      f"(at most {minutes} min)")
    out = ctx.folder / "offline"
    with ctx.console.status(f"training offline (log: {ctx.folder / 'offline.log'})"):
        subprocess.run(
            [sys.executable, "-m", "learnrec.cli", "train", "offline", "--data", str(log), "--out", str(out),
             "--max-minutes", str(minutes)],
            check=True, env={**os.environ, **env}, stdout=open(ctx.folder / "offline.log", "wb"),
            stderr=subprocess.STDOUT,
        )
    (checkpoint,) = sorted((out / "checkpoints").glob("*.pt"))
    version = out / checkpoint.stem
    ctx.console.print(f"offline model {checkpoint.stem} ready")
    return {"LEARNREC_BOOTSTRAP_MODEL": str(version.resolve()),
            "LEARNREC_TRAINER_INIT": str(checkpoint.resolve())}


def start_components(ctx: RunContext, env: dict[str, str], port: int) -> None:
    """History updater, item encoder, online trainer and serving API, each logging under logs/."""
    logs = ctx.folder / "logs"
    for name, argv in (
        ("history-updater", ["stream", "history"]),
        ("item-encoder", ["stream", "items"]),
        ("trainer", ["train", "online"]),
        ("serving", ["serve", "--port", str(port)]),
    ):
        ctx.fleet.start(Component(name, argv, env, logs / f"{name}.log"))
        ctx.console.print(f"started {name}")
