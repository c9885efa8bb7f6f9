"""Turns raw depth, disparity or NIR into SSMA's 3-channel second modality, with list files.

Subcommands (see `ssma_tf.modalities` for the definitions):
  jet    depth/disparity -> jet colour map PNG (Cityscapes disparity, Synthia depth)
  gray   depth/disparity -> grey PNG scaled to 0..255 (ScanNet: --max 7000 on millimetres)
  fill   depth -> hole-filled depth, Ku et al. 2018 (16-bit PNG or .npy)
  hha    metric depth + camera intrinsics -> HHA PNG (Gupta et al. 2014)
  ndvi   NIR + RGB -> NDVI PNG (Freiburg Forest)
  evi    NIR + RGB -> EVI PNG (Freiburg Forest)

Inputs are files and folders (paired with RGB images and labels by name for the list file), or
one column of an existing list file (--from-list). The list file written with --list-file is the
input of `ssma-convert`: `modality1 modality2 label` per line, paths relative to
the list file. Output PNGs are RGB, as every viewer shows them; the TFRecord converter turns them
into BGR. Existing outputs are never replaced without --overwrite.

Exit status: 0 done, 2 a bad input file, list or option, an existing output or an output folder
found unwritable before the work (the message names it), 1 a write that fails during the work
(disk full, permission).

Examples:
  # ScanNet: fill the holes, scale millimetres 0..7000 to 0..255, list RGB + depth + label.
  ssma-prepare gray scannet/depth -o scannet/depth_gray --fill --units mm \\
      --max 7000 --modality1-dir scannet/color --label-dir scannet/label \\
      --list-file scannet/train.txt
  # Cityscapes disparity as jet (near = red), from a list of `rgb disparity label` rows;
  # the range is in stored values, (value - 1) / 256 pixels of disparity.
  ssma-prepare jet --from-list raw_train.txt --column 1 \\
      -o cityscapes/disparity_jet --max 32768 --list-file train.txt
"""

import argparse
import os
import pathlib
import sys
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ssma_tf.cli.common import (
    ArgumentParser, add_debug, add_version, command, finite_number, given_path, print_traceback_if_debug,
)
from ssma_tf.constants import JET_MISSING_BELOW
from ssma_tf.errors import UserInputError
from ssma_tf.files import check_output, sha256_of_file
from ssma_tf.modalities import batch, colorize, completion, hha, io, morphology, vegetation
from ssma_tf.progress import Progress

PROG = "ssma-prepare"

KERNELS = {
    "diamond5": morphology.DIAMOND_KERNEL_5,
    "diamond7": morphology.DIAMOND_KERNEL_7,
    "cross3": morphology.CROSS_KERNEL_3,
    "cross5": morphology.CROSS_KERNEL_5,
    "full3": morphology.FULL_KERNEL_3,
    "full5": morphology.FULL_KERNEL_5,
    "full7": morphology.FULL_KERNEL_7,
}


