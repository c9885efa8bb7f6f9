"""Inference latency and throughput of AdapNet++ and SSMA, beside the original TF1 graph.

For each model (12 classes) and each way of running it ("mode"), a fresh child process builds the
model with seeded random weights (batch-norm statistics randomised so every BN does real work),
warms up, and times:

- latency at batch 1 and 384×768 (median and 90th percentile over `--runs` runs),
- throughput at batch 8 and 384×768 (images per second, from the median batch time),
- latency at batch 1 at 192×384 and 768×1536 (for the modes in `--size-modes`).

Modes (TensorFlow backend):
    eager        `model(x, training=False)`, Keras eager (auxiliary heads included).
    function     `tf.function` of the same call, static input shape.
    xla          `tf.function(jit_compile=True)`.
    folded       `tf.function` of a copy with batch norms folded into convolutions.
    default      `ssma_tf.fast.compiled_predict(model)`: the library's compiled inference function
                 (what prediction and evaluation use; see docs/benchmarks.md).
    predictor    `ssma_tf.inference.Predictor(...).predict(uint8 array)`: the prediction API,
                 host arrays in and out (includes the resize-to-model-size and argmax).
    saved_model  the SavedModel of `ssma_tf.export.export_saved_model` (uint8 serving signature),
                 loaded with `tf.saved_model.load`; `saved_model_folded` with batch norms folded.
    bfloat16     the model built with the `mixed_bfloat16` policy under `tf.function`.
    tf1          the released graph rebuilt with TF1 ops in a `tf.compat.v1.Session`
                 (`bench/tf1_graph.py`), loaded with the same weights: the baseline to beat.
    interleaved  `tf1` and `default` alternately in one process (batch 1, 384×768): their ratio
                 is the figure least affected by other load on a shared machine.
With `--backend jax` (Keras on JAX; TensorFlow is never imported): mode `jax`, a `jax.jit` of the
model's stateless call, and `jax_subpixel`, the same on `ssma_tf.fast.optimize_for_inference(model,
fold_batch_norm=False)` (the sub-pixel upsampling; folding needs TensorFlow).

FLOPs per image (TF profiler on the frozen graph, or XLA's cost analysis on JAX; see
bench/flops.py) are printed beside the times.

    python bench/inference.py                      # everything, ~30-40 min on 2 cores
    python bench/inference.py --quick              # fewer runs and modes, a few minutes
    python bench/inference.py --models adapnet_pp --modes default,tf1 --json out.json
    python bench/inference.py --backend jax
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _common  # noqa: E402  (bench/ is not a package; see the sys.path line above)

MODELS = ("adapnet_pp", "ssma")
NUM_CLASSES = 12
SIZE = (384, 768)
SIZES = {"small": (192, 384), "large": (768, 1536)}
THROUGHPUT_BATCH = 8
TF_MODES = ("interleaved", "tf1", "eager", "function", "xla", "folded", "default", "predictor",
            "saved_model", "saved_model_folded", "bfloat16")
QUICK_MODES = ("interleaved", "tf1", "function", "xla", "default")
JAX_MODES = ("jax", "jax_subpixel")
SIZE_MODES = ("tf1", "function", "default")
# Figures this benchmark is compared with (issue 6 and Valada et al. 2019, Table 9).
TF1_REFERENCE_S = {"adapnet_pp": 0.64, "ssma": 0.92}
PAPER_TITANX_MS = {"adapnet_pp": 72.77, "ssma": 101.95}


# ---------------------------------------------------------------------------------------------
# Child side: build, warm up, time. Only this part imports a framework.


def randomise_batch_norms(model, seed: int = 1) -> None:
    """Random BN statistics with the input BN set to image statistics, so activations stay O(1).

    With the initial statistics (mean 0, variance 1) the un-normalised 0..255 input would grow
    through fifty layers and could reach infinities, whose arithmetic is not representative.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    for variable in model.weights:
        path = variable.path
        if "moving_variance" in path or "gamma" in path:
            variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
        elif "moving_mean" in path or "beta" in path:
            variable.assign(rng.normal(0.0, 0.2, variable.shape).astype("float32"))
    # Logits of a few units, so that softmax differences between modes mean something.
    model.get_layer("up3").bn.gamma.assign(np.full(model.num_classes, 0.1, "float32"))
    for encoder in model.encoders:
        bn = encoder.get_layer("input_bn")
        bn.moving_mean.assign(np.full(3, 127.0, "float32"))
        bn.moving_variance.assign(np.full(3, 75.0**2, "float32"))


