"""SSMA against the paper's fusion baselines on synthetic RGB-D scenes, as Table 17 (`make fusion-table`).

For every seed: the two stage-1 experts (AdapNet++ on RGB, AdapNet++ on depth), then each fusion
method on the same AdapNet++ backbone and decoder, then the mIoU of each on the validation scenes.
The budget is the same for every arm: the methods that start from the experts (`ssma`, `late`,
`lfc`, `cmode`, `fusenet`) train `--fusion_steps` steps; `average` and `maximum` have nothing to
train (they combine the frozen experts' probabilities); `stacking`, one network with no experts,
trains `--expert_steps + --fusion_steps` steps from scratch, as many as one expert and its fusion
stage together. Every run uses the demo's learning rate (1e-3, poly), batch and image size, and
the experts and the fusion stages as many steps as the demo's (200 each): far fewer leave the
batch norms' moving statistics unsettled (they decay by 0.99 a step, so after 100 steps 37 % of
the initial statistics remain). 50 expert steps gave an RGB expert of 6.7 mIoU in inference mode,
and 100 fusion steps an SSMA of 59.2 and a late fusion of 8.9 where the demo's 200-step SSMA
scores about 82 (seed 0, docs/fusion.md).

Each arm runs in a child process of its own (TensorFlow's memory of a training and an evaluation
ends with it), and everything goes to `--output` (default `fusion_output/`); a finished
arm is skipped when its result file exists and records the same settings (steps, sizes, and the
settings of the experts it starts from), so the command resumes. The table is printed and written
to `<output>/fusion_table.md` under a line of the settings, with the command, the settings and
the per-seed figures in `<output>/fusion_table.json`.

`--backbone mobilenet_v2` builds every expert (and so every arm) on MobileNet v2, as the paper's
Section 5.10.1 (`--methods ssma` for its real-time experts against their unimodal networks).
`--recalibrate_bn N` recomputes every trained network's batch-norm statistics with its final
weights over N training batches (`ssma_tf.recalibration`), for backbones whose moving averages
have not settled in the short runs.

Example:
    python -m ssma_tf.cli.fusion_table --seeds 0 1
    python -m ssma_tf.cli.fusion_table --seeds 0 1 --backbone mobilenet_v2 --methods ssma --output fusion_mobilenet
"""

from __future__ import annotations

import argparse
import gc
import os
import json
import pathlib
import shlex
import sys
import time
from typing import List, Optional

from ssma_tf.cli.common import (
    ArgumentParser, add_version, distinct_or_exit, output_folder_or_exit, seed_number, stride_multiples_or_exit,
    tensorflow_command,
)
from ssma_tf.cli.experiment import (
    cached_result, evaluate_in_process, machine, machine_line, machine_short, restart_unless_made_with, run_in_child,
    save_result, spread, train_in_process,
)
from ssma_tf.constants import (
    ADAPNET_PP_BACKBONE, BACKBONES, DECODER_FILTERS, EXPERTLESS_FUSIONS, FUSION_METHODS, PARAMETER_FREE_FUSIONS,
)

# Each arm is trained and evaluated in a child process of its own (`_arm`); the tests, which
# replace the training and the evaluation here, run them in this one.
ARMS_IN_CHILDREN = True

