"""Inference latency and throughput of AdapNet++ and SSMA, beside the original TF1 graph.

For each model (12 classes) one child process builds the model with seeded random weights
(batch-norm statistics randomised so that every BN does real work), sets up every requested way of
running it ("mode"), checks each mode's softmax against the plain Keras call, and then times all
modes *interleaved*: one call of each mode per round, so that the load other processes put on a
shared machine weighs on every mode alike. It measures

- latency at batch 1 and 384×768 (median and 90th percentile over `--runs` rounds, after
  `--warmup` calls), and the speed-up over the TF1 graph as the median of per-round ratios,
- throughput at batch 8 and 384×768 (images per second, from the median batch time),
- latency at batch 1 at 192×384 and 768×1536 (modes tf1, function, default, bfloat16).

Modes (TensorFlow backend):
    eager        `model(x, training=False)`, Keras eager (auxiliary heads included).
    function     `tf.function` of the same call, static input shape.
    xla          `tf.function(jit_compile=True)`.
    folded       `tf.function` of a copy with batch norms folded into convolutions.
    subpixel     `compiled_predict(model, fold_batch_norm=False)`: sub-pixel upsampling only.
    default      `ssma_tf.inference.compiled.compiled_predict(model)`: the library's compiled inference function
                 (what prediction and evaluation use; see docs/benchmarks.md).
    predictor    `ssma_tf.inference.predictor.Predictor(..., precision="float32").predict(uint8 array)`: the
                 prediction API, host arrays in and out (includes the resize-to-model-size and
                 argmax); `predict.py`'s default (`--precision auto`) runs it in bfloat16 only where it
                 timed bfloat16 at most 0.8× the float32 time on this CPU (on a GPU: Ampere or later),
                 float32 elsewhere (see `auto`).
    saved_model  the SavedModel of `ssma_tf.inference.export.export_saved_model` (uint8 serving signature),
                 loaded with `tf.saved_model.load`; `saved_model_folded` with batch norms folded.
    bfloat16     `compiled_predict(model, precision="bfloat16")`: the default path in bfloat16
                 arithmetic (`predict.py --precision bfloat16`, `evaluate.py --precision bfloat16`).
    auto         `compiled_predict(model, precision=resolve_precision("auto"))`: what `predict.py`'s
                 default measures and picks on this machine (must never be slower than `default`).
    openvino, openvino_int8, tflite, tflite_int8
                 the exports of `ssma-export --format openvino|tflite [--int8]` (float32; int8
                 calibrated on `CALIBRATION_SAMPLES` of the benchmark's seeded images, written to a
                 TFRecord file first), run through `ssma_tf.inference.backends` as `--backend
                 openvino|tflite` runs them (host float32 arrays in, softmax out; the `deploy` extra).
    tf1          the released graph rebuilt with TF1 ops in a `tf.compat.v1.Session`
                 (`bench/tf1_graph.py`), loaded with the same weights: the baseline to beat.
Every mode's time is also given as the median per-round ratio to `default` ("vs default").
With `--backend jax` (Keras on JAX; TensorFlow is not needed, though Keras imports it where it is
installed: the result says whether it was), modes:
    jax          a `jax.jit` of the model's stateless call, at JAX's default precision (on NVIDIA
                 GPUs from Ampere on, float32 convolutions and matrix products run in TF32).
    jax_float32  the same traced under `jax.default_matmul_precision("highest")`: true float32
                 arithmetic everywhere, as on the paper's TITAN X (which has no TF32).
    jax_subpixel the `jax` mode on `ssma_tf.inference.compiled.optimize_for_inference(model,
                 fold_batch_norm=False)` (the sub-pixel upsampling; folding needs TensorFlow).
    jax_bfloat16 the same copy in bfloat16 (`precision="bfloat16"`), float32 softmax out.
JAX runs on its CPU unless `JAX_PLATFORMS` says otherwise (`JAX_PLATFORMS=cuda` on an NVIDIA GPU).

FLOPs per image (TF profiler on the frozen graph, or XLA's cost analysis on JAX; see
bench/flops.py) are printed beside the times.

    python bench/inference.py                      # everything, ~30-40 min on 2 cores
    python bench/inference.py --quick              # fewer runs and modes, a few minutes
    python bench/inference.py --models adapnet_pp --modes default,tf1 --json out.json
    python bench/inference.py --keras base.keras pruned/stage1.keras pruned/stage2.keras
                                                   # .keras models (e.g. pruned ones, docs/pruning.md)
                                                   # timed interleaved in one process, mode default,
                                                   # as ratios to the first, with their FLOPs
                                                   # (--masked: pruned ones also without the
                                                   # dense-residual rewrite)
    python bench/inference.py --backend jax
    python bench/inference.py --modes default,auto,bfloat16,openvino,openvino_int8,tflite_int8 \
        --runs 10 --json docs/bench/deploy_cpu.json   # the deployment table (README, docs/deploy.md)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
TF_MODES = ("tf1", "eager", "function", "xla", "folded", "subpixel", "default", "predictor", "saved_model",
            "saved_model_folded", "bfloat16", "auto", "openvino", "openvino_int8", "tflite", "tflite_int8")
DEPLOY_MODES = ("openvino", "openvino_int8", "tflite", "tflite_int8")
# `--keras --masked`: the key of a pruned model timed without the dense-residual rewrite.
MASKED_SUFFIX = "#masked"
# Images the int8 modes calibrate on (seeded random ones: a speed measurement, not an accuracy one).
CALIBRATION_SAMPLES = 8
QUICK_MODES = ("tf1", "function", "xla", "default", "bfloat16")
JAX_MODES = ("jax", "jax_float32", "jax_subpixel", "jax_bfloat16")
SIZE_MODES = ("tf1", "function", "default", "bfloat16")
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


def make_inputs(name: str, batch: int, height: int, width: int, dtype="float32", count=None):
    """Seeded random images with whole values 0..255 (so the uint8 modes see the same values):
    one array for AdapNet++, two for SSMA (or `count`, one per modality)."""
    import numpy as np

    rng = np.random.default_rng(batch * 100003 + height)
    count = count or (2 if name == "ssma" else 1)
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

    if mode in ("function", "xla"):
        function = tf.function(lambda x: model(x, training=False), jit_compile=mode == "xla")

        def prepare(arrays):
            tensors = [tf.constant(a) for a in arrays]
            return lambda: function(network_input(tensors))
        prepare.function = function
        return prepare

    if mode == "folded":
        from ssma_tf.inference.batch_norm_folding import fold_batch_norms

        folded, _ = fold_batch_norms(model)
        function = tf.function(lambda x: folded(x, training=False))

        def prepare(arrays):
            tensors = [tf.constant(a) for a in arrays]
            return lambda: function(network_input(tensors))
        prepare.function = function
        return prepare

    if mode in ("default", "subpixel", "bfloat16", "auto", "masked"):
        from ssma_tf.inference.compiled import compiled_predict
        from ssma_tf.inference.precision import choose_precision

        options = {"default": {}, "subpixel": {"fold_batch_norm": False}, "bfloat16": {"precision": "bfloat16"},
                   "masked": {"dense_residuals": False}}
        if mode == "auto":
            choice = choose_precision("auto")
            print(f"    auto: {choice.precision} ({choice.reason})", flush=True)
            options["auto"] = {"precision": choice.precision}
        function = compiled_predict(model, **options[mode])
        if mode == "auto":
            function.choice = choice.precision

        def prepare(arrays):
            tensors = [tf.constant(a) for a in arrays]
            return lambda: function(network_input(tensors))
        prepare.function = function
        return prepare

    if mode == "predictor":
        from ssma_tf.inference.predictor import Predictor

        predictor = Predictor(model, channel_order="bgr", precision="float32")

        def prepare(arrays):
            images = [a.astype(np.uint8) for a in arrays]
            return lambda: predictor.predict(*images).probabilities
        return prepare

    if mode in ("saved_model", "saved_model_folded"):
        from ssma_tf.inference.export import export_saved_model

        path = os.path.join(workdir, mode)
        export_saved_model(model, path, fold_batch_norm=mode == "saved_model_folded")
        serve = tf.saved_model.load(path).signatures["serving_default"]
        keys = ["modality1", "modality2"] if fusion else ["image"]

        def prepare(arrays):
            tensors = {k: tf.constant(a.astype(np.uint8)) for k, a in zip(keys, arrays)}
            return lambda: serve(**tensors)["probabilities"]
        return prepare

    if mode in DEPLOY_MODES:
        from ssma_tf.inference.backends import load_exported
        from ssma_tf.inference.deploy import export_deployed

        format, int8 = mode.split("_")[0], mode.endswith("_int8")
        records = None
        if int8:
            records = os.path.join(workdir, "calibration.tfrecords")
            _write_calibration_records(records, name)
        path = os.path.join(workdir, mode)
        export_deployed(model, path, format=format, size=SIZE, int8=int8,
                        calibration=[records] if records else None, calibration_samples=CALIBRATION_SAMPLES)
        exported = load_exported(path, format)

        def prepare(arrays):
            # The export has a fixed size (SIZE): the runner refuses others.
            return lambda: exported(arrays)
        prepare.fixed_size = True
        return prepare

    raise ValueError(f"unknown mode {mode!r}")


def _write_calibration_records(path: str, name: str, size=SIZE) -> None:
    """`CALIBRATION_SAMPLES` seeded images at `size` as TFRecords (labels all void)."""
    import numpy as np

    from ssma_tf.data import write_examples

    arrays = make_inputs(name, CALIBRATION_SAMPLES, *size)
    write_examples(path, ({**{f"modality{m + 1}": a[index].astype(np.uint8) for m, a in enumerate(arrays)},
                           "label": np.zeros(size, np.uint8)} for index in range(CALIBRATION_SAMPLES)))


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


def _set_threads(spec: dict) -> None:
    """Applies --intra/--inter before TensorFlow creates its thread pools."""
    import tensorflow as tf

    if spec.get("intra"):
        tf.config.threading.set_intra_op_parallelism_threads(spec["intra"])
    if spec.get("inter"):
        tf.config.threading.set_inter_op_parallelism_threads(spec["inter"])


def _jobs(spec: dict) -> list:
    """(key, batch, (height, width), warmup, runs, modes) of each measurement of a child."""
    modes = spec["modes"]
    jobs = [("latency", 1, SIZE, spec["warmup"], spec["runs"], modes)]
    throughput = [m for m in modes if m in spec.get("throughput_modes", [])]
    if throughput and spec["throughput_runs"]:
        jobs.append(("throughput", THROUGHPUT_BATCH, SIZE, 1, spec["throughput_runs"], throughput))
    sized = [m for m in modes if m in spec.get("size_modes", [])]
    for key in spec.get("sizes", []):
        if sized and spec["size_runs"]:
            jobs.append((key, 1, SIZES[key], spec["warmup"], spec["size_runs"], sized))
    return jobs


def _measure_interleaved(prepare: dict, arrays, modes, warmup: int, runs: int, block) -> dict:
    """Times every mode on the same input, one call of each mode per round.

    Interleaving spreads the machine's other load evenly over the modes, and the per-round ratio
    to the TF1 baseline (both timed within the same few seconds) is robust to load that changes
    between rounds.
    """
    calls, first = {}, {}
    for mode in modes:
        calls[mode] = prepare[mode](arrays)
        start = time.perf_counter()
        block(calls[mode]())
        first[mode] = time.perf_counter() - start  # trace/compile + one run
        for _ in range(max(0, warmup - 1)):
            block(calls[mode]())
    seconds = {mode: [] for mode in modes}
    for round_index in range(runs):
        # The order reversed every other round (ABBA): no mode always runs first or last.
        for mode in (modes if round_index % 2 == 0 else modes[::-1]):
            start = time.perf_counter()
            block(calls[mode]())
            seconds[mode].append(time.perf_counter() - start)
    out = {}
    for mode in modes:
        summary = _common.summarize(seconds[mode])
        summary["first_call_s"] = first[mode]
        if "tf1" in seconds:
            summary["speedup_vs_tf1"] = statistics.median(a / b for a, b in zip(seconds["tf1"], seconds[mode]))
        if "default" in seconds:
            # Time as a share of the TensorFlow default path's, per round (< 1: faster).
            summary["ratio_to_default"] = statistics.median(b / a for a, b in zip(seconds["default"], seconds[mode]))
        out[mode] = summary
    return out


def _run_jobs(spec: dict, prepare: dict, block, result: dict) -> None:
    """Runs every measurement of `_jobs(spec)` and stores each mode's summary in `result`."""
    for key, batch, (height, width), warmup, runs, job_modes in _jobs(spec):
        arrays = make_inputs(spec["model"], batch, height, width)
        measured = _measure_interleaved(prepare, arrays, job_modes, warmup, runs, block)
        for mode, summary in measured.items():
            summary.update(batch=batch, height=height, width=width)
            if batch > 1:
                summary["images_per_s"] = batch / summary["median"]
            result["modes"][mode][key] = summary
        print(f"    {key} done", flush=True)


