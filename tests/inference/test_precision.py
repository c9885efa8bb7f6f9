"""`precision="auto"`: timed, cached, never the slower arithmetic; GPUs by compute capability."""

import json

import pytest
import tensorflow as tf

from ssma_tf.inference import precision as module
from ssma_tf.inference import rewrites
from ssma_tf.inference.precision import BFLOAT16_MARGIN, cache_path, choose_precision


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: [])


@pytest.mark.parametrize("float32_s,bfloat16_s", [
    (1.0, 1.64), (1.0, 1.0), (1.0, 0.95), (1.0, BFLOAT16_MARGIN + 0.01), (0.5, 0.2), (1.0, 0.33), (2.0, 1.6),
])
def test_auto_never_picks_the_slower_precision(float32_s, bfloat16_s):
    choice = choose_precision("auto", measure=lambda: (float32_s, bfloat16_s), use_cache=False)
    faster = "bfloat16" if bfloat16_s < float32_s else "float32"
    if choice.precision == "bfloat16":
        assert faster == "bfloat16" and bfloat16_s <= BFLOAT16_MARGIN * float32_s
    else:
        assert bfloat16_s > BFLOAT16_MARGIN * float32_s
    assert f"{bfloat16_s / float32_s:.2f}x the float32 time" in choice.reason


def test_the_measurement_is_cached_per_processor_threads_onednn_and_tensorflow_version(monkeypatch):
    calls = []

    def measure():
        calls.append(1)
        return 1.0, 0.4

    first = choose_precision("auto", measure=measure)
    second = choose_precision("auto", measure=measure)
    assert first.precision == second.precision == "bfloat16" and len(calls) == 1
    assert "cached in" in second.reason
    with open(cache_path(), encoding="utf-8") as handle:
        entries = json.load(handle)
    (key,) = entries
    assert tf.__version__ in key and module.processor_model() in key
    # Another TensorFlow version is another entry: measured again.
    monkeypatch.setattr(tf, "__version__", "9.9.9")
    assert choose_precision("auto", measure=lambda: (1.0, 1.5)).precision == "float32"
    with open(cache_path(), encoding="utf-8") as handle:
        assert len(json.load(handle)) == 2
    # So is oneDNN switched off, and another core count (helper 119: the choice measured with
    # oneDNN on, bfloat16 at 0.56x, was taken with it off, where bfloat16 is slower).
    running = module.onednn_enabled()
    assert running is not None
    monkeypatch.setattr(module, "onednn_enabled", lambda: not running)
    assert "cached" not in choose_precision("auto", measure=lambda: (1.0, 1.2)).reason
    monkeypatch.setattr(module.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4, 5, 6})
    assert "cached" not in choose_precision("auto", measure=lambda: (1.0, 1.2)).reason
    with open(cache_path(), encoding="utf-8") as handle:
        keys = list(json.load(handle))
    off = "oneDNN on" if not running else "oneDNN off"
    assert len(keys) == 4 and off in keys[2] and "7 cores" in keys[3], keys


def test_the_cache_key_says_the_onednn_state_that_runs_not_the_variable_set_after_the_import(monkeypatch):
    """TensorFlow reads TF_ENABLE_ONEDNN_OPTS at its import: set later, the variable made the key
    say oneDNN 0 while oneDNN's kernels ran, and the measurement was taken for one with it off
    (helper 180)."""
    from ssma_tf.inference import precision as module

    before = module.measurement_key()
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0" if module.onednn_enabled() else "1")
    assert module.measurement_key() == before


def test_the_cache_key_says_onednns_instruction_set_cap(monkeypatch):
    """Helper 218: a run with AMX capped off (ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16) took the AMX
    measurement, bfloat16 at 0.27x the float32 time where it took 1.83x."""
    from ssma_tf.inference import precision as module

    monkeypatch.delenv("ONEDNN_MAX_CPU_ISA", raising=False)
    monkeypatch.delenv("DNNL_MAX_CPU_ISA", raising=False)
    plain = module.measurement_key()
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "avx512_core_bf16")
    capped = module.measurement_key()
    assert capped != plain and "(max ISA AVX512_CORE_BF16)" in capped
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "ALL")  # oneDNN's name for no cap
    assert module.measurement_key() == plain


def test_a_damaged_cache_is_measured_again():
    path = cache_path()
    import os

    os.makedirs(os.path.dirname(path))
    with open(path, "w", encoding="utf-8") as handle:
        handle.write("{not json")
    assert choose_precision("auto", measure=lambda: (1.0, 2.0)).precision == "float32"
    with open(path, encoding="utf-8") as handle:
        assert len(json.load(handle)) == 1
    # A damaged entry in readable JSON (helper 149: float(None), a TypeError traceback).
    from ssma_tf.inference.precision import measurement_key

    for entry in ({"float32_s": None, "bfloat16_s": 1.0}, {"float32_s": "x", "bfloat16_s": 1.0},
                  {"float32_s": -1.0, "bfloat16_s": 1.0}, "not a mapping"):
        with open(path, "w", encoding="utf-8") as handle:
            json.dump({measurement_key(): entry}, handle)
        choice = choose_precision("auto", measure=lambda: (1.0, 2.0))
        assert choice.precision == "float32" and "cached" not in choice.reason


def test_explicit_precisions_are_not_measured():
    def measure():
        raise AssertionError("measured")

    assert choose_precision("bfloat16", measure=measure).precision == "bfloat16"
    assert choose_precision("float32", measure=measure).reason == "as asked"
    with pytest.raises(ValueError, match="'fp16'"):
        choose_precision("fp16")


def test_with_gpus_visible_their_compute_capability_decides(monkeypatch):
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: ["gpu:0", "gpu:1"])
    capabilities = {"gpu:0": (8, 6), "gpu:1": (7, 5)}
    monkeypatch.setattr(tf.config.experimental, "get_device_details",
                        lambda gpu: {"compute_capability": capabilities[gpu]})

    def measure():
        raise AssertionError("GPUs are not timed")

    choice = choose_precision("auto", measure=measure)
    assert choice.precision == "float32" and "7.5" in choice.reason  # a Turing card emulates bfloat16
    capabilities["gpu:1"] = (9, 0)
    assert choose_precision("auto", measure=measure).precision == "bfloat16"


def test_the_probe_runs_and_resolve_precision_uses_its_choice(monkeypatch):
    float32_s, bfloat16_s = module.probe_times(rounds=1)
    assert float32_s > 0 and bfloat16_s > 0
    monkeypatch.setattr(module, "probe_times", lambda: (1.0, 3.0))
    assert rewrites.resolve_precision("auto") == "float32"


def test_the_probe_reports_each_precisions_own_time(monkeypatch):
    # A clock that only the convolutions move: 1 s for each float32 one, 3 s for each bfloat16
    # one. Run eagerly (tf.function as the identity) so that every call reaches the wrapper.
    clock = [0.0]
    conv2d = tf.nn.conv2d

    def timed_conv2d(x, kernel, *args, **kwargs):
        assert x.dtype == kernel.dtype
        clock[0] += 3.0 if x.dtype == tf.bfloat16 else 1.0
        return conv2d(x, kernel, *args, **kwargs)

    monkeypatch.setattr(tf, "function", lambda f: f)
    monkeypatch.setattr(tf.nn, "conv2d", timed_conv2d)
    monkeypatch.setattr(module.time, "perf_counter", lambda: clock[0])
    layers = len(module.PROBE_LAYERS)
    assert module.probe_times(rounds=1) == (1.0 * layers, 3.0 * layers)
