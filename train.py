"""Trains AdapNet++ or SSMA as a YAML config says: `python train.py -c config/cityscapes_train.config`.

The config is checked completely before anything heavy starts (a bad key, value or path is an
error naming the key and the file). Running the same command again resumes from the newest
checkpoint in the config's `checkpoint` directory. The work is done by `ssma_tf.training`.

Exit status: 0 done, 1 training failed (e.g. the loss became NaN), 2 bad config or checkpoint.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

# Runs from a fresh clone without installing the package.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv: Optional[List[str]] = None) -> int:
    """Parses the flags, validates the config and trains; returns the exit status."""
    parser = argparse.ArgumentParser(description="Train AdapNet++ or SSMA from a YAML .config file.")
    parser.add_argument("-c", "--config", required=True, help="the training config (YAML)")
    args = parser.parse_args(argv)

    # Validation needs no TensorFlow, so a bad config fails in a fraction of a second.
    from ssma_tf.config import ConfigError, load_config

    try:
        config = load_config(args.config, "train")
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    from ssma_tf.checkpoints import CheckpointError
    from ssma_tf.training import NonFiniteLossError, train

    try:
        train(config)
    except (ConfigError, CheckpointError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except NonFiniteLossError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