def child_tf(spec: dict) -> dict:
    """Measures all TF modes of one model in this process, interleaved (see `_measure_interleaved`)."""
    import numpy as np
    import tensorflow as tf

    _set_threads(spec)
    import keras
    from tensorflow.python.util import _pywrap_util_port

    name, modes = spec["model"], spec["modes"]
    model = build_model(name)
    result = {"model": name, "tensorflow": tf.__version__, "keras": keras.__version__,
              "onednn": bool(_pywrap_util_port.IsMklEnabled()), "modes": {m: {} for m in modes}}

    def block(value):
        # Converting to a host array waits for the computation (and is what a user does).
        return np.asarray(value)

    with tempfile.TemporaryDirectory() as workdir:
        prepare = {}
        for mode in modes:
            start = time.perf_counter()
            if mode == "tf1":
                prepare[mode] = _tf1_runner(name, model)
            else:
                prepare[mode] = _tf_runner(mode, name, model, workdir)
            result["modes"][mode]["setup_s"] = time.perf_counter() - start
        # How far each mode's softmax is from the plain float32 Keras call, on a small input.
        check = make_inputs(name, 1, 64, 128)
        plain = block(model(check if name == "ssma" else check[0], training=False))
        full_check, full_plain = None, None
        for mode in modes:
            if getattr(prepare[mode], "fixed_size", False):
                # Exports of a fixed size are checked at that size.
                if full_check is None:
                    full_check = make_inputs(name, 1, *SIZE)
                    full_plain = block(model(full_check if name == "ssma" else full_check[0], training=False))
                got = block(prepare[mode](full_check)()).astype(np.float32)
                result["modes"][mode]["max_abs_diff"] = float(np.max(np.abs(got - full_plain)))
                result["modes"][mode]["class_agreement"] = float(np.mean(got.argmax(-1) == full_plain.argmax(-1)))
                continue
            got = block(prepare[mode](check)()).astype(np.float32)
            result["modes"][mode]["max_abs_diff"] = float(np.max(np.abs(got - plain)))
            if getattr(prepare[mode], "function", None) is not None and hasattr(prepare[mode].function, "choice"):
                result["modes"][mode]["auto_choice"] = prepare[mode].function.choice
        _run_jobs(spec, prepare, block, result)
        for mode in modes:
            function = getattr(prepare[mode], "function", None)
            if function is not None:
                # One trace per distinct input shape (the check, then each job's), none on repeats.
                result["modes"][mode]["traces"] = function.experimental_get_tracing_count()
                result["modes"][mode]["shapes"] = 1 + sum(mode in j[-1] for j in _jobs(spec))
    result["peak_rss_mib"] = _common.peak_rss_mib()
    return result


