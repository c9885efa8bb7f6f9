"""Domain adaptation in miniature: synthetic source scenes -> the same kind of scenes at dusk.

`make adapt-demo` (or `python -m ssma_tf.cli.adaptation_demo`). Per seed and model it trains four
arms with the same number of optimizer steps and evaluates each on the labeled target
validation scenes:

  source only   ordinary training on the source (`--steps` + `--adapt_steps` steps)
  ABN           source training whose batch norms also see target batches (same steps)
  SAC           from ABN's checkpoint at `--steps`, importance weights from it, then `--adapt_steps` steps of
                self-supervised augmentation consistency on the unlabeled target images
  target labels ordinary training on the labeled target scenes (the upper bound; same steps)

The table also evaluates ABN's checkpoint at `--steps`, where SAC starts (not an arm: fewer
steps), so that what SAC's steps add from there can be read beside what ABN's own last steps add.

For AdapNet++ (RGB) and SSMA (RGB + depth; experts trained on the source, then the whole
network). Everything goes to `adapt_output/` (`--output`); finished runs are skipped when started
again.
The demo's settings that differ from the library's defaults (the released ones, made for
ResNet-101 fine-tuning over tens of thousands of steps) are scaled to its run length and said in
`docs/adaptation.md`; they were chosen before the first run and not tuned on its results.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import pathlib
import shlex
import sys
import time

from ssma_tf.cli.common import (
    ArgumentParser, add_version, distinct_or_exit, given_path, output_folder_or_exit, seed_number,
    tensorflow_command,
)
from ssma_tf.cli.experiment import evaluate_run, machine, run_command, spread, train_run, write_config
from ssma_tf.config.runs import find_run_config
from ssma_tf.files import atomic_write

OUTPUT = pathlib.Path("adapt_output")
HEIGHT, WIDTH, CLASSES, BATCH = 48, 96, 7, 8
# ABN's checkpoint at `--steps`: SAC's starting point, a reference row rather than an arm.
START = "abn_start"
ROWS = ("source_only", START, "abn", "sac", "target_labels")
TITLES = {"source_only": "source only", START: "ABN at SAC's start", "abn": "ABN",
          "sac": "SAC (from ABN)", "target_labels": "target labels"}
MODELS = {"adapnet_pp": "AdapNet++ (RGB)", "ssma": "SSMA (RGB + depth)"}
# Scaled to a run of about a hundred steps (see the module docstring and docs/adaptation.md).
DEMO_ADAPTATION = {"optimizer": "adam", "learning_rate": 1e-4, "ema_every": 10}


@dataclasses.dataclass(frozen=True)
class Folders:
    """Where the demo writes, all under `root` (`--output`): the synthetic scenes in `data`, and
    per seed the runs, their configs and the evaluations' results."""

    root: pathlib.Path

    @property
    def data(self) -> pathlib.Path:
        return self.root / "data"

    def runs(self, seed: int) -> pathlib.Path:
        return self.root / "runs" / f"seed{seed}"

    def configs(self, seed: int) -> pathlib.Path:
        return self.root / "configs" / f"seed{seed}"

    def results(self, seed: int) -> pathlib.Path:
        return self.root / "results" / f"seed{seed}"


def _base(name: str, seed: int, steps: int, out: Folders, **extra) -> dict:
    """The training config every arm starts from (AdapNet++ on the source scenes), with `extra`."""
    values = {
        "model": "AdapNet_pp", "num_classes": CLASSES, "dataset": "synthetic",
        "height": HEIGHT, "width": WIDTH, "checkpoint": str(out.runs(seed) / name),
        "train_data": str(out.data / "source" / "train.tfrecords"), "batch_size": BATCH,
        "max_iteration": steps, "learning_rate": 1e-3, "save_step": steps, "skip_step": 25,
        "power": 0.9, "seed": seed,
    }
    values.update(extra)
    return values


def _train(name: str, values: dict, seed: int, out: Folders) -> pathlib.Path:
    """Trains one run unless it is finished; returns its folder."""
    train_run(values, out.configs(seed) / f"{name}.config", step=f"seed {seed}: train {name}")
    return pathlib.Path(values["checkpoint"])


