"""A DepthMix (or ClassMix) training step against a supervised step of the same labeled batch.

The semi-supervised step (`ssma_tf.semi_supervised.trainer`) adds a teacher forward pass on a mix batch
of the same size and a second student forward and backward pass on the mixed images; its
gradients are summed with the supervised ones, so the peak memory should stay near one step's.
Targets (issue 18): time ≤ 2.5× and peak memory ≤ 1.5× the supervised step's.

Time: every side is built in one child process, on synthetic RGB-D records at the given size,
each compiled step warmed up once, then `--steps` turns of one step of each side (the order
reversed every other turn); the table shows each side's median step and the median over the
turns of its step's ratio to the supervised one. Memory: each side runs alone in a child process
of its own (its peak resident memory, `getrusage`'s high-water mark, is that process's,
TensorFlow's own footprint, weights, Adam's slots and the teacher included), the highest of the
`--rounds`. (Before 2026-12-04 the times came from those separate processes too.)

    python bench/semi_supervised_step.py [--model adapnet_pp|ssma] [--methods depthmix,classmix]
        [--batch 4] [--size 32x64] [--steps 5] [--rounds 2] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _common  # noqa: E402


def child(spec: dict) -> None:
    """Builds one trainer, warms its step up, times `steps` steps; emits time and peak memory."""
    folder = tempfile.mkdtemp(prefix="bench-semisup-")
    try:
        _measure(spec, folder)
    finally:  # records and a checkpoint folder per child: left in /tmp before
        shutil.rmtree(folder, ignore_errors=True)


def _measure(spec: dict, folder: str) -> None:
    """One child's measurement, its files in `folder`: one side's steps and peak memory, or
    (`method` "interleaved") the steps of every side in `sides`, one step of each in turn."""
    import numpy as np

    if spec["method"] == "interleaved":
        trainers = {side: _trainer(dict(spec, method=side), os.path.join(folder, side)) for side in spec["sides"]}
        for trainer in trainers.values():
            trainer.train_function(trainer.iterator)  # tracing and graph optimisation
        seconds: dict = {side: [] for side in trainers}
        for index in range(spec["steps"]):
            # The order reversed every other step (ABBA): no side always runs first.
            for side in (spec["sides"] if index % 2 == 0 else spec["sides"][::-1]):
                start = time.perf_counter()
                _step(trainers[side])
                seconds[side].append(time.perf_counter() - start)
        _common.emit({"seconds": seconds})
        return
    trainer = _trainer(spec, folder)
    trainer.train_function(trainer.iterator)  # tracing and graph optimisation
    for _ in range(spec["steps"]):  # to the step's peak memory (the times are the interleaved child's)
        loss = _step(trainer)
    _common.emit({"peak_rss_mib": _common.peak_rss_mib(), "finite": bool(np.isfinite(loss))})


def _step(trainer) -> float:
    """One training step, waited for; its loss."""
    loss, *_ = trainer.train_function(trainer.iterator)
    return float(loss)


def _trainer(spec: dict, folder: str):
    """The trainer of one side (`supervised`, `depthmix`, `classmix`) on records in `folder`."""
    from ssma_tf import training
    from ssma_tf.config import config_from_dict
    from ssma_tf.data import write_examples
    from ssma_tf.data.synthetic import generate_sample

    height, width = spec["height"], spec["width"]
    os.makedirs(folder, exist_ok=True)
    records = os.path.join(folder, "train.tfrecords")
    scenes = (generate_sample(0, index, height, width) for index in range(16))
    write_examples(records, ({"modality1": s.rgb[..., ::-1], "modality2": s.depth_jet[..., ::-1], "label": s.label}
                             for s in scenes))
    values = {
        "model": "SSMA" if spec["model"] == "ssma" else "AdapNet_pp", "num_classes": 7,
        "height": height, "width": width, "batch_size": spec["batch"], "max_iteration": 1000,
        "learning_rate": 1e-3, "checkpoint": os.path.join(folder, "run"), "train_data": records,
        "seed": 0, "skip_step": 1000, "save_step": 1000,
    }
    if spec["model"] == "ssma":
        values["freeze_experts"] = False
    if spec["method"] != "supervised":
        values.update(semi_supervised={"method": spec["method"]}, unlabeled_data=records)
    config = config_from_dict(values, source="bench")
    if spec["method"] == "supervised":
        trainer = training.Trainer(config, log=lambda line: None)
    else:
        from ssma_tf.semi_supervised.trainer import SemiSupervisedTrainer

        trainer = SemiSupervisedTrainer(config, log=lambda line: None)
    return trainer


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--model", default="adapnet_pp", choices=("adapnet_pp", "ssma"))
    parser.add_argument("--methods", default="depthmix")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--size", default="32x64")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=_common.json_path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.child:
        child(json.loads(args.child))
        return 0
    height, width = _common.parse_size(parser, args.size)
    _common.positive(parser, rounds=args.rounds, steps=args.steps, batch=args.batch)
    if args.batch < 2:  # before: refused by the config reader in the child, as a traceback flattened on one line
        parser.error(f"--batch {args.batch}: the mixed step pastes each image onto another of its batch; "
                     "give 2 or more")
    base = {"model": args.model, "batch": args.batch, "height": height, "width": width,
            "steps": args.steps}
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    # Before: a misspelt method was a child's config traceback after seconds, and "supervised" a
    # second supervised side (helper 141).
    wrong = [m for m in methods if m not in ("depthmix", "classmix")]
    if not methods or wrong or len(set(methods)) < len(methods):
        parser.error(f"--methods: give depthmix and/or classmix, each once, got {args.methods!r}")
    sides = ["supervised", *methods]
    runs: dict[str, list] = {side: [] for side in sides}
    timed: list = []
    for _ in range(args.rounds):
        # Time: every side in one process, a step of each in turn. Memory: each side alone in a
        # process of its own (its high-water mark is the process's).
        result = _common.run_child(os.path.abspath(__file__), {**base, "method": "interleaved", "sides": sides})
        if "error" in result:
            print(f"interleaved: {result['error']}")
            return 1
        timed.append(result["seconds"])
        for side in sides:
            result = _common.run_child(os.path.abspath(__file__), {**base, "method": side})
            if "error" in result:
                print(f"{side}: {result['error']}")
                return 1
            runs[side].append(result)
    info = _common.machine_info()
    print(f"{args.model}, batch {args.batch}, {height}x{width}; {_common.describe_machine(info)}")
    summary = {}
    for side in sides:
        step = statistics.median(s for r in timed for s in r[side])
        memory = max(r["peak_rss_mib"] for r in runs[side])
        summary[side] = {"median_step_s": step, "peak_rss_mib": memory}
    reference = summary["supervised"]
    # The spread beside each median, and every figure it comes from in the JSON (before: medians
    # alone; helper 196).
    print(f"{'step':12s} {'median s':>9s} {'x time (range)':>20s} {'peak MiB':>9s} {'x memory (range)':>20s}")
    for side in sides:
        entry = summary[side]
        # The median of the per-step ratios to the supervised step taken in the same turn.
        ratios = [a / b for r in timed for a, b in zip(r[side], r["supervised"])]
        entry["time_ratio"] = statistics.median(ratios)
        entry["time_ratios"] = ratios
        entry["peak_rss_mib_rounds"] = [r["peak_rss_mib"] for r in runs[side]]
        alone = [r["peak_rss_mib"] for r in runs["supervised"]]
        memory = [a / b for a, b in zip(entry["peak_rss_mib_rounds"], alone)]
        entry["memory_ratio"] = entry["peak_rss_mib"] / reference["peak_rss_mib"]
        entry["memory_ratios"] = memory
        time_text = f"{entry['time_ratio']:.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
        memory_text = f"{entry['memory_ratio']:.2f} ({min(memory):.2f}-{max(memory):.2f})"
        print(f"{side:12s} {entry['median_step_s']:9.3f} {time_text:>20s} {entry['peak_rss_mib']:9.0f} "
              f"{memory_text:>20s}")
    if args.json:
        _common.write_json(args.json, {"machine": info, "settings": {**base, "rounds": args.rounds, "methods": sides[1:]},
                                       "results": summary, "step_seconds": timed,
                                       "load_average": os.getloadavg()[0]})
    return 0


if __name__ == "__main__":
    sys.exit(_common.run_main(main))