def child_keras(spec: dict) -> dict:
    """Times the `default` mode of several `.keras` models interleaved in this process; each
    round's time of a model divided by the first model's gives its ratio (median over rounds)."""
    import numpy as np

    _set_threads(spec)
    import keras

    from ssma_tf.models.factory import is_fusion
    from ssma_tf.models.widths import is_masked_residual

    models = {path: keras.saving.load_model(path, compile=False) for path in spec["files"]}
    modes = {path: "default" for path in models}
    if spec.get("masked"):
        # Each pruned model also as it was before the dense-residual rewrite (its residual
        # channels gathered back to their indices), under the same file with a suffix.
        for path in list(models):
            if any(is_masked_residual(n, w) for n, w in (getattr(models[path], "widths", None) or {}).items()):
                models[path + MASKED_SUFFIX], modes[path + MASKED_SUFFIX] = models[path], "masked"
    fusion = {is_fusion(m) for m in models.values()}
    if len(fusion) != 1:
        return {"error": "--keras: give models of one kind (all AdapNet++ or all SSMA)"}
    inputs = {len(m.inputs) for m in models.values()}
    if len(inputs) != 1:
        # Before: Keras' input-spec traceback, cut to its first line (helper 119).
        return {"error": f"--keras: give models of one number of modalities, got {sorted(inputs)}"}
    name = "ssma" if fusion.pop() else "adapnet_pp"
    height, width = SIZE

    def block(value):
        return np.asarray(value)

    with tempfile.TemporaryDirectory() as workdir:
        prepare = {path: _tf_runner(modes[path], name, model, workdir) for path, model in models.items()}
        arrays = make_inputs(name, 1, height, width, count=inputs.pop())
        calls = {path: prepare[path](arrays) for path in models}
        for call in calls.values():
            for _ in range(spec["warmup"]):
                block(call())
        seconds = {path: [] for path in models}
        for number in range(spec["runs"]):
            # Every other round in reverse order, as the other benchmarks (before: the first model,
            # the ratios' reference, always ran first).
            order = list(calls.items()) if number % 2 == 0 else list(calls.items())[::-1]
            for path, call in order:
                start = time.perf_counter()
                block(call())
                seconds[path].append(time.perf_counter() - start)
    from ssma_tf.inference.flops import flops

    first = spec["files"][0]
    result = {"model": name, "height": height, "width": width, "files": {}}
    counted = {}
    for path in models:
        summary = _common.summarize(seconds[path])
        summary["ratio_to_first"] = statistics.median(a / b for a, b in zip(seconds[path], seconds[first]))
        summary["params"] = int(models[path].count_params())
        # The FLOPs of the model as saved (the pruning report's count), at the timed size; the
        # dense-residual copy that is timed also multiplies the zero filters of masked units.
        if id(models[path]) not in counted:
            counted[id(models[path])] = flops(models[path], height, width)
        summary["gflops"] = counted[id(models[path])] / 1e9
        result["files"][path] = summary
    for summary in result["files"].values():
        summary["flops_ratio_to_first"] = summary["gflops"] / result["files"][first]["gflops"]
    result["peak_rss_mib"] = _common.peak_rss_mib()
    return result