def build_model(name: str, dtype=None):
    """The model with seeded weights (the same in every child of one backend)."""
    import keras

    from ssma_tf.models import SSMA, AdapNetPP

    if keras.backend.backend() == "tensorflow":
        # (On JAX this would import TensorFlow just to seed it; the JAX child needs no fixed seed.)
        keras.utils.set_random_seed(0)
    kwargs = {} if dtype is None else {"dtype": dtype}
    model = AdapNetPP(NUM_CLASSES, **kwargs) if name == "adapnet_pp" else SSMA(NUM_CLASSES, **kwargs)
    randomise_batch_norms(model)
    return model


def make_inputs(name: str, batch: int, height: int, width: int, dtype="float32"):
    """Seeded random images with whole values 0..255 (so the uint8 modes see the same values):
    one array for AdapNet++, two for SSMA."""
    import numpy as np

    rng = np.random.default_rng(batch * 100003 + height)
    count = 2 if name == "ssma" else 1
    return [rng.integers(0, 256, (batch, height, width, 3)).astype(dtype) for _ in range(count)]


def _tf_runner(mode: str, name: str, model, workdir: str):
    """Returns `prepare(arrays) -> run()`: `run` executes one prediction and returns its softmax.

    `prepare` turns host arrays into what the mode takes (tensors, uint8) outside the timed call,
    except for `predictor`, whose timed call includes its host-side work by design.
    """
    import numpy as np
    import tensorflow as tf

    fusion = name == "ssma"

    def network_input(tensors):
        return list(tensors) if fusion else tensors[0]

    if mode == "eager":
        def prepare(arrays):
            tensors = [tf.constant(a) for a in arrays]
            return lambda: model(network_input(tensors), training=False)
        return prepare

    if mode in ("function", "xla", "bfloat16"):
        function = tf.function(lambda x: model(x, training=False), jit_compile=mode == "xla")

        def prepare(arrays):
            tensors = [tf.constant(a) for a in arrays]
            return lambda: function(network_input(tensors))
        prepare.function = function
        return prepare

    if mode == "folded":
        from ssma_tf.export import fold_batch_norms

        folded, _ = fold_batch_norms(model)
        function = tf.function(lambda x: folded(x, training=False))

        def prepare(arrays):
            tensors = [tf.constant(a) for a in arrays]
            return lambda: function(network_input(tensors))
        prepare.function = function
        return prepare

    if mode == "default":
        from ssma_tf.fast import compiled_predict

        function = compiled_predict(model)

        def prepare(arrays):
            tensors = [tf.constant(a) for a in arrays]
            return lambda: function(network_input(tensors))
        prepare.function = function
        return prepare

    if mode == "predictor":
        from ssma_tf.inference import Predictor

        predictor = Predictor(model, channel_order="bgr")

        def prepare(arrays):
            images = [a.astype(np.uint8) for a in arrays]
            return lambda: predictor.predict(*images).probabilities
        return prepare

    if mode in ("saved_model", "saved_model_folded"):
        path = os.path.join(workdir, mode)
        try:
            from ssma_tf.export import export_saved_model
        except ImportError:  # before the export module existed: a plain SavedModel of the call
            export_saved_model = None
        if export_saved_model is not None:
            export_saved_model(model, path, fold_batch_norm=mode == "saved_model_folded")
            loaded = tf.saved_model.load(path)
            serve = loaded.signatures["serving_default"]
            keys = ["modality1", "modality2"] if fusion else ["image"]

            def prepare(arrays):
                tensors = {k: tf.constant(a.astype(np.uint8)) for k, a in zip(keys, arrays)}
                return lambda: serve(**tensors)["probabilities"]
            return prepare
        spec = [tf.TensorSpec([None, None, None, 3], tf.float32)] * (2 if fusion else 1)
        module = tf.Module()
        module.model = model
        module.serve = tf.function(lambda *x: model(network_input(x), training=False), input_signature=spec)
        tf.saved_model.save(module, path)
        loaded = tf.saved_model.load(path)

        def prepare(arrays):
            tensors = [tf.constant(a) for a in arrays]
            return lambda: loaded.serve(*tensors)
        return prepare

    raise ValueError(f"unknown mode {mode!r}")