def _evaluate(name: str, run: str, seed: int, out: Folders) -> float:
    """The target mIoU of `run` (a run folder or a checkpoint in one) under the run's own config."""
    metrics = evaluate_run(run, out.results(seed) / f"{name}.json",
                           {"test_data": str(out.data / "target" / "val.tfrecords"), "batch_size": 10},
                           config_path=out.configs(seed) / f"{name}_test.config",
                           step=f"seed {seed}: evaluate {name} on the target")
    return float(metrics["mIoU"])


def _importance(name: str, values: dict, seed: int, out: Folders) -> pathlib.Path:
    """The importance weights of the target images from the checkpoint of `values` (computed once)."""
    path = out.runs(seed) / f"{name}_weights.json"
    # Older than the run's config.yaml (rewritten when the run trains): from weights since replaced.
    source = find_run_config(values["checkpoint"])
    if not path.exists() or (source is not None and os.path.getmtime(path) < os.path.getmtime(source)):
        config = write_config(out.configs(seed) / f"{name}_weights.config", values)
        run_command("ssma-importance-weights", ["-c", config, "--checkpoint", values["checkpoint"], "-o", path,
                                                "--overwrite"],
                    step=f"seed {seed}: importance weights from {name}")
    return path


def run_model(model: str, seed: int, steps: int, adapt_steps: int, out: Folders) -> dict[str, float]:
    """Trains and evaluates the four arms of one model and seed.

    Returns:
        Target mIoU per row of `ROWS`: the four arms and ABN's checkpoint where SAC starts.
    """
    total = steps + adapt_steps
    data = out.data
    target = {"target_data": str(data / "target" / "train.tfrecords"),
              "target_val_data": str(data / "target" / "val.tfrecords")}
    target_labels = {"train_data": str(data / "target" / "train.tfrecords")}
    if model == "adapnet_pp":
        common = {"input_modality": "modality1"}
    else:
        # Experts trained on the source (RGB shared with the AdapNet++ arm), then the whole network.
        rgb = _train("adapnet_pp_source_only", _base("adapnet_pp_source_only", seed, total, out,
                                                     input_modality="modality1"), seed, out)
        depth = _train("depth_expert", _base("depth_expert", seed, total, out,
                                             input_modality="modality2"), seed, out)
        common = {"model": "SSMA", "checkpoint1": str(rgb / "final.weights.h5"),
                  "checkpoint2": str(depth / "final.weights.h5"), "freeze_experts": False,
                  "modality2_interpolation": "nearest"}
    arms = {
        "source_only": _base(f"{model}_source_only", seed, total, out, **common),
        # Saved after `steps` too: SAC starts from that checkpoint, which is kept however many
        # saves follow it, an interrupt's included (before: the trainer kept the newest 3, so
        # --adapt_steps >= 3 x --steps deleted it and the demo failed after all the training).
        "abn": _base(f"{model}_abn", seed, total, out, **common, **target,
                     adaptation={"method": "abn"}, save_step=steps, keep_checkpoints=total // steps + 2),
        "target_labels": _base(f"{model}_target_labels", seed, total, out, **common, **target_labels),
    }
    for name, values in arms.items():
        _train(f"{model}_{name}", values, seed, out)
    baseline = str(pathlib.Path(arms["abn"]["checkpoint"]) / f"ckpt-{steps}")
    weights = _importance(f"{model}_abn", dict(arms["abn"], checkpoint=baseline), seed, out)
    sac = _base(f"{model}_sac", seed, adapt_steps, out, **common, **target,
                initialize=baseline, importance_weights=str(weights),
                save_step=adapt_steps, adaptation=dict(DEMO_ADAPTATION))
    sac.pop("checkpoint1", None), sac.pop("checkpoint2", None)
    arms["sac"] = sac
    _train(f"{model}_sac", sac, seed, out)
    arms[START] = dict(arms["abn"], checkpoint=baseline)
    return {row: _evaluate(f"{model}_{row}", arms[row]["checkpoint"], seed, out) for row in ROWS}


def _table(results: dict[str, dict[int, dict[str, float]]], steps: int, adapt_steps: int) -> str:
    lines = []
    for model, per_seed in results.items():
        lines.append(f"\n{MODELS[model]}: target-domain validation mIoU (mean [min, max] over seeds "
                     f"{', '.join(str(s) for s in per_seed)})")
        spreads = {row: spread(scores[row] for scores in per_seed.values()) for row in ROWS}
        for row in ROWS:
            title = f"{TITLES[row]} ({steps})" if row == START else TITLES[row]
            lines.append(f"  {title:24s} {spreads[row].mean:6.1f}  [{spreads[row].low:.1f}, {spreads[row].high:.1f}]")
        means = {row: spreads[row].mean for row in ROWS}
        lines.append(f"  from step {steps}, {adapt_steps} more steps: SAC {means['sac'] - means[START]:+.1f}, "
                     f"ABN {means['abn'] - means[START]:+.1f}")
        gap = means["target_labels"] - means["source_only"]
        if gap > 0:
            closed = 100.0 * (means["sac"] - means["source_only"]) / gap
            lines.append(f"  SAC closes {closed:.0f}% of the gap between source only and target labels")
    return "\n".join(lines)


@tensorflow_command
def main(argv=None) -> int:
    """Runs what is not done yet and prints the table; returns the exit status."""
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=seed_number, nargs="+", default=[0, 1])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["adapnet_pp", "ssma"])
    parser.add_argument("--steps", type=int, default=200, help="steps of the source training")
    parser.add_argument("--adapt_steps", type=int, default=100, help="steps of the adaptation")
    parser.add_argument("--output", type=given_path, default=OUTPUT,
                        help=f"folder for the scenes, runs and results (default {OUTPUT}/)")
    add_version(parser)
    args = parser.parse_args(argv)
    # Before any scene or run (before: --steps 0 trained an arm for minutes, then its config failed).
    for flag, value in (("--steps", args.steps), ("--adapt_steps", args.adapt_steps)):
        if value < 1:
            parser.error(f"{flag} must be >= 1, got {value}")
    # Before: a model given twice was run twice and recorded twice (helper 304).
    distinct_or_exit(parser, seeds=args.seeds, models=args.models)
    output_folder_or_exit(parser, "--output", args.output)
    started = time.time()
    out = Folders(args.output)
    data = out.data
    for domain, style in (("source", "source"), ("target", "target")):
        if not (data / domain / "val.txt").exists():
            run_command("python -m ssma_tf.cli.synthetic", [
                "--output_dir", data / domain, "--num_train", 200, "--num_val", 50,
                "--height", HEIGHT, "--width", WIDTH, "--seed", 0 if domain == "source" else 1,
                "--style", style], step=f"synthetic {domain} scenes")
        for split in ("train", "val"):
            if not (data / domain / f"{split}.tfrecords").exists():
                run_command("ssma-convert", [
                    "-f", data / domain / f"{split}.txt", "-r", data / domain / f"{split}.tfrecords"],
                    step=f"{domain} {split} list to TFRecords")
    results: dict[str, dict[int, dict[str, float]]] = {}
    for model in args.models:
        for seed in args.seeds:
            results.setdefault(model, {})[seed] = run_model(model, seed, args.steps, args.adapt_steps, out)
    table = _table(results, args.steps, args.adapt_steps)
    print(f"\n=== Synthetic source (day) -> target (dusk), {HEIGHT}x{WIDTH}, {args.steps}+"
          f"{args.adapt_steps} steps per arm{table}")
    summary = out.root / "results" / "summary.json"
    summary.parent.mkdir(parents=True, exist_ok=True)
    # What the figures were made with beside them, written whole or not at all.
    with atomic_write(summary) as stream:
        stream.write(json.dumps({
            "command": shlex.join(["python", "-m", "ssma_tf.cli.adaptation_demo"]
                                  + list(sys.argv[1:] if argv is None else argv)),
            "settings": {"models": list(args.models), "seeds": list(args.seeds), "steps": args.steps,
                         "adapt_steps": args.adapt_steps, "height": HEIGHT, "width": WIDTH, "batch_size": BATCH},
            "machine": machine(),
            "results": {m: {str(s): v for s, v in r.items()} for m, r in results.items()}}, indent=1))
    print(f"\nresults: {summary}; total time {(time.time() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
