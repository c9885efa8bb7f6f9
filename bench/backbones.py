"""Expert backbones side by side: parameters, GFLOPs and CPU latency, in one process.

AdapNet++ (unimodal) and SSMA (two experts) on each backbone of `ssma_tf.models.backbones`
(the released AdapNet++ ResNet-50 encoder, and MobileNet v2 at output stride 16 with the eASPP and
the AdapNet++ decoder, as the paper's Section 5.10.1). For each network: its parameters, the FLOPs
of one image (TF profiler on the frozen inference graph, a multiply-add counted as 2, as
`bench/flops.py`), and the latency of the compiled float32 inference function
(`ssma_tf.inference.compiled.compiled_predict`: batch norms folded, sub-pixel upsampling), median
of `--runs` calls after `--warmup`, batch 1; with `--int8`, also the latency of its OpenVINO int8
export (`ssma-export --format openvino --int8`, calibrated on seeded random images, run as
`--backend openvino` runs it: the real-time deployment path). The MobileNet v2 networks are built
with each decoder width of `--decoder-filters` (the config key `decoder_filters`: 256 is the
released AdapNet++ decoder, which holds most of a MobileNet expert's FLOPs; 64 a real-time one).
All networks run in this one process and are timed interleaved: every network (and its int8
export) once a round, the order reversed every other round, so that they share the machine's
state; the figures are for comparing them with each other. (The figures recorded before
2026-12-04 were timed one network after another.)

With `--folding`, each MobileNet v2 network is also timed with only the project's own batch norms
folded and the backbone's 52 per expert left as they are (as before 2026-12-04), and the median
per-round ratio of the two is printed.

    python bench/backbones.py [--size 384x768] [--runs 10] [--decoder-filters 256,64] [--int8] [--folding]
                              [--json PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _common  # noqa: E402

NUM_CLASSES = 12  # Cityscapes as released


def prepare(name: str, backbone: str, decoder_filters: int, height: int, width: int, int8: bool,
            workdir: str, folding: bool = False) -> tuple[dict, dict]:
    """One network: its parameters and GFLOPs, and the calls to time (`float32`, and `int8` with
    `int8`: its OpenVINO int8 export, written into `workdir`; with `folding`, for a backbone
    other than AdapNet++'s, `own_folding`: the float32 function with only the project's own batch
    norms folded, the backbone's left as they are), each waiting for its result."""
    import numpy as np
    import tensorflow as tf

    from ssma_tf.inference.compiled import compiled_predict
    from ssma_tf.inference.flops import flops as inference_flops
    from ssma_tf.models import SSMA, AdapNetPP
    from ssma_tf.models.widths import decoder_widths

    fusion = name == "ssma"
    widths = decoder_widths(decoder_filters)  # the released width is dropped: the released decoder
    model = (SSMA(NUM_CLASSES, backbone=backbone, widths=widths) if fusion
             else AdapNetPP(NUM_CLASSES, aux_heads=False, backbone=backbone, widths=widths))
    flops = inference_flops(model, height, width)
    rng = np.random.default_rng(0)
    array = rng.integers(0, 256, (1, height, width, 3)).astype("float32")
    image = tf.constant(array)
    inputs = [image, image] if fusion else image
    result = {"network": name, "backbone": backbone, "decoder_filters": decoder_filters,
              "params": int(model.count_params()), "gflops": round(flops / 1e9, 2), "latency_ms": None,
              "fps": None}
    predict = compiled_predict(model)
    calls = {"float32": lambda: predict(inputs).numpy()}
    if folding and backbone != "adapnet_pp":
        # As `compiled_predict`, with `fold_batch_norms(graphs=False)`: before 2026-12-04 the
        # batch norms of Keras' MobileNet v2 graph were not folded.
        from ssma_tf.inference.batch_norm_folding import fold_batch_norms
        from ssma_tf.inference.rewrites import use_subpixel_upsampling

        own, _ = fold_batch_norms(model, graphs=False)
        use_subpixel_upsampling(own)
        own_predict = tf.function(lambda x: own(x, training=False))
        expected = predict(inputs).numpy()
        difference = float(np.abs(own_predict(inputs).numpy() - expected).max())
        if difference > 1e-3:
            raise RuntimeError(f"{name} on {backbone}: the two foldings differ by {difference:.2g}")
        calls["own_folding"] = lambda: own_predict(inputs).numpy()
    if int8:
        # The deployment path of `ssma-export --format openvino --int8` and `--backend openvino`,
        # calibrated on seeded random images as bench/inference.py's openvino_int8 mode.
        import inference as bench_inference
        from ssma_tf.inference.backends import load_exported
        from ssma_tf.inference.deploy import export_deployed

        folder = os.path.join(workdir, f"{name}_{backbone}_{decoder_filters}")
        os.makedirs(folder)
        records = os.path.join(folder, "calibration.tfrecords")
        bench_inference._write_calibration_records(records, name, (height, width))
        path = os.path.join(folder, "openvino_int8")
        export_deployed(model, path, format="openvino", size=(height, width), int8=True, calibration=[records],
                        calibration_samples=bench_inference.CALIBRATION_SAMPLES)
        exported = load_exported(path, "openvino")
        arrays = [array, array] if fusion else [array]
        calls["int8"] = lambda: exported(arrays)
    return result, calls


def time_interleaved(calls: list, warmup: int, runs: int) -> list[list[float]]:
    """Seconds of each call in `runs` rounds, every call once a round, the order reversed every
    other round (ABBA), after `warmup` untimed rounds: all networks share the machine's state."""
    for _ in range(warmup):
        for call in calls:
            call()
    seconds: list[list[float]] = [[] for _ in calls]
    for round_index in range(runs):
        order = list(range(len(calls)))
        for index in (order if round_index % 2 == 0 else order[::-1]):
            start = time.perf_counter()
            calls[index]()
            seconds[index].append(time.perf_counter() - start)
    return seconds


def main(argv=None) -> int:
    """Measures every network and prints (and optionally writes) the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="384x768", help="HEIGHTxWIDTH of the input")
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first")
    parser.add_argument("--runs", type=int, default=10, help="timed calls (0: parameters and GFLOPs only)")
    parser.add_argument("--decoder-filters", default="256,64",
                        help="comma-separated decoder widths to build the MobileNet v2 networks with "
                             "(`decoder_filters:`; AdapNet++ experts keep the released 256)")
    parser.add_argument("--int8", action="store_true",
                        help="also time the OpenVINO int8 export of each network (the `deploy` extra)")
    parser.add_argument("--folding", action="store_true",
                        help="also time each MobileNet v2 network with its backbone's batch norms unfolded (as "
                             "before 2026-12-04), interleaved, and give the median per-round ratio")
    parser.add_argument("--json", type=_common.json_path, help="also write the results to this file")
    args = parser.parse_args(argv)
    height, width = _common.parse_size(parser, args.size)
    try:  # before: int()'s traceback
        decoders = [int(v) for v in args.decoder_filters.split(",")]
    except ValueError:
        parser.error(f"--decoder-filters must be comma-separated integers, got {args.decoder_filters!r}")
    if min(decoders) < 1:
        parser.error(f"--decoder-filters must be >= 1, got {min(decoders)}")
    from ssma_tf.cli.common import distinct_or_exit  # no TensorFlow

    # Before: `64,64` built and timed one network twice, two rows of it, and with --int8 ended
    # after minutes in a FileExistsError of its export folder (helper 303).
    distinct_or_exit(parser, **{"decoder-filters": decoders})
    if args.runs < 0:
        parser.error(f"--runs must be >= 0, got {args.runs}")
    if args.runs and args.warmup < 1:  # the first call traces: it would be timed
        parser.error(f"--warmup must be >= 1 (the first call traces the function), got {args.warmup}")
    if args.int8 and args.runs:
        import importlib.util

        from ssma_tf.inference.backends import RUNTIME_PACKAGES  # no TensorFlow

        # The int8 export converts with OpenVINO and calibrates with NNCF. Before: a MissingExtraError
        # traceback once the first network was built (helper 329); refused as bench/inference.py's
        # openvino_int8 mode is.
        missing = [RUNTIME_PACKAGES[p] for p in ("openvino", "nncf")
                   if importlib.util.find_spec(RUNTIME_PACKAGES[p]) is None]
        if missing:
            parser.error(f"--int8 needs the deploy extra (pip install '.[deploy]'): {', '.join(missing)} "
                         "not installed")
    info = _common.machine_info()
    networks = [("adapnet_pp", 256)] + [("mobilenet_v2", f) for f in decoders]
    with tempfile.TemporaryDirectory(prefix="bench-backbones-") as workdir:
        prepared = [prepare(name, backbone, filters, height, width, args.int8 and args.runs > 0, workdir,
                            args.folding and args.runs > 0)
                    for backbone, filters in networks for name in ("adapnet_pp", "ssma")]
        results = [result for result, _ in prepared]
        if args.runs:
            # Every network and precision in each round (before: one network's runs after another's).
            timed = [(result, kind, call) for result, calls in prepared for kind, call in calls.items()]
            seconds = time_interleaved([call for _, _, call in timed], args.warmup, args.runs)
            by_call = {(id(result), kind): values for (result, kind, _), values in zip(timed, seconds)}
            for (result, kind, _), values in zip(timed, seconds):
                median, fastest = 1000 * statistics.median(values), 1000 * min(values)
                prefix = "" if kind == "float32" else f"{kind}_"
                # Every round's figure too, so that the spread can be told (helper 196).
                result.update({f"{prefix}latency_ms": round(median, 1), f"{prefix}fps": round(1000.0 / median, 2),
                               f"{prefix}latency_min_ms": round(fastest, 1),
                               f"{prefix}latency_max_ms": round(1000 * max(values), 1),
                               f"{prefix}latency_rounds_ms": [round(1000 * v, 2) for v in values]})
                if kind == "own_folding":
                    # Median of the per-round ratios: both ran in each round, side by side.
                    ratios = [a / b for a, b in zip(by_call[(id(result), "float32")], values)]
                    result["folding_ratio"] = round(statistics.median(ratios), 3)
                    result["folding_ratios"] = [round(r, 3) for r in ratios]
    print(f"\n{_common.describe_machine(info)}; input {height}x{width}, batch 1\n")
    print("| network | backbone | decoder | parameters | GFLOPs | float32 latency (median, range) | frames/s |"
          + (" OpenVINO int8 latency | frames/s |" if args.int8 else ""))
    print("| --- | --- | --- | --- | --- | --- | --- |" + (" --- | --- |" if args.int8 else ""))
    for r in results:
        network = "SSMA (2 experts)" if r["network"] == "ssma" else "unimodal expert"
        latency = ("–" if r["latency_ms"] is None
                   else f"{r['latency_ms']:.0f} ms ({r['latency_min_ms']:.0f}-{r['latency_max_ms']:.0f})")
        fps = "–" if r["fps"] is None else f"{r['fps']:.2f}"
        line = (f"| {network} | {r['backbone']} | {r['decoder_filters']} | {r['params'] / 1e6:.2f} M | "
                f"{r['gflops']:.1f} | {latency} | {fps} |")
        if args.int8:
            line += (" – | – |" if r.get("int8_latency_ms") is None
                     else f" {r['int8_latency_ms']:.0f} ms ({r['int8_latency_min_ms']:.0f}-"
                          f"{r['int8_latency_max_ms']:.0f}) | {r['int8_fps']:.2f} |")
        print(line)
    folded = [r for r in results if r.get("folding_ratio") is not None]
    if folded:
        print("\nfloat32 latency with every batch norm folded, as a ratio to the backbone's left unfolded "
              "(median of per-round ratios):")
        for r in folded:
            network = "SSMA (2 experts)" if r["network"] == "ssma" else "unimodal expert"
            print(f"  {network}, {r['backbone']}, decoder {r['decoder_filters']}: {r['latency_ms']:.0f} ms vs "
                  f"{r['own_folding_latency_ms']:.0f} ms, ratio {r['folding_ratio']:.2f} "
                  f"({min(r['folding_ratios']):.2f}-{max(r['folding_ratios']):.2f})")
    if args.json:
        _common.write_json(args.json, {"machine": info, "size": [height, width], "settings": vars(args),
                                       "results": results})
    return 0


if __name__ == "__main__":
    sys.exit(_common.run_main(main))
