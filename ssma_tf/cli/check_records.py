"""Checks TFRecord files end to end before a long run: `ssma-check-records data/train-*.tfrecords`.

    ssma-check-records train.tfrecords val.tfrecords --num_classes 12
    ssma-check-records 'data/train-*-of-*.tfrecords' --modalities 2
    ssma-check-records target.tfrecords --unlabeled     # images read without labels
    ssma-check-records -c configs/my_train.config       # every record file the config reads

Every record of every file is read: the framing and its CRCs (a file cut short, overwritten bytes
or a file that is not a TFRecord file), the `tf.train.Example` (height, width, modality1, label
and, for fusion data, modality2 .. modalityN), the pixel bytes (raw of the right size, or a PNG of the record's
size) and, with `--num_classes`, every label id below the class count. With `--unlabeled` (records of
`unlabeled_data` or `target_data`) a record may lack its label; those are counted. Scene classification
records (`ssma-scene convert`) are checked as such: their images and, with `--num_classes`, every class
id below the class count. With `-c CONFIG`, the record files of each of the config's
`train_data`, `test_data`, `target_val_data` (labeled) and `unlabeled_data`, `target_data`
(without labels) are checked at its class count and with the modalities its model reads, each
key under a heading. A bar shows the progress
on a terminal, a line every 10 s in a log file. Prints one line per file (records, kind, image
sizes, label ids) and one line per problem, naming the file and the record index. The work is
done by `ssma_tf.data.records`.

Exit status: 0 every file is good, 2 a problem was found (or a bad flag or missing file).
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional, Sequence

from ssma_tf.cli.common import (
    ArgumentParser, EXIT_BAD_INPUT, add_overrides, add_version, command, parse_overrides_or_exit,
)

# A config's record keys, and whether their records must hold labels.
CONFIG_RECORD_KEYS = (("train_data", True), ("test_data", True), ("target_val_data", True),
                      ("unlabeled_data", False), ("target_data", False))


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags."""
    parser = ArgumentParser(
        prog="ssma-check-records",
        description="Check TFRecord files end to end: CRCs, records, image bytes, sizes and label ids.",
    )
    parser.add_argument("records", nargs="*", metavar="RECORDS", help="record files or glob patterns")
    parser.add_argument("-c", "--config", metavar="CONFIG",
                        help="check every record file a training or evaluation config reads (train_data, test_data, "
                        "unlabeled_data, target_data, target_val_data), at its num_classes and with the modalities "
                        "its model reads (instead of RECORDS)")
    add_overrides(parser)
    parser.add_argument("--num_classes", type=int, help="classes including void: a label id >= this is a problem, except the ignore id 255 "
                        "(scene records: a class id >= this)")
    parser.add_argument("--modalities", type=int,
                        help="N: every record must hold modality1 .. modalityN (2 for SSMA) and later images "
                        "are not checked; 1: modality1 and label only (default: what the records hold; a "
                        "file mixing counts is a problem)")
    parser.add_argument("--unlabeled", action="store_true",
                        help="records used without labels (unlabeled_data, target_data): a record without "
                        "a label is no problem, only counted")
    parser.add_argument("--max_problems", type=int, default=20,
                        help="problems per file after which its other records are counted, not checked (default 20)")
    add_version(parser)
    return parser


def check_and_report(
    files: Sequence[str], *, num_classes: Optional[int] = None, modalities: Optional[int] = None,
    max_problems: int = 20, labeled: bool = True, scenes: bool = True,
) -> int:
    """Checks `files` with a progress bar, prints a line per file and per problem; returns the status.
    `scenes`: scene classification records are checked as such (False: named as the wrong kind,
    for the keys of a segmentation config)."""
    from ssma_tf.data.records import check_record_files
    from ssma_tf.progress import Progress

    with Progress.bar_or_lines(sys.stderr, unit="records", prefix="checked ") as progress:
        reports = check_record_files(files, modalities=modalities, num_classes=num_classes,
                                     max_problems=max_problems, progress=progress, labeled=labeled, scenes=scenes)
    problems = 0
    for report in reports:
        print(report.describe())
        for problem in report.problems:
            print(f"error: {problem}")
        problems += len(report.problems)
    records = sum(report.records for report in reports)
    verdict = "all good" if not problems else f"{problems} problem(s)"
    unchecked = sum(report.unchecked for report in reports)
    if unchecked:
        verdict = f"at least {verdict}; {unchecked} record(s) not checked past --max_problems"
    print(f"checked {records} records in {len(reports)} file(s): {verdict}")
    return EXIT_BAD_INPUT if problems else 0