def build_parser() -> argparse.ArgumentParser:
    """Returns the parser with one sub-parser per conversion."""
    common = argparse.ArgumentParser(add_help=False)
    add_debug(common)  # after the sub-command too
    where = common.add_argument_group("inputs and outputs")
    where.add_argument("inputs", nargs="*", type=given_path,
                       help="raw input files and/or folders (not with --from-list)")
    where.add_argument("--from-list", type=given_path, metavar="LIST",
                       help="take the raw inputs from one column of this list file instead")
    where.add_argument("--column", type=int, default=None,
                       help="0-based column of the raw inputs in --from-list (default 1: modality2)")
    where.add_argument("-o", "--output-dir", type=given_path, required=True,
                       help="folder for the outputs (sub-folders of the inputs are kept)")
    where.add_argument("--output-suffix", default="",
                       help="added to each output name, e.g. _jet")
    where.add_argument("--recursive", action="store_true",
                       help="also take the files in sub-folders of input folders")
    where.add_argument("--input-suffix", default="",
                       help="suffix of raw input names to drop for pairing, e.g. _disparity")
    where.add_argument("--list-file", type=given_path, metavar="LIST",
                       help="write a list file for ssma-convert")
    where.add_argument("--modality1-dir", type=given_path,
                       help="folder of modality-1 (RGB) images, paired by name, for the list file")
    where.add_argument("--modality1-suffix", default="", help="suffix of modality-1 names to drop")
    where.add_argument("--label-dir", type=given_path,
                       help="folder of label images, paired by name, for the list file")
    where.add_argument("--label-suffix", default="", help="suffix of label names to drop")
    where.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    where.add_argument("--skip-existing", action="store_true",
                       help="keep existing outputs (resume a run); they still go into the list, "
                            "which is written again")
    where.add_argument("-q", "--quiet", action="store_true", help="no progress output")

    units = argparse.ArgumentParser(add_help=False)
    units.add_argument("--units", help="units of the depth values: m, cm, mm, or units per metre "
                                       "(256 for KITTI PNGs)")
    units.add_argument("--sunrgbd-depth", action="store_true",
                       help="undo SUN RGB-D's 3-bit rotation of its depth PNG values (gives "
                            "millimetres; implies --units mm)")

    fill_first = argparse.ArgumentParser(add_help=False)
    fill_first.add_argument("--fill", action="store_true",
                            help="fill depth holes first (Ku et al. defaults; needs --units)")
    fill_first.add_argument("--keep-valid", action="store_true",
                            help="with --fill: keep measured depth, fill only the holes")

    value_range = argparse.ArgumentParser(add_help=False)
    group = value_range.add_argument_group("range (in the file's units)")
    group.add_argument("--min", type=finite_number, dest="vmin",
                       help="value at the low end (default 0)")
    group.add_argument("--max", type=finite_number, dest="vmax",
                       help="value at the high end, the same for every image (e.g. 7000 mm)")
    group.add_argument("--percentiles", type=finite_number, nargs=2, metavar=("LOW", "HIGH"),
                       help="per-image range from these percentiles of the valid values instead")
    group.add_argument("--invert", action="store_true",
                       help="swap the ends (e.g. near depth at the high end, like disparity)")

    parser = ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_version(parser)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("jet", parents=[common, units, fill_first, value_range],
                            help="depth/disparity -> jet colour map")
    p.set_defaults(subparser=p)
    p.add_argument("--missing-color", type=int, nargs=3, default=(0, 0, 0), metavar=("R", "G", "B"),
                   help="colour of missing (0/NaN) pixels (default black)")

    p = commands.add_parser("gray", parents=[common, units, fill_first, value_range],
                            help="depth/disparity -> grey scaled to 0..255")
    p.set_defaults(subparser=p)
    p.add_argument("--missing-value", type=int, default=0, help="grey level of missing pixels")

    p = commands.add_parser("fill", parents=[common, units], help="depth -> hole-filled depth")
    p.set_defaults(subparser=p)
    p.add_argument("--max-depth", type=finite_number, default=completion.MAX_DEPTH,
                   help="inversion constant in metres (default 100, the paper's)")
    p.add_argument("--kernel", choices=sorted(KERNELS), default="diamond5",
                   help="kernel of the first dilation (default diamond5)")
    p.add_argument("--no-extend-top", action="store_true",
                   help="do not extend each column's top value to the top of the frame")
    p.add_argument("--no-large-hole-fill", action="store_true",
                   help="leave holes that the 7x7 fill does not reach empty")
    p.add_argument("--blur", choices=completion.BLUR_TYPES, default="gaussian",
                   help="smoothing after the median (default gaussian, as the paper)")
    p.add_argument("--keep-valid", action="store_true",
                   help="keep measured depth and fill only the holes (dense sensors); by default "
                        "every pixel is replaced, as in the paper")
    p.add_argument("--format", choices=("auto", "png", "npy"), default="auto",
                   help="output format: 16-bit PNG in the input's units, or float .npy "
                        "(auto: PNG for PNG inputs)")

    p = commands.add_parser("hha", parents=[common, units, fill_first],
                            help="metric depth + intrinsics -> HHA")
    p.set_defaults(subparser=p)
    camera = p.add_argument_group(
        "camera (exactly one of --preset, --intrinsics, --intrinsics-file, --intrinsics-relative)"
    )
    camera.add_argument("--preset", choices=sorted(hha.INTRINSICS_PRESETS),
                        help="published intrinsics, scaled if the depth maps were resized")
    camera.add_argument("--intrinsics", type=finite_number, nargs=4, metavar=("FX", "FY", "CX", "CY"),
                        help="intrinsics in pixels")
    camera.add_argument("--intrinsics-file", type=given_path,
                        help="3x3/3x4/4x4 camera matrix text file (ScanNet intrinsic_depth.txt, "
                             "SUN RGB-D intrinsics.txt)")
    camera.add_argument("--intrinsics-relative", metavar="RELPATH",
                        help="a camera matrix file per depth map, at this path relative to the "
                             "depth map's folder (SUN RGB-D: ../intrinsics.txt)")
    camera.add_argument("--intrinsics-size", type=int, nargs=2, metavar=("WIDTH", "HEIGHT"),
                        help="image size that --intrinsics/--intrinsics-file refer to; depth maps "
                             "of another size get scaled intrinsics")
    camera.add_argument("--one-based", action="store_true",
                        help="the principal point of --intrinsics or the intrinsics files counts pixels "
                             "from 1, as MATLAB code does (SUN RGB-D's intrinsics.txt): 1 is subtracted "
                             "(the presets need none)")

    for name, what in (("ndvi", "NDVI"), ("evi", "EVI")):
        p = commands.add_parser(name, parents=[common], help=f"NIR + RGB -> {what}")
        p.set_defaults(subparser=p)
        p.add_argument("--rgb-dir", type=given_path,
                       help="folder of the RGB images, paired with the NIR inputs by name")
        p.add_argument("--rgb-suffix", default="", help="suffix of RGB names to drop for pairing")
        p.add_argument("--rgb-column", type=int, default=None,
                       help="0-based column of the RGB images in --from-list (default 0)")
        # Before: any number, found out of range at the first colour file as its failure, and read
        # by nothing for grey ones (helper 279).
        p.add_argument("--nir-channel", type=int, choices=(0, 1, 2),
                       help="channel holding NIR if the NIR files are colour (default 0); the Freiburg Forest "
                            "camera (a Wratten 25A filter for the NIR-cut one) records NIR in green and blue and red "
                            "plus NIR in red: give 1 for its raw colour frames")
        p.add_argument("--max-value", type=finite_number,
                       help="stored value meaning reflectance 1 (default 255 for 8-bit files, "
                            "65535 for 16-bit)")
        p.add_argument("--range", type=finite_number, nargs=2, default=(-1.0, 1.0), metavar=("LOW", "HIGH"),
                       dest="value_range", help="index range mapped to 0..255 (default -1 1)")
        p.add_argument("--colormap", choices=("gray", "jet"), default="gray",
                       help="grey level in all three channels (default) or jet colours")
    return parser


