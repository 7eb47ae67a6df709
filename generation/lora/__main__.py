"""Command line for LoRA adapters.

python -m generation.lora train --base MODEL_PATH --data FILE.jsonl --out ADAPTER_DIR
python -m generation.lora serve-args --base MODEL ADAPTER_DIR... [--served-dir /adapters]
python -m generation.lora register --server URL --name NAME --path SERVER_PATH [--replace]
python -m generation.lora unregister --server URL --name NAME
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

from .errors import LoraError
from .train import DEFAULT_TARGET_MODULES, QUANTIZATION_CHOICES, TrainConfig


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns the exit status (1 with a one-line message on error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except LoraError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m generation.lora", description="Train and serve LoRA adapters."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    _add_train(commands)
    _add_serve_args(commands)
    _add_register(commands)
    return parser


class _DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except for options that have none (required ones, automatic ones)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def _add_train(commands: argparse._SubParsersAction) -> None:
    defaults = TrainConfig(base="", data=Path(), out=Path())
    train = commands.add_parser(
        "train",
        help="train an adapter on {'messages': [...]} JSON lines",
        formatter_class=_DefaultsFormatter,
    )
    train.add_argument("--base", required=True, help="base model folder or name")
    train.add_argument("--data", required=True, type=Path, help="training examples (JSON lines)")
    train.add_argument("--out", required=True, type=Path, help="adapter folder to write")
    _add_hyperparameters(train, defaults)
    train.add_argument(
        "--target-modules",
        default=",".join(DEFAULT_TARGET_MODULES),
        help="comma-separated module names, or all-linear",
    )
    train.add_argument(
        "--quantization",
        choices=QUANTIZATION_CHOICES,
        default=defaults.quantization,
        help="auto: 4-bit QLoRA when CUDA and bitsandbytes are present",
    )
    train.add_argument(
        "--gradient-checkpointing",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="trade compute for memory (default: on with 4-bit)",
    )
    train.add_argument("--seed", type=int, default=defaults.seed, help="shuffling and LoRA init")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(handler=run_train)


def _add_hyperparameters(train: argparse.ArgumentParser, defaults: TrainConfig) -> None:
    """The training and LoRA hyperparameters, defaulting to TrainConfig's."""
    train.add_argument("--epochs", type=int, default=defaults.epochs, help="passes over the data")
    train.add_argument("--lr", type=float, default=defaults.lr, help="learning rate")
    train.add_argument("--rank", type=int, default=defaults.rank, help="LoRA rank r")
    train.add_argument("--alpha", type=int, default=defaults.alpha, help="LoRA alpha")
    train.add_argument("--dropout", type=float, default=defaults.dropout, help="LoRA dropout")
    train.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help="examples per forward pass"
    )
    train.add_argument(
        "--grad-accum", type=int, default=defaults.grad_accum, help="batches per optimizer step"
    )
    train.add_argument(
        "--max-length",
        type=int,
        default=defaults.max_length,
        help="longest example in tokens; longer ones are skipped",
    )
    train.add_argument(
        "--warmup-ratio",
        type=float,
        default=defaults.warmup_ratio,
        help="share of steps with a rising learning rate",
    )


def _add_serve_args(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve-args", help="print the vLLM arguments that serve these adapters"
    )
    serve.add_argument("adapters", nargs="+", type=Path, help="adapter folders (NAME=DIR too)")
    serve.add_argument("--base", required=True, help="base model the server loads")
    serve.add_argument(
        "--served-dir", help="folder the server sees the adapters in, e.g. /adapters"
    )
    serve.add_argument("--max-loras", type=int, help="adapters in one batch (default: all)")
    serve.set_defaults(handler=run_serve_args)


def _add_register(commands: argparse._SubParsersAction) -> None:
    for name, help_text in (
        ("register", "load an adapter into a running vLLM server"),
        ("unregister", "stop serving an adapter"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--server", required=True, help="e.g. http://vllm:8000/v1")
        command.add_argument("--name", required=True, help="adapter (model) name")
        command.add_argument(
            "--api-key-file", type=Path, help="file holding the server's API key, if any"
        )
        if name == "register":
            command.add_argument(
                "--path", required=True, help="adapter folder as the server sees it"
            )
            command.add_argument(
                "--replace", action="store_true", help="unload an adapter of that name first"
            )
        command.set_defaults(handler=run_register if name == "register" else run_unregister)


def run_train(args: argparse.Namespace) -> int:
    from .train import train  # imports torch and peft: only when training

    config = TrainConfig(
        base=args.base,
        data=args.data,
        out=args.out,
        epochs=args.epochs,
        lr=args.lr,
        rank=args.rank,
        alpha=args.alpha,
        dropout=args.dropout,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        max_length=args.max_length,
        warmup_ratio=args.warmup_ratio,
        target_modules=tuple(m.strip() for m in args.target_modules.split(",") if m.strip()),
        quantization=args.quantization,
        gradient_checkpointing=args.gradient_checkpointing,
        seed=args.seed,
    )
    result = train(config, progress=not args.quiet)
    print(result.report())
    return 0


def run_serve_args(args: argparse.Namespace) -> int:
    from .serving import read_adapter, vllm_serve_args

    adapters = []
    for spec in args.adapters:
        name, sep, folder = str(spec).partition("=")
        if not sep:
            name, folder = "", str(spec)
        adapters.append(read_adapter(Path(folder), name or None))
    arguments = vllm_serve_args(
        args.base, adapters, served_dir=args.served_dir, max_loras=args.max_loras
    )
    print(shlex.join(arguments))
    return 0


def run_register(args: argparse.Namespace) -> int:
    from .serving import register_adapter

    key = _api_key(args.api_key_file)
    print(register_adapter(args.server, args.name, args.path, api_key=key, replace=args.replace))
    return 0


def run_unregister(args: argparse.Namespace) -> int:
    from .serving import unregister_adapter

    print(unregister_adapter(args.server, args.name, api_key=_api_key(args.api_key_file)))
    return 0


def _api_key(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError as error:
        raise LoraError(f"Cannot read the API key file {path}: {error.strerror}.")


if __name__ == "__main__":
    sys.exit(main())
