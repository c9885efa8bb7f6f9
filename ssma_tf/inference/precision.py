"""`precision="auto"`: float32 or bfloat16, chosen by timing both on this machine.

A processor that lists bfloat16 instructions does not make bfloat16 fast: on an Intel Xeon with
AVX512-BF16 but no AMX, the bfloat16 AdapNet++ took 1.64× the float32 time (TensorFlow 2.21), while
with AMX it took a third. So on a CPU `choose_precision("auto")` times float32 against bfloat16 on a
small stack of convolutions with the network's shapes (`PROBE_LAYERS`: the encoder's 3×3 and 1×1
convolutions at 1/8 and 1/16 of a 384×768 input) and picks bfloat16 only when it takes at most
`BFLOAT16_MARGIN` × the float32 time. The result is cached per machine and setting that changes
it (`measurement_key`: processor, flags, cores, threads, oneDNN and its instruction-set cap,
TensorFlow version) in `<cache>/ssma_tf/precision.json` (`$XDG_CACHE_HOME`, else `~/.cache`; written
atomically), so the probe runs once per machine, in about a second.

On GPUs the compute capability decides without timing: Ampere (8.0) and later compute bfloat16 in
hardware, earlier cards emulate it. Other Keras backends than TensorFlow get float32.

TensorFlow is imported inside the functions that run it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import time
from typing import Callable, Dict, Optional, Tuple

from ssma_tf.files import atomic_write

# bfloat16 must take at most this share of the float32 time to be chosen: "clearly faster", so
# that timing noise on a shared machine never makes auto pick the slower arithmetic.
BFLOAT16_MARGIN = 0.8
# (height, width, input channels, output channels, kernel size, dilation) of the probe's
# convolutions: the encoder's block-3 3×3 and 1×1 convolutions at 1/16 of 384×768, and a block-2
# 3×3 convolution at 1/8, the shapes that hold most of the network's multiply-adds.
PROBE_LAYERS = (
    (24, 48, 1024, 256, 1, 1),
    (24, 48, 256, 256, 3, 2),
    (24, 48, 256, 1024, 1, 1),
    (48, 96, 128, 128, 3, 1),
)
PROBE_ROUNDS = 7
CACHE_FILE = "precision.json"


@dataclasses.dataclass(frozen=True)
class PrecisionChoice:
    """The precision `choose_precision` settled on, and why.

    Attributes:
        precision: "float32" or "bfloat16".
        reason: one line for the user, e.g. "measured: bfloat16 takes 1.64x the float32 time on
            <processor>".
    """

    precision: str
    reason: str


def cache_path() -> str:
    """The cache file: `$XDG_CACHE_HOME/ssma_tf/precision.json`, else `~/.cache/ssma_tf/...`."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(root, "ssma_tf", CACHE_FILE)


def _cpuinfo_field(key: str) -> Optional[str]:
    """The value of the first `key` line of /proc/cpuinfo (Linux), or None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_flags() -> set:
    """The CPU's feature flags (Linux; empty elsewhere), e.g. whether bfloat16 has hardware support."""
    return set((_cpuinfo_field("flags") or "").split())


def processor_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or `platform.processor()`), e.g. "AMD EPYC"."""
    model = _cpuinfo_field("model name")
    if model:
        return model
    import platform

    return platform.processor() or platform.machine() or "unknown processor"


# CPU flags that decide how fast bfloat16 runs (native dot products, AMX tiles).
SPEED_FLAGS = ("avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def measurement_key() -> str:
    """What a cached measurement holds for: the processor's model, its bfloat16 flags, the cores
    this process may use, TensorFlow's intra-op threads, whether oneDNN is on, and TensorFlow's
    version. Before, the model and version alone: a measurement with oneDNN on (bfloat16 0.56x)
    chose bfloat16 with oneDNN off too (1.14x, slower), and machines of one model name with
    other cores or flags shared one entry (helper 119). oneDNN's instruction-set cap
    (`ONEDNN_MAX_CPU_ISA`, `DNNL_MAX_CPU_ISA`) too: a run with AMX capped off took the AMX
    measurement, bfloat16 at 0.27x where it took 1.83x (helper 218)."""
    import tensorflow as tf

    flags = cpu_flags()
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 0
    speed = "+".join(flag for flag in SPEED_FLAGS if flag in flags) or "no bf16 flags"
    onednn = {True: "on", False: "off", None: os.environ.get("TF_ENABLE_ONEDNN_OPTS", "default")}[onednn_enabled()]
    threads = tf.config.threading.get_intra_op_parallelism_threads() or "default"
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    isa = f" (max ISA {cap.strip().upper()})" if cap and cap.strip().upper() != "ALL" else ""
    return (f"{processor_model()} | {speed} | {cores} cores | intra-op {threads} | oneDNN {onednn}{isa} | "
            f"TensorFlow {tf.__version__}")


def onednn_enabled() -> Optional[bool]:
    """Whether this process's TensorFlow runs oneDNN's kernels (None where it cannot tell).

    TensorFlow reads `TF_ENABLE_ONEDNN_OPTS` once, when it is imported: the variable set later
    says nothing of the kernels that run (before: the cache key read it, and a measurement with
    oneDNN on was saved as one with it off; helper 180).
    """
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    return bool(_pywrap_util_port.IsMklEnabled())


def gpu_capabilities() -> Optional[Tuple[Tuple[int, int], ...]]:
    """The compute capability of every GPU TensorFlow sees, or None without GPUs."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    return tuple(
        tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0)))
        for gpu in gpus
    )


