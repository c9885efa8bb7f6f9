"""Chooses which training images to label, by depth: `ssma-select-labels -c CONFIG --budget N -o OUT`.

Farthest-point selection on features of the measured depth (`ssma_tf.semi_supervised.selection`; Hoyer et
al., CVPR 2021, Section 3.3) over the records of the config's `train_data`. Writes, for each
budget, `OUT/labeled_<N>.txt` (record indices, one a line: the config's `labeled_subset`) and
`OUT/scores.csv` (every pick in order with its distance and difficulty bias). The same flags and
seed give the same files. With `--depth-student-steps S`, from the second budget on, each
candidate's distance gets a bias from how badly a depth student (AdapNet++ regressing depth, see
`ssma-pretrain-depth`) trained S steps on the current selection predicts its depth.

Exit status: 0 done, 1 the depth student stopped (e.g. its loss became NaN, or a save failed), 2 bad
config or flags (a budget larger than the pool, records without depth).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import warnings
from typing import List, Optional

from ssma_tf.cli.common import (
    ArgumentParser, add_overrides, add_version, command, fail, finite_number, parse_overrides_or_exit,
    print_traceback_if_debug, require_tensorflow_backend, seed_number,
)


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags."""
    parser = ArgumentParser(prog="ssma-select-labels", description=__doc__.split("\n")[0])
    parser.add_argument("-c", "--config", required=True, help="a training config: its train_data is the pool")
    parser.add_argument("--budget", type=int, required=True, help="images to select")
    parser.add_argument("--budgets", type=int, nargs="*", default=[],
                        help="smaller budgets on the way (each gets its own list)")
    parser.add_argument("-o", "--output", required=True, help="folder for the lists and scores")
    parser.add_argument("--seed", type=seed_number, default=0, help="picks the first image")
    parser.add_argument("--depth-encoding", default=None,
                        help="how modality 2 colours depth (default: the config's "
                             "semi_supervised.depth_encoding, else jet_near_red)")
    parser.add_argument("--depth-student-steps", type=int, default=0,
                        help="train a depth student this many steps on the selection for the "
                             "difficulty bias (0: no bias)")
    parser.add_argument("--difficulty-weight", type=finite_number, default=None,
                        help="strength of the difficulty bias (default 1; read only with --depth-student-steps)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the lists and scores of an earlier selection in --output")
    add_overrides(parser)
    add_version(parser)
    return parser


