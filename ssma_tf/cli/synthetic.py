r"""Writes the synthetic RGB-D street-scene dataset (PNG files plus train/val list files).

Example:
    python -m ssma_tf.cli.synthetic --output_dir synthetic_data \
        --num_train 200 --num_val 50 --height 96 --width 192 --seed 0

The list files (`train.txt`, `val.txt`) hold `rgb depth label` per line (`rgb depth thermal
label` with `--thermal`), paths relative to the output folder, ready for `ssma-convert`. See
`ssma_tf.data.synthetic`.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional

from ssma_tf.cli.common import ArgumentParser, add_version, command, fail, seed_number
from ssma_tf.data import synthetic


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parses the command line."""
    parser = ArgumentParser(prog="python -m ssma_tf.cli.synthetic", description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", required=True, help="folder to write the dataset to")
    parser.add_argument("--num_train", type=int, default=200, help="number of training samples")
    parser.add_argument("--num_val", type=int, default=50, help="number of validation samples")
    parser.add_argument("--height", type=int, default=96,
                        help="image height (at least 16; the networks need a multiple of 16)")
    parser.add_argument("--width", type=int, default=192,
                        help="image width (at least 16; the networks need a multiple of 16)")
    parser.add_argument("--seed", type=seed_number, default=0, help="dataset seed (same seed, same files)")
    add_version(parser)  # and --debug
    parser.add_argument("--style", choices=synthetic.STYLES, default="source",
                        help="'target': the same scenes in a shifted look (dusk, another town), "
                        "for domain adaptation")
    parser.add_argument("--thermal", action="store_true",
                        help="add a third modality, thermal (lists of 'rgb depth thermal label'; "
                             "half of the cars painted like bushes)")
    return parser.parse_args(argv)


@command
def main(argv: Optional[List[str]] = None) -> int:
    """Writes the dataset and prints where it went."""
    args = parse_args(argv)
    from ssma_tf.files import check_output

    # Before: "error: mk.py: File exists", status 1, for a file given as the folder (helper 291).
    check_output(args.output_dir, what="--output_dir", directory=True, overwrite=None)
    start = time.perf_counter()
    try:
        written = synthetic.write_dataset(
            args.output_dir,
            num_train=args.num_train,
            num_val=args.num_val,
            height=args.height,
            width=args.width,
            seed=args.seed,
            style=args.style,
            thermal=args.thermal,
        )
    except ValueError as error:
        return fail(error)  # the traceback too under --debug (helper 220)
    print(
        f"wrote {args.num_train} train + {args.num_val} val samples of {args.height}x{args.width} "
        f"(seed {args.seed}, {args.style} style{', with thermal' if args.thermal else ''}) to {written.root} "
        f"in {time.perf_counter() - start:.1f} s: "
        f"{written.train_list.name}, {written.val_list.name}, {written.classes_file.name}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