def child_jax(spec: dict) -> dict:
    """Measures the JAX modes of one model on Keras' JAX backend (jitted stateless calls).

    Nothing here needs TensorFlow, so this runs where only JAX is; where TensorFlow is installed,
    Keras imports it for some modes (serialising the model for the sub-pixel copy): the result says
    whether it was.
    """
    os.environ["KERAS_BACKEND"] = "jax"
    import jax
    import keras
    import numpy as np

    name, modes = spec["model"], spec["modes"]
    model = build_model(name)
    device = jax.devices()[0]
    result = {"model": name, "jax": jax.__version__, "keras": keras.__version__,
              "device": f"{device.platform}: {getattr(device, 'device_kind', device)}",
              "modes": {m: {} for m in modes}}
    prepare, predictors = {}, {}
    for mode in modes:
        network = model
        if mode in ("jax_subpixel", "jax_bfloat16"):
            from ssma_tf.inference.compiled import optimize_for_inference

            precision = "bfloat16" if mode == "jax_bfloat16" else "float32"
            network = optimize_for_inference(model, fold_batch_norm=False, precision=precision)
        matmul_precision = "highest" if mode == "jax_float32" else None

        def predict(trainable, non_trainable, inputs, network=network, matmul_precision=matmul_precision):
            # The precision context applies while jax.jit traces, so it is baked into the program.
            with jax.default_matmul_precision(matmul_precision):
                return network.stateless_call(trainable, non_trainable, inputs, training=False)[0]

        predict = jax.jit(predict)
        state = ([v.value for v in network.trainable_variables], [v.value for v in network.non_trainable_variables])

        def make(arrays, predict=predict, state=state):
            # Host arrays in: their upload is inside the time, as the copy back is (before
            # 2026-12-04 they were put on the device before the clock started).
            def call():
                inputs = [jax.device_put(a) for a in arrays]
                return predict(*state, inputs if name == "ssma" else inputs[0])

            return call

        prepare[mode], predictors[mode] = make, (predict, state)

    def block(value):
        return np.asarray(value.block_until_ready(), dtype=np.float32)  # one copy to the host

    check = make_inputs(name, 1, 64, 128)
    plain = np.asarray(model(check if name == "ssma" else check[0], training=False))
    for mode in modes:
        result["modes"][mode]["max_abs_diff"] = float(np.max(np.abs(block(prepare[mode](check)()) - plain)))
    _run_jobs(spec, prepare, block, result)
    # FLOPs from XLA's cost model of the plain network's compiled program. On a GPU the
    # convolutions are cuDNN library calls that XLA's cost analysis does not count (it gave
    # 0.3 GFLOP for AdapNet++ on an H200), so it is used on the CPU only.
    if device.platform == "cpu":
        predict, state = predictors[modes[0]]
        shape = jax.ShapeDtypeStruct((1, *SIZE, 3), np.float32)
        cost = predict.lower(*state, [shape, shape] if name == "ssma" else shape).compile().cost_analysis()
        cost = cost[0] if isinstance(cost, list) else cost
        result["flops"] = {"total": float(cost.get("flops", 0.0)), "method": f"XLA cost analysis ({modes[0]})"}
    result["tensorflow_imported"] = "tensorflow" in sys.modules
    result["peak_rss_mib"] = _common.peak_rss_mib()
    return result


