"""Prunes a trained AdapNet++ or SSMA in stages: `ssma-prune -c TRAIN_CONFIG --test-data RECORDS -o OUTDIR`.

The shortcut-invariant pruning of the paper (Section 3.5, docs/pruning.md): each stage ranks the
feature maps of its scopes on the training records (`--method taylor`, `l1`, or `oracle`: Taylor
without pruning the units' last convolutions), removes the lowest-ranked channels until the given
share of the network's weights is gone, fine-tunes the
smaller network with the config's training protocol and evaluates it on `--test-data`.
`--method none` is the control: the same stages' fine-tuning on the unpruned network, which
separates what pruning costs from what the extra training gives. Writes
OUTDIR/stage<k>.keras, OUTDIR/report.json and OUTDIR/pruning.png, and prints a table of
parameters, GFLOPs, mIoU and latency per stage (with `--with OTHER_OUTDIR ...`, other methods'
runs too). An interrupted run resumes at its stage when started again with the same flags.
The work is done by `ssma_tf.pruning.staged`.

Exit status: 0 done, 1 a stage's fine-tuning stopped (a NaN or diverging loss, a failed save; a rerun resumes),
2 bad config, checkpoint, stage list or records.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import warnings
from typing import List, Optional

from ssma_tf.cli.common import (
    ArgumentParser, add_overrides, add_version, fail, finite_number, model_file_or_exit, parse_overrides_or_exit,
    tensorflow_command,
)

DEFAULT_STAGES = ("block4:0.1", "block1-4:0.1", "all:0.1")
# What a `--with` run must share with this one for the table to compare methods at one budget.
COMPARED_SETTINGS = ("stages", "finetune_steps", "finetune_learning_rate", "rank_batches", "test_data",
                     "config_sha256", "channel_multiple", "test_data_sha256", "train_data_sha256")
# Config keys whose files ssma-prune never reads (`RunConfig.without_starting_weights`); the last
# is the other spelling of the first.
STARTING_WEIGHTS = ("initialize", "checkpoint1", "checkpoint2", "checkpoints", "finetune_from", "intialize")
# How the plot's legend (and the `--with` warning, for a digest) names a setting that differs.
_SHOWN = {"config_sha256": "config", "finetune_learning_rate": "finetune_lr", "test_data_sha256": "test records",
          "train_data_sha256": "training records"}


def _difference(theirs: dict, ours: dict, key: str) -> str:
    """How a `--with` report's setting differs from this run's: the value as typed (the stages as
    given, not as the tuples they are compared by), a digest's by what it stands for (before:
    "config_sha256 '0912f15134573bf3', here 'f7ad0557a5938ff2'")."""
    from ssma_tf.pruning import staged

    if key == "config_sha256":  # the keys, as the resume's refusal names them
        return "; ".join(staged.config_changes(theirs, ours, between=", here "))
    if key.endswith("_sha256"):
        return f"the {_SHOWN[key]} differ"
    if key == "stages":
        return f"stages {' '.join(map(str, theirs.get(key) or []))}, here {' '.join(map(str, ours.get(key) or []))}"
    return f"{key} {staged.setting_as_run(theirs, key)!r}, here {staged.setting_as_run(ours, key)!r}"


def build_parser() -> argparse.ArgumentParser:
    """The command-line flags."""
    parser = ArgumentParser(prog="ssma-prune", description=__doc__.splitlines()[0])
    parser.add_argument("-c", "--config", required=True, help="the training config of the model to prune (YAML)")
    parser.add_argument("--method", choices=("taylor", "l1", "oracle", "none"), default="taylor",
                        help="ranking: Taylor with shortcut masking (default), the l1 norm of the filters, or the "
                        "Taylor 'oracle' that leaves each unit's last convolution alone; 'none' prunes nothing "
                        "and fine-tunes alike (the control)")
    parser.add_argument("--stages", nargs="+", default=list(DEFAULT_STAGES), metavar="SCOPE:FRACTION",
                        help="one per stage: scopes (stem, block1..block4, blockA-B, skips, easpp, fusion, decoder, "
                        "all; joined by +) and the share of the network's weights to remove from them (default: "
                        f"{' '.join(DEFAULT_STAGES)})")
    parser.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="folder for the stages and report")
    parser.add_argument("--checkpoint", metavar="PATH", help="the trained weights (default: the config's checkpoint)")
    parser.add_argument("--test-data", dest="test_data", nargs="+", metavar="PATTERN", required=True,
                        help="record files or glob patterns to evaluate each stage on")
    parser.add_argument("--finetune-steps", type=int, default=100,
                        help="training steps after each stage (0: none; default 100)")
    parser.add_argument("--finetune-lr", type=finite_number, default=None,
                        help="initial learning rate of the fine-tuning (default: the config's)")
    parser.add_argument("--rank-batches", type=int, default=8,
                        help="training batches the Taylor ranking uses (default 8)")
    parser.add_argument("--latency-runs", type=int, default=10, help="timed batch-1 inferences per stage (default 10)")
    parser.add_argument("--channel-multiple", type=int, default=1, metavar="N",
                        help="remove channels in groups of N per layer, so that widths stay multiples of N "
                        "(e.g. 8 or 16 for vector units; default 1: one by one, the paper's)")
    parser.add_argument("--with", dest="others", nargs="*", default=[], metavar="OUTDIR",
                        help="output folders of other methods' runs to show in the table and plot")
    add_overrides(parser)
    add_version(parser)
    return parser


@tensorflow_command
def main(argv: Optional[List[str]] = None) -> int:
    """Parses the flags, checks the config and stages, runs the staged pruning; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = parse_overrides_or_exit(parser, args.overrides)
    for flag, value in (("--finetune-steps", args.finetune_steps), ("--rank-batches", args.rank_batches - 1),
                        ("--latency-runs", args.latency_runs - 1), ("--channel-multiple", args.channel_multiple - 1)):
        if value < 0:
            parser.error(f"{flag} must be at least {0 if flag == '--finetune-steps' else 1}")
    if args.finetune_lr is not None and not args.finetune_lr > 0:  # a negative rate climbs the loss
        parser.error(f"--finetune-lr must be positive, got {args.finetune_lr:g}")
    model_file_or_exit(parser, "--checkpoint", args.checkpoint)  # helper 219

    from ssma_tf.config import ConfigWarning, load_config
    from ssma_tf.errors import UserInputError
    from ssma_tf.files import check_output

    try:
        if args.checkpoint is None:
            from ssma_tf.config.reader import check_not_moved

            # A copied or moved run's config.yaml names the other folder's weights.
            check_not_moved(args.config, overrides, "give --checkpoint {folder}")
        # The starting weights (`intialize`, the experts' `checkpoints` or `checkpoint1`/`2`,
        # `finetune_from`) are never read: stage 0 is --checkpoint, and each stage's fine-tuning
        # clears them. Their files are not looked for (before: a trained run whose ImageNet
        # initialisation or expert files were gone was refused, while ssma-evaluate took its
        # config); the config keeps them, so that its digest (config_sha256) stays as it was.
        kept = {k: v for k, v in overrides.items() if k not in STARTING_WEIGHTS}
        with warnings.catch_warnings():  # said by the load below (before: each warning printed twice)
            warnings.simplefilter("ignore", ConfigWarning)
            load_config(args.config, "train", overrides={**kept, **dict.fromkeys(STARTING_WEIGHTS[:-1])},
                        given_as=getattr(overrides, "given_as", None))  # the other paths, as before
        config = load_config(args.config, "train", check_paths=False, overrides=overrides)
        check_output(args.output, what="--output", directory=True, overwrite=None)  # before the model loads
        plot_path = pathlib.Path(args.output) / "pruning.png"
        if plot_path.is_dir():  # before: found after every stage had run, and the table was lost with it
            raise UserInputError(f"{plot_path} is a folder, where ssma-prune writes its plot: remove it, or give "
                                 "another --output", path=plot_path)
    except UserInputError as error:
        return fail(error)
    from ssma_tf.pruning import staged
    from ssma_tf.training import TrainingStopped

    seen = {pathlib.Path(args.output).resolve(): "--output"}
    for folder in args.others:
        here = pathlib.Path(folder).resolve()
        if here in seen:  # before: its rows were drawn twice
            same = "the --output folder" if seen[here] == "--output" else f"given before as {seen[here]}"
            return fail(UserInputError(f"--with {folder} is {same}; each folder is shown once", path=folder))
        seen[here] = folder
    others = []
    for folder in args.others:
        path = pathlib.Path(folder) / staged.REPORT
        if not path.is_file():
            return fail(UserInputError(f"--with {folder}: no report.json there (run ssma-prune -o {folder} first)",
                                       path=path))
        try:  # before the stages run: a report of the wrong shape failed after all of them
            others.append(staged.read_report(path, f"--with {folder}"))
        except UserInputError as error:
            return fail(error)

    try:
        stages = staged.parse_stages(args.stages)
        report = staged.run(
            config, args.method, stages, args.output, test_data=args.test_data,
            checkpoint=args.checkpoint, finetune_steps=args.finetune_steps, finetune_learning_rate=args.finetune_lr,
            rank_batches=args.rank_batches, latency_runs=args.latency_runs,
            channel_multiple=args.channel_multiple,
        )
    except UserInputError as error:
        return fail(error)
    except TrainingStopped as error:
        # One line, as ssma-train gives it (helper 273: a traceback). The fine-tuning's rate is
        # --finetune-lr (the config's learning_rate only by default).
        error.args = (str(error).replace("Lower learning_rate", "Lower the fine-tuning's rate (--finetune-lr)"),)
        return fail(error, 1)
    reports = [report] + others
    # A report of another model (or of the same model from other weights) is drawn all the same;
    # the table's unpruned rows tell them apart, and this line says so. The plot's legend says it
    # too, since the picture is looked at without the terminal (before: drawn as if comparable).
    marks = [""] * len(reports)
    for index, (folder, other) in enumerate(zip(args.others, others), start=1):
        theirs, ours = other.get("settings", {}), report["settings"]
        # The weights by their digest where both reports record it (since 2026-12-02: a copy of the
        # file elsewhere is the same network), else by the checkpoint's path.
        identity = ["weights_sha256"] if "weights_sha256" in theirs else ["checkpoint"]
        if theirs.get("model") != ours["model"] or any(theirs.get(k) not in (None, ours.get(k)) for k in identity):
            weights = theirs.get("weights", theirs.get("checkpoint", "not recorded"))
            if theirs.get("model") == ours["model"] and weights in (ours.get("weights"), ours.get("checkpoint")):
                weights += ": the weights differ"  # a file of that name, changed since (before: the name alone)
            print(f"warning: --with {folder} pruned another network (model {theirs.get('model')}, weights "
                  f"{weights}); its rows are not comparable with this run's", file=sys.stderr)
            marks[index] = ": another network"
            continue
        # The same network under another budget: each method's figures come from its own protocol.
        # A setting one of the two runs never read is no difference (before: an l1 run, which ranks
        # on no batch, was "not at the same budget" for another --rank-batches; helper 136).
        budget = [k for k in COMPARED_SETTINGS if (k in theirs or k == "channel_multiple")
                  and staged.setting_used(theirs, k) and staged.setting_used(ours, k)
                  and staged.setting_as_run(theirs, k) != staged.setting_as_run(ours, k)]
        if budget:
            print(f"warning: --with {folder} ran with other settings ("
                  + "; ".join(_difference(theirs, ours, k) for k in budget if not (
                      k == "test_data_sha256" and "test_data" in budget))  # the paths say it
                  + "): the methods are not compared at the same budget", file=sys.stderr)
            marks[index] = f": other {', '.join(_SHOWN.get(k, k) for k in budget)}"
    labels = staged.report_labels(reports, [args.output, *args.others])
    print(staged.format_table(reports, labels), flush=True)  # first: a plot that fails loses no figure
    picture = staged.plot(reports, plot_path, [label + mark for label, mark in zip(labels, marks)])
    print(f"plot: {picture}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
