"""``medagent nlu train``: build the intent model from the data the project owns.

The training, and the fingerprint ``--if-changed`` compares, are ``agent.engines.nlu.train``.
"""

from __future__ import annotations

import argparse

from agent.commands._config import config_for_command
from agent.config import NluConfig
from agent.engines.nlu.classifier import ARCHITECTURES, DEFAULT_ARCHITECTURE
from agent.engines.nlu.train import EPOCHS, is_current, train


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["train"], help="what to do")
    parser.add_argument("--model-dir", help="output folder (default: [nlu] model_dir)")
    parser.add_argument(
        "--if-changed",
        action="store_true",
        help="do nothing when the model was trained from the same data, code and spaCy version",
    )
    parser.add_argument(
        "--architecture",
        choices=sorted(ARCHITECTURES),
        default=DEFAULT_ARCHITECTURE,
    )
    parser.add_argument("--epochs", type=int, default=EPOCHS)


def run(args: argparse.Namespace) -> int:
    cfg = config_for_command(args)
    if cfg is None:
        return 2
    nlu: NluConfig = cfg.nlu
    model_dir = args.model_dir or nlu.model_dir
    if args.if_changed and is_current(model_dir, args.architecture, args.epochs):
        print(f"nlu: model in {model_dir} is up to date")
        return 0
    meta = train(model_dir, architecture=args.architecture, epochs=args.epochs)
    print(
        f"nlu: trained {meta['architecture']} on {meta['examples']} examples "
        f"in {meta['train_s']} s -> {model_dir}"
    )
    return 0