def child_flops(spec: dict) -> dict:
    """FLOPs per image at 384×768 with the TF profiler (see bench/flops.py)."""
    import flops

    return {"model": spec["model"], "flops": flops.tf_profiler_flops(spec["model"], *SIZE)}


# ---------------------------------------------------------------------------------------------
# Parent side: plan, run children, print.


def _plan(parser, args, info: dict) -> list:
    """One FLOPs child and one measuring child per model."""
    from ssma_tf.cli.common import distinct_or_exit  # no TensorFlow

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:  # before: an empty table, written to --json, exit 0 (helper 141)
        raise SystemExit("--models: none given")
    for model in models:
        if model not in MODELS:
            raise SystemExit(f"--models: unknown model {model!r}; choose from {', '.join(MODELS)}")
    # Before: every child of a model given twice ran twice, its rows printed twice (helper 329).
    distinct_or_exit(parser, models=models)
    known = JAX_MODES if args.backend == "jax" else TF_MODES
    import importlib.util

    from ssma_tf.inference.backends import RUNTIME_PACKAGES

    def needs(mode: str) -> list:
        if mode not in DEPLOY_MODES:
            return []
        runtime = RUNTIME_PACKAGES["openvino" if mode.startswith("openvino") else "tflite"]
        return [runtime] + ([RUNTIME_PACKAGES["nncf"]] if mode == "openvino_int8" else [])

    def unusable(modes: list) -> list:
        return [m for m in modes if any(importlib.util.find_spec(p) is None for p in needs(m))]

    if args.modes is not None:
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        if not modes:  # before: `--modes ,` measured nothing, wrote --json, exit 0 (helper 329)
            raise SystemExit("--modes: none given")
        unknown = [m for m in modes if m not in known]
        if unknown:
            raise SystemExit(f"--modes: unknown {unknown} for --backend {args.backend}; choose from {', '.join(known)}")
        # Before: a mode given twice was timed twice a round, and the per-round ratios paired the
        # TF1 graph's round i with that mode's i-th call, not its call of round i (helper 329).
        distinct_or_exit(parser, modes=modes)
        # Asked for by name: refused before any child (before: the model's whole child failed, the
        # default mode's result lost with it, and the message cut before the extra's name; helper 141).
        missing = unusable(modes)
        if missing:
            raise SystemExit(f"--modes: {', '.join(missing)} need(s) the deploy extra (pip install '.[deploy]')")
    else:
        modes = list(JAX_MODES if args.backend == "jax" else QUICK_MODES if args.quick else TF_MODES)
        # The export modes need the `deploy` extra: without it they are left out with a line
        # (before: the model's whole child failed, every mode's result lost).
        missing = unusable(modes)
        if missing:
            print(f"note: modes {', '.join(missing)} left out: they need the deploy extra (pip install '.[deploy]')",
                  file=sys.stderr)
            modes = [m for m in modes if m not in missing]
    if args.backend == "tf" and "tf1" in modes:
        modes.remove("tf1")
        modes.insert(0, "tf1")  # first in the first round (the order is reversed every other round)
    jobs = []
    for model in models:
        if args.backend == "tf":
            jobs.append({"kind": "flops", "model": model})
        jobs.append({
            "kind": args.backend, "model": model, "modes": modes,
            "warmup": args.warmup, "runs": args.runs,
            # bfloat16 is emulated on CPUs without bf16 units: batch 8 would take minutes there.
            # The exports run one image per call: batch 8 would only repeat batch 1 eight times.
            "throughput_modes": [m for m in modes if (m != "bfloat16" or info["bf16_hardware"])
                                 and m not in DEPLOY_MODES],
            "throughput_runs": args.throughput_runs,
            "sizes": list(SIZES) if args.size_runs else [],
            "size_modes": list(SIZE_MODES + JAX_MODES),
            "size_runs": args.size_runs,
            "intra": args.intra, "inter": args.inter,
        })
    return jobs


