"""Scene classification with SSMA (Section 5.9): `ssma-scene convert | train | evaluate`.

    ssma-scene convert -f train.txt -r train.tfrecords --modalities 2 --num_classes 4
    ssma-scene train --train_data train.tfrecords --modalities 2 --num_classes 4 \\
        --height 96 --width 96 --steps 300 --experts rgb/final.weights.h5 depth/final.weights.h5 \\
        --output runs/scene
    ssma-scene evaluate runs/scene --test_data val.tfrecords \\
        --class_names bathroom bedroom kitchen office --picture confusion.png

A list line is `modality1 modality2 ... class_id` (paths relative to the list's folder). Training
logs the loss as it goes and saves its state in `<output>/resume/` every `--save_steps` steps and
when stopped; the same command goes on from there. The evaluation prints the recall and IoU of
each class and their means, as Table 22. The work is done by `ssma_tf.scene` and
`ssma_tf.data.scene`.

Exit status: 0 done, 2 bad input (a list line, records, checkpoints; the message names it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

from ssma_tf.cli.common import (
    ArgumentParser, add_debug, add_version, command, fail, finite_number, require_tensorflow_backend, seed_number,
)


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags of the three subcommands."""
    parser = ArgumentParser(prog="ssma-scene", description=__doc__.splitlines()[0])
    add_version(parser)
    commands = parser.add_subparsers(dest="command", required=True)
    convert = commands.add_parser("convert", help="scene list file to TFRecords")
    add_debug(convert)  # after the sub-command too (before: 'unrecognized arguments'; helper 219)
    convert.add_argument("-f", "--file", required=True, help="list file: 'modality1 ... modalityN class_id' per line")
    convert.add_argument("-r", "--record", required=True, help="output TFRecord file")
    convert.add_argument("--modalities", type=int, default=None, help="images per line (an error otherwise)")
    convert.add_argument("--num_classes", type=int, default=None, help="a class id >= this is an error")
    convert.add_argument("--overwrite", action="store_true",
                         help="replace the record file if it exists (without it, an existing one is an error)")
    train = commands.add_parser("train", help="train an SSMA scene classifier")
    add_debug(train)
    train.add_argument("--train_data", required=True, nargs="+", help="scene records (files or patterns)")
    train.add_argument("--output", required=True, help="folder for scene.keras")
    train.add_argument("--num_classes", type=int, required=True, help="scene classes (ids 0..N-1; no void class)")
    train.add_argument("--modalities", type=int, default=2, help="images per record the model reads (default 2)")
    train.add_argument("--experts", nargs="+", help="one unimodal AdapNet++ checkpoint per modality")
    train.add_argument("--expert_classes", type=int, help="class count of the experts' own checkpoints "
                       "(default: as each checkpoint says)")
    train.add_argument("--decoder_filters", type=int, help="the decoder width the --experts were trained with, for "
                       "their weight files to load (their decoder is dropped; default: as each expert's training "
                       "run says, else 256)")
    train.add_argument("--train_experts", action="store_true", help="train the experts too (default: frozen)")
    train.add_argument("--backbone", default="adapnet_pp", help="the experts' backbone: adapnet_pp (default, the "
                       "paper's) or mobilenet_v2; the --experts checkpoints must be on it")
    train.add_argument("--backbone_weights", help="ImageNet weights file of a mobilenet_v2 backbone, for experts "
                       "without --experts checkpoints")
    train.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    train.add_argument("--batch_size", type=int, default=8, help="scenes per step (default 8)")
    train.add_argument("--learning_rate", type=finite_number, default=1e-3, help="Adam's rate, constant (default 1e-3)")
    train.add_argument("--seed", type=seed_number, help="seed of the weights, the data order and dropout; with it, a "
                       "resumed run ends with the weights of an uninterrupted one")
    train.add_argument("--save_steps", type=int, default=100,
                       help="save the run's state every this many steps, for resuming (default 100; 0: only "
                       "when stopped by Ctrl-C or SIGTERM)")
    train.add_argument("--log_every", type=int, help="a line with the mean loss every this many steps "
                       "(default: a tenth of --steps)")
    train.add_argument("--overwrite", action="store_true",
                       help="replace the folder's scene.keras if it exists (without it, an existing one is an error) "
                       "and start again from step 0 where an unfinished run's state is (without it, the run goes on "
                       "from there)")
    train.add_argument("--height", type=int, required=True, help="input height, a multiple of 16 (kept with the "
                       "model: evaluation's default)")
    train.add_argument("--width", type=int, required=True, help="input width, a multiple of 16 (likewise)")
    evaluate = commands.add_parser("evaluate", help="per-class recall and IoU of a trained classifier")
    add_debug(evaluate)
    evaluate.add_argument("model", help="scene.keras, or the training output folder")
    evaluate.add_argument("--test_data", required=True, nargs="+", help="scene records (files or patterns)")
    evaluate.add_argument("--height", type=int, help="input height (default: the size the model was trained at)")
    evaluate.add_argument("--width", type=int, help="input width (likewise)")
    evaluate.add_argument("--batch_size", type=int, default=8, help="scenes per call (default 8)")
    evaluate.add_argument("--class_names", nargs="+", help="names of the classes, id 0 first")
    evaluate.add_argument("--json", help="also write the metrics (and the confusion counts) to this file")
    evaluate.add_argument("--picture", help="also draw the confusion matrix to this PNG (rows the true classes, "
                          "each shaded by its share of the row)")
    return parser


