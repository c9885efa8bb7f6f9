r"""Exports AdapNet++ or SSMA as a TensorFlow SavedModel for serving, optionally with TFLite files.

    ssma-export -c configs/ssma_cityscapes_test.config --output exports/ssma_cityscapes
    ssma-export checkpoints/my_run --output exports/my_run
    ssma-export --checkpoint run/final.weights.h5 --model AdapNet_pp --num_classes 7 \
        --size 384x768 --fold_batch_norm --tflite float32 float16 --output exports/adapnet

The model: as for `ssma-predict` (a training run's folder or `.keras` file alone, a config, or
a checkpoint with `--model` and `--num_classes`); `--set key=value` replaces a key of the config.

The signature `serving_default` takes uint8 BGR batches (`image`, or `modality1` and `modality2`
for SSMA) and returns `class_ids` (int32, B×H×W) and `probabilities` (float32, B×H×W×C) at the
input size. With a size (the config's height × width unless `--size` says otherwise) inputs of
any size are resized inside; with `--size input` height and width must be multiples of 16.
The work is done by `ssma_tf.inference.export`.

`--format openvino` writes an OpenVINO IR (`model.xml`, `model.bin`) and `--format tflite` a
TFLite file instead, both of the network at a fixed size (the config's or `--size`) taking float32
BGR images (uint8 for `--format tflite --int8`: the metadata's `input_dtype`) and returning the
softmax, with the same metadata; `--int8 --calibration RECORDS [--calibration_samples N]`
quantises them, calibrated on the first N samples of the user's TFRecords, labeled or not
(every modality for SSMA, an expert's own one). They run with `ssma-predict`/`ssma-evaluate --backend
openvino|tflite` and need the `deploy` extra (`pip install '.[deploy]'` in the clone); the work is done
by `ssma_tf.inference.deploy`.

    ssma-export demo_output/checkpoints/ssma --format openvino --int8 \
        --calibration demo_output/data/train.tfrecords --output exports/ssma_int8

Exit status: 0 done, 2 bad config, checkpoint or options.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import List, Optional

from ssma_tf.cli.common import (
    ArgumentParser, add_model_source, add_version, interpolation_flag, model_source_or_exit, size_or_exit,
    tensorflow_command,
)


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags."""
    from ssma_tf.constants import DEFAULT_CALIBRATION_SAMPLES, INPUT_MODALITIES  # no TensorFlow: --help stays quick

    parser = ArgumentParser(
        prog="ssma-export",
        description="Export AdapNet++ or SSMA as a SavedModel with a uint8 serving signature (and TFLite)."
    )
    add_model_source(parser, "dataset whose class names and colours go into the metadata")
    parser.add_argument("-o", "--output", required=True,
                        help="the folder to write: a SavedModel, or with --format the OpenVINO IR or TFLite files")
    parser.add_argument("--size", help="HEIGHTxWIDTH to resize inputs to inside the graph, or 'input' for no "
                        "resizing (inputs must be multiples of 16); default: the config's size, else 'input' "
                        "(--format openvino and tflite need a fixed size: the config's, else --size)")
    parser.add_argument("--input_modality", choices=INPUT_MODALITIES,
                        help="AdapNet++: which modality of the records its image is (modality2 for a depth expert: "
                        "resized and calibrated as that one); default: the config's, else modality1")
    parser.add_argument("--modality2_interpolation", type=interpolation_flag, metavar="{nearest,bilinear}[,...]",
                        help="SSMA: how modality 2 and on are resized, as in training: one method for all, or one "
                        "per modality after the first (nearest,bilinear) (default: the config's, else nearest)")
    parser.add_argument("--fold_batch_norm", action="store_true",
                        help="fold batch norms into the preceding convolutions (checked to change no "
                        "probability by more than 1e-4; no measured gain on CPU, TFLite folds by itself)")
    parser.add_argument("--tflite", nargs="+", choices=("float32", "float16"), default=[],
                        help="also write TFLite conversions of the SavedModel")
    deploy = parser.add_argument_group("OpenVINO and TFLite (the deploy extra)")
    deploy.add_argument("--format", choices=("saved_model", "openvino", "tflite"), default="saved_model",
                        help="saved_model (default), or an OpenVINO IR / TFLite file of the network at a fixed size")
    deploy.add_argument("--int8", action="store_true",
                        help="openvino/tflite: quantise to int8 after training (needs --calibration)")
    deploy.add_argument("--calibration", nargs="+", metavar="RECORDS",
                        help="TFRecord files or patterns, labeled or not, whose first samples calibrate --int8 "
                             "(every modality for SSMA)")
    deploy.add_argument("--calibration_samples", type=int, metavar="N",
                        help=f"--int8: samples to calibrate on (default {DEFAULT_CALIBRATION_SAMPLES})")
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier export in the output folder "
                        "(any other existing folder is refused)")
    add_version(parser)
    return parser


def _lone_file(path: str) -> bool:
    """Whether `path` is a weights or `.keras` file outside a run folder (so no config gives a size)."""
    from ssma_tf.config.runs import is_run  # no TensorFlow

    return os.path.isfile(path) and not is_run(path)


