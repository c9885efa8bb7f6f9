r"""Predicts segmentations of images with AdapNet++ or SSMA and writes pictures of them.

    ssma-predict -c configs/ssma_cityscapes_test.config \
        --modality1 rgb.png --modality2 depth.png --output predictions/
    ssma-predict -c CONFIG --list samples.txt --output predictions/ --attention
    ssma-predict checkpoints/my_run --list samples.txt --output predictions/
    ssma-predict --checkpoint run/final.weights.h5 --model SSMA --num_classes 7 \
        --dataset synthetic --modality1 rgb_dir/ --modality2 depth_dir/ --output predictions/

The model: a config (its `checkpoint`, or `--checkpoint`), a training run's folder or its
`final.keras` alone (the run's `config.yaml` gives model, classes, size and dataset), a `.keras`
file or TF1 checkpoint alone (they say which network they hold), or other weights with `--model`
and `--num_classes`. `--set key=value` replaces a key of the config.

Inputs: one image (pair), a list file (`modality1 modality2 [label]` per line, paths relative to
the list; AdapNet++ also reads `image [label]`), or two folders whose files pair up by name
(`--modality1_suffix`/`--modality2_suffix` strip name endings such as `_leftImg8bit`). Images are
RGB files as on disk; the network gets them in BGR, as in training.

For every sample it writes `class_ids/<name>.png` (8-bit class ids), `color/<name>.png` (the
dataset's colours), `overlay/<name>.png` (the colours over modality 1), with `--attention` the
SSMA blocks' mean gates `attention/{latent,skip2,skip1}/<name>.png`, for list lines with a
label the coloured ground truth `label_color/<name>.png`, and with `--compare RUN` the other
model's colours `compare_color/<name>.png` and the improvement/error map of this model against it
`improvement/<name>.png` (the paper's Figure 18: red where this model is wrong, green where the
compared one is wrong and this one right). The work is done by the
`ssma_tf.inference` package (`settings`, `predictor`, `samples`, `pictures`).

`--backend openvino` or `--backend tflite` predicts with an export of `ssma-export --format
openvino|tflite` (the `deploy` extra), named as RUN or `--checkpoint`; its metadata gives the
model, size and colours (no attention maps). Without `--backend`, an export folder runs with
its own format's backend:

    ssma-predict exports/ssma_int8 --backend openvino --list samples.txt --output predictions/

Exit status: 0 done, 2 bad config, checkpoint, options or input file (the message names it).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, List, Optional

from ssma_tf.cli.common import (
    ArgumentParser, add_model_source, add_version, default_backend, finite_number, interpolation_flag,
    model_source_or_exit, not_a_model_file, size_or_exit, tensorflow_command,
)


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags."""
    from ssma_tf.constants import INPUT_MODALITIES  # no TensorFlow: --help stays quick

    parser = ArgumentParser(
        prog="ssma-predict",
        description="Predict with AdapNet++ or SSMA and write class-id, colour, overlay and attention pictures."
    )
    model = parser.add_argument_group("model (a training run, a config, or a checkpoint)")
    add_model_source(model, "dataset whose class colours to use (default: the config's)")

    inputs = parser.add_argument_group("inputs (files, folders or a list file)")
    inputs.add_argument("--modality1", help="modality-1 image, or a folder of them")
    inputs.add_argument("--modality2", help="modality-2 image, or a folder of them (SSMA)")
    inputs.add_argument("--list", help="list file: 'modality1 [modality2 ...] [label]' per line, the images the "
                        "network reads (N for SSMA over N) and an optional label")
    inputs.add_argument("--modality1_suffix", default="", help="name ending stripped to pair folder files")
    inputs.add_argument("--modality2_suffix", default="", help="name ending stripped to pair folder files")
    inputs.add_argument("--recursive", action="store_true", help="also read sub-folders")
    inputs.add_argument("--input_modality", choices=INPUT_MODALITIES,
                        help="AdapNet++: which image the network reads (default: the config's, else modality1)")
    inputs.add_argument("--modality2_interpolation", type=interpolation_flag, metavar="{nearest,bilinear}[,...]",
                        help="how modality 2 and on (SSMA's, or an expert's of those) are resized to the network, "
                        "as it was trained: one method for all, or one per modality after the first "
                        "(nearest,bilinear) (default: the config's, else nearest; an export's: its metadata's)")

    output = parser.add_argument_group("output")
    output.add_argument("-o", "--output", required=True, help="folder for the pictures")
    output.add_argument("--size", help="model input HEIGHTxWIDTH (multiples of 16), or 'input' for each image's "
                        "own size rounded to a multiple of 16 (default: the config's size, else 'input')")
    output.add_argument("--original_size", action="store_true",
                        help="write pictures at the input resolution (the probabilities resized bilinearly, "
                        "then the class of each pixel taken)")
    output.add_argument("--attention", action="store_true", help="SSMA: also write the mean gate of each SSMA block")
    output.add_argument("--compare", metavar="RUN",
                        help="a second model (training run folder, .keras file or TF1 checkpoint) of the same "
                        "classes: also write its prediction and the improvement/error map (red: this model "
                        "wrong; green: the compared model wrong, this one right); needs labels (--list)")
    output.add_argument("--alpha", type=finite_number, default=0.5, help="opacity of the colours in the overlay")
    output.add_argument("--batch_size", type=int, default=1, help="images per network call")
    output.add_argument("--precision", choices=("auto", "float32", "bfloat16"), default="auto",
                        help="arithmetic of the network: bfloat16 (about 3x faster where the processor has "
                        "bfloat16 matrix units, Intel AMX; without them it depends on the processor, slower on an "
                        "Intel Xeon, faster on an AMD EPYC; a few near-tie pixels may change class) or float32 "
                        "(the original's numbers); auto (default): times both once on this machine (cached) and "
                        "takes bfloat16 only when clearly faster")
    output.add_argument("--backend", choices=("tensorflow", "openvino", "tflite"), default=None,
                        help="tensorflow, or openvino/tflite to run an export folder of ssma-export --format "
                        "openvino|tflite given as RUN or --checkpoint (the deploy extra). Default: the export's "
                        "own format when an export folder is given, else tensorflow")
    output.add_argument("-q", "--quiet", action="store_true", help="no progress lines")
    add_version(parser)
    return parser


