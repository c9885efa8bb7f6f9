"""Benchmark of the training input pipeline: decode + augment + batch at 384x768, fusion.

Writes a few synthetic fusion records (raw and PNG) to a temporary folder, then, for each
encoding in a fresh child process (so that each peak memory figure is its own), pulls batches
from `ssma_tf.data.build_dataset(..., training=True)` with the paper's augmentation and reports
samples per second and the peak resident memory of the process. `--repeats N` runs each encoding
N times, the two alternated (raw, PNG, PNG, raw, ...) so that a change of load falls on both;
the table gives the median and the range, and the PNG/raw rate ratio of each pair.

    python bench/input_pipeline.py [--samples 32] [--batch_size 8] [--batches 40] [--repeats 5]
        [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _common  # noqa: E402
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HEIGHT, WIDTH, NUM_CLASSES = 384, 768, 12


def _synthetic_sample(rng, height: int, width: int):
    """A scene-like sample: smooth gradients, a few blocks and mild noise (so PNG compression
    sees realistic content, neither flat nor pure noise), a depth-like gray modality 2 and a
    label of the blocks."""
    import numpy as np

    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xs / width * 200, ys / height * 200, (xs + ys) / (width + height) * 255], -1)
    label = np.zeros((height, width), np.uint8)
    for class_id in range(1, NUM_CLASSES):
        y0, x0 = rng.integers(0, height - 64), rng.integers(0, width - 64)
        h, w = rng.integers(32, height // 2), rng.integers(32, width // 3)
        base[y0:y0 + h, x0:x0 + w] = rng.integers(0, 255, 3)
        label[y0:y0 + h, x0:x0 + w] = class_id
    modality1 = np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)
    depth = np.clip(ys / height * 255 + label * 7, 0, 255).astype(np.uint8)
    modality2 = np.repeat(depth[..., None], 3, axis=2)
    return modality1, modality2, label


def _write_records(folder: str, samples: int) -> dict:
    import numpy as np

    from ssma_tf.data import write_examples

    rng = np.random.default_rng(0)
    data = [_synthetic_sample(rng, HEIGHT, WIDTH) for _ in range(samples)]
    paths = {}
    for encoding in ("raw", "png"):
        path = os.path.join(folder, f"synthetic_{encoding}.tfrecords")
        write_examples(path, ({"modality1": m1, "modality2": m2, "label": label} for m1, m2, label in data),
                       encoding=encoding)
        paths[encoding] = path
    return paths


def _measure(path: str, batch_size: int, batches: int, warmup: int) -> dict:
    """Runs in the child process: times the training pipeline over one record file."""
    import tensorflow as tf

    from ssma_tf.data import build_dataset

    dataset = build_dataset(
        path, modalities=2, height=HEIGHT, width=WIDTH, batch_size=batch_size,
        num_classes=NUM_CLASSES, training=True, seed=0,
    )
    iterator = iter(dataset)
    for _ in range(warmup):
        next(iterator)
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(batches):
        (m1, m2), label = next(iterator)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    assert m1.shape == (batch_size, HEIGHT, WIDTH, 3) and label.dtype == tf.int32
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {
        "samples_per_s": batches * batch_size / elapsed,
        # CPU time of all the process's threads: what a sample costs whatever else runs.
        "cpu_ms_per_sample": 1000.0 * cpu / (batches * batch_size),
        "peak_rss_mib": peak_kib / 1024.0,
        "record_bytes": os.path.getsize(path),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=32, help="synthetic records per file")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=40, help="timed batches")
    parser.add_argument("--warmup", type=int, default=5, help="batches before timing starts")
    parser.add_argument("--repeats", type=int, default=5,
                        help="child processes per encoding, the encodings alternated (default 5)")
    parser.add_argument("--json", type=_common.json_path, help="also write the results to this JSON file")
    parser.add_argument("--_child", nargs=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("samples", "batch_size", "batches", "repeats"):
        if getattr(args, name) < 1:  # --batches 0 ended in an UnboundLocalError
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")
    if args.warmup < 0:  # before: taken, and no warm-up without a word (helper 221)
        parser.error(f"--warmup must be >= 0, got {args.warmup}")

    if args._child:
        print(json.dumps(_measure(args._child[0], args.batch_size, args.batches, args.warmup)))
        return 0

    results = {
        "height": HEIGHT, "width": WIDTH, "batch_size": args.batch_size, "batches": args.batches,
        "repeats": args.repeats,
        # The processor's name, memory and versions (before: `platform.processor()`, often empty).
        "cpus": os.cpu_count(), "machine": _common.machine_info(),
        "load_average_before": os.getloadavg()[0], "runs": {"raw": [], "png": []},
    }
    with tempfile.TemporaryDirectory() as folder:
        paths = _write_records(folder, args.samples)
        # Before: one run of each, one after the other, and the docs' median and range were
        # put together by hand (helper 196).
        for repeat in range(args.repeats):
            for encoding in ("raw", "png") if repeat % 2 == 0 else ("png", "raw"):
                command = [sys.executable, os.path.abspath(__file__), "--_child", paths[encoding],
                           "--batch_size", str(args.batch_size), "--batches", str(args.batches),
                           "--warmup", str(args.warmup)]
                child = subprocess.run(command, capture_output=True, text=True)
                if child.returncode != 0:
                    # A line naming the child and how it ended, and exit 1: a child killed for memory
                    # left an empty stderr and the command a bare exit status 247 (helper 303).
                    sys.stderr.write(child.stderr)
                    reason = _common.exit_reason(child.returncode)
                    print(f"measuring child ({encoding}, run {repeat + 1}) "
                          + (reason if child.returncode < 0 else f"failed ({reason})"), file=sys.stderr)
                    return 1
                results["runs"][encoding].append(json.loads(child.stdout.strip().splitlines()[-1]))

    results["load_average_after"] = os.getloadavg()[0]
    summary = {}
    for encoding, runs in results["runs"].items():
        summary[encoding] = {key: _spread([run[key] for run in runs])
                             for key in ("samples_per_s", "cpu_ms_per_sample", "peak_rss_mib")}
        summary[encoding]["record_bytes"] = runs[0]["record_bytes"]
    ratios = [png["samples_per_s"] / raw["samples_per_s"] for raw, png in zip(*results["runs"].values())]
    summary["png_over_raw_rate"] = _spread(ratios)
    results["summary"] = summary
    print(f"training pipeline, fusion, {HEIGHT}x{WIDTH}, batch {args.batch_size}, "
          f"paper augmentation, {args.repeats} run(s) of each, alternated, "
          f"{results['cpus']} CPUs (load average {results['load_average_before']:.1f} before, "
          f"{results['load_average_after']:.1f} after); median (range), the peak RSS the largest of the runs")
    print(f"{'encoding':<10}{'samples/s':>20}{'CPU ms/sample':>20}{'peak RSS (MiB)':>16}{'MB/record':>11}")
    for encoding in ("raw", "png"):
        r = summary[encoding]
        print(f"{encoding:<10}{_text(r['samples_per_s']):>20}{_text(r['cpu_ms_per_sample']):>20}"
              f"{r['peak_rss_mib']['max']:>16.0f}{r['record_bytes'] / args.samples / 1e6:>11.2f}")
    print(f"PNG/raw rate, run by run: {_text(summary['png_over_raw_rate'], 2)}")
    if args.json:
        _common.write_json(args.json, results)
    return 0


def _spread(values) -> dict:
    """The median, smallest and largest of `values`."""
    import statistics

    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _text(spread: dict, digits: int = 1) -> str:
    """`25.4 (20.7-37.9)`, or the value alone for one run."""
    if spread["min"] == spread["max"]:
        return f"{spread['median']:.{digits}f}"
    return f"{spread['median']:.{digits}f} ({spread['min']:.{digits}f}-{spread['max']:.{digits}f})"


if __name__ == "__main__":
    sys.exit(_common.run_main(main))