@command
def main(argv: Optional[List[str]] = None) -> int:
    """Parses the flags and checks the files; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.num_classes is not None and not 2 <= args.num_classes <= 256:
        parser.error(f"--num_classes must be in 2..256, got {args.num_classes}")
    from ssma_tf.constants import MAX_MODALITIES  # no TensorFlow

    if args.modalities is not None and not 1 <= args.modalities <= MAX_MODALITIES:
        parser.error(f"--modalities must be in 1..{MAX_MODALITIES}, got {args.modalities}")
    if args.max_problems < 1:
        parser.error(f"--max_problems must be positive, got {args.max_problems}")
    if args.config is not None:
        if args.records or args.num_classes is not None or args.modalities is not None or args.unlabeled:
            parser.error("-c takes the record files, the class count and the modalities from the config: give "
                         "it without RECORDS, --num_classes, --modalities and --unlabeled")
        return _check_config(args.config, parse_overrides_or_exit(parser, args.overrides), args.max_problems)
    if args.overrides:
        parser.error("--set is for -c CONFIG")
    if not args.records:
        parser.error("give record files or glob patterns, or -c CONFIG")
    from ssma_tf.data.pipeline import list_record_files

    # Every file given is looked at, of one conversion or several (stale shards too).
    files = list_record_files(args.records, several_sets=True)  # a pattern matching nothing: one line, status 2
    return check_and_report(files, num_classes=args.num_classes, modalities=args.modalities,
                            max_problems=args.max_problems, labeled=not args.unlabeled)


def _check_config(path: str, overrides, max_problems: int) -> int:
    """`-c CONFIG`: each record key of the config under its heading; the worst status."""
    from ssma_tf.config import ConfigError, load_config
    from ssma_tf.config.reader import Required
    from ssma_tf.data.pipeline import list_record_files
    from ssma_tf.data.records import RecordError
    from ssma_tf.lists import MissingFileError

    needed = Required(("model", "num_classes"), "ssma-check-records")
    try:  # a training or an evaluation config; neither needs its weights or its other keys here
        config = load_config(path, "train", check_paths=False, overrides=overrides, required=needed)
    except ConfigError as train_error:
        try:
            config = load_config(path, "eval", check_paths=False, overrides=overrides, required=needed)
        except ConfigError as eval_error:
            # The error of the mode the config is for (before: always the evaluation's, e.g. a
            # training key "unknown" to evaluation instead of the training config's own slip).
            from ssma_tf.config.yaml_reader import read_yaml_file

            raw = read_yaml_file(path, "the config file")
            training = "train_data" in (overrides or {}) or isinstance(raw, dict) and "train_data" in raw
            raise (train_error if training else eval_error) from None
    keys = [(key, labeled) for key, labeled in CONFIG_RECORD_KEYS if getattr(config, key)]
    if not keys:
        raise ConfigError("names no record files (train_data, test_data, unlabeled_data, target_data or "
                          "target_val_data)", source=config.source)
    modalities = config.record_modalities
    reads = (f"modality1 .. modality{modalities}" if config.is_fusion
             else f"{config.input_modality} (records need modality1 .. modality{modalities})" if modalities > 1
             else "modality1")
    status = 0
    failed = []
    for key, labeled in keys:
        patterns = getattr(config, key)
        print(f"{key} ({config.where(key)}): {'with labels' if labeled else 'labels not needed'}, "
              f"{config.num_classes} classes, the model reads {reads}", flush=True)
        try:
            # As the run reads them: two conversions of one name are refused there, so here too
            # (before: "all good" for a set training then refused).
            files = list_record_files(patterns)
        except (MissingFileError, RecordError) as error:  # the other keys are still checked
            print(f"error: {config.where(key)}: key {key!r}: {error}", flush=True)
            status = EXIT_BAD_INPUT
            failed.append(key)
            continue
        # A config's records are segmentation records: scene classification records are refused
        # where it reads them (before: "all good" for them here; helper 236).
        checked = check_and_report(files, num_classes=config.num_classes, modalities=modalities,
                                   max_problems=max_problems, labeled=labeled, scenes=False)
        if checked:
            failed.append(key)
        status = checked or status
    if len(keys) > 1:
        # Each key's last line speaks of its own records: "all good" of the last one followed an
        # earlier key's error (helper 186).
        print(f"{len(keys)} keys checked: " + (f"problems in {', '.join(failed)}" if failed else "all good"))
    return status


if __name__ == "__main__":
    sys.exit(main())
