"""Expert backbones side by side: parameters, GFLOPs and CPU latency, in one process.

AdapNet++ (unimodal) and SSMA (two experts) on each backbone of `ssma_tf.models.backbones`
(the released AdapNet++ ResNet-50 encoder, and MobileNet v2 at output stride 16 with the eASPP and
the AdapNet++ decoder, as the paper's Section 5.10.1). For each network: its parameters, the FLOPs
of one image (TF profiler on the frozen inference graph, a multiply-add counted as 2, as
`bench/flops.py`), and the latency of the compiled float32 inference function
(`ssma_tf.inference.compiled.compiled_predict`: batch norms folded, sub-pixel upsampling), median
of `--runs` calls after `--warmup`, batch 1. All networks run in this one process, one after the
other, so they share the machine's state; the figures are for comparing them with each other.

    python bench/backbones.py [--size 384x768] [--runs 10] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _common  # noqa: E402

NUM_CLASSES = 12  # Cityscapes as released


def profiler_flops(model, inputs_spec) -> float:
    """FLOPs of one inference call at a static shape (TF profiler on the frozen graph)."""
    import tensorflow as tf
    from tensorflow.python.framework import ops as tf_ops
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(inputs_spec)
    graph = convert_variables_to_constants_v2(concrete).graph
    total = 0.0
    for op in graph.get_operations():
        try:
            stats = tf_ops.get_stats_for_node_def(graph, op.node_def, "flops")
        except ValueError:  # no FLOPs registered for this op type
            continue
        total += float(stats.value or 0)
    return total


def measure(name: str, backbone: str, height: int, width: int, warmup: int, runs: int) -> dict:
    """Parameters, GFLOPs and latency of one network."""
    import numpy as np
    import tensorflow as tf

    from ssma_tf.inference.compiled import compiled_predict
    from ssma_tf.models import SSMA, AdapNetPP

    fusion = name == "ssma"
    model = (SSMA(NUM_CLASSES, backbone=backbone) if fusion
             else AdapNetPP(NUM_CLASSES, aux_heads=False, backbone=backbone))
    spec = tf.TensorSpec((1, height, width, 3), tf.float32)
    flops = profiler_flops(model, [spec, spec] if fusion else spec)
    rng = np.random.default_rng(0)
    image = tf.constant(rng.uniform(0, 255, (1, height, width, 3)).astype("float32"))
    inputs = [image, image] if fusion else image
    result = {"network": name, "backbone": backbone, "params": int(model.count_params()),
              "gflops": round(flops / 1e9, 2), "latency_ms": None, "fps": None}
    if runs < 1:  # parameters and FLOPs only
        return result
    predict = compiled_predict(model)
    for _ in range(warmup):
        predict(inputs).numpy()
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        predict(inputs).numpy()
        seconds.append(time.perf_counter() - start)
    median = statistics.median(seconds)
    result.update(latency_ms=round(1000 * median, 1), fps=round(1.0 / median, 2),
                  latency_min_ms=round(1000 * min(seconds), 1))
    return result


def main(argv=None) -> int:
    """Measures every network and prints (and optionally writes) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="384x768", help="HEIGHTxWIDTH of the input")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first")
    parser.add_argument("--runs", type=int, default=10, help="timed calls (0: parameters and GFLOPs only)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    height, width = (int(v) for v in args.size.lower().split("x"))
    info = _common.machine_info()
    results = [measure(name, backbone, height, width, args.warmup, args.runs)
               for backbone in ("adapnet_pp", "mobilenet_v2") for name in ("adapnet_pp", "ssma")]
    print(f"\n{_common.describe_machine(info)}; input {height}x{width}, batch 1, float32\n")
    print("| network | backbone | parameters | GFLOPs | latency (median) | frames/s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        network = "SSMA (2 experts)" if r["network"] == "ssma" else "unimodal expert"
        latency = "–" if r["latency_ms"] is None else f"{r['latency_ms']:.0f} ms"
        fps = "–" if r["fps"] is None else f"{r['fps']:.2f}"
        print(f"| {network} | {r['backbone']} | {r['params'] / 1e6:.2f} M | {r['gflops']:.1f} | {latency} | {fps} |")
    if args.json:
        _common.write_json(args.json, {"machine": info, "size": [height, width], "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