# Flags that choose files or say how to run, not what an output holds.
_NOT_SETTINGS = ("column", "debug", "from_list", "input_suffix", "inputs", "label_dir", "label_suffix", "list_file",
                 "modality1_dir", "modality1_suffix", "output_dir", "output_suffix", "overwrite", "quiet",
                 "recursive", "skip_existing", "subparser", "rgb_column", "rgb_suffix", "rgb_dir")


def _settings(args: argparse.Namespace) -> Dict[str, str]:
    """The conversion and the options that decide what its outputs hold, as recorded with them:
    by meaning, not spelling (`--units mm` and `--units 1000` alike, a folder by its absolute path)."""
    values = {name: value for name, value in vars(args).items() if name not in _NOT_SETTINGS}
    if not values.get("one_based"):
        values.pop("one_based", None)  # recorded when given: folders prepared before it resume
    if values.get("units"):
        values["units"] = completion.units_per_metre(values["units"])
    if "nir_channel" in values and values["nir_channel"] is None:
        values["nir_channel"] = 0  # left out: the 0 it reads, as recorded when 0 was its default (folders resume)
    if values.get("intrinsics_file"):
        # By what it holds: the same camera from another working folder resumes, an edited file does
        # not (before: its path as typed; helper 140).
        try:
            values["intrinsics_file"] = "sha256 " + sha256_of_file(values["intrinsics_file"])
        except OSError:
            pass  # reading the camera names the file
    # A sequence as a tuple, whichever way it came: a tuple default and the list the command line
    # gives are one setting (before: "value_range (-1.0, 1.0) -> [-1.0, 1.0]"; helper 226).
    values = {name: tuple(value) if isinstance(value, list) else value for name, value in values.items()}
    return {name: str(value) for name, value in sorted(values.items())}


def _camera_file_beside(source: pathlib.Path, relative: str) -> pathlib.Path:
    """The camera file that --intrinsics-relative names for one depth map: relative to its folder."""
    return pathlib.Path(os.path.normpath(source.parent / relative))


def _settings_with_rgb(settings: Dict[str, str]) -> Callable[[batch.Job], Dict[str, str]]:
    """The settings of each NDVI/EVI job: the RGB image it reads red and blue from, by its absolute
    path (before: --rgb-dir alone, and a list pairing the NIR images with other RGB images, or
    another --rgb-suffix, resumed with --skip-existing kept the pictures of the first; helper 279)."""
    def of(job: batch.Job) -> Dict[str, str]:
        return {**settings, "rgb_image": os.path.abspath(job.companion)}
    return of


def _settings_per_job(args: argparse.Namespace, settings: Dict[str, str]) -> Callable[[batch.Job], Dict[str, str]]:
    """The settings of each job with --intrinsics-relative: its camera file by what it holds (before:
    as typed, and a file mended between two runs kept the old pictures; helper 226)."""
    digests: Dict[pathlib.Path, str] = {}

    def of(job: batch.Job) -> Dict[str, str]:
        path = _camera_file_beside(job.source, args.intrinsics_relative)
        if path not in digests:
            try:
                digests[path] = "sha256 " + sha256_of_file(path)
            except OSError:
                digests[path] = "unreadable"  # reading the camera names the file
        return {**settings, "intrinsics_relative": f"{args.intrinsics_relative} {digests[path]}"}
    return of