def _refuse_loose_images(parser: argparse.ArgumentParser, argv: Optional[List[str]]) -> None:
    """Ends the command when an image stands where no flag takes it: a shell pattern given to
    --modality1 leaves its second file as RUN and the others unrecognised (before: "give a training
    run's folder or .keras file, or -c/--checkpoint, not both", or "unrecognized arguments";
    helpers 229, 231)."""
    from ssma_tf.modalities.io import IMAGE_EXTENSIONS

    known, extra = parser.parse_known_args(argv)
    loose = [path for path in [known.run, *extra] if path is not None and not path.startswith("-")
             and os.path.isfile(path) and path.lower().endswith(IMAGE_EXTENSIONS)]
    if loose:
        parser.error(f"{loose[0]} is an image that no flag takes: --modality1 and --modality2 take one image or a "
                     "folder each (a shell pattern such as rgb/*.png gives several); give the folder")


@tensorflow_command
def main(argv: Optional[List[str]] = None) -> int:
    """Parses the flags, loads the model and predicts; returns the exit status."""
    parser = build_parser()
    _refuse_loose_images(parser, argv)
    args = parser.parse_args(argv)
    if args.backend is None:  # before: "it is an openvino export of ssma-export; run it with --backend openvino"
        args.backend = default_backend(args.run or args.checkpoint)
    if args.backend != "tensorflow" and args.run is None and args.checkpoint is None:
        # Before: "give a training run's folder, a config (-c) or a checkpoint", of which only
        # the folder fits.
        parser.error(f"--backend {args.backend} needs the export folder (written by ssma-export --format "
                     f"{args.backend}) as RUN or --checkpoint")
    overrides = model_source_or_exit(parser, args)
    if args.list is None and args.modality1 is None and args.modality2 is None:
        parser.error("give --modality1/--modality2 (files or folders) or --list")
    if args.list is not None and (args.modality1 or args.modality2):
        parser.error("give either --list or --modality1/--modality2, not both")

    size = size_or_exit(parser, args.size)
    # Checked by the library too, but only once the model is loaded, and naming an image, not the flag.
    if not 0 <= args.alpha <= 1:
        parser.error(f"--alpha must be in 0..1, got {args.alpha:g}")
    if args.batch_size < 1:
        parser.error(f"--batch_size must be >= 1, got {args.batch_size}")

    from ssma_tf.files import check_output
    from ssma_tf.inference.pictures import predict_files
    from ssma_tf.inference.predictor import Predictor
    from ssma_tf.inference.samples import collect_samples
    from ssma_tf.inference.settings import (
        check_interpolation_flag, reads_modality2_and_on, setup_inference, warn_of_unknown_interpolation,
    )

    if args.backend != "tensorflow":
        return _predict_exported(parser, args, overrides)
    # Bad input (config, checkpoint, an image or list file) ends the command with one line (`command`).
    check_output(args.output, what="--output", directory=True, overwrite=None)  # before the model loads
    _say_if_not_empty(args.output)
    setup = setup_inference(args.config, args.checkpoint, args.model, args.num_classes, args.dataset,
                            overrides=overrides)
    input_modality = args.input_modality or setup.input_modality
    other = None if args.compare is None else _compared_model(args.compare, setup_inference)
    # The flag also resizes for a compared network without a config (helper 270: nearest there
    # whatever the flag said, and the flag refused where only the compared network reads depth).
    flag_for_compared = other is not None and not other.configured and reads_modality2_and_on(
        other.model, other.input_modality)
    if not (flag_for_compared and not reads_modality2_and_on(setup.model, input_modality)):
        check_interpolation_flag(args.modality2_interpolation, setup.model, input_modality)
    warn_of_unknown_interpolation(setup, args.modality2_interpolation, input_modality)
    predictor = Predictor(
        setup.model, size=size if args.size is not None else setup.size,
        # Before: a `.keras` file alone resized modality 2 by nearest, with no flag to say otherwise.
        modality2_interpolation=args.modality2_interpolation or setup.modality2_interpolation,
        precision=args.precision, input_modality=input_modality,
    )
    compare = compare_input = None
    if other is not None:
        _warn_of_an_assumed_modality(args.compare, other)
        warn_of_unknown_interpolation(other, args.modality2_interpolation, other.input_modality, compared=args.compare)
        resizing = args.modality2_interpolation if flag_for_compared and args.modality2_interpolation else None
        compare = Predictor(other.model, size=predictor.size,
                            modality2_interpolation=resizing or other.modality2_interpolation,
                            precision=args.precision, input_modality=other.input_modality)
        compare_input = other.input_modality
    samples = collect_samples(
        predictor.fusion, modalities=predictor.num_modalities, list_file=args.list, modality1=args.modality1, modality2=args.modality2,
        modality1_suffix=args.modality1_suffix, modality2_suffix=args.modality2_suffix,
        recursive=args.recursive, exclude=_picture_folders(args.output), num_classes=predictor.num_classes,
        fusion_method=predictor.fusion_method,
    )
    _check_inputs(args, predictor, samples, input_modality, "its config" if setup.size else None)
    if compare is not None:
        _check_compared_inputs(args, compare, samples, other.configured, compare_input)
    summary = predict_files(
        predictor, samples, args.output,
        palette=None if setup.dataset is None else setup.dataset.palette_array,
        original_size=args.original_size, attention=args.attention,
        input_modality=input_modality,
        alpha=args.alpha, batch_size=args.batch_size, progress=None if args.quiet else sys.stderr,
        compare=compare, compare_input_modality=compare_input or "modality1",
    )
    print(f"predicted {summary.samples} sample(s) in {summary.seconds:.1f} s ({predictor.precision}: "
          f"{predictor.precision_reason}); pictures in {args.output} {_picture_size(args, predictor, 'model')}")
    if summary.improvement:
        warning, line = comparison_lines(args.compare, summary.improvement, predictor.num_classes)
        if warning:
            print(warning, file=sys.stderr, flush=True)
        print(line)
    return 0


