"""Benchmark of the training input pipeline: decode + augment + batch at 384x768, fusion.

Writes a few synthetic fusion records (raw and PNG) to a temporary folder, then, for each
encoding in a fresh child process (so that each peak memory figure is its own), pulls batches
from `ssma_tf.data.build_dataset(..., training=True)` with the paper's augmentation and reports
samples per second and the peak resident memory of the process.

    python bench/input_pipeline.py [--samples 32] [--batch_size 8] [--batches 40] [--json out.json]
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=32, help="synthetic records per file")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=40, help="timed batches")
    parser.add_argument("--warmup", type=int, default=5, help="batches before timing starts")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--_child", nargs=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ("samples", "batch_size", "batches"):
        if getattr(args, name) < 1:  # --batches 0 ended in an UnboundLocalError
            parser.error(f"--{name} must be >= 1, got {getattr(args, name)}")

    if args._child:
        print(json.dumps(_measure(args._child[0], args.batch_size, args.batches, args.warmup)))
        return 0

    results = {
        "height": HEIGHT, "width": WIDTH, "batch_size": args.batch_size, "batches": args.batches,
        # The processor's name, memory and versions (before: `platform.processor()`, often empty).
        "cpus": os.cpu_count(), "machine": _common.machine_info(),
        "load_average_before": os.getloadavg()[0], "encodings": {},
    }
    with tempfile.TemporaryDirectory() as folder:
        paths = _write_records(folder, args.samples)
        for encoding, path in paths.items():
            command = [sys.executable, os.path.abspath(__file__), "--_child", path,
                       "--batch_size", str(args.batch_size), "--batches", str(args.batches),
                       "--warmup", str(args.warmup)]
            child = subprocess.run(command, capture_output=True, text=True)
            if child.returncode != 0:
                sys.stderr.write(child.stderr)
                return child.returncode
            results["encodings"][encoding] = json.loads(child.stdout.strip().splitlines()[-1])

    results["load_average_after"] = os.getloadavg()[0]
    print(f"training pipeline, fusion, {HEIGHT}x{WIDTH}, batch {args.batch_size}, "
          "paper augmentation, "
          f"{results['cpus']} CPUs (load average {results['load_average_before']:.1f} before, "
          f"{results['load_average_after']:.1f} after)")
    print(f"{'encoding':<10}{'samples/s':>11}{'CPU ms/sample':>15}{'peak RSS (MiB)':>16}"
          f"{'MB/record':>11}")
    for encoding, r in results["encodings"].items():
        print(f"{encoding:<10}{r['samples_per_s']:>11.1f}{r['cpu_ms_per_sample']:>15.1f}"
              f"{r['peak_rss_mib']:>16.0f}{r['record_bytes'] / args.samples / 1e6:>11.2f}")
    if args.json:
        _common.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(_common.run_main(main))
