"""SSMA over three modalities against SSMA over each pair, on synthetic RGB-D-thermal scenes.

    python bench/three_modalities.py --output three_modalities_output     (or `make three-modalities`)

Writes the synthetic scenes with their optional thermal modality (`ssma_tf.data.synthetic`:
half of the cars painted like bushes, which colour and depth together cannot tell apart, cars
warm in thermal), converts them to records (one file per modality order the models read), and,
trains an AdapNet++ expert per modality (stage 1), then, for each seed, SSMA with frozen experts
(the released stage) over {RGB, depth}, {RGB, thermal}, {depth, thermal} and {RGB, depth,
thermal}, every SSMA arm with the same steps, batch and learning rate. The experts are trained
once, with the first seed, and shared by every arm and seed (so that the comparison is of the
fusion alone, and the run stays short); `--experts_per_seed` trains them anew for each seed.
Each model is evaluated on the validation scenes and the table gives the mean mIoU over the
seeds with its range (min..max), and the car IoU.

Results go to `<output>/results.json` as they come; a rerun skips the runs already there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MODALITIES = ("rgb", "depth", "thermal")
# SSMA arms: the modalities each fuses, in record order.
ARMS = (("rgb", "depth"), ("rgb", "thermal"), ("depth", "thermal"), ("rgb", "depth", "thermal"))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="three_modalities_output", help="folder for data, runs, results")
    from ssma_tf.cli.common import seed_number  # no TensorFlow

    parser.add_argument("--seeds", type=seed_number, nargs="+", default=[0, 1],
                        help="training seeds (>= 2 for a range)")
    parser.add_argument("--num_train", type=int, default=160)
    parser.add_argument("--num_val", type=int, default=40)
    parser.add_argument("--height", type=int, default=48)
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--expert_steps", type=int, default=150, help="steps of each AdapNet++ expert")
    parser.add_argument("--ssma_steps", type=int, default=200,
                        help="steps of each SSMA arm (the demo's; 100 left the fresh decoder behind its experts)")
    parser.add_argument("--experts_per_seed", action="store_true",
                        help="train the experts anew for each seed (default: once, with the first seed)")
    parser.add_argument("--batch_size", type=int, default=8)
    args = parser.parse_args(argv)
    for name in ("height", "width"):
        if getattr(args, name) <= 0 or getattr(args, name) % 16:
            parser.error(f"--{name} must be a positive multiple of 16, got {getattr(args, name)}")
    for name in ("num_train", "num_val", "expert_steps", "ssma_steps", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    from ssma_tf.cli.common import distinct_or_exit, output_folder_or_exit  # no TensorFlow

    distinct_or_exit(parser, seeds=args.seeds)  # before: one run counted as two in the mean and range
    output_folder_or_exit(parser, "--output", args.output)
    return args


def settings_of(args) -> dict:
    """What the data and every run of an output folder depend on.

    Seeds may be added between calls, but not the first one when the experts are shared: every
    SSMA arm of every seed starts from its experts (before: `--seeds 1 2` after `--seeds 0 1`
    averaged seed 1's arms on the seed-0 experts with seed 2's on the seed-1 experts).
    """
    settings = {name: getattr(args, name) for name in ("num_train", "num_val", "height", "width", "expert_steps",
                                                       "ssma_steps", "experts_per_seed", "batch_size")}
    settings["expert_seed"] = None if args.experts_per_seed else args.seeds[0]
    return settings


def records_for(args, order) -> dict:
    """Train/val records holding the modalities of `order` (in that order), converted once."""
    from ssma_tf.data import synthetic, write_tfrecords

    data = os.path.join(args.output, "data")
    if not os.path.isfile(os.path.join(data, "val.txt")):
        synthetic.write_dataset(data, num_train=args.num_train, num_val=args.num_val,
                                height=args.height, width=args.width, seed=0, thermal=True)
    out = {}
    for split in ("train", "val"):
        name = os.path.join(data, f"{split}_{'_'.join(order)}.tfrecords")
        if not os.path.isfile(name):
            listed = os.path.join(data, f"{split}_{'_'.join(order)}.txt")
            with open(os.path.join(data, f"{split}.txt"), encoding="utf-8") as handle:
                rows = [line.split() for line in handle if line.strip()]
            columns = [MODALITIES.index(m) for m in order] + [3]
            with open(listed, "w", encoding="utf-8") as handle:
                handle.writelines(" ".join(row[c] for c in columns) + "\n" for row in rows)
            write_tfrecords(listed, name, encoding="png", modalities=len(order))
        out[split] = name
    return out


def run_one(args, name: str, keys: dict, results: dict) -> dict:
    """Trains and evaluates one model (unless results holds it); returns its metrics.

    `keys` holds the model's own training keys (`train`) and its validation records (`test_data`);
    the evaluation takes everything else from the run's config.
    """
    from ssma_tf.cli.experiment import evaluate_in_process, machine, train_in_process

    if name in results:
        return results[name]
    run_dir = os.path.join(args.output, "runs", name)
    common = dict(num_classes=7, dataset="synthetic", height=args.height, width=args.width, checkpoint=run_dir)
    # A run stopped before its result resumes: its time would count the rest only (helper 235).
    resumed = os.path.isfile(os.path.join(run_dir, "checkpoint"))
    start = time.perf_counter()
    train_in_process(dict(common, **keys["train"], batch_size=args.batch_size, learning_rate=1e-3, power=0.9,
                          skip_step=50, save_step=10_000), source=name)
    metrics = evaluate_in_process(run_dir, {"test_data": keys["test_data"], "batch_size": 10})
    seconds = time.perf_counter() - start
    car = next((c["iou"] for c in metrics["per_class"] if c["name"] == "car"), None)
    results[name] = {"mIoU": float(metrics["mIoU"]), "car_iou": car, "seconds": None if resumed else round(seconds, 1),
                     "machine": machine()}
    print(f"{name}: mIoU {metrics['mIoU']:.1f} ({seconds / 60:.1f} min{', resumed' if resumed else ''})", flush=True)
    return results[name]


def main(argv=None) -> int:
    args = parse_args(argv)
    from ssma_tf.cli.common import BackendError, require_tensorflow_backend  # no TensorFlow

    try:  # before: the dataset written, then a traceback from the first run's checkpoint
        require_tensorflow_backend("bench/three_modalities.py")
    except BackendError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.makedirs(args.output, exist_ok=True)
    from ssma_tf.files import atomic_write

    results_path = os.path.join(args.output, "results.json")
    results = {}
    if os.path.isfile(results_path):
        with open(results_path, encoding="utf-8") as handle:
            results = json.load(handle)
    # Its data and runs are of the settings that made them: other settings would print their
    # numbers under the new ones.
    settings = settings_of(args)
    earlier = results.pop("settings", None)
    # Data or runs without results: a call stopped before its first result (before: taken up by
    # any later settings, which results.json then named).
    work = [d for d in ("data", "runs") if os.path.exists(os.path.join(args.output, d))]
    if (results or work) and earlier != settings:
        changed = sorted(k for k in settings if (earlier or {}).get(k) != settings[k])
        what = "results" if results else f"the {' and '.join(work)} of an earlier call"
        # A mistake in the input: status 2 (before: `sys.exit(message)`, status 1; helper 360).
        print(f"error: {args.output} holds {what} of other settings ({', '.join(changed)} differ"
              f"{'' if earlier else '; written before settings were recorded'}): give another --output, "
              "or remove that folder", file=sys.stderr)
        return 2
    results["settings"] = settings

    def save():
        with atomic_write(results_path) as stream:
            json.dump(results, stream, indent=1)

    save()  # before any data or run: what they are made with, even if this call stops first

    all_three = records_for(args, MODALITIES)
    for seed in args.seeds:
        expert_seed = seed if args.experts_per_seed else args.seeds[0]
        experts = {}
        for index, modality in enumerate(MODALITIES, start=1):
            name = f"seed{expert_seed}_adapnet_pp_{modality}"
            keys = dict(model="AdapNet_pp", input_modality=f"modality{index}")
            run_one(args, name, {
                "train": dict(keys, train_data=all_three["train"], max_iteration=args.expert_steps,
                              seed=expert_seed),
                "test_data": all_three["val"],
            }, results)
            save()
            experts[modality] = os.path.join(args.output, "runs", name, "final.weights.h5")
        for arm in ARMS:
            records = records_for(args, arm)
            name = f"seed{seed}_ssma_{'_'.join(arm)}"
            keys = dict(model="SSMA", modalities=list(arm))
            run_one(args, name, {
                "train": dict(keys, train_data=records["train"], max_iteration=args.ssma_steps, seed=seed,
                              checkpoints=[experts[m] for m in arm], freeze_experts=True),
                "test_data": records["val"],
            }, results)
            save()
    print(table(results, args.seeds, shared_experts=not args.experts_per_seed))
    return 0


def table(results: dict, seeds, shared_experts: bool = True) -> str:
    """Mean mIoU over the seeds with its range, per model, and the car IoU; `shared_experts`: the
    experts were trained once, with the first seed (no --experts_per_seed)."""
    from ssma_tf.cli.experiment import spread

    names = [f"adapnet_pp_{m}" for m in MODALITIES] + [f"ssma_{'_'.join(arm)}" for arm in ARMS]
    lines = [f"{'model':<28} {'mIoU mean':>9}  {'range':>13}  {'car IoU':>7}   per seed"]
    for name in names:
        done = [s for s in seeds if f"seed{s}_{name}" in results]
        if not done:
            continue
        runs = [results[f"seed{s}_{name}"] for s in done]
        mious = [r["mIoU"] for r in runs]
        miou = spread(mious)
        cars = [r["car_iou"] for r in runs if r.get("car_iou") is not None]
        car = f"{spread(cars).mean:7.1f}" if cars else "      –"
        # One run has no range (before: "60.4..60.4" under "seeds [0, 1]" for the experts every
        # seed shares), and a seed without its run is named (helper 235).
        shown = f"{miou.low:6.1f}..{miou.high:<6.1f}" if len(runs) > 1 else f"{'–':>13} "
        missing = [s for s in seeds if s not in done]
        note = ("" if not missing else "   (shared experts: trained once)" if shared_experts
                and name.startswith("adapnet_pp_") and done == [seeds[0]]
                else f"   (no run of seed {', '.join(map(str, missing))})")
        lines.append(f"{name:<28} {miou.mean:9.1f}  {shown} {car}"
                     f"   {', '.join(f'{s}: {m:.1f}' for s, m in zip(done, mious))}{note}")
    return "\n".join(lines)


if __name__ == "__main__":
    import _common  # the script's folder is first on the path when it runs

    sys.exit(_common.run_main(main, kept="results.json in --output holds the runs finished so far, and a rerun "
                                          "goes on from them"))