def _check_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Ends the command on a flag out of range (the library checks some only after the model is built,
    some not at all: a negative rate trains away from the labels)."""
    from ssma_tf.constants import MAX_MODALITIES, OUTPUT_STRIDE

    # SSMA fuses two modalities or more: records of one no classifier reads (before: train
    # --modalities 1 and --expert_classes 0 ended in the model's traceback after reading the records).
    least = {"--num_classes": 1 if args.command == "convert" else 2, "--modalities": 2, "--steps": 1,
             "--batch_size": 1, "--height": OUTPUT_STRIDE, "--width": OUTPUT_STRIDE, "--save_steps": 0,
             "--log_every": 1, "--expert_classes": 2, "--decoder_filters": 1}
    for flag, low in least.items():
        value = getattr(args, flag[2:], None)
        if value is not None and value < low:
            parser.error(f"{args.command} {flag} must be >= {low}, got {value}")
    if getattr(args, "modalities", None) is not None and args.modalities > MAX_MODALITIES:
        parser.error(f"{args.command} --modalities must be <= {MAX_MODALITIES}, got {args.modalities}")
    for flag in ("--height", "--width"):
        value = getattr(args, flag[2:], None)
        if value is not None and value % OUTPUT_STRIDE:
            parser.error(f"{args.command} {flag} must be a multiple of {OUTPUT_STRIDE} (the encoder's output stride), "
                         f"got {value}")
    if args.command == "train":
        if not 0 < args.learning_rate < float("inf"):  # NaN and inf trained to NaN weights
            parser.error(f"train --learning_rate must be positive and finite, got {args.learning_rate:g}")
        from ssma_tf.constants import ADAPNET_PP_BACKBONE, BACKBONES

        if args.backbone not in BACKBONES:
            parser.error(f"train --backbone must be one of {', '.join(BACKBONES)}, got {args.backbone!r}")
        if args.backbone_weights is not None and args.experts is not None:
            parser.error("train --backbone_weights starts experts that have no checkpoints; --experts replace "
                         "them: give one or the other")
        if args.backbone_weights is not None and args.backbone == ADAPNET_PP_BACKBONE:
            parser.error("train --backbone_weights is for --backbone mobilenet_v2; AdapNet++ experts start from "
                         "--experts checkpoints")
        if args.decoder_filters is not None and args.experts is None:
            parser.error("train --decoder_filters says how the --experts were trained; give --experts")
        if args.expert_classes is not None and args.experts is None:
            # Before: read by nothing, yet a setting a resumed run had to repeat (helper 292).
            parser.error("train --expert_classes says the class count of the --experts' checkpoints; give --experts")
        if args.experts is not None and len(args.experts) != args.modalities:
            parser.error(f"train --experts: {len(args.experts)} checkpoint(s) for --modalities {args.modalities}; "
                         "give one per modality")


@command
def main(argv: Optional[List[str]] = None) -> int:
    """Runs one subcommand; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_flags(parser, args)
    from ssma_tf import scene
    from ssma_tf.data.scene import write_scene_records
    from ssma_tf.errors import UserInputError
    from ssma_tf.files import atomic_write, check_json_output, check_output, check_png_output
    from ssma_tf.progress import Progress

    if args.command in ("train", "evaluate"):
        require_tensorflow_backend(f"ssma-scene {args.command}")  # convert builds no model
    try:
        # Before the work: a folder under a file failed once training or evaluating was done.
        if args.command == "train":
            check_output(args.output, what="--output", directory=True, overwrite=None)
            # A trained classifier is not replaced by a second run without a word (an unfinished
            # run, which has none yet, goes on; so does one started with --overwrite over a trained
            # classifier, which its stop message tells to rerun without the flag: before, refused
            # then, and with --overwrite its state was deleted; helper 137).
            # Its state, not the folder alone (helper 277: a resume folder left by a failed first
            # save let a run of other settings replace scene.keras without --overwrite).
            unfinished = scene.holds_unfinished_run(args.output)
            check_output(os.path.join(args.output, scene.FINAL_SCENE_MODEL), what="the trained classifier",
                         overwrite=args.overwrite or unfinished)
        elif args.command == "evaluate":
            if args.json is not None:  # an empty path is refused, not taken for no flag
                check_json_output(args.json)  # not the model or the records, by a slip of the path
            if args.picture is not None:
                check_png_output(args.picture, what="--picture")  # an earlier picture, nothing else
            if args.json and args.picture and os.path.realpath(args.json) == os.path.realpath(args.picture):
                # Before: the picture replaced the metrics, exit 0 (helper 292).
                raise UserInputError(f"--json and --picture are both {args.picture}; give two files",
                                     path=args.picture)
        if args.command == "convert":
            # As ssma-convert: existing records are replaced only when asked, 16-bit images named.
            check_output(args.record, what="--record", overwrite=args.overwrite)
            from ssma_tf.data.convert import sixteen_bit_warning
            from ssma_tf.data.scene import read_scene_lines

            number, paths, _ = read_scene_lines(args.file, args.modalities)[0]  # the first line's headers
            for warning in filter(None, map(sixteen_bit_warning, paths)):
                print(f"warning: {args.file}, line {number}: {warning}", file=sys.stderr, flush=True)
            with Progress.bar_or_lines(sys.stderr, unit="scenes", prefix="converted ") as progress:
                summary = write_scene_records(args.file, args.record, args.modalities, args.num_classes,
                                              progress=progress)
            print(f"{summary['samples']} scenes of {summary['modalities']} modalities, classes "
                  f"{summary['class_histogram']} -> {args.record}")
            if summary["order_warning"]:
                print(f"warning: {args.file}: {summary['order_warning']}", file=sys.stderr, flush=True)
        elif args.command == "train":
            result = scene.train_scene_classifier(
                args.train_data, args.output, num_classes=args.num_classes, modalities=args.modalities,
                height=args.height, width=args.width, steps=args.steps, batch_size=args.batch_size,
                learning_rate=args.learning_rate, experts=args.experts, expert_classes=args.expert_classes,
                expert_decoder_filters=args.decoder_filters,
                freeze_experts=not args.train_experts, backbone=args.backbone,
                backbone_weights=args.backbone_weights, seed=args.seed, log=print, log_every=args.log_every,
                save_steps=args.save_steps, resume=not args.overwrite,
            )
            print(f"wrote {result.path}")
        else:
            with Progress.bar_or_lines(sys.stderr, unit="scenes", prefix="classified ") as progress:
                metrics = scene.evaluate_scene_classifier(
                    args.model, args.test_data, height=args.height, width=args.width,
                    batch_size=args.batch_size, class_names=args.class_names, progress=progress,
                )
            print(scene.format_scene_metrics(metrics))
            if args.json is not None:
                with atomic_write(args.json) as stream:
                    json.dump(metrics, stream, indent=1)
            if args.picture is not None:
                from ssma_tf.visualize import confusion_picture, save_png

                save_png(args.picture, confusion_picture(metrics["confusion"], [c["name"] for c in metrics["per_class"]]))
                print(f"confusion matrix: {args.picture}")
    except (UserInputError, FileNotFoundError) as error:
        return fail(error)
    except scene.SceneTrainingStopped as error:  # a NaN loss, as ssma-train's (exit 1; helper 349)
        return fail(error, 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