@command
def main(argv: Optional[List[str]] = None) -> int:
    """Parses the flags, selects and writes the lists; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = parse_overrides_or_exit(parser, args.overrides)
    if args.depth_student_steps > 0:
        require_tensorflow_backend("ssma-select-labels --depth-student-steps")  # without, no model is built

    from ssma_tf.config import ConfigWarning, load_config
    from ssma_tf.config.semi_supervised import DEPTH_ENCODINGS

    from ssma_tf.config.reader import Required, refuse_pretraining

    # The config's labeled_subset is what this command writes: it need not exist yet. Nor need the
    # weights a training run starts from, which nothing here reads (before: a config whose ImageNet
    # checkpoint or stage-1 experts were not there yet was refused; helper 186); the depth student
    # starts from scratch. The keys the selection reads are required; a depth student trains with the
    # config's batch size and rate, --depth-student-steps steps, in a folder of its own (before:
    # max_iteration and checkpoint were required too, "train needs it", and never read; helper 227).
    # Nor the ImageNet backbone_weights (the student is random) or unlabeled_data: the selection and
    # its student read train_data only (before: "no file at" them, exit 2; helper 289).
    # Nor the run's own folders and files (checkpoint, log_dir, palette, importance_weights): a
    # config whose run folder was not makeable yet was refused (helper 343).
    unread = dict.fromkeys(("labeled_subset", "intialize", "checkpoint1", "checkpoint2", "checkpoints",
                            "finetune_from", "backbone_weights", "unlabeled_data", "checkpoint", "log_dir",
                            "palette", "importance_weights"))
    student = args.depth_student_steps > 0
    needed = Required(("model", "num_classes", "height", "width", "train_data")
                      + (("batch_size", "learning_rate") if student else ()),
                      "ssma-select-labels" + (" --depth-student-steps" if student else ""))
    with warnings.catch_warnings():
        if student:
            # The student reads modality 2, resized as this key says (`depth_config` below refuses
            # bilinear): before, the reader's "not used: this AdapNet_pp reads modality1 only" came
            # first (helper 289).
            warnings.filterwarnings("ignore", message=r".*modality2_interpolation \S+ is not used: this ",
                                    category=ConfigWarning)
        config = load_config(args.config, "train", overrides={**overrides, **unread}, required=needed,
                             given_as=overrides.given_as)
    # A depth-pretraining run's config.yaml (pretrain, select, train): its num_classes is the depth
    # network's output count, and the labels' classes were counted against it (helper 343).
    refuse_pretraining(config)
    encoding = args.depth_encoding or (
        config.semi_supervised.depth_encoding if config.semi_supervised else DEPTH_ENCODINGS[0])
    if encoding not in DEPTH_ENCODINGS:
        parser.error(f"--depth-encoding must be one of {', '.join(DEPTH_ENCODINGS)}, got {encoding!r}")
    for flag, values in (("--budget", [args.budget]), ("--budgets", args.budgets)):
        if any(value < 1 for value in values):  # before: "budgets must be increasing positive numbers"
            parser.error(f"{flag} must be >= 1, got {min(values)}")
    larger = [b for b in args.budgets if b > args.budget]
    if larger:
        parser.error(f"--budgets are the smaller budgets on the way to --budget {args.budget}, got {larger[0]}")
    budgets = sorted(set(args.budgets) | {args.budget})
    if args.depth_student_steps < 0:
        parser.error(f"--depth-student-steps must be >= 0, got {args.depth_student_steps}")
    if args.difficulty_weight is not None and args.depth_student_steps == 0:
        # Before: accepted and read by nothing (the same scores.csv as without it).
        print("warning: --difficulty-weight has no effect without --depth-student-steps: there is no depth "
              "student whose errors it weighs", file=sys.stderr)
    if args.difficulty_weight is None:
        args.difficulty_weight = 1.0
    if not args.difficulty_weight >= 0 or args.difficulty_weight == float("inf"):  # NaN fails >= 0
        parser.error(f"--difficulty-weight must be a finite number >= 0, got {args.difficulty_weight:g}")
    if args.difficulty_weight == 0 and args.depth_student_steps > 0:
        # Before: a student trained and measured at every budget, its errors weighed by 0 (the
        # released experiment trains 4k to 24k iterations a budget; helper 267).
        print("warning: --difficulty-weight 0 gives the depth student's errors no weight: no student is trained "
              "(leave out --depth-student-steps for the same selection)", file=sys.stderr)
        args.depth_student_steps = 0
    if args.depth_student_steps > 0:
        from ssma_tf.config import ConfigError
        from ssma_tf.errors import UserInputError
        from ssma_tf.semi_supervised.depth_pretraining import depth_config

        try:
            depth_config(config)  # the student's network, before the records are read
        except ConfigError as error:
            # One line, as the command's other errors (before: argparse's usage block first).
            raise UserInputError(f"--depth-student-steps trains a depth student from the config: {error}") from None

    import os

    from ssma_tf.data.unlabeled import write_index_file
    from ssma_tf.files import atomic_write, check_output
    from ssma_tf.semi_supervised.selection import (
        SelectionError,
        classes_covered,
        farthest_point_selection,
        pooled_depth_features,
        record_label_histograms,
        standardise,
    )

    check_output(args.output, what="--output", directory=True, overwrite=None)  # before the records are read
    # A list a training run reads as its labeled_subset, replaced without a word, changed the
    # run's labeled images under it (as `ssma-importance-weights` refuses to, for SAC's file).
    outputs = [f"labeled_{b}.txt" for b in budgets] + ["scores.csv"]
    for name in outputs:
        if os.path.isdir(os.path.join(args.output, name)):
            # Before: "pass --overwrite", which then failed with exit 1 after the whole selection,
            # the lists written before it replaced (helper 250).
            raise SelectionError(f"{os.path.join(args.output, name)} is a folder, where the selection writes its "
                                 f"{'scores' if name == 'scores.csv' else 'list'}: remove it, or give another --output")
    earlier = [name for name in outputs if os.path.lexists(os.path.join(args.output, name))]
    if earlier and not args.overwrite:
        raise SelectionError(f"{args.output} holds a selection already ({', '.join(earlier)}), which a training "
                             "config may read as its labeled_subset: pass --overwrite to replace it, or give another "
                             "--output")
    if args.depth_student_steps > 0 and len(budgets) == 1:
        print("warning: --depth-student-steps has no effect with one budget: the difficulty bias applies from the "
              "second budget on (give the smaller ones with --budgets)", file=sys.stderr)
    from ssma_tf.data.pipeline import list_record_files
    from ssma_tf.semi_supervised.mixing import check_depth_colouring

    check_depth_colouring(list_record_files(config.train_data), encoding, key="the depth-guided selection",
                          fix="give --depth-encoding (or the config's semi_supervised.depth_encoding)")
    features = pooled_depth_features(config.train_data, encoding)
    if budgets[-1] > len(features):
        raise SelectionError(
            f"--budget {budgets[-1]} is larger than the pool of {len(features)} images in "
            f"train_data ({', '.join(config.train_data)})")
    os.makedirs(args.output, exist_ok=True)
    # Lists of an earlier run into this folder (other budgets or seed) would sit beside this run's.
    stale = sorted(name for name in os.listdir(args.output) if name.startswith("labeled_") and name.endswith(".txt")
                   and name not in {f"labeled_{b}.txt" for b in budgets})
    if stale:
        print(f"warning: {args.output} also holds {', '.join(stale)} from an earlier run (other budgets or seed); "
              "they are not this selection's", file=sys.stderr)
    labels = record_label_histograms(config.train_data)
    labeled = bool(labels[:, 1:].any())  # images-only records (or labels all void): no count
    written = []

    def write_list(budget, chosen):
        # Each list as soon as its budget is reached (before: all at the end, so a run of hours with
        # depth students printed nothing and a failure lost the lists already decided; helper 227).
        path = os.path.join(args.output, f"labeled_{budget}.txt")
        write_index_file(path, chosen)
        written.append(os.path.basename(path))
        if labeled:
            covered = classes_covered(labels, chosen, num_classes=config.num_classes)
            print(f"budget {budget}: {path} ({len(covered)} classes present in the chosen labels)", flush=True)
        else:
            print(f"budget {budget}: {path} (the records hold no label: no class count)", flush=True)

    difficulty = None
    stopped: tuple = ()  # what a stopped depth student raises
    if args.depth_student_steps > 0:
        from ssma_tf.semi_supervised.depth_pretraining import depth_student_errors
        from ssma_tf.training import CheckpointWriteError, TrainingStopped

        stopped = (TrainingStopped,)

        def difficulty(selected):
            print(f"training a depth student on the {len(selected)} image(s) selected ({args.depth_student_steps} "
                  "steps), to bias the next picks", flush=True)
            return depth_student_errors(config, selected, args.depth_student_steps,
                                        seed=args.seed, encoding=encoding)
    if earlier:
        # Replaced as a whole before the first pick: a run stopped or failing midway left the earlier
        # run's lists of the budgets it had not reached, and its scores.csv, beside its own, and a
        # labeled_subset read a selection of two runs (helper 250).
        for name in earlier:
            os.remove(os.path.join(args.output, name))
        print(f"removed the earlier selection's {', '.join(earlier)} (--overwrite)", flush=True)
    try:
        selection = farthest_point_selection(standardise(features), budgets, seed=args.seed,
                                             difficulty=difficulty,
                                             difficulty_weight=args.difficulty_weight, on_budget=write_list)
    except stopped as error:
        # Before: a traceback, whose advice named labels and a checkpoint the student has not (helper 227).
        print_traceback_if_debug(error)
        reason = str(error).split(";")[0]
        kept = f"{', '.join(written)} written, no scores.csv" if written else "nothing was written"
        if isinstance(error, CheckpointWriteError):
            # Its saves go to a temporary folder, gone by now (helper 231: the advice was the rate's).
            reason = str(error).split(". ")[0]
            how = (f"the student saves into a temporary folder under {tempfile.gettempdir()}: free some space there, "
                   "or set TMPDIR to a folder on a disk with room")
        else:
            how = "lower the config's learning_rate (--set learning_rate=...) or change --depth-student-steps"
        return fail(f"the depth student stopped ({reason}); {kept}: {how}, and run again with --overwrite", 1)
    copies = [str(index) for index, distance in zip(selection.order, selection.distance) if distance == 0]
    if copies:
        # Before: picked without a word once the distinct images ran out; the released selection
        # stops there (helper 250).
        import numpy as np

        distinct = len(np.unique(np.asarray(features), axis=0))
        print(f"warning: record(s) {', '.join(copies)} of the selection have the same pooled depth as an image "
              f"picked before them (copies in train_data?): the pool holds {distinct} distinct images, and "
              "labelling a copy adds nothing", file=sys.stderr)
    scores = os.path.join(args.output, "scores.csv")
    with atomic_write(scores) as stream:
        stream.write("pick,record,distance,difficulty_bias\n")
        for rank, (index, distance, bias) in enumerate(
                zip(selection.order, selection.distance, selection.bias)):
            stream.write(f"{rank},{index},{distance:.6g},{bias:.6g}\n")
    print(f"scores: {scores}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
