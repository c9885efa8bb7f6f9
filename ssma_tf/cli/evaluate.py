"""Evaluates AdapNet++ or SSMA: `ssma-evaluate -c configs/adapnet_pp_cityscapes_test.config` or `ssma-evaluate RUN`.

The weights: a config's `checkpoint` (an original TF1 checkpoint, AdapNet++ or SSMA, told apart by
its variable names; a training directory of this project, one of its checkpoints, or a
`.weights.h5`/`.keras` file), `--checkpoint PATH` instead of the config's, or a training run's
folder (or its `final.keras`) alone: the `config.yaml` the run wrote gives the model, classes,
size and, unless `--test_data` or `--set test_data=...` says otherwise, the test data.
`--set key=value` replaces any key, checked like the file.

Prints per-class IoU, FPR and FNR and the summary metrics; the last line is `mIoU: <value>`
(the released definition, in percent). `--json PATH` also writes every metric with the number
of images; that path is checked before the evaluation starts, and the metrics are printed
before it is written. The work is done by `ssma_tf.evaluation`.

`--backend openvino` or `--backend tflite` evaluates an export of `ssma-export --format openvino|tflite`
(float32 or int8; the `deploy` extra) on the config's test data with the same metric:

    ssma-evaluate -c CONFIG --backend openvino --exported exports/ssma_int8
    ssma-evaluate exports/ssma_int8 --backend openvino --test_data val.tfrecords

The export alone (as RUN or `--exported`, without -c) is evaluated at its own size, classes and
modalities, which its metadata holds, on the records `--test_data` names. Without `--backend`,
an export folder is run by its own format's backend.

Exit status: 0 done, 2 bad config, checkpoint, export, record file or output path (the message
names it), 1 the JSON file could not be written (the metrics are printed above).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

from ssma_tf.cli.common import (
    ArgumentParser, add_overrides, add_version, default_backend, model_file_or_exit, parse_overrides_or_exit,
    setting_as_run_or_exit, tensorflow_command,
)


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags."""
    parser = ArgumentParser(
        prog="ssma-evaluate",
        description="Evaluate AdapNet++ or SSMA from a YAML .config file or a training run's folder.",
    )
    parser.add_argument("run", nargs="?", metavar="RUN",
                        help="a training run's folder (or its final.keras): model, classes, size and test "
                        "data from the config.yaml the run wrote (instead of -c); with --backend openvino|tflite, "
                        "an export folder (then --test_data names the records)")
    parser.add_argument("-c", "--config", help="the evaluation config (YAML)")
    parser.add_argument("--checkpoint", metavar="PATH", help="the weights to evaluate instead of the config's")
    parser.add_argument("--test_data", nargs="+", metavar="PATTERN",
                        help="record files or glob patterns to evaluate on instead of the config's")
    add_overrides(parser)
    parser.add_argument("--json", metavar="PATH", help="also write all metrics to this JSON file")
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                        help="arithmetic of the network: float32 (default, the original's numbers) or bfloat16 "
                        "(faster where the processor has bfloat16 units, e.g. Intel AMX; see README, Benchmarks)")
    parser.add_argument("--backend", choices=("tensorflow", "openvino", "tflite"), default=None,
                        help="tensorflow: the weights of the config or --checkpoint; openvino or tflite: the export "
                        "folder --exported (ssma-export --format ...; the deploy extra). Default: the export's "
                        "own format when an export folder is given, else tensorflow")
    parser.add_argument("--exported", metavar="FOLDER", help="an OpenVINO or TFLite export folder to evaluate")
    add_version(parser)
    return parser


