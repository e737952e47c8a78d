"""``learnrec train offline|online``: train on a data set, or learn from the interaction
stream. Every mode is configured, so configuring imports lightly: torch and the trainer load in
the ``func`` a mode runs."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)


def configure(parser: argparse.ArgumentParser) -> None:
    modes = parser.add_subparsers(dest="train_mode", required=True, metavar="MODE")
    configure_offline(modes.add_parser(
        "offline", help="Train on a data set; write a checkpoint and a model version"))
    configure_online(modes.add_parser(
        "online", help="Learn from the interaction stream; publish model versions"))


def configure_offline(parser: argparse.ArgumentParser) -> None:
    from learnrec.shared.config import get_settings

    settings = get_settings()
    parser.add_argument("--data", required=True, help="UniSRec folder, RecBole folder or .jsonl log")
    parser.add_argument("--out", type=Path, default=settings.versions.model_dir,
                        help="model root: writes OUT/{version}/ and OUT/checkpoints/{version}.pt")
    parser.add_argument("--split", choices=("loo", "cold"), default="loo")
    parser.add_argument("--encoder", default=settings.encoder.name, help="alias, HF name or path")
    parser.add_argument("--max-tokens", type=int, default=settings.encoder.max_tokens)
    parser.add_argument("--cache", type=Path, default=settings.process.cache_dir / "embeddings",
                        help="content embedding cache folder")
    parser.add_argument("--item-ids", choices=("hybrid", "none", "only"), default=None,
                        help="item representation: content + ID (default), content only, ID only")
    parser.add_argument("--whiten-content", action=argparse.BooleanOptionalAction, default=None,
                        help="whiten the content embeddings before the adaptor (chosen on "
                             "amazon-scientific's validation; docs/MODEL.md)")
    parser.add_argument("--ema-decay", type=float, default=None,
                        help="validate and keep a moving average of the weights (0.99 was chosen on "
                             "amazon-scientific's validation; docs/MODEL.md)")
    parser.add_argument("--content-blends", default=None, metavar="W,W,...",
                        help="weights of the content cosine in the served score, the best chosen on "
                             "validation after training (default 0,.05,.1,.2,.3,.4,.6,.8; 0 turns the "
                             "blend off and keeps the served vectors output_dim wide; docs/MODEL.md)")
    parser.add_argument("--refit", action="store_true",
                        help="after validation has chosen the length, train again on the validation "
                             "targets too, along the validated run's path, in what is left of "
                             "--max-minutes, and publish that model (docs/MODEL.md)")
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(func=run_offline)


def run_offline(args: argparse.Namespace) -> int:
    import torch

    from learnrec.shared.model import checkpoint
    from learnrec.shared.model.encoder import ContentEncoder, EmbeddingCache
    from learnrec.shared.model.onnx_export import export_version, new_version_id
    from learnrec.trainer.data import load_dataset, make_split
    from learnrec.trainer.evaluate import evaluate
    from learnrec.trainer.fit import refit_config
    from learnrec.trainer.offline import default_configs, id_items_of, learn_scorer, train_offline

    torch.set_num_threads(args.threads)
    ds = load_dataset(args.data)
    split = make_split(ds, args.split, seed=args.seed)
    encoder = ContentEncoder(args.encoder, max_tokens=args.max_tokens)
    content = EmbeddingCache(args.cache).encode(encoder, ds.item_texts, progress=True)
    model_cfg, train_cfg = default_configs(encoder.content_dim, seed=args.seed)
    if args.item_ids is not None:
        model_cfg.item_ids = args.item_ids
    if args.whiten_content is not None:
        model_cfg.whiten_content = args.whiten_content
    blends = None if args.content_blends is None else tuple(float(w) for w in args.content_blends.split(","))
    chosen = {"max_steps": args.max_steps, "max_minutes": args.max_minutes, "ema_decay": args.ema_decay,
              "content_blends": blends}
    train_cfg = train_cfg.override(**{k: v for k, v in chosen.items() if v is not None})
    model, inputs, report = train_offline(split, content, model_cfg, train_cfg)
    refit = None
    if args.refit and (again := refit_config(train_cfg, report)) is None:
        log.warning("no time left for the refit: publishing the validated model")
    elif args.refit:
        model, inputs, refit = train_offline(split.for_refit(), content, model_cfg, again)
    test = evaluate(learn_scorer(model, inputs), split)
    id_items = id_items_of(inputs, ds.item_ids)
    version = new_version_id()
    meta = export_version(model, args.out / version, {
        "version": version,
        "encoder": encoder.model_id,
        "encoder_max_tokens": encoder.max_tokens,
        "source": f"offline:{ds.name}:{args.split}",
    }, id_items)
    ckpt = checkpoint.save(args.out / "checkpoints" / f"{version}.pt", model, {
        "id_items": id_items,
        "encoder": encoder.model_id,
        "encoder_max_tokens": encoder.max_tokens,
        "dataset": ds.name,
        "split": args.split,
        "train_seconds": report["train_seconds"],
        "valid": report["valid"],
        "content_blend": report["content_blend"],
        "train_config": report["train_config"],
        "refit": refit and {k: refit[k] for k in ("steps", "train_seconds", "stopped_by", "train_config")},
        "test": test,
    })
    print(json.dumps({"version": meta["version"], "version_dir": str(args.out / version),
                      "checkpoint": str(ckpt), "train_seconds": round(report["train_seconds"], 1),
                      "test": test}, indent=2))
    return 0


def configure_online(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-idle-s", type=float, default=None, help="exit after this long without events")
    parser.add_argument("--metrics-port", type=int, default=None,
                        help="Prometheus port (default LEARNREC_METRICS_PORT; 0 disables)")
    parser.set_defaults(func=run_online)


def run_online(args: argparse.Namespace) -> int:
    from learnrec.shared.config import get_settings

    settings = get_settings()
    if settings.trainer.group:  # one member of a trainer group (docs/TRAINER.md)
        from learnrec.trainer.group_worker import run_group as run
    else:
        from learnrec.trainer.worker import run
    run(settings, max_idle_s=args.max_idle_s, metrics_port=args.metrics_port)
    return 0