def comparison_lines(compared: str, counts: dict, num_classes: int) -> tuple[Optional[str], str]:
    """The warning (or None) and the line `--compare` ends with, from `predict_files`' counts."""
    warning = None
    if counts.get("beyond"):
        # Before: not a word, the pixels left out of the percentages (helper 294).
        warning = (f"warning: {counts['beyond']} labelled pixel(s) hold class ids >= {num_classes} (other than 255): "
                   "not scored, as evaluation counts them void; are the labels of this model's classes?")
    scored = counts["scored"]
    if not scored:  # before: "0.00%" for both models, as if both were right (helper 294)
        return warning, f"against {compared}: no labelled pixels to score (the labels hold void only)"
    return warning, (f"against {compared}: this model wrong on {100 * counts['errors'] / scored:.2f}% of the "
                     f"labelled pixels (red), the compared one on {100 * counts['reference_errors'] / scored:.2f}%; "
                     f"{100 * counts['improvements'] / scored:.2f}% fixed by this model (green)")


def _check_compared_inputs(args: argparse.Namespace, compare, samples, configured: bool, input_modality: str) -> None:
    """The images the `--compare` network reads must be given, as for the network predicted
    (helper 270: an SSMA of more modalities failed after the first batch with advice about the
    list that the predicted network refused; a depth expert was given the colour image).

    Raises:
        PredictionError: naming --compare, when the samples lack an image the compared network reads.
    """
    from ssma_tf.inference.predictor import PredictionError
    from ssma_tf.inference.samples import fusion_network

    if not samples:
        return
    first = samples[0]
    given = [index for index, path in enumerate(first.modalities, start=1) if path is not None]
    inputs = "the list's lines give" if args.list else "the flags give"
    if compare.fusion:
        if len(given) < compare.num_modalities:
            raise PredictionError(
                f"--compare {args.compare} is {fusion_network(compare.fusion_method)} over {compare.num_modalities} "
                f"modalities, but {inputs} {len(given)} image(s) per sample ({first.where()}): compare with a "
                f"network that reads at most {len(given)}")
        return
    wanted = int(input_modality.removeprefix("modality"))
    if wanted in given or not configured:  # without a config it reads modality 1, as said already
        return
    if args.list and len(given) == 1:
        print(f"warning: --compare {args.compare}: the network reads {input_modality} (its config); the "
              "list gives one image per line, and it reads that image as its input", file=sys.stderr)
        return
    raise PredictionError(
        f"--compare {args.compare} reads {input_modality} (its config), but {inputs} "
        f"{', '.join(f'modality{index}' for index in given)} ({first.where()}): give its images too")