@command
def main(argv: Optional[Sequence[str]] = None) -> int:
    """Runs the command line; returns the exit status (0 success, 2 a bad input or output file,
    1 a failed write)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Usage errors are reported with the sub-command's usage line.
    _check_arguments(args.subparser, args)
    _warn_of_a_missing_colour_read_as_depth(args)
    try:
        warned = ImageWarnings()
        convert, output_extension = _converter(args, warned)
        jobs = _plan(args, output_extension)
        if (args.list_file is not None and args.from_list is not None and args.list_file.exists()
                and os.path.samefile(args.list_file, args.from_list)):
            # Before: replaced by the output list with --overwrite or --skip-existing, the raw column
            # lost (helper 200); ssma-convert refuses its record onto its list likewise.
            raise io.OutputExistsError(f"--list-file '{args.list_file}' is the --from-list it reads: the output list "
                                       "would replace it; give another --list-file")
        # A resumed run (--skip-existing) writes its list again, whole (before: refused, with advice
        # to pass --overwrite, which --skip-existing excludes; helper 140).
        # A folder is named as one below (helper 271: told to pass --overwrite, which then said so).
        if (args.list_file is not None and args.list_file.exists() and not args.list_file.is_dir()
                and not (args.overwrite or args.skip_existing)):
            raise io.OutputExistsError(
                f"list file '{args.list_file}' exists already (pass --overwrite to replace it, or "
                "--skip-existing to resume the run that wrote it)"
            )
        # A folder in the way is found before any file is converted, not when the list is written.
        check_output(args.output_dir, what="--output-dir", directory=True, overwrite=None)
        if args.list_file is not None:
            check_output(args.list_file, what="--list-file")
        settings = _settings(args)
        if args.command == "hha" and args.intrinsics_relative is not None:
            settings = _settings_per_job(args, settings)
        if args.command in ("ndvi", "evi"):
            settings = _settings_with_rgb(settings)
        todo = batch.check_outputs(jobs, overwrite=args.overwrite, skip_existing=args.skip_existing,
                                   output_dir=args.output_dir, settings=settings)
        if args.list_file is not None:
            batch.check_partner_sizes(jobs, what="depth map" if args.command in ("jet", "gray", "fill", "hha")
                                      else "NIR image")
        progress = None
        if not args.quiet:
            kept = len({job.output for job in jobs}) - len(todo)  # a line repeated whole is one job
            print(f"{PROG}: {args.command}: {len(todo)} file(s) to write under '{args.output_dir}'"
                  + (f", {kept} existing kept" if kept else ""), file=sys.stderr)
            # A log line every 2 s (and a bar between them on a terminal): long runs are often logged.
            progress = Progress(len(todo), prefix=f"{PROG}: ", log_every=2.0)
        written = []

        def counted(job: batch.Job) -> None:
            convert(job)
            written.append(job)

        def resumable() -> bool:
            """Whether the same run with --skip-existing would keep what is there and go on."""
            try:
                batch.check_outputs(jobs, overwrite=False, skip_existing=True, output_dir=args.output_dir,
                                    settings=settings)
            except (UserInputError, OSError):
                return False
            return True

        try:
            batch.run_jobs(todo, counted, progress=progress, output_dir=args.output_dir, settings=settings)
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM under `command`: it prints the last line
            if progress is not None:
                progress.clear()
            stopped = _stopped_line(args, len(written), len(todo), resumable)
            print(f"{PROG}: {stopped}", file=sys.stderr, flush=True)
            raise
        except (UserInputError, OSError) as exc:
            if not written:
                raise
            # The outputs written before the bad input stay: the rerun they need (before: refused
            # as outputs of another run, "pass --overwrite ... or --skip-existing"; helper 205).
            if progress is not None:
                progress.clear()
            print_traceback_if_debug(exc)
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            stopped = _stopped_line(args, len(written), len(todo), resumable)
            print(f"{PROG}: {stopped}", file=sys.stderr, flush=True)
            return 2 if isinstance(exc, UserInputError) else 1
        warned.summary(len(todo))
        if args.list_file is not None:
            batch.write_list_file(args.list_file, [job.row for job in jobs],
                                  overwrite=args.overwrite or args.skip_existing)
            if not args.quiet:
                print(f"{PROG}: wrote '{args.list_file}' ({len(jobs)} samples)", file=sys.stderr)
    except UserInputError as exc:  # bad input (files, values); any other ValueError is a bug
        print_traceback_if_debug(exc)
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the disk, a permission
        print_traceback_if_debug(exc)
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _stopped_line(args: argparse.Namespace, written: int, total: int,
                  resumable: Callable[[], bool] = lambda: True) -> str:
    """What a stopped run has done and how to go on (before: "terminated" alone; helper 183).

    `resumable`: whether a run with --skip-existing would go on, asked of a stopped --overwrite
    run (before: advised whatever remained, and refused when the outputs not yet rewritten were
    made with other settings or from other inputs; helper 279)."""
    listed = "; the list file is written at the end" if args.list_file is not None else ""
    if not written:
        return f"stopped before its first file{listed}; run the same command to start again"
    if args.overwrite and not resumable():
        return (f"stopped after {written} of {total} file(s), which are kept{listed}; run the same command again to "
                "write them all: --skip-existing would refuse the outputs left from an earlier run with other "
                "settings or inputs")
    how = ("the same command" if args.skip_existing
           else "the same command with --skip-existing in place of --overwrite" if args.overwrite
           else "the same command with --skip-existing")
    return f"stopped after {written} of {total} file(s), which are kept{listed}; run {how} to write the rest"


def _warn_of_a_missing_colour_read_as_depth(args: argparse.Namespace) -> None:
    """Says that a missing colour other than black is read as measured depth where depth is
    decoded from the images (before: without a word, DepthMix pasted the holes as the nearest or
    farthest surface; helper 265)."""
    if args.command == "jet" and max(args.missing_color) >= JET_MISSING_BELOW:
        given = f"--missing-color {' '.join(map(str, args.missing_color))}"
        black = f"a brightest channel below {JET_MISSING_BELOW}"
    elif args.command == "gray" and args.missing_value != 0:
        given, black = f"--missing-value {args.missing_value}", "grey 0"
    else:
        return
    print(f"warning: {given}: DepthMix (semi_supervised), ssma-pretrain-depth and ssma-select-labels read only black "
          f"({black}) as missing depth, and would take these pixels for measured depth; keep the default for images "
          "they read", file=sys.stderr, flush=True)


def _check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if bool(args.inputs) == (args.from_list is not None):
        parser.error("give either input files/folders or --from-list LIST")
    if args.overwrite and args.skip_existing:
        parser.error("--overwrite and --skip-existing exclude each other")
    if args.from_list is None and args.list_file is not None and args.label_dir is None:
        parser.error("--list-file needs --label-dir (and --modality1-dir for a fusion list), "
                     "or --from-list")
    if args.from_list is not None and (args.modality1_dir or args.label_dir):
        parser.error("--modality1-dir/--label-dir pair folder inputs; with --from-list the list's "
                     "other columns are kept")
    if args.from_list is not None:
        # Before: taken and read by nothing; an --input-suffix kept in the output names gave
        # other names than the folder run (helper 263).
        given = [flag for flag, value in (("--recursive", args.recursive), ("--input-suffix", args.input_suffix),
                                          ("--modality1-suffix", args.modality1_suffix),
                                          ("--label-suffix", args.label_suffix)) if value]
        if given:
            parser.error(f"{'/'.join(given)} pair{'s' if len(given) == 1 else ''} folder inputs; with --from-list the "
                         "list's paths are taken as they are, each output named after its input file")
    if args.from_list is None:
        # Before: accepted and read by nothing, the folder's files taken whatever column was named.
        columns = (("--column", args.column), ("--rgb-column", getattr(args, "rgb_column", None)))
        given = [flag for flag, value in columns if value is not None]
        if given:
            parser.error(f"{'/'.join(given)} pick{'s' if len(given) == 1 else ''} a column of --from-list; folder "
                         "inputs are paired by file name (--rgb-dir, --rgb-suffix): drop it or give --from-list LIST")
    else:
        args.column = 1 if args.column is None else args.column
        if hasattr(args, "rgb_column"):
            args.rgb_column = 0 if args.rgb_column is None else args.rgb_column
    if args.from_list is None and args.list_file is None and (args.modality1_dir or args.label_dir):
        # Before: accepted and read by nothing, the outputs written and no list (helper 279).
        given = "/".join(flag for flag, value in (("--modality1-dir", args.modality1_dir),
                                                  ("--label-dir", args.label_dir)) if value)
        parser.error(f"{given} pair{'s' if '/' not in given else ''} files for the list file, and no --list-file is "
                     "given: add --list-file LIST (or drop them)")
    if args.modality1_dir is not None and args.label_dir is None:
        parser.error("--modality1-dir needs --label-dir: list rows end with the label")
    if getattr(args, "keep_valid", False) and args.command != "fill" and not args.fill:
        parser.error("--keep-valid goes with --fill")
    if getattr(args, "sunrgbd_depth", False):
        if args.units and completion.units_per_metre(args.units) != 1000.0:
            parser.error("--sunrgbd-depth gives millimetres; drop --units or use --units mm")
        args.units = "mm"
    needs_units = args.command in ("fill", "hha") or getattr(args, "fill", False)
    if needs_units and not args.units:
        parser.error(f"{args.command}{' --fill' if getattr(args, 'fill', False) else ''} needs "
                     "--units (m, cm, mm or units per metre): depth is converted to metres")
    if getattr(args, "units", None):
        try:
            completion.units_per_metre(args.units)
        except ValueError as exc:
            parser.error(str(exc))
    if args.command in ("jet", "gray") and args.vmax is None and args.percentiles is None:
        parser.error("give the range: --max (fixed, e.g. 7000 for millimetres) or --percentiles")
    if args.command in ("jet", "gray") and args.percentiles is not None and (args.vmax, args.vmin) != (None, None):
        # Before: the per-image range was used and --max (or --min) dropped without a word.
        given = " and ".join(flag for flag, value in (("--min", args.vmin), ("--max", args.vmax)) if value is not None)
        parser.error(f"give either a fixed range (--min/--max) or --percentiles, not both ({given} with --percentiles)")
    if args.command in ("jet", "gray") and args.vmin is None:
        args.vmin = 0.0
    if args.command in ("jet", "gray") and args.percentiles is None and not args.vmin < args.vmax:
        parser.error(f"--min must be below --max, got --min {args.vmin:g} --max {args.vmax:g}")
    if getattr(args, "percentiles", None) is not None and not 0 <= args.percentiles[0] < args.percentiles[1] <= 100:
        low, high = args.percentiles
        parser.error(f"--percentiles must satisfy 0 <= LOW < HIGH <= 100, got {low:g} {high:g}")
    if args.command == "hha":
        given = [args.preset, args.intrinsics, args.intrinsics_file, args.intrinsics_relative]
        if sum(g is not None for g in given) != 1:
            parser.error("hha needs exactly one of --preset, --intrinsics, --intrinsics-file, "
                         "--intrinsics-relative")
        if args.one_based and args.preset is not None:
            parser.error("--one-based is for --intrinsics and the intrinsics files; the presets count pixels "
                         "from 0 already")
        if args.intrinsics_size is not None and args.preset is not None:
            parser.error("--intrinsics-size is for --intrinsics and the intrinsics files; presets "
                         "know their image size")
        # Before: 0 divided by zero at the first depth map, and a negative size was blamed on the
        # first depth file (or its intrinsics file) as a failure of that file.
        if args.intrinsics_size is not None and min(args.intrinsics_size) <= 0:
            width, height = args.intrinsics_size
            parser.error(f"--intrinsics-size must be a positive WIDTH HEIGHT in pixels, got {width} {height}")
    if args.command == "fill" and not args.max_depth > completion.FILLED_THRESHOLD_M:
        # Before: refused by the completion at every image, as a failure of the first input file.
        parser.error(f"--max-depth must be a number of metres above {completion.FILLED_THRESHOLD_M:g}, "
                     f"got {args.max_depth:g}")
    if args.command in ("ndvi", "evi") and args.from_list is None and args.rgb_dir is None:
        parser.error(f"{args.command} needs --rgb-dir (red and blue come from the RGB images)")
    if args.command in ("ndvi", "evi") and args.from_list is not None:
        # Before: --rgb-dir was ignored, and --column equal to --rgb-column read red from the NIR
        # file itself: an index of 0, a flat picture, without a word.
        if args.rgb_dir is not None or args.rgb_suffix:
            parser.error("--rgb-dir/--rgb-suffix pair folder inputs; with --from-list the RGB images are the list's "
                         "--rgb-column (default 0)")
        if args.column == args.rgb_column:
            parser.error(f"--column {args.column} is also --rgb-column: give the column of the NIR images as --column "
                         "and that of the RGB images as --rgb-column")
    # Values the conversion would refuse at its first image, as a failure of that file (before).
    if args.command == "jet" and not all(0 <= c <= 255 for c in args.missing_color):
        parser.error(f"--missing-color must be three values in 0..255, got {' '.join(map(str, args.missing_color))}")
    if args.command == "gray" and not 0 <= args.missing_value <= 255:
        parser.error(f"--missing-value must be in 0..255, got {args.missing_value}")
    if args.command in ("ndvi", "evi"):
        if args.max_value is not None and not args.max_value > 0:
            parser.error(f"--max-value must be positive, got {args.max_value:g}")
        low, high = args.value_range
        if not low < high:
            parser.error(f"--range must satisfy LOW < HIGH, got {low:g} {high:g}")
    if args.command in ("jet", "gray") and not args.fill and args.units and not args.sunrgbd_depth:
        # Before: accepted and read by nothing (the range is in the file's units).
        parser.error("--units is for --fill here (the range --min/--max is in the file's units); drop it or add "
                     "--fill")


def _plan(args: argparse.Namespace, output_extension: Callable[[pathlib.Path], str]) -> List[batch.Job]:
    vegetation_index = args.command in ("ndvi", "evi")
    if args.from_list is not None:
        return batch.plan_list_jobs(
            args.from_list,
            args.output_dir,
            column=args.column,
            output_extension=output_extension,
            output_suffix=args.output_suffix,
            companion_column=args.rgb_column if vegetation_index else None,
            warn=lambda text: print(f"warning: {text}", file=sys.stderr, flush=True),
        )
    return batch.plan_folder_jobs(
        args.inputs,
        args.output_dir,
        extensions=io.IMAGE_EXTENSIONS if vegetation_index else io.DEPTH_EXTENSIONS,
        output_extension=output_extension,
        recursive=args.recursive,
        input_suffix=args.input_suffix,
        output_suffix=args.output_suffix,
        companion_dir=args.rgb_dir if vegetation_index else None,
        companion_suffix=args.rgb_suffix if vegetation_index else "",
        companion_extensions=io.IMAGE_EXTENSIONS,
        modality1_dir=args.modality1_dir,
        modality1_suffix=args.modality1_suffix,
        label_dir=args.label_dir,
        label_suffix=args.label_suffix,
        image_extensions=io.IMAGE_EXTENSIONS,
    )


# Median depths (metres) that depth cameras and stereo give; far outside, the units are wrong.
PLAUSIBLE_METRES = (0.1, 200.0)


class ImageWarnings:
    """Warnings about single images over a whole run: the first `NAMED` are printed as they come,
    the rest counted in one line at the end (`summary`), so that every image is checked without
    a folder of thousands of suspicious frames printing thousands of lines."""

    NAMED = 3

    def __init__(self) -> None:
        # Images, not warnings, are counted (before: two warnings of one image counted twice, "10 of
        # 5 images were warned of", and the third named image's second warning left out; helper 279).
        self.images: Dict[pathlib.Path, int] = {}  # each image warned of: its place in the order of warnings

    def image(self, source: pathlib.Path, text: str) -> None:
        self.images.setdefault(source, len(self.images))
        if self.images[source] < self.NAMED:
            print(f"warning: {source}: {text}", file=sys.stderr, flush=True)

    def summary(self, total: int) -> None:
        if len(self.images) > self.NAMED:
            print(f"warning: {len(self.images)} of {total} images were warned of (the first {self.NAMED} above)",
                  file=sys.stderr, flush=True)


def _converter(args: argparse.Namespace, warned: ImageWarnings
               ) -> Tuple[Callable[[batch.Job], None], Callable[[pathlib.Path], str]]:
    """Returns (convert one job, output extension for a source) for the chosen command; what the
    conversion finds suspicious about an image goes to `warned`."""
    # With --skip-existing, the outputs left to write are those missing and those a stopped run
    # was writing (`batch.check_outputs`): the latter are replaced.
    overwrite = args.overwrite or args.skip_existing

    def read(path: pathlib.Path):
        depth = io.read_depth(path)
        if getattr(args, "sunrgbd_depth", False):
            depth = io.sunrgbd_depth_to_mm(depth)
        if getattr(args, "fill", False):
            depth = fill(depth, path, units=args.units, keep_valid=args.keep_valid)
        return depth

    def median_metres(depth) -> Optional[float]:
        """The median of an image's valid depth in metres, by `--units` (None: no valid pixel)."""
        valid = depth[np.isfinite(depth) & (depth > 0)]
        return float(np.median(valid)) / completion.units_per_metre(args.units) if valid.size else None

    def fill(depth, source: pathlib.Path, **options):
        """`completion.fill_depth(depth, **options)`, checked against the units before and after:
        the completion treats depth beyond its inversion depth (100 m) as missing, so millimetres
        given `--units m` came out all black, without a word, from every --fill (helper 129; the
        checks after it saw no valid pixel and said nothing)."""
        median = median_metres(depth)
        max_depth = options.get("max_depth", completion.MAX_DEPTH)
        filled = completion.fill_depth(depth, **options)
        if median is not None and median >= max_depth - 0.1:
            warned.image(source, f"its median depth is {median:g} m with --units {args.units}, at or beyond "
                         f"the {max_depth:g} m the depth completion keeps: the filled image comes out (nearly) "
                         "empty; are --units the file's units?")
        elif median is not None and not np.any(np.isfinite(filled) & (filled > 0)):
            warned.image(source, "the depth completion left no depth in it (it had some): the output is empty; are "
                         "--units the file's units?")
        return filled

    def check_range(depth, job: batch.Job) -> None:
        """On every image: a fixed range far beyond its values colours it nearly uniformly (an
        8-bit NIR or RGB column taken for millimetres of depth, a few frames in metres among
        millimetre ones, where a check of the first image alone saw nothing)."""
        negative = np.isfinite(depth) & (depth < 0)
        if negative.any() and (args.percentiles is not None or args.vmin >= 0):
            warned.image(job.source, f"{100 * float(np.mean(negative)):.1f} % of its values are below 0: coloured as "
                         "missing, as 0 is (a stereo matcher's invalid marks); give --min below 0 to colour a signed "
                         "quantity")
        if args.percentiles is not None:
            return
        valid = depth[np.isfinite(depth) & (depth > 0)]
        if valid.size and float(valid.max()) < args.vmin + 0.05 * (args.vmax - args.vmin):
            warned.image(job.source, f"its values reach {float(valid.max()):g}, under 5 % of the range --min "
                         f"{args.vmin:g} --max {args.vmax:g}: the picture is nearly one colour; is it the depth column, "
                         "and are --units and --max in the file's units?")
            return
        clipped = float(np.mean((valid >= args.vmax) | (valid <= args.vmin))) if valid.size else 0.0
        if clipped > 0.5:
            # `--max 7` for metres in a file of millimetres: every pixel at the end of the scale.
            warned.image(job.source, f"{100 * clipped:.0f} % of its values lie outside --min {args.vmin:g} --max "
                         f"{args.vmax:g} (their median is {float(np.median(valid)):g}): the picture is nearly one "
                         "colour; are --min and --max in the file's units?")

    def check_metres(depth, job: batch.Job) -> None:
        """HHA reads depth in metres: a median far outside what cameras see (millimetres given
        `--units m` gives thousands of metres, a flat disparity channel and a saturated height)."""
        median = median_metres(depth)
        if median is not None and not PLAUSIBLE_METRES[0] <= median <= PLAUSIBLE_METRES[1]:
            warned.image(job.source, f"its median depth is {median:g} m with --units {args.units} (depth cameras "
                         f"see {PLAUSIBLE_METRES[0]:g} to {PLAUSIBLE_METRES[1]:g} m): the HHA channels come out flat or "
                         "saturated; are --units the file's units?")

    if args.command == "jet":
        def convert(job: batch.Job) -> None:
            depth = read(job.source)
            check_range(depth, job)
            image = colorize.jet(depth, vmin=args.vmin, vmax=args.vmax,
                            percentiles=args.percentiles, invert=args.invert,
                            missing_color=args.missing_color)
            io.write_png(job.output, image, overwrite=overwrite)
        return convert, batch.default_output_extension

    if args.command == "gray":
        def convert(job: batch.Job) -> None:
            depth = read(job.source)
            check_range(depth, job)
            image = colorize.gray(depth, vmin=args.vmin, vmax=args.vmax,
                             percentiles=args.percentiles, invert=args.invert,
                             missing_value=args.missing_value)
            io.write_png(job.output, image, overwrite=overwrite)
        return convert, batch.default_output_extension

    if args.command == "fill":
        options = dict(
            units=args.units,
            max_depth=args.max_depth,
            dilation_kernel=KERNELS[args.kernel],
            extend_to_top=not args.no_extend_top,
            large_hole_fill_kernel=None if args.no_large_hole_fill else morphology.FULL_KERNEL_31,
            blur=args.blur,
            keep_valid=args.keep_valid,
        )

        def convert(job: batch.Job) -> None:
            filled = fill(read(job.source), job.source, **options)
            io.write_depth(job.output, filled, overwrite=overwrite,
                           units_per_metre=completion.units_per_metre(args.units))
        return convert, lambda source: batch.depth_output_extension(source, args.format)

    if args.command == "hha":
        intrinsics_for_size = _intrinsics_resolver(args)

        def convert(job: batch.Job) -> None:
            depth = read(job.source)
            check_metres(depth, job)
            intrinsics = intrinsics_for_size(job.source, depth.shape[1], depth.shape[0])
            io.write_png(job.output, hha.encode_hha(depth, intrinsics, units=args.units), overwrite=overwrite)
        return convert, batch.default_output_extension

    if args.command not in ("ndvi", "evi"):
        raise NotImplementedError(f"{args.command}: a subcommand without a converter here")
    index_function = vegetation.ndvi if args.command == "ndvi" else vegetation.evi

    channel_checked = []  # whether the first NIR image was looked at for --nir-channel

    def convert(job: batch.Job) -> None:
        if args.nir_channel is not None and not channel_checked:
            channel_checked.append(True)
            if io.read_image(job.source, "NIR").ndim == 2:
                # Read as it is: the index is right, but the flag says the files were taken for colour.
                print(f"warning: --nir-channel {args.nir_channel} is for colour NIR files, and '{job.source}' is "
                      "single-channel: its one channel is read as NIR", file=sys.stderr, flush=True)
        nir, red, blue = io.read_nir_rgb(job.source, job.companion, nir_channel=args.nir_channel or 0,
                                         max_value=args.max_value)
        index = index_function(nir, red) if args.command == "ndvi" else index_function(nir, red, blue)
        image = vegetation.index_image(index, tuple(args.value_range), args.colormap)
        io.write_png(job.output, image, overwrite=overwrite)
    return convert, batch.default_output_extension


