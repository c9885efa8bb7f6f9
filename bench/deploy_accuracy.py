"""What int8 and bfloat16 cost in accuracy: the demo's trained models, exported and evaluated with each backend.

Runs the commands a user would, on the models `make demo` trained (demo_output/ in the current
folder): for AdapNet++ (RGB), AdapNet++ (depth) and SSMA,

    ssma-export demo_output/checkpoints/<model> --format openvino [--int8 --calibration
        demo_output/data/train.tfrecords --calibration_samples N] --output demo_output/exports/...
    ssma-evaluate -c ssma_tf/cli/demo_configs/<model>_test.config [--backend openvino --exported ...]

(and the same with `--format tflite --int8`; and the TensorFlow model with `--precision bfloat16`),
then prints the released mIoU on the validation records of every model and backend, and what
each costs against float32. Calibration reads the training records, evaluation the validation
records: the calibration never sees the test images.

    python bench/deploy_accuracy.py                       # after `make demo`
    python bench/deploy_accuracy.py --json docs/bench/deploy_accuracy.json
    python bench/deploy_accuracy.py --models adapnet_pp_rgb,ssma --variants tensorflow_float32,openvino_int8
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _common  # noqa: E402  (bench/ is not a package)

MODELS = (("adapnet_pp_rgb", "AdapNet++ (RGB)"), ("adapnet_pp_depth", "AdapNet++ (depth)"), ("ssma", "SSMA"))
# (name, ssma-export flags, ssma-evaluate flags) of each way of running a model.
VARIANTS = (
    ("tensorflow float32", None, []),
    ("tensorflow bfloat16", None, ["--precision", "bfloat16"]),
    ("openvino float32", ["--format", "openvino"], ["--backend", "openvino"]),
    ("openvino int8", ["--format", "openvino", "--int8"], ["--backend", "openvino"]),
    ("tflite int8", ["--format", "tflite", "--int8"], ["--backend", "tflite"]),
)
CONFIGS = os.path.join(_common.ROOT, "ssma_tf", "cli", "demo_configs")


def run(module: str, args: list) -> None:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join(p for p in (_common.ROOT, os.environ.get("PYTHONPATH")) if p))
    command = [sys.executable, "-m", module] + [str(a) for a in args]
    print("$", " ".join(command[2:]), flush=True)
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"failed ({result.returncode}):\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default="demo_output", help="the demo's folder (default demo_output)")
    parser.add_argument("--calibration_samples", type=int, default=100)
    parser.add_argument("--variants", default=",".join(v[0].replace(" ", "_") for v in VARIANTS),
                        help="comma-separated, from " + ", ".join(v[0].replace(" ", "_") for v in VARIANTS))
    parser.add_argument("--models", default=",".join(m for m, _ in MODELS),
                        help="comma-separated, from " + ", ".join(m for m, _ in MODELS))
    parser.add_argument("--json", type=_common.json_path, help="also write the table to this JSON file")
    args = parser.parse_args(argv)
    chosen = {v.strip() for v in args.variants.split(",") if v.strip()}
    models = {m.strip() for m in args.models.split(",") if m.strip()}
    known_variants, known_models = {v[0].replace(" ", "_") for v in VARIANTS}, {m for m, _ in MODELS}
    for flag, given, known in (("--variants", chosen, known_variants), ("--models", models, known_models)):
        if not given or given - known:  # before: an empty table, exit 0
            parser.error(f"{flag}: unknown {sorted(given - known) or 'none given'} (known: {', '.join(sorted(known))})")
    calibration = os.path.join(args.output, "data", "train.tfrecords")
    table = {}
    for model, title in MODELS:
        if model not in models:
            continue
        config = os.path.join(CONFIGS, f"{model}_test.config")
        for variant, export_flags, eval_flags in VARIANTS:
            if variant.replace(" ", "_") not in chosen:
                continue
            metrics_path = os.path.join(args.output, "exports", f"{model}_{variant.replace(' ', '_')}.json")
            flags = list(eval_flags)
            if export_flags is not None:
                folder = os.path.join(args.output, "exports", f"{model}_{variant.replace(' ', '_')}")
                extra = ["--calibration", calibration, "--calibration_samples", args.calibration_samples] \
                    if "--int8" in export_flags else []
                run("ssma_tf.cli.export", [os.path.join(args.output, "checkpoints", model), *export_flags, *extra,
                                           "--output", folder, "--overwrite"])
                flags += ["--exported", folder]
            # The demo's weights and records under --output (the config names demo_output/, so the
            # TensorFlow rows evaluated ./demo_output whatever --output said).
            paths = ["--set", f"checkpoint={os.path.join(args.output, 'checkpoints', model)}",
                     "--set", f"test_data={os.path.join(args.output, 'data', 'val.tfrecords')}"]
            run("ssma_tf.cli.evaluate", ["-c", config, *paths, *flags, "--json", metrics_path])
            with open(metrics_path, encoding="utf-8") as handle:
                table.setdefault(title, {})[variant] = json.load(handle)["mIoU"]
    variants = [v[0] for v in VARIANTS if v[0].replace(" ", "_") in chosen]
    print()
    print(f"{'model':<20}" + "".join(f"{v:>20}" for v in variants))
    for title, row in table.items():
        print(f"{title:<20}" + "".join(f"{row.get(v, float('nan')):>20.2f}" for v in variants))
    if "tensorflow float32" in variants:
        for title, row in table.items():
            for v in variants[1:]:
                print(f"{title}: {v} - tensorflow float32 = {row[v] - row['tensorflow float32']:+.2f} mIoU")
    if args.json:
        _common.write_json(args.json, {"machine": _common.machine_info(), "calibration": calibration,
                                       "calibration_samples": args.calibration_samples, "mIoU": table})
    return 0


if __name__ == "__main__":
    sys.exit(_common.run_main(main))