def _warn_of_an_assumed_modality(path: str, setup: Any) -> None:
    """Says that a compared AdapNet++ without a config is given modality 1 (before: a depth expert
    as a `.keras` file was fed the RGB images without a word, and its map and share were wrong;
    helper 268). --compare has no flag to say otherwise: its training run's folder says it."""
    import warnings

    from ssma_tf.config import ConfigWarning
    from ssma_tf.models.factory import is_fusion

    if setup.configured or is_fusion(setup.model):
        return
    warnings.warn(f"--compare {path}: no config says which modality this AdapNet++ reads: it is given modality 1; "
                  "give its training run's folder if it was trained on another", ConfigWarning, stacklevel=2)


def _compared_model(path: str, setup_inference):
    """The `--compare` model's inference setup; an error names the flag and says what it takes
    (before: it read as one about the model predicted, with advice no flag follows: `model=`,
    `--backend openvino`)."""
    from ssma_tf.checkpoints.reading import UnnamedNetworkError
    from ssma_tf.config.runs import export_kind, exported_backend, is_run
    from ssma_tf.errors import UserInputError
    from ssma_tf.inference.predictor import PredictionError

    takes = "--compare takes a training run's folder, a .keras file or a TF1 checkpoint"
    not_model = not_a_model_file("--compare", path, f"{takes}; give the folder of the run a config belongs to")
    if not_model is not None:
        raise PredictionError(not_model)
    try:
        backend = exported_backend(path)
    except UserInputError:
        backend = None  # reading it as a model names the problem
    if backend is not None:
        raise PredictionError(f"--compare {path} is {export_kind(backend)} export, which holds no weights to compare "
                              f"in TensorFlow; {takes} (the one it was exported from)")
    try:
        return setup_inference(None, path, None, None, None)
    except UserInputError as error:
        reason = str(error)
        if isinstance(error, UnnamedNetworkError) and not is_run(path):
            reason = (f"{path} is a weights file, which does not say its network (no training run's config beside "
                      f"it); {takes}")
        elif not reason.startswith(path):
            reason = f"{path}: {reason}"
        raise PredictionError(f"--compare {reason}") from None


