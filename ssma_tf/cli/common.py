"""Flags that the commands share: `--version`, `--set key=value`, where the model comes from, `--size`."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Optional, Sequence

from ssma_tf import __version__


def add_version(parser: argparse.ArgumentParser) -> None:
    """Adds `--version`, which prints `<command> <version>` and exits."""
    parser.add_argument("--version", action="version", version=f"%(prog)s (ssma-tf) {__version__}")


def add_overrides(parser: argparse.ArgumentParser) -> None:
    """Adds `--set KEY=VALUE` (repeatable), which replaces a key of the config."""
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="replace a config key, validated like the file (the value is read as YAML: "
        "--set batch_size=4 --set train_data=[a.tfrecords,b.tfrecords]); repeatable",
    )


def parse_overrides_or_exit(parser: argparse.ArgumentParser, items: Sequence[str]) -> dict[str, Any]:
    """The `--set` items as a mapping of keys; a malformed one ends the command (exit 2)."""
    from ssma_tf.config import ConfigError, parse_overrides

    try:
        return parse_overrides(items)
    except ConfigError as error:
        parser.exit(2, f"error: {error}\n")
    raise AssertionError("unreachable")  # parser.exit does not return


def add_model_source(group, dataset_help: str) -> None:
    """Adds where the model comes from: a run folder or `.keras` file, `-c`, `--checkpoint`,
    `--model`, `--num_classes`, `--dataset` and `--set` (predict and export share them)."""
    from ssma_tf.constants import MODEL_NAMES  # no TensorFlow: --help stays quick

    group.add_argument("run", nargs="?", metavar="RUN",
                       help="a training run's folder or a .keras file: the model with its settings (instead of -c)")
    group.add_argument("-c", "--config", help="an evaluation (or training) config: model, classes, size, checkpoint")
    group.add_argument("--checkpoint", help="weights: TF1/TF2 checkpoint, training folder, .weights.h5 or .keras "
                       "(overrides the config's)")
    group.add_argument("--model", choices=MODEL_NAMES, help="the network, for weights that do not say")
    group.add_argument("--num_classes", type=int, help="classes including void, for weights that do not say")
    group.add_argument("--dataset", help=dataset_help)
    add_overrides(group)


def model_source_or_exit(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, Any]:
    """Checks the flags of `add_model_source` (a run stands for `--checkpoint`); returns the `--set`
    overrides. Contradicting or missing flags end the command (exit 2)."""
    if args.run is not None:
        if args.config is not None or args.checkpoint is not None:
            parser.error("give a training run's folder or .keras file, or -c/--checkpoint, not both")
        args.checkpoint = args.run
    if args.config is None and args.checkpoint is None:
        parser.error("give a training run's folder, a config (-c) or a checkpoint (--checkpoint)")
    return parse_overrides_or_exit(parser, args.overrides)


def size_or_exit(parser: argparse.ArgumentParser, text: Optional[str]) -> Optional[tuple[int, int]]:
    """`--size` as (height, width), None for 'input' or no flag; a bad one ends the command."""
    from ssma_tf.inference.sizes import parse_size  # no TensorFlow

    try:
        return None if text is None else parse_size(text)
    except ValueError as error:
        parser.error(f"--size: {error}")
    raise AssertionError("unreachable")  # parser.error does not return


def fail(error: BaseException, status: int = 2) -> int:
    """Prints `error: <message>` on stderr; returns `status` for the command to exit with."""
    print(f"error: {error}", file=sys.stderr)
    return status
