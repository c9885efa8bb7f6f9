"""Importance-sampling weights of the target images for domain adaptation (`ssma-importance-weights`).

Runs a baseline (e.g. one trained with `adaptation: {method: abn}`) over the target records of a
config, counts the pixels it predicts as each class in each image, and writes the sampling
probabilities p_i = 0.25/N + 0.75 · mean_c f_{i,c} (Araslanov and Roth, CVPR 2021; see
`ssma_tf.adaptation.importance`). Give the file as `importance_weights` of the adaptation config.

Example:
    ssma-importance-weights -c configs/adapt_sac.config --checkpoint runs/abn -o runs/weights.json
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional

from ssma_tf.cli.common import add_version, command, fail


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parses the command line."""
    parser = argparse.ArgumentParser(prog="ssma-importance-weights", description=__doc__.splitlines()[0],
                                     epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", required=True,
                        help="a training config with target_data (its model, classes and size)")
    parser.add_argument("--checkpoint", help="the baseline's weights (default: the config's initialize, "
                        "else its checkpoint folder)")
    parser.add_argument("--target_data", nargs="+", help="target records instead of the config's")
    parser.add_argument("-o", "--output", required=True, help="the weights file to write (JSON)")
    parser.add_argument("--batch_size", type=int, default=4, help="images per prediction batch")
    add_version(parser)
    return parser.parse_args(argv)


@command
def main(argv: Optional[List[str]] = None) -> int:
    """Computes and writes the weights; returns the exit status."""
    args = parse_args(argv)
    from ssma_tf.config import ConfigError, load_config
    from ssma_tf.errors import UserInputError
    from ssma_tf.files import check_output

    if args.batch_size < 1:
        return fail(f"--batch_size must be >= 1, got {args.batch_size}")
    try:  # before the model predicts every target image
        check_output(args.output, what="--output")
    except UserInputError as error:
        return fail(error)
    try:
        config = load_config(args.config, "train", check_paths=False)
    except ConfigError as error:
        return fail(error)
    target = tuple(args.target_data) if args.target_data else config.target_data
    if not target:
        return fail(f"{args.config}: no target_data; give it in the config or with --target_data")
    checkpoint = args.checkpoint or config.initialize or config.checkpoint

    from ssma_tf.adaptation.importance import write_weights
    from ssma_tf.adaptation.target import predicted_class_counts
    from ssma_tf.checkpoints.loading import load_weights
    from ssma_tf.data.datasets import dataset_info_or_none
    from ssma_tf.data.pipeline import list_record_files
    from ssma_tf.data.records import records_per_file
    from ssma_tf.models.factory import build_model
    from ssma_tf.progress import Progress

    try:
        files = list_record_files(target)
        per_file = records_per_file(files)
        model = build_model(config)
        print(f"loaded {load_weights(model, checkpoint)}", flush=True)
        total = sum(per_file)
        started = time.perf_counter()
        # A bar on a terminal, a line every few seconds in a log or a pipe.
        with Progress.bar_or_lines(sys.stderr, unit="images", prefix="predicted target images ") as progress:
            counts = predicted_class_counts(
                model, files, modalities=config.record_modalities, fusion=config.is_fusion,
                input_modality=config.input_modality, height=config.height,
                width=config.width, num_classes=config.num_classes, batch_size=args.batch_size,
                modality2_interpolation=config.interpolations,
                progress=lambda done: progress(done, total))
        info = dataset_info_or_none(config.dataset, config.palette, config.num_classes)
        names = list(info.class_names) if info is not None else [f"class{c}" for c in range(config.num_classes)]
        probabilities = write_weights(args.output, files, per_file, counts, names)
    except (UserInputError, FileNotFoundError) as error:
        return fail(error)
    share = probabilities.max() * len(probabilities)
    print(f"wrote {args.output}: {len(probabilities)} images from {len(files)} file(s) in "
          f"{time.perf_counter() - started:.1f} s; the most likely image is drawn {share:.1f}x as "
          "often as under uniform sampling")
    return 0


if __name__ == "__main__":
    sys.exit(main())