def _predict_exported(parser: argparse.ArgumentParser, args: argparse.Namespace, overrides) -> int:
    """`--backend openvino|tflite`: the export folder (RUN or --checkpoint) predicts the files."""
    if args.checkpoint is None or args.config is not None or overrides:
        parser.error(f"--backend {args.backend}: give the export folder (RUN or --checkpoint), without -c or --set")
    if args.size is not None or args.attention or args.precision != "auto":
        parser.error(f"--backend {args.backend}: --size, --attention and --precision are for the tensorflow "
                     "backend (an export has a fixed size and precision)")
    if args.compare is not None:  # before: ignored, no improvement map and no word
        parser.error(f"--backend {args.backend}: --compare is for the tensorflow backend; compare the runs (or "
                     "their checkpoints) the exports come from")
    given = [flag for flag, value in (("--model", args.model), ("--num_classes", args.num_classes)) if value]
    if given:  # before: ignored without a word
        parser.error(f"--backend {args.backend}: {' and '.join(given)} are for weights that do not say their "
                     "network; an export's metadata says it")

    import numpy as np

    from ssma_tf.files import check_output
    from ssma_tf.inference.backends import ExportedModelError, ExportedPredictor, load_exported
    from ssma_tf.inference.pictures import predict_files
    from ssma_tf.inference.samples import EXPORT_METADATA, collect_samples
    from ssma_tf.inference.settings import check_interpolation_flag, dataset_by_name

    check_output(args.output, what="--output", directory=True, overwrite=None)
    _say_if_not_empty(args.output)
    exported = load_exported(args.checkpoint, args.backend)
    predictor = ExportedPredictor(exported)
    samples = collect_samples(
        predictor.fusion, modalities=predictor.num_modalities, list_file=args.list, modality1=args.modality1,
        modality2=args.modality2,
        modality1_suffix=args.modality1_suffix, modality2_suffix=args.modality2_suffix,
        recursive=args.recursive, exclude=_picture_folders(args.output), num_classes=predictor.num_classes,
        fusion_method=predictor.fusion_method,
    )
    meta = exported.metadata
    held = predictor.modality2_interpolation
    reads = meta.get("input_modality") or "modality1"
    # As for a Keras model (before: taken by an export of a modality-1 AdapNet++; helper 229).
    check_interpolation_flag(args.modality2_interpolation, None, args.input_modality or reads,
                             modalities=predictor.num_modalities)
    if args.modality2_interpolation and (_methods(held, predictor, reads)
                                         != _methods(args.modality2_interpolation, predictor, reads)):
        # The export's resizing is that of the model it was made from.
        given = args.modality2_interpolation
        raise ExportedModelError(f"{args.checkpoint} resizes modality 2 and on by {_text(held)} (its metadata), but "
                                 f"--modality2_interpolation says {_text(given)}; leave the flag out, or export with "
                                 "it", args.checkpoint)
    if args.input_modality and meta.get("input_modality") and args.input_modality != meta["input_modality"]:
        # The export was made for one modality's images (before: fed another's without a word,
        # where ssma-evaluate refuses it).
        raise ExportedModelError(f"{args.checkpoint} is an expert of {meta['input_modality']} (its metadata), but "
                                 f"--input_modality says {args.input_modality}; leave the flag out, or export "
                                 f"with --input_modality {args.input_modality}", args.checkpoint)
    input_modality = args.input_modality or meta.get("input_modality") or "modality1"
    _check_inputs(args, predictor, samples, input_modality,
                  EXPORT_METADATA if meta.get("input_modality") else None)
    if args.dataset is not None:
        palette = dataset_by_name(args.dataset).palette_array
    else:
        palette = None if meta.get("palette") is None else np.asarray(meta["palette"], np.uint8)
    summary = predict_files(
        predictor, samples, args.output, palette=palette, original_size=args.original_size,
        input_modality=input_modality,
        alpha=args.alpha, batch_size=args.batch_size, progress=None if args.quiet else sys.stderr,
    )
    print(f"predicted {summary.samples} sample(s) in {summary.seconds:.1f} s ({predictor.precision}: "
          f"{predictor.precision_reason}); pictures in {args.output} {_picture_size(args, predictor, 'export')}")
    return 0