TITLES = {
    "rgb": "AdapNet++ (RGB)",
    "depth": "AdapNet++ (depth)",
    "average": "Average",
    "maximum": "Maximum",
    "stacking": "Stacking",
    "late": "Late Fusion",
    "lfc": "LFC",
    "cmode": "CMoDE",
    "fusenet": "FuseNet",
    "ssma": "SSMA",
}
# Table 17's order: the unimodal experts, the baselines, SSMA last. FuseNet, which Table 17 lists
# between CMoDE and SSMA, is not among the defaults (the published table has no row of it);
# `--methods ... fusenet ssma` adds it.
DEFAULT_METHODS = ("average", "maximum", "stacking", "late", "lfc", "cmode", "ssma")
NUM_CLASSES = 7  # the synthetic scenes: void + 6 classes


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Parses the command line."""
    parser = ArgumentParser(prog="python -m ssma_tf.cli.fusion_table", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="fusion_output", help="folder for data, checkpoints and results")
    parser.add_argument("--seeds", type=seed_number, nargs="+", default=[0, 1], help="one run of every arm per seed")
    parser.add_argument("--methods", nargs="+", default=list(DEFAULT_METHODS),
                        help=f"fusion methods to compare (of {', '.join(FUSION_METHODS)})")
    parser.add_argument("--expert_steps", type=int, default=200, help="training steps of each stage-1 expert")
    parser.add_argument("--fusion_steps", type=int, default=200, help="training steps of each fusion stage")
    parser.add_argument("--num_train", type=int, default=200, help="synthetic training scenes")
    parser.add_argument("--num_val", type=int, default=50, help="synthetic validation scenes")
    parser.add_argument("--height", type=int, default=48, help="image height (a multiple of 16)")
    parser.add_argument("--width", type=int, default=96, help="image width (a multiple of 16)")
    parser.add_argument("--batch_size", type=int, default=8, help="images per training step")
    parser.add_argument("--backbone", default=ADAPNET_PP_BACKBONE, choices=BACKBONES,
                        help="the experts' encoder (every arm; `mobilenet_v2`: Section 5.10.1's experts)")
    parser.add_argument("--decoder_filters", type=int, default=DECODER_FILTERS,
                        help="channels of the AdapNet++ decoder's convolutions (experts and SSMA; "
                             "fewer for a real-time decoder; the baselines keep 256)")
    parser.add_argument("--recalibrate_bn", type=int, default=0, metavar="BATCHES",
                        help="after each training run, set the batch norms' moving statistics to their average "
                             "over this many training batches (config key recalibrate_batch_norm; 0: off, as "
                             "released)")
    add_version(parser)
    args = parser.parse_args(argv)
    distinct_or_exit(parser, seeds=args.seeds, methods=args.methods)  # before: one run counted twice
    unknown = [m for m in args.methods if m not in FUSION_METHODS]
    if unknown:
        parser.error(f"--methods: unknown fusion method {unknown[0]!r}; choose from {', '.join(FUSION_METHODS)}")
    if args.backbone != ADAPNET_PP_BACKBONE and set(args.methods) - {"ssma"}:
        parser.error(f"--backbone {args.backbone}: the fusion baselines are built on AdapNet++; use it with --methods ssma")
    if args.decoder_filters < 1:
        parser.error(f"--decoder_filters must be >= 1, got {args.decoder_filters}")
    if args.decoder_filters != DECODER_FILTERS and set(args.methods) - {"ssma"}:
        parser.error("--decoder_filters narrows the experts' and SSMA's decoders; the baselines keep the "
                     f"released {DECODER_FILTERS}: use it with --methods ssma")
    if args.recalibrate_bn < 0:
        parser.error(f"--recalibrate_bn must be >= 0, got {args.recalibrate_bn}")
    if min(args.expert_steps, args.fusion_steps) < 1:
        parser.error("--expert_steps and --fusion_steps must be >= 1")
    # Before the synthetic data are written: the configs would refuse these only afterwards.
    for flag, value in (("--num_train", args.num_train), ("--num_val", args.num_val), ("--batch_size", args.batch_size)):
        if value < 1:
            parser.error(f"{flag} must be >= 1, got {value}")
    stride_multiples_or_exit(parser, height=args.height, width=args.width)
    output_folder_or_exit(parser, "--output", args.output)
    return args


def _data_digest(data: pathlib.Path) -> str:
    """What the scenes in `data` are: the SHA-256 of the training and validation records, short."""
    from ssma_tf.files import sha256_of_file

    return "-".join(sha256_of_file(data / name)[:16] for name in ("train.tfrecords", "val.tfrecords"))


def _common(args: argparse.Namespace, data: pathlib.Path) -> dict:
    return {"num_classes": NUM_CLASSES, "dataset": "synthetic", "height": args.height, "width": args.width,
            "batch_size": args.batch_size, "learning_rate": 0.001, "power": 0.9,
            "train_data": str(data / "train.tfrecords"), "skip_step": 20,
            # Named only when not the default, so that results cached before the option existed match.
            **({} if args.backbone == ADAPNET_PP_BACKBONE else {"backbone": args.backbone}),
            **({} if args.decoder_filters == DECODER_FILTERS else {"decoder_filters": args.decoder_filters}),
            **({"recalibrate_batch_norm": args.recalibrate_bn} if args.recalibrate_bn else {})}


def _arm(name: str, values: dict, args: argparse.Namespace, data: pathlib.Path, results: pathlib.Path,
         train: bool = True, experts: Optional[dict] = None, weights: Optional[pathlib.Path] = None) -> dict:
    """Trains (or only assembles) one arm and evaluates it; cached in `results/<name>.json`.

    `experts` (name → the settings of the expert run whose weights the arm starts from) joins the
    arm's settings: the experts' files keep their paths when they are trained again with other
    settings (`--expert_steps`), and the fusion arms' results on the old experts were reused.
    `weights`: a file the arm leaves that later arms read (an expert's); its result is reused only
    while the file is there (helper 274: a result kept after its weights were moved away, and
    every fusion arm failed on each rerun until the result was found and removed by hand).
    """
    path = results / f"{name}.json"
    # The records' digest with the settings (not a config key): scenes written again (another
    # --num_train, after the folder was removed) keep their paths, and every arm's result on the
    # old scenes was reused, printed under the new counts.
    settings = json.loads(json.dumps(dict(values, data=_data_digest(data),
                                          **({"experts": experts} if experts else {})), sort_keys=True))
    cached = cached_result(path, settings)
    if cached is not None and weights is not None and not weights.is_file():
        print(f"=== {name}: {weights} is gone; training it again", flush=True)
        cached = None
    if cached is not None:
        return cached
    if not ARMS_IN_CHILDREN:
        return _run_arm(name, values, data, results, train, settings)
    # TensorFlow keeps memory of each training and evaluation until its process ends: in this one
    # process the table grew by 130 to 300 MB an arm (helper 208).
    run_in_child(_run_arm, name, values, data, results, train, settings, step=f"fusion table: {name}")
    result = cached_result(path, settings)
    if result is None:
        raise RuntimeError(f"the arm {name} ended without writing {path}")
    return result


def _run_arm(name: str, values: dict, data: pathlib.Path, results: pathlib.Path, train: bool,
             settings: dict) -> dict:
    """Trains (or assembles) one arm and evaluates it in this process; writes and returns its result."""
    import keras

    path = results / f"{name}.json"
    if path.exists():
        # A result from other settings (steps, image size, ...) is not this arm's: it is trained
        # again. Its run folder goes unless it was started with these settings (below): before, a
        # run of the new settings stopped halfway was deleted too, though it said it would resume.
        print(f"=== {name}: {path} was written with other settings; running it again", flush=True)
    # A run stopped before its result was written is resumed only on the same settings, experts'
    # included (before: resumed on the old experts after --expert_steps changed); a finished run
    # of other settings is trained again from scratch, not resumed as finished.
    restart_unless_made_with(values["checkpoint"], results / f"{name}.settings.json", settings, name,
                             "its steps, data or experts")
    # A run stopped before its result was written resumes: the time of its earlier part is not
    # known here, and its figure would count the rest only (helper 135): not given then.
    resumed = os.path.isfile(os.path.join(values["checkpoint"], "checkpoint"))
    started = time.perf_counter()
    print(f"=== {name}", flush=True)
    source = f"<fusion table: {name}>"
    if train:
        model = train_in_process(values, source, log=lambda line: print("  " + line, flush=True))
    else:
        # Nothing to train (average, maximum of frozen experts): the model with its experts loaded,
        # and its config written as a run's, so that it is evaluated under it like the others.
        from ssma_tf.checkpoints.initialize import initialize_model
        from ssma_tf.config import config_from_dict
        from ssma_tf.config.runs import newest_checkpoint, write_final_record, write_run_config
        from ssma_tf.models.factory import build_model

        from ssma_tf.constants import FINAL_MODEL, FINAL_WEIGHTS
        from ssma_tf.files import atomic_path

        config = config_from_dict(values, source=source, mode="train")
        model = build_model(config)
        initialize_model(model, config)
        write_run_config(config, config.checkpoint)
        # Its files, as a run's: `ssma-evaluate` and `ssma-predict` take the folder (before: its
        # config.yaml alone, "a training run that has not saved a checkpoint yet"; helper 144).
        with atomic_path(os.path.join(config.checkpoint, FINAL_WEIGHTS)) as weights, \
                atomic_path(os.path.join(config.checkpoint, FINAL_MODEL)) as whole:
            model.save_weights(weights)
            model.save(whole)
        # As the Trainer's export: final.json says which checkpoint (none) they hold, else one left
        # by an earlier run in the folder would name another.
        write_final_record(config.checkpoint, newest_checkpoint(config.checkpoint), written=True)
    # The model in memory, under its run's eval config (skip_step: the log interval, unused here).
    metrics = evaluate_in_process(values["checkpoint"], {"test_data": str(data / "val.tfrecords"), "batch_size": 10,
                                                         "skip_step": 100}, model=model, check_paths=False)
    seconds = round(time.perf_counter() - started, 1)
    # Training (or building), and the evaluation; None for a resumed run (above).
    metrics["train_seconds"] = None if resumed else seconds
    metrics["machine"] = machine()  # a cached arm's seconds keep theirs (helper 241)
    metrics["settings"] = settings
    took = f"{seconds:.0f} s since it resumed; its time is not counted" if resumed else f"{seconds:.0f} s"
    print(f"  mIoU {metrics['mIoU']:.1f} ({took})", flush=True)
    save_result(path, metrics)
    del model
    keras.backend.clear_session()
    gc.collect()
    return metrics


def run_seed(seed: int, args: argparse.Namespace, output: pathlib.Path, data: pathlib.Path) -> dict:
    """Every arm of one seed: the experts, then the fusion methods; returns name → metrics."""
    checkpoints, results = output / f"seed{seed}" / "checkpoints", output / f"seed{seed}" / "results"
    results.mkdir(parents=True, exist_ok=True)
    common = dict(_common(args, data), seed=seed)
    out = {}
    experts = {}
    for key, modality in (("rgb", "modality1"), ("depth", "modality2")):
        values = dict(common, model="AdapNet_pp", input_modality=modality, checkpoint=str(checkpoints / key),
                      max_iteration=args.expert_steps, save_step=args.expert_steps)
        experts[key] = str(checkpoints / key / "final.weights.h5")
        out[key] = _arm(key, values, args, data, results, weights=pathlib.Path(experts[key]))
    for method in args.methods:
        values = dict(common, model="SSMA", fusion=method, checkpoint=str(checkpoints / method),
                      max_iteration=args.fusion_steps, save_step=args.fusion_steps)
        if method in EXPERTLESS_FUSIONS:  # one network: trained as long as an expert and the fusion
            values.update(max_iteration=args.expert_steps + args.fusion_steps,
                          save_step=args.expert_steps + args.fusion_steps)
        else:
            values.update(checkpoint1=experts["rgb"], checkpoint2=experts["depth"])
        used = None if method in EXPERTLESS_FUSIONS else {key: out[key]["settings"] for key in ("rgb", "depth")}
        out[method] = _arm(method, values, args, data, results, train=method not in PARAMETER_FREE_FUSIONS,
                           experts=used)
    return out


def table(per_seed: dict, names: List[str], class_names: List[str], backbone: str = ADAPNET_PP_BACKBONE) -> str:
    """Table 17's layout: mean mIoU over the seeds, its range, and the mean IoU of each class."""
    import numpy as np

    seeds = sorted(per_seed)
    header = (f"| network | mIoU (mean of {len(seeds)} seed{'s' if len(seeds) != 1 else ''}) | range | "
              + " | ".join(class_names) + " | seconds |")
    lines = [header, "|" + " --- |" * (4 + len(class_names))]
    for name in names:
        runs = [per_seed[s][name] for s in seeds]
        miou = spread(r["mIoU"] for r in runs)
        # A class absent from the test scenes and never predicted has no IoU (None): the mean is
        # over the seeds that have one, "–" where none has (before: a TypeError after every arm).
        ious = np.array([[np.nan if c["iou"] is None else c["iou"] for c in r["per_class"]] for r in runs], float)
        per_class = [float(np.mean(column[~np.isnan(column)])) if (~np.isnan(column)).any() else None
                     for column in ious.T]
        times = [r.get("train_seconds") for r in runs]
        seconds = "–" if any(t is None for t in times) else f"{np.mean(times):.0f}"
        # A method without a title (registered by a user) keeps its config name; every shipped one
        # has a title (tests/cli/test_fusion_table.py).
        title = TITLES.get(name, name)
        if backbone == "mobilenet_v2":
            title = title.replace("AdapNet++", "MobileNet v2")
        lines.append(f"| {title} | {miou.mean:.1f} | {miou.low:.1f}–{miou.high:.1f} | "
                     + " | ".join("–" if v is None else f"{v:.1f}" for v in per_class) + f" | {seconds} |")
    return "\n".join(lines)


def _seconds_machines(per_seed: dict, info: dict) -> str:
    """A line naming the arms whose seconds were measured on another machine than `info` (or on
    one not recorded), each machine as processor and cores; "" when every arm ran on this one."""
    def short(machine: Optional[dict]) -> str:
        return "not recorded" if not machine else machine_short(machine)

    here = short(info)
    elsewhere: dict = {}
    for seed, runs in sorted(per_seed.items()):
        for name, result in runs.items():
            if short(result.get("machine")) != here:
                elsewhere.setdefault(short(result.get("machine")), []).append(f"{name} (seed {seed})")
    if not elsewhere:
        return ""
    return "Seconds of arms from earlier calls on other machines: " + "; ".join(
        f"{', '.join(arms)}: {where}" for where, arms in elsewhere.items()) + "\n"


def _check_data(data: pathlib.Path, args: argparse.Namespace) -> None:
    """Raises `UserInputError` when the scenes in `data` are not those the flags ask for.

    The scenes are written once per output folder; before, a rerun with another `--num_val`
    printed the table of the old scenes under the new count, and another size trained every arm
    on the old scenes resized. What the folder holds is read from its lists and first image.
    """
    from PIL import Image

    from ssma_tf.errors import UserInputError
    from ssma_tf.lists import read_lines

    try:
        found = {flag: len(read_lines(str(data / f"{split}.txt")))
                 for flag, split in (("num_train", "train"), ("num_val", "val"))}
        first = read_lines(str(data / "val.txt"))[0][1][0]
        with Image.open(data / first) as image:
            found["width"], found["height"] = image.size
    except (UserInputError, OSError, IndexError, ValueError) as error:
        raise UserInputError(f"{data}: cannot read the scenes written there ({error}); remove that folder to "
                             "write them again") from None
    differ = [f"--{flag} {found[flag]} there, {getattr(args, flag)} asked" for flag in found
              if found[flag] != getattr(args, flag)]
    if differ:
        # A mistake in the input: status 2 (before: `sys.exit`, status 1, the status of a failed write; helper 360).
        raise UserInputError(f"{data} holds the scenes of other settings ({'; '.join(differ)}): give another "
                             "--output, or remove that folder")


@tensorflow_command
def main(argv: Optional[List[str]] = None) -> int:
    """Runs the arms not done yet and prints the table; returns the exit status."""
    args = parse_args(argv)
    output = pathlib.Path(args.output).resolve()
    data = output / "data"
    started = time.perf_counter()
    if (data / "val.tfrecords").exists():
        _check_data(data, args)
    else:
        from ssma_tf.data import synthetic
        from ssma_tf.data.convert import write_tfrecords

        # One dataset for every seed (seed 0): the seeds vary the training, not the scenes.
        synthetic.write_dataset(str(data), num_train=args.num_train, num_val=args.num_val, height=args.height,
                                width=args.width, seed=0)
        for split in ("train", "val"):
            write_tfrecords(str(data / f"{split}.txt"), str(data / f"{split}.tfrecords"))
    per_seed = {seed: run_seed(seed, args, output, data) for seed in args.seeds}
    names = ["rgb", "depth"] + list(args.methods)
    class_names = [c["name"] for c in per_seed[args.seeds[0]]["rgb"]["per_class"]]
    text = table(per_seed, names, class_names, args.backbone)
    heading = (f"Fusion methods ({args.backbone} experts) on the synthetic RGB-D validation scenes ({args.num_val} "
               f"images, {args.height}x{args.width}; {args.num_train} training scenes, batch {args.batch_size}; experts "
               f"{args.expert_steps} steps, fusion {args.fusion_steps} steps; decoder filters {args.decoder_filters}; "
               f"batch-norm recalibration {f'{args.recalibrate_bn} batches' if args.recalibrate_bn else 'off'}; seeds {', '.join(map(str, args.seeds))})")
    from ssma_tf.files import atomic_write

    # The machines of the seconds column (before: the table named none; helper 235), each arm's
    # own: an arm cached by an earlier call may have run elsewhere (helper 241).
    info = machine()
    with atomic_write(output / "fusion_table.md") as stream:
        stream.write(f"{heading}\n\nMachine: {machine_line(info)}\n{_seconds_machines(per_seed, info)}\n{text}\n")
    settings = {key: getattr(args, key) for key in ("seeds", "methods", "expert_steps", "fusion_steps", "num_train",
                                                   "num_val", "height", "width", "batch_size", "backbone",
                                                   "decoder_filters", "recalibrate_bn")}
    with atomic_write(output / "fusion_table.json") as stream:
        stream.write(json.dumps({
            "command": shlex.join(["python", "-m", "ssma_tf.cli.fusion_table"] + list(sys.argv[1:] if argv is None else argv)),
            "settings": settings,
            "machine": info,
            "seeds": {str(s): {n: {"mIoU": r["mIoU"], "per_class": r["per_class"],
                                   "train_seconds": r.get("train_seconds"), "machine": r.get("machine")}
                               for n, r in v.items()} for s, v in per_seed.items()}}, indent=1))
    print(f"\n=== {heading}\n=== {machine_line(info)}\n")
    print(text)
    print(f"\ntotal time: {(time.perf_counter() - started) / 60:.1f} min; table: {output / 'fusion_table.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