def probe_times(rounds: int = PROBE_ROUNDS) -> Tuple[float, float]:
    """Median seconds of the probe's convolution stack in float32 and in bfloat16, interleaved.

    One call of each per round after a warm-up call, so that load from other processes weighs
    on both alike. The bfloat16 side computes the convolutions as the mixed_bfloat16 policy does:
    bfloat16 inputs and kernels.
    """
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    cases = []
    for height, width, c_in, c_out, size, rate in PROBE_LAYERS:
        x = rng.standard_normal((1, height, width, c_in)).astype("float32")
        kernel = (rng.standard_normal((size, size, c_in, c_out)) / np.sqrt(size * size * c_in)).astype("float32")
        cases.append((x, kernel, rate))

    def stack(dtype):
        tensors = [(tf.constant(x, dtype), tf.constant(k, dtype), rate) for x, k, rate in cases]

        @tf.function
        def run():
            total = tf.constant(0.0, tf.float32)
            for x, kernel, rate in tensors:
                y = tf.nn.relu(tf.nn.conv2d(x, kernel, 1, "SAME", dilations=rate))
                total += tf.cast(tf.reduce_sum(y[:, :1, :1, :1]), tf.float32)
            return total

        return run

    functions = {"float32": stack(tf.float32), "bfloat16": stack(tf.bfloat16)}
    times: Dict[str, list] = {key: [] for key in functions}
    for function in functions.values():
        function().numpy()  # trace and warm up
    for _ in range(rounds):
        for key, function in functions.items():
            start = time.perf_counter()
            function().numpy()
            times[key].append(time.perf_counter() - start)
    return statistics.median(times["float32"]), statistics.median(times["bfloat16"])


def decide(float32_s: float, bfloat16_s: float, where: str) -> PrecisionChoice:
    """bfloat16 only when it takes at most `BFLOAT16_MARGIN` × the float32 time."""
    ratio = bfloat16_s / float32_s if float32_s > 0 else float("inf")
    precision = "bfloat16" if ratio <= BFLOAT16_MARGIN else "float32"
    verdict = "faster" if precision == "bfloat16" else "not clearly faster"
    return PrecisionChoice(
        precision,
        f"measured on {where}: bfloat16 convolutions take {ratio:.2f}x the float32 time ({verdict}; "
        f"bfloat16 needs <= {BFLOAT16_MARGIN}x)",
    )


def _read_cache(path: str) -> Dict[str, dict]:
    try:
        with open(path, encoding="utf-8") as handle:
            content = json.load(handle)
    except (OSError, ValueError):
        # A missing or damaged cache only costs a new measurement.
        return {}
    return content if isinstance(content, dict) else {}


def choose_precision(
    precision: str = "auto",
    *,
    measure: Optional[Callable[[], Tuple[float, float]]] = None,
    use_cache: bool = True,
) -> PrecisionChoice:
    """The precision to run in: `precision` itself, or for "auto" the faster one on this machine.

    Args:
        precision: "auto", "float32" or "bfloat16".
        measure: returns (float32 seconds, bfloat16 seconds) of the same work; default
            `probe_times` (tests pass their own).
        use_cache: read and write the cache file (`cache_path()`).

    Returns:
        A `PrecisionChoice`.

    Raises:
        ValueError: an unknown precision.
    """
    if precision != "auto":
        if precision not in ("float32", "bfloat16"):
            raise ValueError(f"precision must be one of ('auto', 'float32', 'bfloat16'), got {precision!r}")
        return PrecisionChoice(precision, "as asked")
    import keras

    if keras.backend.backend() != "tensorflow":
        return PrecisionChoice("float32", f"the {keras.backend.backend()} backend is not measured")
    capabilities = gpu_capabilities()
    if capabilities:
        oldest = min(capabilities)
        if oldest >= (8, 0):
            return PrecisionChoice("bfloat16", f"every GPU has compute capability >= 8.0 (lowest {oldest[0]}.{oldest[1]})")
        return PrecisionChoice("float32", f"a GPU of compute capability {oldest[0]}.{oldest[1]} emulates bfloat16")

    where = processor_model()
    key = measurement_key()
    path = cache_path()
    if use_cache:
        entry = _read_cache(path).get(key)
        try:  # a damaged entry (a value that is no positive number) is measured again (helper 149)
            cached = (float(entry["float32_s"]), float(entry["bfloat16_s"]))
        except (TypeError, ValueError, KeyError):
            cached = None
        if cached is not None and all(math.isfinite(value) and value > 0 for value in cached):
            choice = decide(*cached, where)
            return PrecisionChoice(choice.precision, f"{choice.reason}; cached in {path}")
    float32_s, bfloat16_s = (measure or probe_times)()
    choice = decide(float32_s, bfloat16_s, where)
    if use_cache:
        entries = _read_cache(path)
        entries[key] = {"float32_s": float32_s, "bfloat16_s": bfloat16_s, "precision": choice.precision}
        try:
            with atomic_write(path) as handle:
                json.dump(entries, handle, indent=2)
                handle.write("\n")
        except OSError:
            pass  # a read-only home only means measuring again next time
    return choice