def _intrinsics_resolver(args: argparse.Namespace) -> Callable[[pathlib.Path, int, int], hha.Intrinsics]:
    """Returns a function giving the intrinsics for a depth file of a given width and height."""
    size = tuple(args.intrinsics_size) if args.intrinsics_size else None
    if args.intrinsics_relative is not None:
        per_file: Dict[pathlib.Path, hha.Intrinsics] = {}

        def from_file_beside(source: pathlib.Path, width: int, height: int) -> hha.Intrinsics:
            path = _camera_file_beside(source, args.intrinsics_relative)
            if path not in per_file:
                per_file[path] = hha.read_intrinsics_file(path, size, one_based=args.one_based)
            intrinsics = per_file[path]
            if intrinsics.width is None:
                _warn_of_a_centre_outside(intrinsics, width, height, f"the intrinsics of {path}", checked)
                return intrinsics
            if (path, width, height) not in scaled:
                scaled[path, width, height] = intrinsics.scaled_to(width, height)
                _warn_of_another_aspect(intrinsics, width, height, f"the intrinsics of {path}")
            return scaled[path, width, height]
        scaled: Dict[Tuple[pathlib.Path, int, int], hha.Intrinsics] = {}
        checked: set = set()
        return from_file_beside

    if args.preset is not None:
        base = hha.INTRINSICS_PRESETS[args.preset]
    elif args.intrinsics is not None:
        base = hha.Intrinsics(*args.intrinsics, *(size or (None, None)))
        base = base.from_one_based() if args.one_based else base
    else:
        base = hha.read_intrinsics_file(args.intrinsics_file, size, one_based=args.one_based)
    cache: Dict[Tuple[int, int], hha.Intrinsics] = {}
    checked: set = set()

    def resolve(source: pathlib.Path, width: int, height: int) -> hha.Intrinsics:
        if base.width is None:
            _warn_of_a_centre_outside(base, width, height, "the intrinsics", checked)
            return base
        if (width, height) not in cache:
            cache[width, height] = base.scaled_to(width, height)
            if (width, height) != (base.width, base.height) and not args.quiet:
                print(f"{PROG}: intrinsics for {base.width}x{base.height} scaled to "
                      f"{width}x{height} (width x height)", file=sys.stderr)
            _warn_of_another_aspect(base, width, height, "the intrinsics")
        return cache[width, height]
    return resolve