def _tf1_runner(name: str, model):
    """`prepare` for the TF1-graph baseline; the graph gets the Keras model's weights.

    The graph is built per input size (its placeholders have a static height and width, as in
    the released evaluation script) and checked against the Keras model on the same input.
    """
    import numpy as np
    import tensorflow as tf

    import tf1_graph
    from ssma_tf.checkpoints.tf1_names import tf1_variable_map

    values = {n: v.numpy() for n, v in tf1_variable_map(model).items()}
    checks = []

    def prepare(arrays):
        height, width = arrays[0].shape[1:3]
        graph, inputs, softmax, _ = tf1_graph.build_graph(name, NUM_CLASSES, height, width)
        session = tf1_graph.session_for(graph)
        with graph.as_default():
            for variable in tf.compat.v1.global_variables():
                variable.load(values[variable.op.name], session)
        feed = dict(zip(inputs, arrays))
        if not checks:  # once: the baseline computes what the port computes
            port = model(arrays if name == "ssma" else arrays[0], training=False)
            checks.append(float(np.max(np.abs(session.run(softmax, feed) - np.asarray(port)))))
        return lambda: session.run(softmax, feed)

    prepare.checks = checks
    return prepare


def _time(run, warmup: int, runs: int, block) -> tuple[dict, float]:
    """Times `run` after `warmup` calls; returns (summary, seconds of the first call)."""
    start = time.perf_counter()
    block(run())
    first = time.perf_counter() - start
    for _ in range(max(0, warmup - 1)):
        block(run())
    seconds = []
    for _ in range(runs):
        start = time.perf_counter()
        block(run())
        seconds.append(time.perf_counter() - start)
    return _common.summarize(seconds), first


def _set_threads(spec: dict) -> None:
    """Applies --intra/--inter before TensorFlow creates its thread pools."""
    import tensorflow as tf

    if spec.get("intra"):
        tf.config.threading.set_intra_op_parallelism_threads(spec["intra"])
    if spec.get("inter"):
        tf.config.threading.set_inter_op_parallelism_threads(spec["inter"])


def child_tf(spec: dict) -> dict:
    """Measures one (model, mode) with TensorFlow."""
    import numpy as np
    import tensorflow as tf

    _set_threads(spec)
    import keras

    name, mode = spec["model"], spec["mode"]
    model = build_model(name, "mixed_bfloat16" if mode == "bfloat16" else None)
    result = {"model": name, "mode": mode, "tensorflow": tf.__version__, "keras": keras.__version__}
    from tensorflow.python.util import _pywrap_util_port

    result["onednn"] = bool(_pywrap_util_port.IsMklEnabled())

    def block(value):
        # Converting to a host array waits for the computation (and is what a user does).
        return np.asarray(value)

    with tempfile.TemporaryDirectory() as workdir:
        prepare = _tf1_runner(name, model) if mode == "tf1" else _tf_runner(mode, name, model, workdir)
        if mode not in ("tf1", "eager"):
            # The port's output on the plain call, to report how far each mode is from it.
            reference_input = make_inputs(name, 1, 64, 128)
            reference = model
            if mode == "bfloat16":  # against the float32 model with the same weights
                reference = build_model(name)
                reference.set_weights(model.get_weights())
            plain = np.asarray(reference(reference_input if name == "ssma" else reference_input[0], training=False))
            got = np.asarray(prepare(reference_input)())
            result["max_abs_diff"] = float(np.max(np.abs(got.astype(np.float32) - plain)))
        jobs = [("latency", 1, SIZE, spec["warmup"], spec["runs"])]
        if spec.get("throughput"):
            jobs.append(("throughput", THROUGHPUT_BATCH, SIZE, 1, spec["throughput_runs"]))
        for key in spec.get("sizes", []):
            jobs.append((key, 1, SIZES[key], spec["warmup"], spec["size_runs"]))
        for key, batch, (height, width), warmup, runs in jobs:
            run = prepare(make_inputs(name, batch, height, width))
            summary, first = _time(run, warmup, runs, block)
            summary.update(batch=batch, height=height, width=width, first_call_s=first)
            if batch > 1:
                summary["images_per_s"] = batch / summary["median"]
            result[key] = summary
        if mode == "tf1":
            result["max_abs_diff"] = prepare.checks[0]
        function = getattr(prepare, "function", None)
        if function is not None:
            # One trace per distinct input shape, none on repeated calls.
            result["traces"] = function.experimental_get_tracing_count()
            result["shapes"] = len(jobs) + ("max_abs_diff" in result)
    result["peak_rss_mib"] = _common.peak_rss_mib()
    return result


