"""Converts a list of `modality1 [modality2] label` image paths to TFRecords.

    python tools/convert_to_tfrecords.py --file train.txt --record train.tfrecords
    python tools/convert_to_tfrecords.py -f train.txt -r train.tfrecords --encoding png \
        --shards 8 --num_workers 4 --num_classes 12

The records follow the original SSMA / AdapNet++ schema (see `ssma_tf.data.schema`). The work
is done by `ssma_tf.data.write_tfrecords`; this script parses flags, draws a progress bar and
prints the summary.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Callable, List, Optional

# Runs from a fresh clone without installing the package.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Convert a list file of image pairs/triplets to TFRecords "
        "(SSMA / AdapNet++ schema)."
    )
    parser.add_argument("-f", "--file", required=True,
                        help="list file: 'modality1 [modality2] label' per line")
    parser.add_argument("-r", "--record", required=True, help="output TFRecord file")
    parser.add_argument("--encoding", choices=("raw", "png"), default="raw",
                        help="raw BGR bytes as the original tools (default) or PNG bytes (smaller)")
    parser.add_argument("--shards", type=int, default=1, help="number of output files (default 1)")
    parser.add_argument("--num_workers", type=int, default=1,
                        help="images decoded in parallel (default 1)")
    parser.add_argument("--num_classes", type=int, default=None,
                        help="number of classes incl. void; a label id >= this is an error")
    return parser.parse_args(argv)


def _progress_bar(stream) -> Callable[[int, int], None]:
    """Returns a progress(done, total) callback drawing one updating line on `stream`."""
    start = time.monotonic()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - last[0] < 0.1:
            return  # redraw at most 10 times a second
        last[0] = now
        width = 30
        filled = width * done // total
        rate = done / max(now - start, 1e-9)
        eta = f", {(total - done) / rate:.0f} s left" if done < total else ""
        bar = "#" * filled + "." * (width - filled)
        # \033[K clears what a longer previous line left behind.
        stream.write(f"\r[{bar}] {done}/{total} {rate:.1f} samples/s{eta}\033[K")
        if done == total:
            stream.write("\n")
        stream.flush()

    return progress


def main(argv: Optional[List[str]] = None) -> int:
    args = _parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from ssma_tf.data.convert import format_summary, write_tfrecords

    progress = _progress_bar(sys.stderr) if sys.stderr.isatty() else None
    try:
        summary = write_tfrecords(
            args.file,
            args.record,
            encoding=args.encoding,
            shards=args.shards,
            num_workers=args.num_workers,
            num_classes=args.num_classes,
            progress=progress,
        )
    except (ValueError, FileNotFoundError) as error:
        if progress is not None:
            sys.stderr.write("\n")
        sys.stderr.write(f"error: {error}\n")
        return 1
    print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