def _methods(interpolation, predictor, input_modality: str) -> tuple:
    """The method of each image an exported network reads, for comparing a flag with its metadata."""
    from ssma_tf.errors import UserInputError
    from ssma_tf.resampling import resize_methods

    try:
        return resize_methods(interpolation, predictor.num_modalities, input_modality)
    except ValueError as error:
        raise UserInputError(f"--modality2_interpolation {_text(interpolation)}: {error}") from None


def _text(interpolation) -> str:
    return interpolation if isinstance(interpolation, str) else ",".join(interpolation)


def _picture_size(args: argparse.Namespace, predictor, what: str) -> str:
    """The size the pictures have, said (an export made for another size than the images wrote
    its own size without a word)."""
    if args.original_size:
        return "(at each image's own size)"
    if predictor.size is None:
        return "(at each image's size, rounded to the network's stride)"
    height, width = predictor.size
    return f"(at {height}x{width}, the {what}'s size; --original_size for each image's own)"


def _say_if_not_empty(output: str) -> None:
    """A note when --output holds files already: pictures of the same names are replaced, the
    others stay beside the new ones (before: mixed in without a word)."""
    import os

    if not os.path.isdir(output):
        return
    count = sum(len(files) for _, _, files in os.walk(output))
    if count:
        print(f"note: --output {output} already holds {count} file(s): pictures of the same names are replaced, "
              "the others stay; give an empty folder to keep runs apart", file=sys.stderr, flush=True)


def _check_inputs(args: argparse.Namespace, predictor, samples, input_modality: str, source: Optional[str]) -> None:
    """An image given as a modality the network does not read is an error; a doubtful list a warning."""
    from ssma_tf.errors import UserInputError
    from ssma_tf.inference.samples import check_inputs

    if predictor.fusion and args.input_modality is not None:
        # As ssma-export says it (before: accepted here without a word, and nothing changed).
        raise UserInputError("--input_modality is for AdapNet++; SSMA reads every modality")

    warnings = check_inputs(samples, fusion=predictor.fusion, modalities=predictor.num_modalities,
                            input_modality=input_modality, listed=args.list is not None,
                            source="--input_modality" if args.input_modality else source,
                            num_classes=predictor.num_classes)
    for line in warnings:
        print(f"warning: {args.list}: {line}" if args.list else f"warning: {line}", file=sys.stderr)


def _picture_folders(output: str) -> list:
    """The folders this command writes its pictures to under `output`: never its inputs."""
    from ssma_tf.inference.pictures import PICTURE_FOLDERS

    return [os.path.join(output, folder) for folder in PICTURE_FOLDERS]


if __name__ == "__main__":
    sys.exit(main())