@tensorflow_command
def main(argv: Optional[List[str]] = None) -> int:
    """Parses the flags, loads the model and exports it; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = model_source_or_exit(parser, args)
    size = size_or_exit(parser, args.size)
    if args.format == "saved_model" and (args.int8 or args.calibration):
        parser.error("--int8 and --calibration are for --format openvino or tflite")
    if args.format != "saved_model" and (args.tflite or args.fold_batch_norm):
        parser.error("--tflite and --fold_batch_norm are for --format saved_model (the other formats fold by themselves)")
    if args.format != "saved_model" and args.size == "input":
        # Before, after the model loaded: "give --size HEIGHTxWIDTH or a config" when a config was given.
        parser.error(f"--size input: --format {args.format} needs a fixed size; give --size HEIGHTxWIDTH, or leave "
                     "--size out for the config's")
    if args.format != "saved_model" and args.size is None and args.config is None and _lone_file(args.checkpoint):
        # A weights or .keras file alone holds no size. Before: refused after the model loaded (15 s at 32x64).
        parser.error(f"--format {args.format} needs a fixed size and {args.checkpoint} holds none: give --size "
                     "HEIGHTxWIDTH or a config (-c)")
    if args.int8 and not args.calibration:
        parser.error("--int8 needs --calibration RECORDS")
    if args.calibration and not args.int8:
        parser.error("--calibration is only used with --int8")
    from ssma_tf.constants import ADAPNET_PP, DEFAULT_CALIBRATION_SAMPLES

    if args.calibration_samples is not None and not args.int8:
        # Before: taken, and a float32 file written without a word (helper 223).
        parser.error("--calibration_samples is only used with --int8")
    if args.calibration_samples is None:
        args.calibration_samples = DEFAULT_CALIBRATION_SAMPLES
    if args.calibration_samples < 1:  # the library's check comes after the model loads, as a traceback
        parser.error(f"--calibration_samples must be >= 1, got {args.calibration_samples}")
    if args.input_modality is not None and args.model not in (None, ADAPNET_PP):
        # Before the model loads (before: after it, some 20 s at 32x64; helper 223).
        parser.error(f"--input_modality is for AdapNet++; {args.model} reads every modality")

    from ssma_tf.errors import UserInputError
    from ssma_tf.files import check_output
    from ssma_tf.inference.export import check_export_output, export_saved_model
    from ssma_tf.inference.settings import check_interpolation_flag, setup_inference, warn_of_unknown_interpolation

    if os.path.isdir(args.output) and os.listdir(args.output):
        # A folder that is no export (or holds other files) is named as such first (helper 219:
        # "exists; pass --overwrite", which was then refused as "not an export").
        check_export_output(args.output, overwrite=True)
    check_output(args.output, what="--output", directory=True, overwrite=args.overwrite)  # before the model loads
    check_export_output(args.output, args.overwrite)
    if args.format != "saved_model":
        from ssma_tf.inference.backends import require

        # Before loading the model: a missing extra is a one-line error, not minutes later.
        require(args.format if args.format == "openvino" else "tflite")
        if args.int8 and args.format == "openvino":
            require("nncf")
    if args.int8:
        from ssma_tf.inference.deploy import check_calibration_records

        check_calibration_records(args.calibration, args.calibration_samples)  # not after the model loads

    # Bad input (config, checkpoint, an existing output) ends the command with one line (`command`).
    setup = setup_inference(args.config, args.checkpoint, args.model, args.num_classes, args.dataset,
                            overrides=overrides)
    input_modality = _input_modality(args, setup)
    # Before: accepted, and dropped from the export without a word.
    check_interpolation_flag(args.modality2_interpolation, setup.model, input_modality)
    warn_of_unknown_interpolation(setup, args.modality2_interpolation, input_modality)
    if args.format != "saved_model":
        from ssma_tf.inference.deploy import export_deployed

        fixed = size if args.size is not None else setup.size
        if fixed is None:
            raise UserInputError(f"--format {args.format} needs a fixed size: give --size HEIGHTxWIDTH or a config")
        report = export_deployed(
            setup.model, args.output, format=args.format, size=fixed, int8=args.int8,
            calibration=args.calibration, calibration_samples=args.calibration_samples,
            input_modality=input_modality,
            modality2_interpolation=args.modality2_interpolation or setup.modality2_interpolation,
            dataset=setup.dataset, overwrite=args.overwrite, log=lambda line: print(line, flush=True),
        )
        print(report)
        return 0
    report = export_saved_model(
        setup.model, args.output, size=size if args.size is not None else setup.size,
        modality2_interpolation=args.modality2_interpolation or setup.modality2_interpolation,
        fold_batch_norm=args.fold_batch_norm, tflite=args.tflite, dataset=setup.dataset,
        input_modality=input_modality, overwrite=args.overwrite, log=lambda line: print(line, flush=True),
    )
    print(report)
    return 0


def _input_modality(args: argparse.Namespace, setup) -> str:
    """The modality an exported AdapNet++ reads, said once: from --input_modality, the run's
    config, or the default (an expert of depth exported from its `.keras` file alone was labelled
    modality1, and --int8 calibrated it on colour images, without a word)."""
    from ssma_tf.errors import UserInputError
    from ssma_tf.models.factory import is_fusion

    if is_fusion(setup.model):
        if args.input_modality is not None:
            raise UserInputError("--input_modality is for AdapNet++; SSMA reads every modality")
        return setup.input_modality
    if args.input_modality is not None:
        return args.input_modality
    if setup.size is not None:  # a run config said it
        return setup.input_modality
    print(f"input_modality: {setup.input_modality} (no config says otherwise; give --input_modality for an "
          "expert of another modality)", flush=True)
    return setup.input_modality


if __name__ == "__main__":
    sys.exit(main())