def child_interleaved(spec: dict) -> dict:
    """The TF1 baseline and the default path in one process, run alternately at batch 1.

    The machine's other load then weighs on both alike, which makes their ratio the most robust
    figure of this benchmark on a shared machine.
    """
    import numpy as np
    import tensorflow as tf

    from ssma_tf.fast import compiled_predict

    _set_threads(spec)
    name = spec["model"]
    model = build_model(name)
    arrays = make_inputs(name, 1, *SIZE)
    baseline = _tf1_runner(name, model)(arrays)
    function = compiled_predict(model)
    tensors = [tf.constant(a) for a in arrays]
    runs = {"tf1": baseline, "default": lambda: function(tensors if name == "ssma" else tensors[0])}
    seconds = {key: [] for key in runs}
    for _ in range(spec["warmup"]):
        for run in runs.values():
            np.asarray(run())
    for _ in range(spec["runs"]):
        for key, run in runs.items():
            start = time.perf_counter()
            np.asarray(run())
            seconds[key].append(time.perf_counter() - start)
    result = {"model": name, "mode": "interleaved"}
    for key, values in seconds.items():
        result[key] = _common.summarize(values)
    result["speedup_median"] = result["tf1"]["median"] / result["default"]["median"]
    result["speedup_per_pair"] = float(np.median(np.array(seconds["tf1"]) / np.array(seconds["default"])))
    result["peak_rss_mib"] = _common.peak_rss_mib()
    return result


def child_jax(spec: dict) -> dict:
    """Measures the model on Keras' JAX backend with a jitted stateless call; never imports TF."""
    os.environ["KERAS_BACKEND"] = "jax"
    import jax
    import keras
    import numpy as np

    name = spec["model"]
    model = build_model(name)
    if spec["mode"] == "jax_subpixel":
        from ssma_tf.fast import optimize_for_inference

        model = optimize_for_inference(model, fold_batch_norm=False)
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]

    @jax.jit
    def predict(trainable, non_trainable, inputs):
        outputs, _ = model.stateless_call(trainable, non_trainable, inputs, training=False)
        return outputs

    def prepare(arrays):
        inputs = [jax.device_put(a) for a in arrays]
        inputs = inputs if name == "ssma" else inputs[0]
        return lambda: predict(trainable, non_trainable, inputs)

    result = {"model": name, "mode": spec["mode"], "jax": jax.__version__, "keras": keras.__version__,
              "device": str(jax.devices()[0])}
    reference_input = make_inputs(name, 1, 64, 128)
    plain = np.asarray(build_model(name)(reference_input if name == "ssma" else reference_input[0], training=False))
    result["max_abs_diff"] = float(np.max(np.abs(np.asarray(prepare(reference_input)()) - plain)))
    jobs = [("latency", 1, SIZE, spec["warmup"], spec["runs"])]
    if spec.get("throughput"):
        jobs.append(("throughput", THROUGHPUT_BATCH, SIZE, 1, spec["throughput_runs"]))
    for key in spec.get("sizes", []):
        jobs.append((key, 1, SIZES[key], spec["warmup"], spec["size_runs"]))
    for key, batch, (height, width), warmup, runs in jobs:
        run = prepare(make_inputs(name, batch, height, width))
        summary, first = _time(run, warmup, runs, lambda value: value.block_until_ready())
        summary.update(batch=batch, height=height, width=width, first_call_s=first)
        if batch > 1:
            summary["images_per_s"] = batch / summary["median"]
        result[key] = summary
    if spec.get("flops"):
        shape = jax.ShapeDtypeStruct((1, *SIZE, 3), np.float32)
        lowered = predict.lower(trainable, non_trainable, [shape, shape] if name == "ssma" else shape)
        cost = lowered.compile().cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        result["flops"] = {"total": float(cost.get("flops", 0.0)), "method": "XLA cost analysis (jax)"}
    result["tensorflow_imported"] = "tensorflow" in sys.modules
    result["peak_rss_mib"] = _common.peak_rss_mib()
    return result


