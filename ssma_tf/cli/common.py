"""Flags that every command shares: `--version` and `--set key=value`."""

from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

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


def fail(error: BaseException, status: int = 2) -> int:
    """Prints `error: <message>` on stderr; returns `status` for the command to exit with."""
    print(f"error: {error}", file=sys.stderr)
    return status
