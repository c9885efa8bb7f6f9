"""Time and peak host memory of one training step of AdapNet++ and SSMA at batch 2, 384×768.

One step is what `ssma_tf.training` compiles: the forward pass in training mode with the
auxiliary heads, the released loss (`ssma_tf.losses.total_loss`: weighted cross-entropy plus
0.6/0.5 × the auxiliary terms), the backward pass and an Adam update, all in one `tf.function`
(`--xla` also compiles the forward-backward part with XLA, as `xla: true` in a run config does).

Each configuration runs in its own child process, so its peak resident memory (the RSS high-water
mark from `getrusage`, which includes TensorFlow's own footprint and the model's weights and
optimizer slots) is its own. The step time is the median of `--steps` steps after `--warmup`.

Configurations:
    adapnet_pp          AdapNet++ with its auxiliary heads (every released unimodal run).
    ssma                SSMA as in stage 3 of the paper: experts frozen (not trainable, BN in
                        inference mode), fusion and decoder trained, auxiliary heads on.
    ssma_stage2         SSMA with trainable experts (stage 2), the heaviest step.

    python bench/train_step.py [--models adapnet_pp,ssma,ssma_stage2] [--xla] [--subpixel] [--json PATH]
    python bench/train_step.py --batch 8 --size 48x96    # the shape `make demo` trains at
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _common  # noqa: E402

CONFIGS = ("adapnet_pp", "ssma", "ssma_stage2")
NUM_CLASSES = 12
BATCH, HEIGHT, WIDTH = 2, 384, 768
MEMORY_LIMIT_GIB = 8.0


def child(spec: dict) -> dict:
    """Builds one configuration, runs warm-up and timed steps, reports time and peak RSS."""
    import numpy as np
    import tensorflow as tf

    import keras
    from ssma_tf.losses import total_loss
    from ssma_tf.models import SSMA, AdapNetPP

    name = spec["config"]
    keras.utils.set_random_seed(0)
    if name == "adapnet_pp":
        model = AdapNetPP(NUM_CLASSES, aux_heads=True)
    else:
        model = SSMA(NUM_CLASSES, aux_heads=True, freeze_experts=name == "ssma")
    if spec.get("subpixel"):
        from ssma_tf.inference.rewrites import use_subpixel_upsampling

        use_subpixel_upsampling(model)
    optimizer = keras.optimizers.Adam(1e-4, epsilon=1e-8)
    optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(0)
    count = 1 if name == "adapnet_pp" else 2
    batch, height, width = spec.get("batch", BATCH), spec.get("height", HEIGHT), spec.get("width", WIDTH)
    images = [tf.constant(rng.uniform(0, 255, (batch, height, width, 3)).astype(np.float32)) for _ in range(count)]
    inputs = images[0] if count == 1 else images
    labels = tf.constant(rng.integers(0, NUM_CLASSES, (batch, height, width)).astype(np.int32))

    def forward_backward(inputs, labels):
        with tf.GradientTape() as tape:
            outputs = model(inputs, training=True, return_all=True)
            loss, _ = total_loss(labels, outputs)
        return loss, tape.gradient(loss, model.trainable_variables)

    if spec.get("xla"):
        forward_backward = tf.function(forward_backward, jit_compile=True)

    @tf.function
    def step(inputs, labels):
        loss, gradients = forward_backward(inputs, labels)
        optimizer.apply(gradients, model.trainable_variables)
        return loss

    start = time.perf_counter()
    losses = [float(step(inputs, labels))]
    first = time.perf_counter() - start
    for _ in range(spec["warmup"] - 1):
        losses.append(float(step(inputs, labels)))
    seconds = []
    for _ in range(spec["steps"]):
        start = time.perf_counter()
        losses.append(float(step(inputs, labels)))
        seconds.append(time.perf_counter() - start)
    summary = _common.summarize(seconds)
    return {
        "config": name, "xla": bool(spec.get("xla")), "subpixel": bool(spec.get("subpixel")), "batch": batch, "height": height, "width": width,
        "step": summary, "first_step_s": first,
        "images_per_s": batch / summary["median"],
        "trainable_parameters": int(sum(np.prod(v.shape) for v in model.trainable_variables)),
        "loss_first_last": [losses[0], losses[-1]],
        "traces": step.experimental_get_tracing_count(),
        "peak_rss_mib": _common.peak_rss_mib(),
        "tensorflow": tf.__version__, "keras": keras.__version__,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(CONFIGS), help=f"comma-separated, from {', '.join(CONFIGS)}")
    parser.add_argument("--steps", type=int, default=5, help="timed steps")
    parser.add_argument("--warmup", type=int, default=2, help="steps before timing (the first traces)")
    parser.add_argument("--xla", action="store_true", help="compile forward and backward with XLA")
    parser.add_argument("--subpixel", action="store_true",
                        help="decoder upsamplings in sub-pixel form (ssma_tf.inference.rewrites.use_subpixel_upsampling)")
    parser.add_argument("--batch", type=int, default=BATCH, help=f"images per step (default {BATCH})")
    parser.add_argument("--size", default=f"{HEIGHT}x{WIDTH}", help=f"HEIGHTxWIDTH, multiples of 16 (default {HEIGHT}x{WIDTH})")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _common.emit(child(json.loads(args.child)))
        return 0

    try:
        height, width = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--size: expected HEIGHTxWIDTH, got {args.size!r}") from None
    if height % 16 or width % 16 or height <= 0 or width <= 0 or args.batch <= 0:
        raise SystemExit(f"--size must be positive multiples of 16 and --batch positive, got {args.size}, {args.batch}")
    configs = [c.strip() for c in args.models.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise SystemExit(f"--models: unknown {unknown}; choose from {', '.join(CONFIGS)}")
    info = _common.machine_info()
    results = []
    for config in configs:
        print(f"... {config}", flush=True)
        spec = {"config": config, "steps": args.steps, "warmup": max(1, args.warmup), "xla": args.xla,
                "subpixel": args.subpixel, "batch": args.batch, "height": height, "width": width}
        result = _common.run_child(os.path.abspath(__file__), spec)
        result.setdefault("config", config)
        results.append(result)
    info["load_average_after"] = [round(v, 2) for v in os.getloadavg()]

    print()
    print(f"Machine: {_common.describe_machine(info)}")
    print(f"One training step (forward with aux heads, total_loss, backward, Adam), batch {args.batch}, "
          f"{height}x{width}{', XLA' if args.xla else ''}{', sub-pixel upsampling' if args.subpixel else ''}")
    header = f"{'config':<14}{'median s':>10}{'p90 s':>9}{'img/s':>8}{'first s':>9}{'peak RSS GiB':>14}{'trainable':>12}"
    print(header)
    print("-" * len(header))
    fits = True
    for r in results:
        if "error" in r:
            print(f"{r['config']:<14}error: {r['error'][:200]}")
            fits = False
            continue
        peak = r["peak_rss_mib"] / 1024
        fits &= peak <= MEMORY_LIMIT_GIB
        print(f"{r['config']:<14}{r['step']['median']:>10.2f}{r['step']['p90']:>9.2f}{r['images_per_s']:>8.2f}"
              f"{r['first_step_s']:>9.1f}{peak:>14.2f}{r['trainable_parameters'] / 1e6:>11.1f}M")
    print(f"All peaks within {MEMORY_LIMIT_GIB:.0f} GiB: {'yes' if fits else 'NO'}")
    if args.json:
        _common.write_json(args.json, {"machine": info, "args": vars(args), "results": results})
    return 0 if fits else 1


if __name__ == "__main__":
    sys.exit(main())