def child_flops(spec: dict) -> dict:
    """FLOPs per image at 384×768 with the TF profiler (see bench/flops.py)."""
    import flops

    return {"model": spec["model"], "mode": "flops", "flops": flops.tf_profiler_flops(spec["model"], *SIZE)}


# ---------------------------------------------------------------------------------------------
# Parent side: plan, run children, print.


def _plan(args) -> list:
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for model in models:
        if model not in MODELS:
            raise SystemExit(f"--models: unknown model {model!r}; choose from {', '.join(MODELS)}")
    known = JAX_MODES if args.backend == "jax" else TF_MODES
    if args.modes:
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        unknown = [m for m in modes if m not in known]
        if unknown:
            raise SystemExit(f"--modes: unknown {unknown} for --backend {args.backend}; choose from {', '.join(known)}")
    elif args.backend == "jax":
        modes = list(JAX_MODES)
    else:
        modes = list(QUICK_MODES if args.quick else TF_MODES)
    size_modes = set(SIZE_MODES) | set(JAX_MODES)
    jobs = []
    for model in models:
        if args.backend == "tf":
            jobs.append({"model": model, "mode": "flops"})
        for mode in modes:
            jobs.append({
                "model": model, "mode": mode,
                "warmup": args.warmup, "runs": args.runs,
                # bfloat16 is emulated on CPUs without bf16 instructions: batch 8 would take minutes.
                "throughput": (not args.quick and mode != "bfloat16") or mode in ("default", "tf1", "jax_subpixel"),
                "throughput_runs": args.throughput_runs,
                "sizes": [] if (args.quick or mode not in size_modes) else list(SIZES),
                "size_runs": args.size_runs,
                "intra": args.intra, "inter": args.inter,
                "flops": mode == "jax",
            })
    return jobs


