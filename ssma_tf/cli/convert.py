r"""Converts a list of `modality1 [modality2] label` image paths to TFRecords.

    ssma-convert --file train.txt --record train.tfrecords
    ssma-convert -f train.txt -r train.tfrecords --encoding png \
        --shards 8 --num_workers 4 --num_classes 12
    ssma-convert -f target.txt -r target.tfrecords --unlabeled   # `modality1 [modality2]` lines

The records follow the original SSMA / AdapNet++ schema (see `ssma_tf.data.schema`). The list
(columns, every file present, duplicate lines) and the output paths are checked before
TensorFlow loads; a path with spaces is quoted or the line's paths are tab-separated
(`ssma_tf.lists`). Labels must be lossless single-channel (gray or palette) images. The work is
done by `ssma_tf.data.write_tfrecords`; this script parses flags, shows a progress bar (on a
terminal; in a log file a line every 10 s) and prints the summary. `--check` then reads the
written records back end to end, as `ssma-check-records` does. Record files that exist are
replaced only with `--overwrite`.

Exit status: 0 done, 2 a bad list, image, label or output path (the message names the file and
line), 1 a failed write (disk full).
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from ssma_tf.cli.common import ArgumentParser, add_version, command


def _parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = ArgumentParser(
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
                        help="number of classes incl. void; a label id >= this is an error, except the ignore id 255")
    parser.add_argument("--check", action="store_true",
                        help="read the written records back and verify them (as ssma-check-records)")
    parser.add_argument("--modalities", type=int, default=None,
                        help="images per line before the label (e.g. the config's N); a line "
                             "with another count is an error")
    parser.add_argument("--unlabeled", action="store_true",
                        help="the lines have no label column (images for unlabeled_data or target_data); "
                             "the records have no label")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace record files that exist (without it, an existing one is an error)")
    add_version(parser)
    return parser.parse_args(argv)


@command
def main(argv: Optional[List[str]] = None) -> int:
    """Parses the flags and converts; returns the exit status (2: a bad list file or image)."""
    from ssma_tf.constants import MAX_MODALITIES  # no TensorFlow

    args = _parse_args(argv)
    for flag, value, low, high in (("--shards", args.shards, 1, None), ("--num_workers", args.num_workers, 1, None),
                                   ("--num_classes", args.num_classes, 2, 256),
                                   ("--modalities", args.modalities, 1, MAX_MODALITIES)):
        if value is not None and (value < low or (high is not None and value > high)):
            bounds = f"in {low}..{high}" if high is not None else f">= {low}"
            sys.stderr.write(f"ssma-convert: error: {flag} must be {bounds}, got {value}\n")
            return 2
    if args.unlabeled and args.num_classes is not None:
        sys.stderr.write("ssma-convert: error: --num_classes checks label ids, but an --unlabeled list has no labels\n")
        return 2
    # No TensorFlow yet: a bad list or output path is reported in a fraction of a second.
    from ssma_tf.data.convert import (
        LABEL_LIKE_VALUES, cannot_be_label, check_list, duplicates_warning, format_summary, looks_like_label,
        shard_names, sixteen_bit_warning, turned_images_warning, write_tfrecords,
    )
    from ssma_tf.files import check_output
    from ssma_tf.lists import refuse_listed_outputs
    from ssma_tf.progress import Progress

    # `write_tfrecords` takes the list as checked here, so the count is checked here too.
    checked = check_list(args.file, modalities=args.modalities, labeled=not args.unlabeled)
    # Records that exist are kept unless asked, as ssma-prepare and ssma-export do: a second run
    # with a list meant for another split would replace a training set without a word.
    outputs = shard_names(args.record, args.shards)
    for name in outputs:
        check_output(name, what="--record", overwrite=args.overwrite)
    # Before TensorFlow loads, as docs/data.md says (`write_tfrecords` checks it again for library
    # callers): before, `--overwrite` with an output that is the list or one of its images was
    # refused only after TensorFlow's 5 s start.
    refuse_listed_outputs(outputs, args.file, [path for _, paths in checked.entries for path in paths])
    if checked.duplicates:
        print(f"warning: {duplicates_warning(checked.duplicates)}", file=sys.stderr)
    # Only the first line's headers: images that convert but would train on nothing useful.
    number, paths = checked.entries[0]
    for warning in filter(None, map(sixteen_bit_warning, paths if args.unlabeled else paths[:-1])):
        print(f"warning: {args.file}, line {number}: {warning}", file=sys.stderr)
    if not args.unlabeled and args.modalities is None and len(paths) > 3 and looks_like_label(paths[-2]):
        # A column too many ("rgb depth label label") became a fusion of one modality more, the
        # label read as an image, without a word.
        print(f"warning: {args.file}, line {number}: column {len(paths) - 1} ({paths[-2]}) is a single-channel "
              f"image of few values, as labels are, but is converted as modality {len(paths) - 1} of "
              f"{len(paths) - 1}. Give --modalities N to have the columns checked", file=sys.stderr)
    # (Unless --num_classes says more classes than a grey label is taken to have.)
    if not args.unlabeled and (args.num_classes or 0) <= LABEL_LIKE_VALUES and cannot_be_label(paths[-1]):
        # "rgb depth" lines without --unlabeled: a grey depth map became ~250 class ids without a word (helper 154).
        print(f"warning: {args.file}, line {number}: the label column ({paths[-1]}) cannot hold class ids (a colour "
              "image, or 8-bit grey of many values, like a depth map); a list without labels converts with "
              "--unlabeled", file=sys.stderr)
    if args.unlabeled and args.modalities is None and len(paths) > 1 and looks_like_label(paths[-1]):
        print(f"warning: {args.file}, line {number}: the last column ({paths[-1]}) is a "
              f"single-channel image, as labels are; --unlabeled converts it as modality "
              f"{len(paths)}. Give --modalities N to have the columns checked", file=sys.stderr)

    # A bad image or label ends the command with one line naming it (`command`).
    with Progress.bar_or_lines(sys.stderr, unit="samples", prefix="converted ") as progress:
        summary = write_tfrecords(
            args.file,
            args.record,
            encoding=args.encoding,
            shards=args.shards,
            num_workers=args.num_workers,
            num_classes=args.num_classes,
            progress=progress,
            checked=checked,
            modalities=args.modalities,
            labeled=not args.unlabeled,
            overwrite=args.overwrite,
        )
    print(format_summary({**summary, "duplicates": []}))  # duplicates: warned about above
    later = [(line, modality, path) for line, modality, path in summary["sixteen_bit"] if line != number]
    if later:
        # The first line's images were looked at before converting; 16-bit images further down
        # (a raw depth map among coloured ones) became nearly black without a word.
        shown = ", ".join(f"line {line}: {path}" for line, _, path in later[:3])
        more = f" and {len(later) - 3} more" if len(later) > 3 else ""
        print(f"warning: {args.file}: {len(later)} image(s) after line {number} are 16-bit ({shown}{more}): only their "
              "high byte was kept (values / 256), so raw depth in millimetres became nearly black. Turn them into "
              "3-channel images first (ssma-prepare jet, hha, ...) and convert again", file=sys.stderr)
    turned = turned_images_warning(summary["turned"], labeled=not args.unlabeled)
    if turned:
        print(f"warning: {args.file}: {turned}", file=sys.stderr)
    if summary["grey_palette"]:
        print(f"warning: {args.file}, {summary['grey_palette']}", file=sys.stderr)
    if summary["palette_clash"]:
        print(f"warning: {args.file}: {summary['palette_clash']}", file=sys.stderr)
    if args.check:
        from ssma_tf.cli.check_records import check_and_report

        return check_and_report(summary["files"], num_classes=args.num_classes, modalities=checked.modalities,
                                labeled=not args.unlabeled)
    return 0


if __name__ == "__main__":
    sys.exit(main())
