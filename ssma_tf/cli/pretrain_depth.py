"""Pretrains AdapNet++ to predict the measured depth: `ssma-pretrain-depth -c CONFIG`.

The RGB AdapNet++ of a training config learns to regress modality 2's depth (decoded from its
colouring) with the BerHu loss on every image of `train_data` and `unlabeled_data`, no labels
used (`ssma_tf.semi_supervised.depth_pretraining`). The run folder (`checkpoint`) then holds
`final.weights.h5`: give it as `finetune_from` to a segmentation run of the same AdapNet++.
Resumes like `ssma-train`.

Exit status: 0 done, 1 training failed (e.g. the loss became NaN), 2 bad config or records.
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
    parser = ArgumentParser(prog="ssma-pretrain-depth", description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--config", required=True, help="an AdapNet++ training config (YAML)")
    parser.add_argument("--depth-encoding", default=None,
                        help="how modality 2 colours depth (default: the config's semi_supervised.depth_encoding, "
                             "else jet_near_red); written into the run's config.yaml, which a resume reads")
    add_overrides(parser)
    add_version(parser)
    return parser


@tensorflow_command
def main(argv: Optional[List[str]] = None) -> int:
    """Parses the flags, validates the config and pretrains; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = parse_overrides_or_exit(parser, args.overrides)

    from ssma_tf.config import load_config
    from ssma_tf.config.reader import REQUIRED_KEYS, Required, check_not_moved

    check_not_moved(args.config, overrides)  # a moved run folder's config.yaml: resumed where it is now
    # The network predicts depth, not the config's classes (`depth_config`): its labeled_subset may
    # not exist yet (Hoyer et al.'s order: pretrain, select, then train), and num_classes, dataset
    # and palette are not read. Read as the run's config.yaml will say it, `pretraining: depth`: the
    # reader's rules of depth pretraining apply (before: a labeled_subset not yet written and a config
    # without num_classes were refused, and modality2_interpolation was "not used: this AdapNet_pp
    # reads modality1 only" before the error that depth pretraining reads it; helper 289).
    unread = dict.fromkeys(("labeled_subset", "num_classes", "dataset", "palette"))
    needed = Required(tuple(key for key in REQUIRED_KEYS["train"] if key != "num_classes"), "ssma-pretrain-depth")
    config = load_config(args.config, "train", overrides={**overrides, **unread, "pretraining": "depth"},
                         required=needed, given_as=overrides.given_as)  # bad input: `command` ends it
    from ssma_tf.config.semi_supervised import DEPTH_ENCODINGS

    if args.depth_encoding is not None and args.depth_encoding not in DEPTH_ENCODINGS:
        parser.error(f"--depth-encoding must be one of {', '.join(DEPTH_ENCODINGS)}, got {args.depth_encoding!r}")

    from ssma_tf.semi_supervised.depth_pretraining import pretrain_depth
    from ssma_tf.training import TrainingStopped

    try:
        pretrain_depth(config, encoding=args.depth_encoding)
    except TrainingStopped as error:  # as ssma-train (before: a divergence or a failed save was a traceback)
        return fail(error, 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
