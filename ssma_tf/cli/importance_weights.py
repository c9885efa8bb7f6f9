r"""Importance-sampling weights of the target images for domain adaptation (`ssma-importance-weights`).

Runs a baseline (e.g. one trained with `adaptation: {method: abn}`) over the target records of a
config, counts the pixels it predicts as each class in each image, and writes the sampling
probabilities p_i = 0.25/N + 0.75 · mean_c f_{i,c} (Araslanov and Roth, CVPR 2021; see
`ssma_tf.adaptation.importance`). Give the file as `importance_weights` of the adaptation config.

Example:
    ssma-importance-weights -c configs/adapt_synthia_to_cityscapes_adapnet_pp_sac.config --checkpoint runs/abn \
        -o runs/weights.json
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional

from ssma_tf.cli.common import (
    ArgumentParser, add_overrides, add_version, fail, not_a_model_file, parse_overrides_or_exit, tensorflow_command,
)


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parses the command line."""
    parser = ArgumentParser(prog="ssma-importance-weights", description=__doc__.splitlines()[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True,
                        help="a training config: its model, classes, size and target_data (or give --target_data)")
    parser.add_argument("--checkpoint", help="the baseline's weights (default: a SAC config's initialize, the "
                        "baseline it adapts; else the config's checkpoint, e.g. an ABN run's own config.yaml)")
    parser.add_argument("--target_data", nargs="+", help="target records instead of the config's")
    parser.add_argument("-o", "--output", required=True, help="the weights file to write (JSON)")
    parser.add_argument("--batch_size", type=int, default=4, help="images per prediction batch")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing weights file (without it, an existing one is an error: a SAC "
                        "config may still point to it)")
    add_overrides(parser)
    add_version(parser)
    args = parser.parse_args(argv)
    args.overrides = parse_overrides_or_exit(parser, args.overrides)
    return args


@tensorflow_command
def main(argv: Optional[List[str]] = None) -> int:
    """Computes and writes the weights; returns the exit status."""
    args = parse_args(argv)
    from ssma_tf.config import ConfigError, load_config, refuse_pretraining
    from ssma_tf.errors import UserInputError
    from ssma_tf.files import check_output

    if args.batch_size < 1:
        return fail(f"--batch_size must be >= 1, got {args.batch_size}")
    not_model = not_a_model_file("--checkpoint", args.checkpoint) if args.checkpoint else None  # helper 219
    if not_model is not None:
        return fail(not_model)
    if "batch_size" in args.overrides:  # before: taken and not read (helper 150)
        return fail("--set batch_size: the prediction batch here is --batch_size; give --batch_size N")
    try:  # before the model predicts every target image
        check_output(args.output, what="--output", overwrite=args.overwrite)
    except UserInputError as error:
        return fail(error)
    from ssma_tf.config.reader import Required

    given_as = {}  # errors name the flag as typed
    if args.target_data and "target_data" in args.overrides:
        # Before: the flag's records were read and the --set's dropped without a word.
        return fail("--target_data and --set target_data=... both give the target records; give one")
    if args.target_data:
        # Before the config's check, which refused an adaptation config without target_data
        # ("adaptation needs records") before the flag was read (helper 345).
        args.overrides["target_data"] = list(args.target_data)
        given_as["target_data"] = f"--target_data {' '.join(args.target_data)}"
    try:
        # The keys the prediction reads (before: train_data and checkpoint were required, "train
        # needs it", though nothing trains here and --checkpoint names the weights; helper 139).
        needed = Required(("model", "num_classes", "height", "width"), "ssma-importance-weights")
        config = load_config(args.config, "train", check_paths=False, overrides=args.overrides, required=needed,
                             given_as=given_as)
        refuse_pretraining(config)  # its depth network predicts no classes to weigh images by
    except ConfigError as error:
        return fail(error)
    target = tuple(args.target_data) if args.target_data else config.target_data
    if not target:
        return fail(f"{args.config}: no target_data; give it in the config or with --target_data")
    # A checkpoint given with --set comes before the config's initialize (before: checked, then
    # not read on a SAC config, which has initialize; helper 150).
    checkpoint = args.checkpoint or (config.checkpoint if "checkpoint" in args.overrides else None)
    # SAC's initialize is the baseline it adapts; ABN's (or a supervised run's) is where that run
    # started, and its checkpoint the baseline (before: initialize whatever the method; helper 345).
    sac = config.adaptation is not None and config.adaptation.method == "sac"
    keys = ("initialize", "checkpoint") if sac else ("checkpoint",)
    if not checkpoint:
        chosen = next((name for name in keys if getattr(config, name)), None)
        if chosen is not None:
            checkpoint = getattr(config, chosen)
            abn = config.adaptation is not None and not sac
            what = ("the baseline SAC adapts" if chosen == "initialize" else "the ABN run's weights" if abn
                    else "this run's weights")
            print(f"weights: the config's {chosen} ({what}); --checkpoint gives others", file=sys.stderr)
    if not checkpoint:
        return fail(f"{args.config}: no weights to predict with; give --checkpoint (the baseline's run folder or "
                    f"weights file), or {' or '.join(keys)} in the config")

    from ssma_tf.adaptation.target import importance_weights
    from ssma_tf.progress import Progress

    try:
        started = time.perf_counter()
        # A bar on a terminal, a line every few seconds in a log or a pipe.
        # Without --overwrite, weights another command wrote to --output meanwhile are kept (before:
        # replaced, both commands reporting success; helper 366).
        with Progress.bar_or_lines(sys.stderr, unit="images", prefix="predicted target images ") as progress:
            probabilities, files = importance_weights(config, checkpoint, target, args.output,
                                                      batch_size=args.batch_size, progress=progress,
                                                      log=lambda line: print(line, flush=True),
                                                      overwrite=args.overwrite)
    except (UserInputError, FileNotFoundError) as error:
        return fail(error)
    share = probabilities.max() * len(probabilities)
    print(f"wrote {args.output}: {len(probabilities)} images from {len(files)} file(s) in "
          f"{time.perf_counter() - started:.1f} s; the most likely image is drawn {share:.1f}x as "
          "often as under uniform sampling")
    return 0


if __name__ == "__main__":
    sys.exit(main())
