"""One training step of the port against the released TF1 training graph: time and peak memory.

The port's step is the `ssma_tf.training.Trainer`'s own compiled step (forward in training mode,
the released loss with the auxiliary terms, backward, Adam on the poly schedule with the encoder
learning-rate factor, the batch-norm updates). The original is
`bench/tf1_graph.py`'s `build_training_graph`: the released `train.py` rebuilt with
`tf.compat.v1` ops (`tests/test_training_step_equivalence.py` shows that one step of each gives the
same losses, gradients, statistics and weights), run by a `Session`. Both are fed the same batch
(the first of the port's own pipeline on records its converter wrote) from memory, so that
neither side's figures include decoding threads or prefetch buffers. Dropout is on (keep
probability 0.3), as released.

Time: both sides are built in ONE child process and their steps alternate (port, TF1, TF1, port,
...), so that whatever else the machine does weighs on both alike and both use the same thread
pools (TensorFlow's defaults: as many threads as cores). `vs TF1` is the median over rounds of the
port's step time divided by the TF1 step time of the same round (below 1: the port is faster);
`CPU p/T` the same ratio of the process's CPU time during each step (all threads), the work
done, which a loaded machine distorts much less than wall time.
Memory: each side runs alone in its own child process (warm-up and one timed step); its peak
resident memory (the RSS high-water mark from `getrusage`, TensorFlow's own footprint, weights
and Adam's slots included) is that process's; with `--memory-runs N`, the median over N such
processes per side (sides alternating), since one process's peak varies by tens of MiB.

Configurations:
    adapnet_pp          AdapNet++ with its auxiliary heads (every released unimodal run).
    ssma                SSMA as released (stage 3): experts frozen (not trainable, batch norms in
                        inference mode), fusion and decoder trained, no auxiliary heads.
    ssma_stage2         SSMA with trainable experts at 0.1× the learning rate (stage 2).

    python bench/train_step.py [--models adapnet_pp,ssma,ssma_stage2] [--steps 3] [--xla] [--json PATH]
    python bench/train_step.py --batch 8 --size 48x96    # the shape `make demo` trains at
    python bench/train_step.py --mixed-precision mixed_bfloat16   # the port in bfloat16 (AMX CPUs)
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

import _common  # noqa: E402

CONFIGS = ("adapnet_pp", "ssma", "ssma_stage2")
SIDES = ("port", "tf1")
NUM_CLASSES = 12
BATCH, HEIGHT, WIDTH = 2, 384, 768
KEEP_PROB = 0.3  # released dropout
SCHEDULE = {"learning_rate": 1e-4, "max_iteration": 100000, "power": 0.9, "end_learning_rate": 1e-6}
MEMORY_LIMIT_GIB = 8.0


def _write_records(path: str, batch: int, height: int, width: int, fusion: bool, seed: int = 0) -> None:
    """`batch` random samples in the released record format (the port's own encoder)."""
    import numpy as np

    from ssma_tf.data import write_examples

    rng = np.random.default_rng(seed)
    def samples():
        for _ in range(batch):
            sample = {"modality1": rng.integers(0, 256, (height, width, 3), dtype=np.uint8)}
            if fusion:
                sample["modality2"] = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            sample["label"] = rng.integers(0, NUM_CLASSES, (height, width), dtype=np.uint8)
            yield sample

    write_examples(path, samples())


class _PortStep:
    """The trainer's compiled step on a config like the released training scripts'.

    The trainer is fed one fixed batch from memory, as the TF1 side is fed (no decoding threads
    or prefetch buffers on either side: the step is what is compared). Its input stream is that
    batch repeated from the start (`Trainer._make_dataset`), so that the process never builds
    the record pipeline, whose buffers would count in its peak memory.
    """

    def __init__(self, name: str, batch: int, height: int, width: int, xla: bool, folder: str,
                 images=None, labels=None, mixed_precision: str | None = None):
        import tensorflow as tf

        from ssma_tf import training
        from ssma_tf.config import config_from_dict

        fusion = name != "adapnet_pp"
        records = os.path.join(folder, "train.tfrecords")
        _write_records(records, batch, height, width, fusion)
        values = {
            "model": "SSMA" if fusion else "AdapNet_pp", "num_classes": NUM_CLASSES,
            "checkpoint": os.path.join(folder, "checkpoints"), "train_data": records, "batch_size": batch,
            "height": height, "width": width, "skip_step": 1, "save_step": 10**6, "seed": 0,
            "dropout_keep_prob": KEEP_PROB, "xla": xla, **SCHEDULE,
        }
        if mixed_precision:
            values["mixed_precision"] = mixed_precision
        if fusion:
            stage2 = name == "ssma_stage2"
            values.update(freeze_experts=not stage2, encoder_lr_multiplier=0.1 if stage2 else 1.0)
        self.config = config_from_dict(values, source=f"bench-{name}", mode="train")
        if images is None:
            images, labels = self._first_batch()
        self.images, self.labels = images, labels
        inputs = tuple(images) if len(images) == 2 else images[0]

        class FromMemory(training.Trainer):
            def _make_dataset(self, context, seed_offset):
                return tf.data.Dataset.from_tensors((inputs, labels)).repeat()

        self.trainer = FromMemory(self.config, log=lambda line: None)
        self.trainable = int(sum(v.numpy().size for v in self.trainer.model.trainable_variables))

    def _first_batch(self):
        """The first batch of the port's own pipeline on the records, as numpy: (image arrays, labels)."""
        import keras

        from ssma_tf import training

        keras.utils.set_random_seed(self.config.seed)
        inputs, labels = next(iter(training.make_train_dataset(self.config)))
        images = [x.numpy() for x in inputs] if isinstance(inputs, (list, tuple)) else [inputs.numpy()]
        return images, labels.numpy()

    def __call__(self) -> float:
        loss, _, _, _ = self.trainer.train_function(self.trainer.iterator)
        return float(loss)


class _TF1Step:
    """One `session.run` of the released training graph's train op, fed one batch."""

    def __init__(self, name: str, batch: int, height: int, width: int, images, labels):
        import numpy as np

        import tf1_graph

        fusion = name != "adapnet_pp"
        self.graph = tf1_graph.build_training_graph(
            "ssma" if fusion else "adapnet_pp", NUM_CLASSES, height, width, aux_heads=not fusion,
            keep_prob=KEEP_PROB, frozen_experts=name == "ssma",
            encoder_lr_multiplier=0.1 if name == "ssma_stage2" else 1.0, **SCHEDULE,
        )
        self.session = tf1_graph.session_for(self.graph.graph)
        self.feed = {p: x for p, x in zip(self.graph.inputs, images)}
        self.feed[self.graph.labels] = (labels[..., None] == np.arange(NUM_CLASSES)).astype(np.float32)
        with self.graph.graph.as_default():
            import tensorflow as tf

            self.trainable = int(sum(np.prod(v.shape) for v in tf.compat.v1.trainable_variables()))

    def __call__(self) -> float:
        _, loss = self.session.run([self.graph.train_op, self.graph.loss], self.feed)
        return float(loss)


def _random_batch(name: str, batch: int, height: int, width: int):
    import numpy as np

    rng = np.random.default_rng(0)
    images = [rng.uniform(0, 255, (batch, height, width, 3)).astype(np.float32)
              for _ in range(1 if name == "adapnet_pp" else 2)]
    return images, rng.integers(0, NUM_CLASSES, (batch, height, width)).astype("int32")


def child(spec: dict) -> dict:
    """Builds the requested sides of one configuration and times them in alternation."""
    import tensorflow as tf

    name, sides = spec["config"], spec["sides"]
    batch, height, width = spec["batch"], spec["height"], spec["width"]
    steps = {}
    first = {}
    with tempfile.TemporaryDirectory() as folder:
        images = labels = None
        if sides != ["port", "tf1"]:
            # A side measured alone for its memory gets the same kind of batch either way (and
            # the port's process no record pipeline).
            images, labels = _random_batch(name, batch, height, width)
        if "port" in sides:
            steps["port"] = _PortStep(name, batch, height, width, spec.get("xla", False), folder, images, labels,
                                      mixed_precision=spec.get("mixed_precision"))
            images, labels = steps["port"].images, steps["port"].labels
        if "tf1" in sides:
            steps["tf1"] = _TF1Step(name, batch, height, width, images, labels)
        # The process's peak memory once everything is built, before the first step (model,
        # optimizer slots, the TF1 graph or the Keras objects): what the steps add comes above it.
        built_peak_mib = _common.peak_rss_mib()
        for side, step in steps.items():
            start = time.perf_counter()
            step()
            first[side] = time.perf_counter() - start
            for _ in range(spec["warmup"] - 1):
                step()
        seconds = {side: [] for side in steps}
        cpu = {side: [] for side in steps}
        losses = {side: [] for side in steps}
        for index in range(spec["steps"]):
            # ABBA order: neither side always runs right after the other's step.
            order = list(steps) if index % 2 == 0 else list(reversed(list(steps)))
            for side in order:
                start, start_cpu = time.perf_counter(), time.process_time()
                losses[side].append(steps[side]())
                seconds[side].append(time.perf_counter() - start)
                # CPU time of the whole process (every thread) during the step: the work done,
                # which other processes on the machine inflate far less than the wall time.
                cpu[side].append(time.process_time() - start_cpu)
        result = {
            "config": name, "sides": sides, "batch": batch, "height": height, "width": width,
            "xla": bool(spec.get("xla")), "mixed_precision": spec.get("mixed_precision"),
            "step": {side: _common.summarize(seconds[side]) for side in steps},
            "seconds": seconds, "cpu_seconds": cpu, "first_step_s": first, "losses": losses,
            "trainable_parameters": {side: step.trainable for side, step in steps.items()},
            "peak_rss_mib": _common.peak_rss_mib(),
            "built_peak_rss_mib": built_peak_mib,
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "load_average": [round(v, 2) for v in os.getloadavg()],
        }
        if "port" in steps:
            result["port_traces"] = steps["port"].trainer.train_function.experimental_get_tracing_count()
        if len(steps) == 2:
            result["ratio_per_round"] = [p / t for p, t in zip(seconds["port"], seconds["tf1"])]
            result["ratio_median"] = statistics.median(result["ratio_per_round"])
            result["cpu_ratio_per_round"] = [p / t for p, t in zip(cpu["port"], cpu["tf1"])]
            result["cpu_ratio_median"] = statistics.median(result["cpu_ratio_per_round"])
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default=",".join(CONFIGS), help=f"comma-separated, from {', '.join(CONFIGS)}")
    parser.add_argument("--steps", type=int, default=3, help="timed rounds (one step of each side per round)")
    parser.add_argument("--warmup", type=int, default=1, help="steps of each side before timing (the first traces)")
    parser.add_argument("--xla", action="store_true", help="the port's step with `xla: true` (XLA for forward-backward)")
    parser.add_argument("--mixed-precision", choices=("mixed_bfloat16", "mixed_float16"),
                        help="the port's step under this `mixed_precision` policy (the TF1 side stays "
                             "float32, as released)")
    parser.add_argument("--no-memory", action="store_true", help="skip the per-side memory runs")
    parser.add_argument("--no-timing", action="store_true", help="only the per-side memory runs")
    parser.add_argument("--memory-runs", type=int, default=1,
                        help="processes per side for the peak memory (median reported; default 1)")
    parser.add_argument("--batch", type=int, default=BATCH, help=f"images per step (default {BATCH})")
    parser.add_argument("--size", default=f"{HEIGHT}x{WIDTH}", help=f"HEIGHTxWIDTH, multiples of 16 (default {HEIGHT}x{WIDTH})")
    parser.add_argument("--json", type=_common.json_path, help="also write the results to this JSON file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _common.emit(child(json.loads(args.child)))
        return 0

    height, width = _common.parse_size(parser, args.size)
    if args.batch <= 0:
        raise SystemExit(f"--batch must be positive, got {args.batch}")
    if args.memory_runs < 1:
        raise SystemExit(f"--memory-runs must be at least 1, got {args.memory_runs}")
    if args.steps < 1:
        raise SystemExit(f"--steps must be at least 1, got {args.steps}")
    if args.no_timing and args.no_memory:
        raise SystemExit("--no-timing and --no-memory together measure nothing")
    configs = [c.strip() for c in args.models.split(",") if c.strip()]
    if not configs:  # before: an empty table, exit 0 (helper 141)
        raise SystemExit("--models: none given")
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise SystemExit(f"--models: unknown {unknown}; choose from {', '.join(CONFIGS)}")
    from ssma_tf.cli.common import distinct_or_exit  # no TensorFlow

    # Before: every child of a configuration given twice ran twice, its rows printed twice (helper 329).
    distinct_or_exit(parser, models=configs)
    if args.warmup < 1:  # before: made 1 without a word, the JSON saying 0
        parser.error(f"--warmup must be >= 1 (the first step traces the function), got {args.warmup}")
    info = _common.machine_info()
    base = {"steps": args.steps, "warmup": args.warmup, "xla": args.xla,
            "mixed_precision": args.mixed_precision,
            "batch": args.batch, "height": height, "width": width}
    results = []
    for config in configs:
        timing = {"error": "not timed (--no-timing)"}
        if not args.no_timing:
            print(f"... {config}: both sides, interleaved", flush=True)
            timing = _common.run_child(os.path.abspath(__file__), {**base, "config": config, "sides": list(SIDES)})
        memory, memory_runs, built_runs = {}, {side: [] for side in SIDES}, {side: [] for side in SIDES}
        if not args.no_memory:
            # Sides alternate over the repetitions; the median of each side's peaks is reported
            # (one process's peak varies by tens of MiB from run to run).
            for repetition in range(args.memory_runs):
                for side in SIDES:
                    print(f"... {config}: {side} alone (peak memory, run {repetition + 1})", flush=True)
                    alone = _common.run_child(os.path.abspath(__file__),
                                              {**base, "config": config, "sides": [side], "steps": 1})
                    memory_runs[side].append(alone.get("peak_rss_mib", alone.get("error")))
                    built_runs[side].append(alone.get("built_peak_rss_mib"))
            for side in SIDES:
                peaks = [m for m in memory_runs[side] if isinstance(m, (int, float))]
                memory[side] = statistics.median(peaks) if peaks else memory_runs[side][0]
        results.append({"config": config, "timing": timing, "peak_rss_mib": memory, "peak_rss_mib_runs": memory_runs,
                        "built_peak_rss_mib_runs": built_runs})
    info["load_average_after"] = [round(v, 2) for v in os.getloadavg()]

    print()
    print(f"Machine: {_common.describe_machine(info)}; load average after {info['load_average_after'][0]:.1f}")
    print(f"One training step, batch {args.batch}, {height}x{width}, dropout on"
          f"{', port with XLA' if args.xla else ''}"
          f"{f', port in {args.mixed_precision}' if args.mixed_precision else ''}"
          + ("; not timed (--no-timing)" if args.no_timing else f"; {args.steps} interleaved rounds")
          + ("" if args.no_memory else f"; peak memory: median of {args.memory_runs} run(s) of each side alone"))
    header = (f"{'config':<13}{'port s':>8}{'TF1 s':>8}{'port/TF1':>10}{'CPU p/T':>9}{'port GiB':>10}{'TF1 GiB':>9}"
              f"{'trainable':>11}{'first s (port, TF1)':>22}")
    print(header)
    print("-" * len(header))
    fits = True
    for r in results:
        t = r["timing"]
        memory = [r["peak_rss_mib"].get(side) for side in SIDES]
        gib = ["-" if not isinstance(m, (int, float)) else f"{m / 1024:.2f}" for m in memory]
        # Checked before a row without timing goes on (the claim below held nothing before). A side
        # whose memory run failed (killed for memory, say) does not fit (before: counted as fitting,
        # "All peaks within 8 GiB: yes" and exit 0, its error never shown; helper 141).
        failed = [(side, m) for side, m in zip(SIDES, memory) if not args.no_memory and not isinstance(m, (int, float))]
        fits &= not failed and all(not isinstance(m, (int, float)) or m / 1024 <= MEMORY_LIMIT_GIB for m in memory)
        for side, error in failed:
            print(f"  {r['config']}: the {side} side's memory run failed: {str(error)[-300:]}")
        if "error" in t:
            print(f"{r['config']:<13}{'-':>8}{'-':>8}{'-':>10}{'-':>9}{gib[0]:>10}{gib[1]:>9}   "
                  f"timing: {t['error'][-200:]}")
            fits = fits and bool(args.no_timing)
            continue
        print(f"{r['config']:<13}{t['step']['port']['median']:>8.2f}{t['step']['tf1']['median']:>8.2f}"
              f"{t['ratio_median']:>9.3f}x{t['cpu_ratio_median']:>8.3f}x{gib[0]:>10}{gib[1]:>9}{t['trainable_parameters']['port'] / 1e6:>10.1f}M"
              f"{t['first_step_s']['port']:>11.1f}{t['first_step_s']['tf1']:>11.1f}")
    # The spread of the ratios beside their medians (before: the docs' ranges were read off the
    # JSON by hand; helper 196).
    for r in results:
        rounds = r["timing"].get("ratio_per_round")
        if rounds:
            cpu = r["timing"]["cpu_ratio_per_round"]
            print(f"{r['config']}: port/TF1 {statistics.median(rounds):.3f} ({min(rounds):.3f}-{max(rounds):.3f}), "
                  f"CPU {statistics.median(cpu):.3f} ({min(cpu):.3f}-{max(cpu):.3f}) over {len(rounds)} rounds")
    if not args.no_memory:  # nothing measured: nothing to claim
        print(f"All peaks within {MEMORY_LIMIT_GIB:.0f} GiB: {'yes' if fits else 'NO'}")
    if args.json:
        _common.write_json(args.json, {"machine": info, "args": vars(args), "results": results})
    return 0 if fits else 1


if __name__ == "__main__":
    sys.exit(_common.run_main(main))