def _print_table(results: list, info: dict) -> None:
    print()
    print(f"Machine: {_common.describe_machine(info)}")
    print(f"oneDNN: {info.get('onednn_in_children', '?')}; batch-1 latency at {SIZE[0]}x{SIZE[1]} "
          f"(median, p90 s), batch-{THROUGHPUT_BATCH} throughput (img/s), other sizes batch-1 median s")
    flops = {r["model"]: r["flops"]["total"] for r in results if r.get("flops")}
    header = (f"{'model':<11}{'mode':<20}{'median':>8}{'p90':>8}{'img/s@8':>9}{'192x384':>9}"
              f"{'768x1536':>10}{'GFLOP/s':>9}{'vs TF1':>8}{'max|dp|':>10}{'RSS MiB':>9}")
    print(header)
    print("-" * len(header))
    for r in results:
        if r.get("mode") in ("flops", "interleaved"):
            continue
        label = r.get("mode", "?")
        if "error" in r:
            print(f"{r.get('model', '?'):<11}{label:<20}  error: {r['error'][:150]}")
            continue
        lat = r.get("latency", {})
        tf1 = next((x for x in results if x.get("model") == r["model"] and x.get("mode") == "tf1"
                    and "latency" in x), None)
        speedup = f"{tf1['latency']['median'] / lat['median']:.2f}x" if tf1 and lat else "-"
        rate = f"{flops[r['model']] / 1e9 / lat['median']:.0f}" if r["model"] in flops and lat else "-"
        print(
            f"{r['model']:<11}{label:<20}{_common.format_seconds(lat.get('median')):>8}"
            f"{_common.format_seconds(lat.get('p90')):>8}"
            f"{r['throughput']['images_per_s'] if 'throughput' in r else float('nan'):>9.2f}"
            f"{_common.format_seconds(r.get('small', {}).get('median')):>9}"
            f"{_common.format_seconds(r.get('large', {}).get('median')):>10}"
            f"{rate:>9}{speedup:>8}"
            f"{r['max_abs_diff'] if 'max_abs_diff' in r else float('nan'):>10.1e}"
            f"{r.get('peak_rss_mib', 0):>9.0f}"
        )
    print()
    for r in results:
        if r.get("mode") == "interleaved" and "error" not in r:
            print(f"{r['model']}, TF1 graph and default path run alternately in one process, batch 1: "
                  f"TF1 {r['tf1']['median']:.3f} s, default {r['default']['median']:.3f} s (medians of "
                  f"{r['default']['runs']}); default is {r['speedup_per_pair']:.2f}x faster (median of per-pair ratios)")
    for model, total in flops.items():
        print(f"FLOPs per image at {SIZE[0]}x{SIZE[1]}, {model}: {total / 1e9:.1f} GFLOP "
              f"({next(r['flops']['method'] for r in results if r.get('model') == model and r.get('flops'))})")
    for model in sorted({r.get("model") for r in results} & set(MODELS)):
        print(f"Reference {model}: original TF1 graph ~{TF1_REFERENCE_S[model]:.2f} s on a 2-core CPU (issue 6); "
              f"paper {PAPER_TITANX_MS[model]:.2f} ms on a TITAN X GPU (not comparable with a CPU)")
    print("'vs TF1': the tf1 baseline's median divided by the mode's (higher is faster); "
          "'max|dp|': largest softmax difference to the plain Keras call (tf1: to the port).")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: adapnet_pp,ssma")
    parser.add_argument("--modes", default=None, help=f"comma-separated, from {', '.join(TF_MODES)}")
    parser.add_argument("--backend", default="tf", choices=("tf", "jax"))
    parser.add_argument("--quick", action="store_true", help="fewer runs and modes, no other sizes")
    parser.add_argument("--runs", type=int, default=None, help="timed batch-1 runs (default 10; quick 5)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--throughput-runs", type=int, default=None, help="timed batch-8 runs (default 3)")
    parser.add_argument("--size-runs", type=int, default=None, help="timed runs at other sizes (default 5)")
    parser.add_argument("--onednn", choices=("default", "on", "off"), default="default",
                        help="TF_ENABLE_ONEDNN_OPTS for the children (default: TensorFlow's own choice)")
    parser.add_argument("--intra", type=int, default=0, help="intra-op threads (0: TensorFlow's default)")
    parser.add_argument("--inter", type=int, default=0, help="inter-op threads (0: TensorFlow's default)")
    parser.add_argument("--json", help="also write all results to this JSON file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        spec = json.loads(args.child)
        if spec["mode"] in JAX_MODES:
            result = child_jax(spec)
        elif spec["mode"] == "flops":
            result = child_flops(spec)
        elif spec["mode"] == "interleaved":
            result = child_interleaved(spec)
        else:
            result = child_tf(spec)
        _common.emit(result)
        return 0

    args.runs = args.runs or (5 if args.quick else 10)
    args.throughput_runs = args.throughput_runs or (2 if args.quick else 3)
    args.size_runs = args.size_runs or 5
    env = {}
    if args.onednn != "default":
        env["TF_ENABLE_ONEDNN_OPTS"] = "1" if args.onednn == "on" else "0"
    if args.backend == "jax":
        env.update(KERAS_BACKEND="jax", JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    info = _common.machine_info()
    results = []
    script = os.path.abspath(__file__)
    for job in _plan(args):
        print(f"... {job['model']} {job['mode']}", flush=True)
        result = _common.run_child(script, job, env)
        result.setdefault("model", job["model"])
        result.setdefault("mode", job["mode"])
        results.append(result)
        if "error" in result:
            print(f"    error: {result['error'][:300]}", flush=True)
        elif result.get("mode") == "interleaved":
            print(f"    TF1 {result['tf1']['median']:.3f} s, default {result['default']['median']:.3f} s", flush=True)
        elif "latency" in result:
            print(f"    batch 1: median {result['latency']['median']:.3f} s, p90 {result['latency']['p90']:.3f} s",
                  flush=True)
    info["onednn_in_children"] = next((r["onednn"] for r in results if "onednn" in r), None)
    info["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    _print_table(results, info)
    if args.json:
        _common.write_json(args.json, {"machine": info, "args": vars(args), "results": results,
                                       "tf1_reference_s": TF1_REFERENCE_S, "paper_titanx_ms": PAPER_TITANX_MS})
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
