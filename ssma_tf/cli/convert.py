"""Converts a list of `modality1 [modality2] label` image paths to TFRecords.

    ssma-convert --file train.txt --record train.tfrecords
    ssma-convert -f train.txt -r train.tfrecords --encoding png \
        --shards 8 --num_workers 4 --num_classes 12

The records follow the original SSMA / AdapNet++ schema (see `ssma_tf.data.schema`). The work
is done by `ssma_tf.data.write_tfrecords`; this script parses flags, shows a progress bar (on a
terminal) and prints the summary.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from ssma_tf.cli.common import add_version


def _parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="ssma-convert",
        description="Convert a list file of image pairs/triplets to TFRecords "
        "(SSMA / AdapNet++ schema)."
    )
    parser.add_argument("-f", "--file", required=True,
                        help="list file: 'modality1 [modality2 ...] label' per line")
    parser.add_argument("-r", "--record", required=True, help="output TFRecord file")
    parser.add_argument("--encoding", choices=("raw", "png"), default="raw",
                        help="raw BGR bytes as the original tools (default) or PNG bytes (smaller)")
    parser.add_argument("--shards", type=int, default=1, help="number of output files (default 1)")
    parser.add_argument("--num_workers", type=int, default=1,
                        help="images decoded in parallel (default 1)")
    parser.add_argument("--num_classes", type=int, default=None,
                        help="number of classes incl. void; a label id >= this is an error")
    parser.add_argument("--modalities", type=int, default=None,
                        help="images per line before the label (e.g. the config's N); a line "
                             "with another count is an error")
    add_version(parser)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    """Parses the flags and converts; returns the exit status (1: a bad list file or image)."""
    args = _parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from ssma_tf.data.convert import format_summary, write_tfrecords
    from ssma_tf.progress import Progress

    progress = Progress(0, stream=sys.stderr, unit="samples")  # a bar on a terminal, else silent
    try:
        summary = write_tfrecords(
            args.file,
            args.record,
            encoding=args.encoding,
            shards=args.shards,
            num_workers=args.num_workers,
            num_classes=args.num_classes,
            progress=progress,
            modalities=args.modalities,
        )
    except (ValueError, FileNotFoundError) as error:
        progress.close()
        sys.stderr.write(f"error: {error}\n")
        return 1
    progress.close()
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
