"""Trains AdapNet++ or SSMA as a YAML config says: `ssma-train -c configs/adapnet_pp_cityscapes_train.config`.

The config is checked completely before anything heavy starts (a bad key, value or path is an
error naming the key and the file); `--set key=value` replaces a key of the file and is checked
the same way. Running the same command again resumes from the newest checkpoint in the config's
`checkpoint` directory. The run writes its resolved config (`config.yaml`) into that directory at
the start and the whole model (`final.keras`) at the end, so `ssma-evaluate RUN_FOLDER` and
`ssma-predict RUN_FOLDER ...` need nothing else. The work is done by `ssma_tf.training`.

Exit status: 0 done, 1 training stopped (the loss became NaN or diverged, a checkpoint could not be
written: one line saying which checkpoint is kept), 2 bad config, checkpoint or record file (the
message names it).
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from ssma_tf.cli.common import (
    ArgumentParser, add_overrides, add_version, fail, parse_overrides_or_exit, tensorflow_command,
)


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags."""
    parser = ArgumentParser(
        prog="ssma-train", description="Train AdapNet++ or SSMA from a YAML .config file."
    )
    parser.add_argument("-c", "--config", required=True, help="the training config (YAML)")
    add_overrides(parser)
    add_version(parser)
    return parser


@tensorflow_command
def main(argv: Optional[List[str]] = None) -> int:
    """Parses the flags, validates the config and trains; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = parse_overrides_or_exit(parser, args.overrides)

    # Validation needs no TensorFlow, so a bad config fails in a fraction of a second.
    from ssma_tf.config import load_config
    from ssma_tf.config.reader import check_not_moved

    check_not_moved(args.config, overrides)  # a moved run folder's config.yaml: resumed where it is now
    config = load_config(args.config, "train", overrides=overrides)  # bad input: `command` ends it
    from ssma_tf.config.reader import ssma_train_warnings

    for line in ssma_train_warnings(config):
        print(f"warning: {line}", file=sys.stderr, flush=True)

    from ssma_tf.distribute import CLUSTER_JOIN_SECONDS, cluster_task, training_tasks

    task = cluster_task()  # a bad TF_CONFIG: one line (`command`), before the model is built
    if task is not None:
        kind, index, cluster = task
        print(f"TF_CONFIG: {kind} {index} of a cluster of {training_tasks(cluster)} training tasks; waiting until every task has started "
              f"(start them all within {CLUSTER_JOIN_SECONDS / 60:g} minutes)", file=sys.stderr, flush=True)
    from ssma_tf.training import TrainingStopped, train

    if config.semi_supervised is not None:
        from ssma_tf.semi_supervised.trainer import train  # mean teacher on unlabeled images
    elif config.adaptation is not None:
        from ssma_tf.adaptation.trainer import train  # adapting to an unlabeled target domain
    import tensorflow as tf

    from ssma_tf.errors import first_line

    lost = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
            tf.errors.AbortedError)
    try:
        train(config)
    except TrainingStopped as error:
        return fail(error, 1)
    except lost as error:
        if task is None:
            raise
        # Before: about 60 lines of gRPC traceback and no word of what to do.
        return fail(f"another task of the cluster stopped or cannot be reached ({type(error).__name__}: "
                    f"{first_line(error)}); start every task again with the same command: the run resumes from "
                    "the newest checkpoint", 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