@tensorflow_command
def main(argv: Optional[List[str]] = None) -> int:
    """Parses the flags, validates the config and evaluates; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setting_as_run_or_exit(parser, args.run)
    if args.backend is None:  # before: `--exported` alone was "needs --backend openvino or tflite"
        args.backend = default_backend(args.exported or args.run)
    if args.backend != "tensorflow" and args.run is not None and args.exported is None:
        from ssma_tf.config.runs import find_run_config

        if find_run_config(args.run) is None:  # the export alone, as ssma-predict takes it (named if it is none)
            args.exported, args.run = args.run, None
    if args.backend == "tensorflow" and args.exported is not None:
        parser.error("--exported needs --backend openvino or tflite")
    if args.run is not None and args.config is not None:
        parser.error("give a config (-c) or a training run's folder, one of the two")
    if args.backend == "tensorflow":
        # As ssma-predict and ssma-export say it (before: a run's config.yaml given as RUN was "key
        # 'checkpoint': no checkpoint at RUN/config.yaml (expected ... 'config.yaml.index' ...)"; helper 278).
        model_file_or_exit(parser, "RUN", args.run)
    if args.run is None and args.config is None and (args.backend == "tensorflow" or args.exported is None):
        last = (args.test_data or [""])[-1]
        # `--test_data` takes every word after it: a RUN given last is taken for records.
        swallowed = (f" (--test_data took {last!r}, which is a folder: give RUN before --test_data)"
                     if last and os.path.isdir(last) else "")
        parser.error("give a config (-c) or a training run's folder (or, with --backend openvino|tflite, the "
                     f"export folder){swallowed}")
    overrides = parse_overrides_or_exit(parser, args.overrides)
    if args.backend != "tensorflow" and args.exported is None:
        parser.error(f"--backend {args.backend} needs --exported FOLDER (written by ssma-export --format {args.backend})")
    if args.backend != "tensorflow" and args.precision != "float32":
        parser.error("--precision is for the tensorflow backend; an export has its own (--int8 at export)")
    if args.backend != "tensorflow":
        from ssma_tf.inference.backends import require

        require(args.backend)  # a missing extra: one line naming it (`command`)
    # The flags are overrides, named as typed in errors (not as `--set test_data=[...]`).
    given_as = {}
    for flag, key in (("--checkpoint", "checkpoint"), ("--test_data", "test_data")):
        if getattr(args, key) is not None and key in overrides:  # before: the flag won without a word
            parser.error(f"{flag} and --set {key}=... both give the {key}; give one of them")
    if args.checkpoint is not None and args.backend != "tensorflow":
        # Before: ignored with -c CONFIG --exported FOLDER, the export evaluated as if they were its weights.
        parser.error(f"--checkpoint is for the tensorflow backend; the export {args.exported} is evaluated")
    if args.checkpoint is not None:
        model_file_or_exit(parser, "--checkpoint", args.checkpoint)  # helper 219: "no checkpoint at a.config"
        overrides["checkpoint"], given_as["checkpoint"] = args.checkpoint, f"--checkpoint {args.checkpoint}"
    if args.test_data is not None:
        overrides["test_data"], given_as["test_data"] = args.test_data, f"--test_data {' '.join(args.test_data)}"

    from ssma_tf.config import load_config
    from ssma_tf.config.runs import export_config, run_config
    from ssma_tf.files import atomic_write, check_json_output

    # Bad input (config, checkpoint, records, --json path) ends the command with one line (`command`).
    if args.json is not None:  # an empty path is refused, not taken for no flag
        check_json_output(args.json)  # before minutes of evaluation, not after
    if args.config is not None and args.backend != "tensorflow":
        # The export is evaluated: the config's own checkpoint is not read, nor required to exist.
        from ssma_tf.config.reader import REQUIRED_KEYS, Required

        needed = Required(tuple(k for k in REQUIRED_KEYS["eval"] if k != "checkpoint"),
                          f"ssma-evaluate --backend {args.backend}")
        config = load_config(args.config, "eval", overrides={**overrides, "checkpoint": None},
                             given_as={**overrides.given_as, **given_as},
                             required=needed)
    elif args.config is not None:
        from ssma_tf.config.reader import check_not_moved

        # A copied or moved run's config.yaml names the other folder's weights.
        check_not_moved(args.config, overrides, "give the folder itself (ssma-evaluate {folder}) or add "
                        "--set checkpoint={folder}")
        config = load_config(args.config, "eval", overrides=overrides, given_as=given_as)
    elif args.run is not None:
        config = run_config(args.run, "eval", overrides, given_as=given_as)
    else:  # --backend openvino|tflite and the export alone: its metadata says the model, --test_data the data
        config = export_config(args.exported, overrides, given_as=given_as)

    from ssma_tf.evaluation import evaluate

    if args.backend == "tensorflow":
        result = evaluate(config, precision=args.precision)
    else:
        from ssma_tf.evaluation import evaluate_exported

        result = evaluate_exported(config, args.exported, args.backend)
    print(result.table(), flush=True)  # first: a failing write below must not lose the metrics
    if args.json is not None:
        with atomic_write(args.json) as f:  # a reader never sees half a file
            json.dump(result.metrics, f, indent=2)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
