"""Few labels, many images: supervised only against ClassMix and DepthMix (`make semisup-evidence`).

    python tools/semi_supervised_experiment.py [--output semisup_output] [--seeds 0 1]
        [--models adapnet_pp_rgb ssma] [--arms supervised classmix depthmix depth_12 pretrained] [--steps 200]

On the synthetic RGB-D scenes (200 training, 50 validation, written at 48×96 and trained at
32×64 with batch 4 by default, to fit minutes on two cores), `--labeled` of the 200 training
scenes (12 by default, drawn with each seed) keep their labels. Every arm trains the
same model for the same steps and batch from the same random start on the same labeled images;
the semi-supervised arms also see all 200 images without labels (`semi_supervised` with the
released defaults). Each run is a `ssma-train` and an `ssma-evaluate --json` in a subprocess, so
the experiment resumes where it stopped (a finished run is skipped). The end is a table of the
validation mIoU per arm: mean and range over the seeds.

Other arms compare at the same budget as well: `random_N`/`depth_N` (supervised on N images
picked at random or by `ssma-select-labels` with the seed), `pretrained` (supervised on the
labeled share, `finetune_from` an AdapNet++ that `ssma-pretrain-depth` trained for the same
number of steps on all 200 images without labels).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
from typing import Any, Optional

import numpy as np

from ssma_tf.cli.common import (
    ArgumentParser, add_version, distinct_or_exit, output_folder_or_exit, seed_number, stride_multiples_or_exit,
    tensorflow_command,
)
from ssma_tf.cli.experiment import (
    cached_result, evaluate_run, forget_other_settings, is_finished, machine, machine_short, restart_unless_made_with,
    run_command, save_result, spread, train_run, write_config,
)
from ssma_tf.constants import FINAL_WEIGHTS
from ssma_tf.files import atomic_write, sha256_of_file

MODELS = {
    "adapnet_pp_rgb": {"model": "AdapNet_pp", "input_modality": "modality1"},
    # Both experts and the fusion trained together from scratch (stage 2 without its start).
    "ssma": {"model": "SSMA", "freeze_experts": False},
}
SEMI = {"classmix": {"method": "classmix"}, "depthmix": {"method": "depthmix"}}
TRAIN_SCENES = 200  # the synthetic training scenes the experiment writes (and draws subsets from)


def make_data(output: pathlib.Path) -> pathlib.Path:
    """The synthetic scenes and their records (skipped when present)."""
    data = output / "data"
    if not (data / "val.txt").exists():
        run_command("python -m ssma_tf.cli.synthetic", [
            "--output_dir", data, "--num_train", TRAIN_SCENES, "--num_val", 50, "--height", 48, "--width", 96,
            "--seed", 0], step="synthetic scenes", log=output / "data.log")
    for split in ("train", "val"):
        if not (data / f"{split}.tfrecords").exists():
            run_command("ssma-convert", ["-f", data / f"{split}.txt", "-r", data / f"{split}.tfrecords"],
                        step=f"{split} list to TFRecords", log=output / f"convert_{split}.log")
    return data


def random_subset(output: pathlib.Path, count: int, seed: int, pool: int = TRAIN_SCENES) -> pathlib.Path:
    """A file of `count` record indices of the `pool` training scenes, drawn at random with `seed`."""
    from ssma_tf.data.unlabeled import write_index_file

    path = output / "subsets" / f"random_{count}_seed{seed}.txt"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_index_file(str(path), sorted(np.random.default_rng(seed).choice(pool, size=count, replace=False)))
    return path


# Network input and batch of every run (`--height`, `--width`, `--batch-size` change them).
SIZE = {"height": 32, "width": 64, "batch_size": 4}


def base_config(data: pathlib.Path, model: str, seed: int, steps: int) -> dict[str, Any]:
    """The training config of every arm: `model` on all 200 scenes for `steps` steps with `seed`."""
    return {
        **MODELS[model], "num_classes": 7, "dataset": "synthetic", **SIZE,
        "train_data": str(data / "train.tfrecords"), "max_iteration": steps,
        "learning_rate": 0.001, "power": 0.9, "save_step": steps, "skip_step": 25, "seed": seed,
    }


def depth_subset(output: pathlib.Path, data: pathlib.Path, count: int, seed: int) -> pathlib.Path:
    """`ssma-select-labels` on the training pool: `count` images chosen by depth with `seed`."""
    folder = output / "subsets" / f"depth_seed{seed}"
    path = folder / f"labeled_{count}.txt"
    if not path.exists():
        config = write_config(folder / "select.config", {**base_config(data, "adapnet_pp_rgb", seed, 1),
                                                         "checkpoint": str(folder)}, sort_keys=True)
        # The folder is the experiment's: a selection of another count there is replaced (the
        # selection nests, so the lists of smaller counts stay the same).
        run_command("ssma-select-labels", ["-c", config, "--budget", count, "-o", folder, "--seed", seed,
                                           "--overwrite"],
                    step=f"depth-guided selection of {count} images, seed {seed}", log=folder / "select.log")
    return path


def pretrained_weights(output: pathlib.Path, data: pathlib.Path, seed: int, steps: int) -> str:
    """`ssma-pretrain-depth` on all training images (no labels) for `steps` steps with `seed`."""
    folder = output / "runs" / f"depth_pretraining_seed{seed}"
    values = {**base_config(data, "adapnet_pp_rgb", seed, steps), "checkpoint": str(folder / "checkpoints")}
    forget_other_settings(values, folder / "pretrain.config", step=f"depth pretraining, seed {seed}")
    if not is_finished(folder / "checkpoints"):
        config = write_config(folder / "pretrain.config", values, sort_keys=True)
        run_command("ssma-pretrain-depth", ["-c", config], step=f"depth pretraining, seed {seed}",
                    log=folder / "pretrain.log")
    return str(folder / "checkpoints" / FINAL_WEIGHTS)


def run_arm(output: pathlib.Path, data: pathlib.Path, model: str, arm: str, seed: int,
            steps: int, subset: pathlib.Path, initialize: Optional[str] = None,
            pretrain_steps: Optional[int] = None) -> dict[str, Any]:
    """Trains and evaluates one arm (or reads its earlier result); `pretrain_steps`: those of
    the depth pretraining `initialize` comes from (the result and its summary row say them)."""
    name = f"{model}_{arm}_seed{seed}"
    result_path = output / "results" / f"{name}.json"
    run_dir = output / "runs" / name
    config = base_config(data, model, seed, steps)
    config.update(checkpoint=str(run_dir / "checkpoints"), labeled_subset=str(subset))
    if arm in SEMI:
        config.update(semi_supervised=dict(SEMI[arm]), unlabeled_data=str(data / "train.tfrecords"))
    if initialize is not None:
        config["finetune_from"] = initialize
    # What the arm starts from, by content: the depth pretraining (`--pretrain-steps`) and the
    # subsets are made again in place, under the same paths, when their settings change; the
    # arm's config, which names the paths, stays the same, and the arm's result and finished run
    # on the old ones were reused.
    inputs = {"labeled_subset_sha256": sha256_of_file(subset),
              **({"finetune_from_sha256": sha256_of_file(initialize)} if initialize is not None else {})}
    # Reused only when made with this very config (steps, batch size, subset, ...) and inputs.
    cached = cached_result(result_path, dict(config, inputs=inputs))
    if cached is not None:
        return dict(cached, reused=True)
    restart_unless_made_with(run_dir / "checkpoints", run_dir / "inputs.json", inputs, f"train {name}",
                             "its labeled subset or pretrained weights")
    seconds = train_run(config, run_dir / "train.config", step=f"train {name}", log=run_dir / "train.log")
    metrics = evaluate_run(run_dir / "checkpoints" / FINAL_WEIGHTS, run_dir / "metrics.json",
                           {"test_data": str(data / "val.tfrecords"), "batch_size": 10},
                           config_path=run_dir / "test.config", step=f"evaluate {name}",
                           log=run_dir / "evaluate.log")
    result = {"model": model, "arm": arm, "seed": seed, "steps": steps, "mIoU": metrics["mIoU"],
              **({"pretrain_steps": pretrain_steps} if pretrain_steps is not None else {}),
              # None: the run had finished before (an experiment stopped before its evaluation), or
              # was resumed (its earlier part untimed).
              "train_seconds": None if seconds is None else round(seconds, 1),
              "per_class": {e["name"]: e["iou"] for e in metrics["per_class"]},
              "settings": json.loads(json.dumps(dict(config, inputs=inputs), sort_keys=True)),
              "machine": machine()}
    save_result(result_path, result)
    return result


def coverage_table(output: pathlib.Path, data: pathlib.Path, seeds: list[int], counts: list[int]) -> str:
    """Classes in the labels of the random and the depth-guided selections of each of `counts`
    images (the `depth_N` arms), per seed.

    A class counts as covered when it holds at least 0.5 % of the selection's labeled pixels;
    the rarest class's share tells how balanced the selection is.
    """
    from ssma_tf.data.unlabeled import read_index_file
    from ssma_tf.semi_supervised.selection import record_labels

    labels = record_labels(str(data / "train.tfrecords"))
    lines = ["| selection | images | seed | classes ≥ 0.5 % of pixels | rarest class share % | car share % |",
             "| --- | --- | --- | --- | --- | --- |"]
    for count in counts:
        for seed in seeds:
            for name, path in (("random", output / "subsets" / f"random_{count}_seed{seed}.txt"),
                               ("depth-guided", output / "subsets" / f"depth_seed{seed}" / f"labeled_{count}.txt")):
                if not path.exists():
                    continue
                chosen = read_index_file(str(path))
                pixels = np.bincount(np.concatenate([labels[i].ravel() for i in chosen]), minlength=7)[1:7]
                share = pixels / max(pixels.sum(), 1)
                covered = int(np.sum(share >= 0.005))
                lines.append(f"| {name} | {count} | {seed} | {covered} of 6 | {100 * share.min():.2f} | "
                             f"{100 * share[4]:.2f} |")
    return "\n".join(lines) + "\n"


def settings_text(result: dict[str, Any]) -> str:
    """The settings a result's row is averaged over: steps, labeled scenes, size and batch
    ("?" for what an earlier version's result does not say)."""
    from ssma_tf.data.unlabeled import read_index_file

    settings = result.get("settings") or {}
    subset = settings.get("labeled_subset")
    labeled = len(read_index_file(subset)) if subset and pathlib.Path(subset).is_file() else "?"
    # Pretrained arms of other --pretrain-steps start from other weights (before: one row).
    pretrained = (f", pretrained {result.get('pretrain_steps', '?')} steps"
                  if "finetune_from_sha256" in (settings.get("inputs") or {}) else "")
    return (f"{result.get('steps', '?')} steps, {labeled} labeled, {settings.get('height', '?')}x"
            f"{settings.get('width', '?')}, batch {settings.get('batch_size', '?')}{pretrained}")


def summary(results: list[dict[str, Any]]) -> str:
    """A markdown table: mIoU mean and range over seeds per model, arm and settings (results of
    other settings, from an earlier call into the folder, are rows of their own), and the
    machines the training seconds were measured on."""
    lines = ["| model | arm | settings | seeds | mIoU mean | range | per seed | train s (mean) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    keyed = [((r["model"], r["arm"], settings_text(r)), r) for r in results]
    keys = list(dict.fromkeys(key for key, _ in keyed))
    for model, arm, settings in keys:
        rows = [r for key, r in keyed if key == (model, arm, settings)]
        miou = spread(r["mIoU"] for r in rows)
        # Each figure with its seed: a row may gather the results of several calls (before: the
        # values alone; helper 235).
        per_seed = ", ".join(f"{r['seed']}: {r['mIoU']:.1f}" for r in rows)
        times = [r["train_seconds"] for r in rows]
        # A mean of every seed or none (before: of the timed seeds alone, one seed's time shown as
        # the mean of two; helper 235).
        seconds = "–" if any(t is None for t in times) else f"{spread(times).mean:.0f}"
        lines.append(f"| {model} | {arm} | {settings} | {len(rows)} | "
                     f"{miou.mean:.1f} | {miou.low:.1f}–{miou.high:.1f} | {per_seed} | {seconds} |")
    machines = list(dict.fromkeys(machine_short(r["machine"]) for r in results if r.get("machine")))
    unrecorded = sum(1 for r in results if not r.get("machine"))
    if machines:
        told = "; ".join(machines)
        if unrecorded:
            told += f" (not recorded for {unrecorded} result(s) of an earlier version)"
        lines += ["", f"Training seconds measured on: {told}."]
    return "\n".join(lines) + "\n"


def folder_results(output: pathlib.Path) -> list[dict[str, Any]]:
    """Every arm's latest result in the experiment's folder, of this call or an earlier one."""
    results = [json.loads(path.read_text(encoding="utf-8")) for path in sorted((output / "results").glob("*.json"))]
    order = {model: i for i, model in enumerate(MODELS)}
    return sorted(results, key=lambda r: (order.get(r["model"], len(order)), r["arm"], r.get("steps") or 0,
                                          r["seed"]))


def _check_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Ends the run on a bad flag before any data are written or any arm trains."""
    for flag, value in (("--labeled", args.labeled), ("--steps", args.steps), ("--batch-size", args.batch_size),
                        ("--pretrain-steps", args.pretrain_steps)):
        if value is not None and value < 1:
            parser.error(f"{flag} must be >= 1, got {value}")
    stride_multiples_or_exit(parser, height=args.height, width=args.width)
    mixing = [arm for arm in args.arms if arm in SEMI]
    if mixing and args.batch_size < 2:  # each image is mixed with another of its batch
        parser.error(f"--batch-size must be >= 2 for the {' and '.join(mixing)} arms (each image is mixed with "
                     f"another of its batch), got {args.batch_size}")
    # Before: a seed or an arm given twice was reported as two runs (one run, its mean and range).
    distinct_or_exit(parser, seeds=args.seeds, arms=args.arms, models=args.models)
    output_folder_or_exit(parser, "--output", args.output)
    # Labeled scenes come from the TRAIN_SCENES training scenes (before: NumPy's "Cannot take a
    # larger sample than population" traceback after the data were generated).
    if args.labeled > TRAIN_SCENES:
        parser.error(f"--labeled {args.labeled} is more than the {TRAIN_SCENES} training scenes")
    for arm in args.arms:
        kind, _, count = arm.partition("_")
        if arm not in ("supervised", "pretrained", *SEMI) and not (
                kind in ("random", "depth") and count.isdigit() and int(count) > 0):
            parser.error(f"--arms: unknown arm {arm!r}; supervised, pretrained, {', '.join(SEMI)}, "
                         "random_N or depth_N (N labeled scenes)")
        if kind in ("random", "depth") and count.isdigit() and int(count) > TRAIN_SCENES:
            parser.error(f"--arms {arm}: {count} labeled scenes is more than the {TRAIN_SCENES} training scenes")
    # Arms of AdapNet++ alone, with no AdapNet++ among --models (before: skipped without a word, an
    # empty table, exit 0).
    alone = [arm for arm in args.arms if arm not in ("supervised", *SEMI)]
    if alone and "adapnet_pp_rgb" not in args.models:
        parser.error(f"--arms {' '.join(alone)}: run for adapnet_pp_rgb only, which --models leaves out")
    if args.pretrain_steps is not None and "pretrained" not in args.arms:
        parser.error("--pretrain-steps is for the pretrained arm, which --arms leaves out")


@tensorflow_command
def main(argv: Optional[list[str]] = None) -> int:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="semisup_output",
                        help="folder for the data, runs and results; a rerun reuses what is done (default "
                        "semisup_output)")
    parser.add_argument("--seeds", type=seed_number, nargs="+", default=[0, 1], help="seeds of every arm (default 0 1)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS),
                        help=f"networks (default: {' '.join(MODELS)})")
    parser.add_argument("--arms", nargs="+",
                        default=["supervised", "classmix", "depthmix", "depth_12", "pretrained"],
                        help="arms; random_N, depth_N and pretrained run for AdapNet++ only (the supervised, "
                             "ClassMix, DepthMix and pretrained arms' labeled images are the random_<--labeled> "
                             "selection, random_12 by default; default: supervised classmix depthmix depth_12 "
                             "pretrained)")
    parser.add_argument("--labeled", type=int, default=12, help="labeled training scenes (default 12)")
    parser.add_argument("--steps", type=int, default=200, help="training steps of every arm (default 200; the runs "
                        "docs/semi_supervised.md reports used 150 and 600, each with its command)")
    parser.add_argument("--pretrain-steps", type=int, default=None,
                        help="steps of depth pretraining for the pretrained arm (default: --steps)")
    parser.add_argument("--height", type=int, default=SIZE["height"], help=f"image height (default {SIZE['height']})")
    parser.add_argument("--width", type=int, default=SIZE["width"], help=f"image width (default {SIZE['width']})")
    parser.add_argument("--batch-size", type=int, default=SIZE["batch_size"],
                        help=f"training batch of every arm (default {SIZE['batch_size']})")
    add_version(parser)  # before: the one command of the README's table without --version and --debug
    args = parser.parse_args(argv)
    _check_arguments(parser, args)
    SIZE.update(height=args.height, width=args.width, batch_size=args.batch_size)
    output = pathlib.Path(args.output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    data = make_data(output)
    results = []
    for model in args.models:
        for seed in args.seeds:
            for arm in args.arms:
                if model != "adapnet_pp_rgb" and arm not in ("supervised", *SEMI):
                    continue
                subset = random_subset(output, args.labeled, seed)
                initialize = pretrain_steps = None
                if arm.startswith(("random_", "depth_")):
                    count = int(arm.split("_")[1])
                    subset = (random_subset(output, count, seed) if arm.startswith("random_")
                              else depth_subset(output, data, count, seed))
                if arm == "pretrained":
                    pretrain_steps = args.pretrain_steps or args.steps
                    initialize = pretrained_weights(output, data, seed, pretrain_steps)
                print(f"{model} {arm} seed {seed} ...", flush=True)
                result = run_arm(output, data, model, arm, seed, args.steps, subset, initialize, pretrain_steps)
                seconds = result["train_seconds"]
                # A result read back looked like one just trained ("22 s training").
                when = ("(the result of an earlier run of this experiment, same settings)" if result.pop("reused", False)
                        else f"({seconds:.0f} s training)" if seconds is not None else "(trained before)")
                print(f"  mIoU {result['mIoU']:.1f} {when}", flush=True)
                results.append(result)
    table = summary(results)
    coverage = ""
    # The sizes of the depth-guided arms (before: --labeled's, whatever N they chose).
    counts = sorted({int(arm.split("_")[1]) for arm in args.arms if arm.startswith("depth_")})
    if counts:
        for count in counts:  # the random selection of the same size, to compare with
            for seed in args.seeds:
                random_subset(output, count, seed)
        coverage = "\n" + coverage_table(output, data, args.seeds, counts)
    # The folder's every result (before: only this call's arms, so that arms run in separate
    # calls, as docs/semi_supervised.md runs them, left one call's table).
    with atomic_write(output / "summary.md") as stream:
        stream.write("Every arm's latest result in this folder (results/*.json), from every call.\n\n"
                     + summary(folder_results(output)) + coverage)
    print("\n" + table + coverage)
    print(f"every result in {output}: {output / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