def _print_table(results: list, info: dict) -> None:
    print()
    print(f"Machine: {_common.describe_machine(info)}")
    print(f"oneDNN: {info.get('onednn_in_children')}. Batch-1 latency at {SIZE[0]}x{SIZE[1]}: median and "
          f"p90 s, speed-up over the TF1 graph (median of per-round ratios); batch-{THROUGHPUT_BATCH} "
          f"images/s; batch-1 median s at other sizes. All modes of a model interleaved in one process.")
    flops = {r["model"]: r["flops"] for r in results if "flops" in r}
    header = (f"{'model':<11}{'mode':<20}{'median':>8}{'p90':>8}{'vs TF1':>8}{'/default':>9}{'img/s@8':>9}{'192x384':>9}"
              f"{'768x1536':>10}{'GFLOP/s':>9}{'max|dp|':>10}{'first s':>9}")
    print(header)
    print("-" * len(header))
    for r in results:
        if "modes" not in r:
            if "error" in r:
                print(f"{r.get('model', '?'):<11}{r.get('kind', '?'):<20}error: {r['error'][-200:]}")
            continue
        for mode, m in r["modes"].items():
            lat = m.get("latency")
            if lat is None:
                print(f"{r['model']:<11}{mode:<20}(not measured)")
                continue
            gflops = flops.get(r["model"], {}).get("total")
            rate = "-" if gflops is None else f"{gflops / 1e9 / lat['median']:.0f}"
            speedup = m["latency"].get("speedup_vs_tf1")
            ratio = lat.get("ratio_to_default")
            print(
                f"{r['model']:<11}{mode:<20}{lat['median']:>8.3f}{lat['p90']:>8.3f}"
                f"{'-' if speedup is None else f'{speedup:.2f}x':>8}"
                f"{'-' if ratio is None else f'{ratio:.2f}x':>9}"
                f"{format(m['throughput']['images_per_s'], '.2f') if 'throughput' in m else '-':>9}"
                f"{_common.format_seconds(m.get('small', {}).get('median')):>9}"
                f"{_common.format_seconds(m.get('large', {}).get('median')):>10}"
                f"{rate:>9}"
                f"{m.get('max_abs_diff', float('nan')):>10.1e}{lat['first_call_s']:>9.1f}"
            )
    print()
    for model, f in flops.items():
        print(f"FLOPs per image at {SIZE[0]}x{SIZE[1]}, {model}: {f['total'] / 1e9:.1f} GFLOP ({f['method']})")
    for model in sorted({r.get("model") for r in results} & set(MODELS)):
        print(f"Reference {model}: original TF1 graph ~{TF1_REFERENCE_S[model]:.2f} s on a 2-core CPU (issue 6); "
              f"paper {PAPER_TITANX_MS[model]:.2f} ms on a TITAN X GPU (not comparable with a CPU)")
    print("max|dp|: largest softmax difference to the plain float32 Keras call (on a 64x128 input; "
          f"the fixed-size exports at {SIZE[0]}x{SIZE[1]}). vs TF1: a speed-up (above 1x: faster than the TF1 "
          "graph); /default: time as a share of the default path's (below 1x: faster than it).")
    for r in results:
        for mode, m in r.get("modes", {}).items():
            if "class_agreement" in m:
                print(f"{r['model']} {mode}: class map agrees with float32 Keras on {100 * m['class_agreement']:.2f} % "
                      "of the pixels of one random image (accuracy on data: ssma-evaluate --backend)")
            if "auto_choice" in m:
                print(f"{r['model']} auto: chose {m['auto_choice']}")
    for r in results:
        if "tensorflow_imported" in r:
            print(f"{r['model']} on JAX ({r['device']}): TensorFlow imported: {r['tensorflow_imported']}")
            paper = PAPER_TITANX_MS[r["model"]]
            for mode, m in r["modes"].items():
                if "latency" in m:
                    ms = 1000 * m["latency"]["median"]
                    print(f"    {mode}: {ms:.2f} ms per {SIZE[1]}x{SIZE[0]} image, batch 1 "
                          f"(paper, TITAN X: {paper:.2f} ms; {paper / ms:.2f}x its speed)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated: adapnet_pp,ssma")
    parser.add_argument("--modes", default=None,
                        help=f"comma-separated, from {', '.join(TF_MODES)} (TF) or {', '.join(JAX_MODES)} (JAX)")
    parser.add_argument("--backend", default="tf", choices=("tf", "jax"))
    parser.add_argument("--quick", action="store_true",
                        help="fewer runs and modes, no other sizes (unless --size-runs is given)")
    parser.add_argument("--runs", type=int, default=None, help="timed batch-1 rounds (default 10; quick 5)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--throughput-runs", type=int, default=None, help="timed batch-8 rounds (default 3; quick 2; 0: none)")
    parser.add_argument("--size-runs", type=int, default=None,
                        help="timed rounds at other sizes (default 5; quick 0; 0: none)")
    parser.add_argument("--onednn", choices=("default", "on", "off"), default="default",
                        help="TF_ENABLE_ONEDNN_OPTS for the children (default: TensorFlow's own choice)")
    parser.add_argument("--intra", type=int, default=0, help="intra-op threads (0: TensorFlow's default)")
    parser.add_argument("--inter", type=int, default=0, help="inter-op threads (0: TensorFlow's default)")
    parser.add_argument("--json", type=_common.json_path, help="also write all results to this JSON file")
    parser.add_argument("--keras", nargs="+", metavar="FILE",
                        help="instead: time these .keras models (mode default, batch 1) interleaved in one "
                        "process and print each one's latency ratio to the first")
    parser.add_argument("--masked", action="store_true",
                        help="with --keras: also time each pruned model without the dense-residual rewrite "
                        "(`compiled_predict(..., dense_residuals=False)`)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        spec = json.loads(args.child)
        child = {"flops": child_flops, "tf": child_tf, "jax": child_jax, "keras": child_keras}[spec["kind"]]
        _common.emit(child(spec))
        return 0
    # 0 is TensorFlow's default; below it TensorFlow aborted in the child with "Check failed:
    # num_threads >= 1", cut from the error that was printed (helper 303).
    for name in ("intra", "inter"):
        if getattr(args, name) < 0:
            parser.error(f"--{name} must be >= 0 (0: TensorFlow's default), got {getattr(args, name)}")
    if args.masked and not args.keras:
        # Before: ignored, and the whole default benchmark (~30-40 min) started (helper 329).
        parser.error("--masked needs --keras (it times the pruned .keras models given there without the "
                     "dense-residual rewrite)")
    if args.keras:
        # `--runs 0` was taken for the default (`runs or 10`) and recorded as 0 beside 10 rounds;
        # `--warmup 0` ran one and was recorded as 0 (the first call traces: it is never timed).
        _common.positive(parser, runs=args.runs, warmup=args.warmup)
        missing = [f for f in args.keras if not os.path.isfile(f)]
        if missing:
            parser.error(f"--keras: no file {missing[0]}")
        job = {"kind": "keras", "files": [os.path.abspath(f) for f in args.keras], "warmup": args.warmup,
               "runs": args.runs if args.runs is not None else 10, "intra": args.intra, "inter": args.inter, "masked": args.masked}
        result = _common.run_child(os.path.abspath(__file__), job, {})
        if "error" in result:
            print(f"error: {result['error'][-300:]}", flush=True)
            return 1
        print(f"{result['model']}, batch 1, {result['height']}x{result['width']}, mode default, "
              f"{job['runs']} interleaved rounds:")
        for path, summary in result["files"].items():
            shown = os.path.relpath(path.removesuffix(MASKED_SUFFIX)) + (" (masked residuals)"
                                                                          if path.endswith(MASKED_SUFFIX) else "")
            print(f"  {summary['median']:.3f} s median  {summary['ratio_to_first']:.2f}x the first  "
                  f"{summary['params']:,} weights  {summary['gflops']:.1f} GFLOPs "
                  f"({summary['flops_ratio_to_first']:.2f}x)  {shown}")
        if args.json:
            _common.write_json(args.json, {"machine": _common.machine_info(), "args": vars(args), "result": result})
        return 0

    # 0 skips the batch-8 or other-size rounds (it read as "the default" before).
    # --warmup 0 ran one untimed call all the same, recorded as 0 (the --keras path refused it; helper 141).
    for name, least in (("runs", 1), ("throughput_runs", 0), ("size_runs", 0), ("warmup", 1)):
        if getattr(args, name) is not None and getattr(args, name) < least:
            parser.error(f"--{name.replace('_', '-')} must be >= {least}, got {getattr(args, name)}")
    _common.jax_or_exit(parser, args.backend)
    args.runs = args.runs if args.runs is not None else (5 if args.quick else 10)
    args.throughput_runs = args.throughput_runs if args.throughput_runs is not None else (2 if args.quick else 3)
    # --quick leaves the other sizes out unless --size-runs asks for them, as it only sets the other
    # counts' defaults (before: an explicit --size-runs was dropped without a word; helper 329).
    args.size_runs = args.size_runs if args.size_runs is not None else (0 if args.quick else 5)
    env = {}
    if args.onednn != "default":
        env["TF_ENABLE_ONEDNN_OPTS"] = "1" if args.onednn == "on" else "0"
    if args.backend == "jax":
        env.update(KERAS_BACKEND="jax", JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"))
    else:
        # The TensorFlow modes in a shell that exports KERAS_BACKEND=jax, as the JAX runs are
        # started (before: every row an error, "fold_batch_norm needs the TensorFlow backend").
        env["KERAS_BACKEND"] = "tensorflow"
    info = _common.machine_info()
    results = []
    script = os.path.abspath(__file__)
    for job in _plan(parser, args, info):
        print(f"... {job['model']} {job['kind']}" + (f": {', '.join(job['modes'])}" if "modes" in job else ""),
              flush=True)
        result = _common.run_child(script, job, env)
        result.setdefault("model", job["model"])
        result["kind"] = job["kind"]
        results.append(result)
        if "error" in result:
            print(f"    error: {result['error'][-300:]}", flush=True)
        for mode, m in result.get("modes", {}).items():
            if "latency" in m:
                speedup = m["latency"].get("speedup_vs_tf1")
                print(f"    {mode}: batch 1 median {m['latency']['median']:.3f} s"
                      + ("" if speedup is None else f", {speedup:.2f}x the TF1 graph's speed"), flush=True)
    info["onednn_in_children"] = next((r["onednn"] for r in results if "onednn" in r), None)
    info["load_average_after"] = [round(v, 2) for v in os.getloadavg()]
    _print_table(results, info)
    if args.json:
        _common.write_json(args.json, {"machine": info, "args": vars(args), "results": results,
                                       "tf1_reference_s": TF1_REFERENCE_S, "paper_titanx_ms": PAPER_TITANX_MS})
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(_common.run_main(main))