def _warn_of_a_centre_outside(intrinsics: hha.Intrinsics, width: int, height: int, what: str, checked: set) -> None:
    """Warns (once per depth size) when intrinsics of no stated image size put the principal point
    far from the middle of depth maps of `width` x `height` (outside the central fifth each way,
    where the cameras of the datasets put it): they are for other images (ScanNet's 640x480
    matrix for depth resized to 96x64, or to 320x240, where the point sits on the last pixel,
    gave wrong HHA without a word; only a point outside the image was warned of before)."""
    if (width, height) in checked:
        return
    checked.add((width, height))
    if (0.4 <= (intrinsics.cx + 0.5) / width <= 0.6) and (0.4 <= (intrinsics.cy + 0.5) / height <= 0.6):
        return
    print(f"warning: {what} put the principal point at column {intrinsics.cx:g}, row {intrinsics.cy:g}, far from the "
          f"middle of the depth of {width} columns by {height} rows: are they for larger images? Give that image's "
          "size with --intrinsics-size WIDTH HEIGHT and they are scaled to the depth (for a crop, the crop's own "
          "intrinsics are right as given)", file=sys.stderr)


def _warn_of_another_aspect(intrinsics: hha.Intrinsics, width: int, height: int, what: str) -> None:
    """Warns when depth maps of `width` x `height` have another aspect ratio than the image the
    intrinsics are for: scaling is right for a resized map and wrong for a cropped one."""
    sx, sy = width / intrinsics.width, height / intrinsics.height
    if abs(sx / sy - 1.0) > 0.01:
        print(f"warning: {what} are for {intrinsics.width}x{intrinsics.height} images and the depth is "
              f"{width}x{height} (width x height), another aspect ratio: scaled by {sx:.3g} across and {sy:.3g} "
              "down, which is "
              "right if the depth was resized, and wrong if it was cropped (then give the crop's "
              "--intrinsics FX FY CX CY)", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
