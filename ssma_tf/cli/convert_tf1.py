"""Converts a checkpoint of the original TF1 AdapNet++/SSMA code into a Keras weights file.

    ssma-convert-tf1 --checkpoint path/to/model.ckpt --output model.weights.h5

The model (AdapNet++ or SSMA) and its number of classes are read from the checkpoint's variables.
A `.keras` output holds the architecture too, so `keras.models.load_model` opens it directly.
"""

import argparse
import sys

from ssma_tf.cli.common import ArgumentParser, add_version, command


@command
def main(argv=None) -> int:
    """Parses the flags and converts; returns the exit status (2: not a convertible checkpoint)."""
    parser = ArgumentParser(prog="ssma-convert-tf1", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--checkpoint", required=True, help="TF1 checkpoint prefix (without .index)")
    parser.add_argument("-o", "--output", required=True, help="destination: *.weights.h5 or *.keras")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    add_version(parser)
    args = parser.parse_args(argv)

    from ssma_tf.checkpoints.convert import convert_tf1_checkpoint

    # CheckpointError and the other bad-input errors end the command with one line (`command`).
    report = convert_tf1_checkpoint(args.checkpoint, args.output, overwrite=args.overwrite)
    print(report)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
