"""FLOPs per image of AdapNet++ and SSMA, computed two independent ways.

1. TensorFlow (default, `ssma_tf.inference.flops`): the inference call is traced at a static
   input shape, and the TF profiler's `flops` statistic of every op the outputs depend on is summed
   (`tf.compat.v1.profiler`'s float_ops: a convolution counts 2·k_h·k_w·C_in FLOPs per output
   element, a transposed convolution the same per *input* element, element-wise ops that have a
   registered statistic one per element, ReLU and resizing, which have none, nothing). The table
   splits the total by op type and by part of the network.
2. `--backend jax`: XLA's cost analysis of the jitted inference function on Keras' JAX backend
   (the compiled HLO after fusion; it also counts element-wise work inside fusions).

A multiply-add is 2 FLOPs in both. Only inference (`training=False`, no auxiliary heads) counts.

    python bench/flops.py [--models adapnet_pp,ssma] [--size 384x768] [--backend jax] [--json PATH]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _common  # noqa: E402

NUM_CLASSES = 12
# Name-scope fragments that attribute an op to a part of the network (first match wins).
PARTS = (("easpp", "eASPP"), ("ssma_latent", "SSMA fusion"), ("ssma_skip", "SSMA fusion"),
         ("encoder", "encoder (ResNet-50 + skips)"))


def _part(op_name: str) -> str:
    for fragment, part in PARTS:
        if fragment in op_name:
            return part
    return "decoder"


def tf_profiler_flops(model_name: str, height: int, width: int) -> dict:
    """FLOPs of one image with the TF profiler's statistics (`ssma_tf.inference.flops`).

    Returns:
        {"total", "by_op": {op type: flops}, "by_part": {part: flops}, "method"}.
    """
    from ssma_tf.inference.flops import op_flops
    from ssma_tf.models import SSMA, AdapNetPP

    model = AdapNetPP(NUM_CLASSES, aux_heads=False) if model_name == "adapnet_pp" else SSMA(NUM_CLASSES)
    by_op, by_part = collections.Counter(), collections.Counter()
    for op_type, op_name, value in op_flops(model, height, width):
        by_op[op_type] += value
        by_part[_part(op_name)] += value
    return {
        "total": float(sum(by_op.values())),
        "by_op": dict(by_op.most_common()),
        "by_part": dict(by_part.most_common()),
        "method": "TF profiler float_ops of the ops the inference outputs depend on",
    }


def xla_cost_flops(model_name: str, height: int, width: int) -> dict:
    """FLOPs of one image from XLA's cost analysis on Keras' JAX backend (no TensorFlow)."""
    os.environ["KERAS_BACKEND"] = "jax"
    import jax
    import numpy as np

    from ssma_tf.models import SSMA, AdapNetPP

    model = AdapNetPP(NUM_CLASSES, aux_heads=False) if model_name == "adapnet_pp" else SSMA(NUM_CLASSES)
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    def predict(trainable, non_trainable, inputs):
        return model.stateless_call(trainable, non_trainable, inputs, training=False)[0]

    shape = jax.ShapeDtypeStruct((1, height, width, 3), np.float32)
    compiled = jax.jit(predict).lower(trainable, non_trainable, [shape, shape] if model_name == "ssma" else shape).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return {"total": float(cost["flops"]), "method": "XLA cost analysis (Keras on JAX)",
            "tensorflow_imported": "tensorflow" in sys.modules}


def matmul_rate(threads: int, size: int = 4096, runs: int = 5) -> dict:
    """Best float32 GFLOP/s of a size×size NumPy (OpenBLAS) matrix product.

    A practical ceiling for this CPU: a tuned SGEMM runs its FMA units about as close to their
    peak as anything does. The thread count comes from OPENBLAS_NUM_THREADS, which the parent
    sets before this child imports NumPy.
    """
    import time

    import numpy as np

    a = np.random.default_rng(0).random((size, size), dtype=np.float32)
    a @ a
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return {"threads": threads, "gflops_per_s": 2 * size**3 / best / 1e9, "method": "numpy (OpenBLAS) float32 matmul"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="adapnet_pp,ssma")
    parser.add_argument("--size", default="384x768", help="HEIGHTxWIDTH")
    parser.add_argument("--backend", default="tf", choices=("tf", "jax"))
    parser.add_argument("--peak", action="store_true",
                        help="also measure the best NumPy matmul GFLOP/s with 1 thread and with all cores")
    parser.add_argument("--json", type=_common.json_path, help="also write the results to this JSON file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    height, width = _common.parse_size(parser, args.size)
    if args.child:
        spec = json.loads(args.child)
        if "threads" in spec:
            _common.emit(matmul_rate(spec["threads"]))
            return 0
        count = xla_cost_flops if spec["backend"] == "jax" else tf_profiler_flops
        _common.emit(count(spec["model"], spec["height"], spec["width"]))
        return 0

    _common.jax_or_exit(parser, args.backend)
    env = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"} if args.backend == "jax" else {}
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in models if m not in ("adapnet_pp", "ssma")]
    if unknown or not models:
        # Before: any other name was counted as SSMA under that name.
        parser.error(f"--models: unknown model {unknown[0]!r} (adapnet_pp, ssma)" if unknown else "--models: none given")
    results = {}
    for model in models:
        spec = {"model": model, "height": height, "width": width, "backend": args.backend}
        results[model] = _common.run_child(os.path.abspath(__file__), spec, env)
    print(f"FLOPs per image at {height}x{width} ({args.backend}); 1 multiply-add = 2 FLOPs")
    for model, result in results.items():
        if "error" in result:
            print(f"{model}: error: {result['error']}")
            continue
        print(f"{model}: {result['total'] / 1e9:.2f} GFLOP ({result['method']})")
        for key in ("by_part", "by_op"):
            for name, value in result.get(key, {}).items():
                if value >= 1e-3 * result["total"]:
                    print(f"    {name:<32}{value / 1e9:9.2f} GFLOP  {100 * value / result['total']:5.1f} %")
    peak = {}
    if args.peak:
        for threads in sorted({1, os.cpu_count() or 1}):
            env = {name: str(threads) for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}
            peak[threads] = _common.run_child(os.path.abspath(__file__), {"threads": threads}, env)
            if "error" not in peak[threads]:
                print(f"NumPy float32 matmul 4096x4096, {threads} thread(s): "
                      f"{peak[threads]['gflops_per_s']:.0f} GFLOP/s (best of 5)")
    if args.json:
        _common.write_json(args.json, {"size": [height, width], "backend": args.backend, "results": results,
                                       "matmul_peak": peak, "machine": _common.machine_info()})
    return 0 if all("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(_common.run_main(main))
