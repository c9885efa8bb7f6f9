"""Converts a checkpoint of the original TF1 AdapNet++/SSMA code into a Keras weights file.

    ssma-convert-tf1 --checkpoint path/to/model.ckpt --output model.weights.h5

The model (AdapNet++ or SSMA) and its number of classes are read from the checkpoint's variables.
A `.keras` output holds the architecture too: `ssma_tf.load_model` opens it, as does
`keras.models.load_model` once `ssma_tf.models` is imported (it registers the networks).
The eASPP rates are not in a checkpoint: those of the release whose folder holds it (the 19-class
Cityscapes models': 6, 12, 18), else --easpp-rates (default 3 6 12).

--checkpoint also takes a released archive (local or URL) or a preset name
(`python -m ssma_tf.checkpoints` lists them): it is fetched, unpacked and converted with the
release's rates.
"""

import argparse
import sys

from ssma_tf.cli.common import ArgumentParser, add_version, command


@command
def main(argv=None) -> int:
    """Parses the flags and converts; returns the exit status (2: not a convertible checkpoint)."""
    parser = ArgumentParser(prog="ssma-convert-tf1", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--checkpoint", required=True,
                        help="TF1 checkpoint prefix (without .index), its folder, a released archive or preset name")
    parser.add_argument("-o", "--output", required=True, help="destination: *.weights.h5 or *.keras")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    parser.add_argument("--easpp-rates", type=int, nargs=3, metavar="RATE",
                        help="the eASPP rates the network was trained with (default: the release's, "
                             "for a checkpoint in a released archive's folder; else 3 6 12)")
    add_version(parser)
    args = parser.parse_args(argv)

    from ssma_tf.checkpoints import CheckpointError
    from ssma_tf.checkpoints.convert import check_destination, convert_tf1_checkpoint
    from ssma_tf.checkpoints.zoo import CONVERT_ADVICE, fitting_release, preset_checkpoint
    from ssma_tf.constants import EASPP_RATES, WEIGHTS_SUFFIXES

    if args.checkpoint.endswith(WEIGHTS_SUFFIXES):
        # Before: "is not a TF1 checkpoint prefix: X.weights.h5.index does not exist" (helper 222).
        raise CheckpointError(f"{args.checkpoint} is a Keras file, not a TF1 checkpoint: nothing to convert "
                              "(ssma_tf.load_model opens it; .save('model.keras') writes it with its network)",
                              path=args.checkpoint)
    # Before the archive is fetched: an existing or unwritable -o was found after a released
    # model's 116 MB were downloaded and unpacked into the cache (helper 280).
    check_destination(args.output, args.overwrite)
    # A released archive, its URL or its preset name: fetched and unpacked as `ssma_tf.load_model`
    # does (before: "no checkpoint at X.zip", suggesting files the converter refuses; helper 222).
    # A failed download advises what this command takes, not load_model's released_as= (helper 280).
    checkpoint = preset_checkpoint(args.checkpoint, advice=CONVERT_ADVICE)
    if checkpoint.endswith(WEIGHTS_SUFFIXES):  # a folder or an archive holding one (helper 230)
        raise CheckpointError(f"{args.checkpoint} holds a Keras file ({checkpoint}), not a TF1 checkpoint: nothing "
                              "to convert (ssma_tf.load_model opens it)", path=args.checkpoint)
    rates = args.easpp_rates
    if rates is None:
        release = fitting_release(checkpoint)
        rates = release.easpp_rates if release is not None else EASPP_RATES
        if tuple(rates) != EASPP_RATES:
            print(f"eASPP rates {', '.join(map(str, rates))}: those of the release {release.name}, "
                  "whose folder holds the checkpoint (--easpp-rates sets others)")
    elif min(rates) < 1:
        parser.error(f"--easpp-rates: rates are positive, got {' '.join(map(str, rates))}")
    # CheckpointError and the other bad-input errors end the command with one line (`command`).
    # Rates given on the command line are the user's word: no warning of the released ones.
    report = convert_tf1_checkpoint(checkpoint, args.output, overwrite=args.overwrite, easpp_rates=rates,
                                    warn_of_rates=args.easpp_rates is None)
    print(report)
    print(f"wrote {args.output}")
    if tuple(rates) != EASPP_RATES and not args.output.endswith(".keras"):
        # A weights file keeps no rates: loaded into a default network, it predicts other maps.
        print(f"note: {args.output} does not hold the eASPP rates: load it into a network of rates "
              f"{', '.join(map(str, rates))} (easpp_rates: {list(rates)} in a config), or write a .keras file")
    return 0


if __name__ == "__main__":
    sys.exit(main())
