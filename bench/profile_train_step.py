"""Where the time of one training step goes: the port's step and the TF1 graph's, op type by op type.

Builds both sides of `bench/train_step.py` in one process (same batch, same threads), warms them
up, then records `--steps` steps of each with the TensorFlow profiler (`tf.profiler.experimental`)
in two windows a side, alternated (port, TF1, TF1, port), and sums the executor's per-op events by op type (`Conv2DBackpropFilter`, `Mul`, ...). Each op's
time is its wall time on a compute thread, so with two threads the columns add up to about twice
the step; what matters is the difference between the two sides per op type, and the op counts.

    python bench/profile_train_step.py --model adapnet_pp [--steps 2] [--top 40] [--json PATH]
    python bench/profile_train_step.py --model ssma --size 192x384   # quicker, same op structure
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import _common  # noqa: E402
import train_step  # noqa: E402


# Events of that form that are not ops: the function runtime's `Run` and the executor's `Process`
# contain the op events (counted, they doubled the totals: 255 808 ms for 99 592 of ops), the
# profiler's own `Record`, `StartRegion` and `StopRegion` take no time but ten times the counts.
_NOT_OPS = frozenset({"Run", "Process", "Record", "StartRegion", "StopRegion"})


def _op_times(logdir: str) -> tuple[dict, dict]:
    """Sums the profiler's TF-op events of one trace by op type: ({type: ms}, {type: count})."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    if len(paths) != 1:
        raise RuntimeError(f"expected one profile under {logdir}, found {paths}")
    space = xplane_pb2.XSpace()
    with open(paths[0], "rb") as handle:
        space.ParseFromString(handle.read())
    times, counts = collections.Counter(), collections.Counter()
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                # Executor events of TF ops are named "op_name:OpType"; everything else (Python,
                # the function runtime, threadpool bookkeeping) has no such form.
                if ":" not in name or " " in name:
                    continue
                op_type = name.rsplit(":", 1)[1]
                if not op_type.lstrip("_")[:1].isupper() or op_type in _NOT_OPS:
                    continue
                times[op_type] += event.duration_ps / 1e9
                counts[op_type] += 1
    return dict(times), dict(counts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="adapnet_pp", choices=train_step.CONFIGS)
    parser.add_argument("--steps", type=int, default=2, help="profiled steps of each side")
    parser.add_argument("--batch", type=int, default=train_step.BATCH)
    parser.add_argument("--size", default=f"{train_step.HEIGHT}x{train_step.WIDTH}")
    parser.add_argument("--top", type=int, default=40, help="op types listed, largest difference first")
    parser.add_argument("--json", type=_common.json_path, help="also write the per-op-type figures to this JSON file")
    parser.add_argument("--logdir", help="keep the profiles under this folder, each run in a run_<time> folder "
                        "of its own (for TensorBoard's profile plugin)")
    args = parser.parse_args(argv)
    height, width = _common.parse_size(parser, args.size)
    # Before: --steps 0 wrote an empty table; --top -3 left out the smallest rows without a word (helper 221).
    _common.positive(parser, steps=args.steps, batch=args.batch, top=args.top)

    import tensorflow as tf

    # Each run's profiles in a folder of their own: TensorFlow adds a profile beside the last one
    # in the same folder, and a second run with the same --logdir read two and stopped after all
    # its work (helper 196).
    kept = None if args.logdir is None else os.path.join(args.logdir, time.strftime("run_%Y%m%d_%H%M%S"))
    if kept is not None and os.path.exists(kept):
        kept += f"_{os.getpid()}"
    result = {"machine": _common.machine_info(), "args": vars(args), "sides": {}, "logdir": kept}
    with tempfile.TemporaryDirectory() as folder:
        port = train_step._PortStep(args.model, args.batch, height, width, False, folder)
        tf1 = train_step._TF1Step(args.model, args.batch, height, width, port.images, port.labels)
        steps = {"port": port, "tf1": tf1}
        for step in steps.values():  # traced and warm before any profile
            step()
            step()
        totals = {side: (collections.Counter(), collections.Counter()) for side in steps}
        # Two profiled windows a side, alternated (port, TF1, TF1, port), so that a load that
        # changes over the run weighs on both alike (before: one side's window, then the other's).
        for window, side in enumerate(("port", "tf1", "tf1", "port")):
            logdir = os.path.join(kept or folder, f"profile_{side}_{window}")
            tf.profiler.experimental.start(logdir)
            for _ in range(args.steps):
                steps[side]()
            tf.profiler.experimental.stop()
            times, counts = _op_times(logdir)
            totals[side][0].update(times)
            totals[side][1].update(counts)
        for side, (times, counts) in totals.items():
            result["sides"][side] = {
                "ms": {k: v / (2 * args.steps) for k, v in times.items()},
                "count": {k: v // (2 * args.steps) for k, v in counts.items()},
            }
    port_side, tf1_side = result["sides"]["port"], result["sides"]["tf1"]
    types = set(port_side["ms"]) | set(tf1_side["ms"])
    rows = sorted(types, key=lambda t: -abs(port_side["ms"].get(t, 0) - tf1_side["ms"].get(t, 0)))
    print(f"{args.model}, batch {args.batch}, {height}x{width}: op time per step (ms, summed over threads)")
    print(f"{'op type':<32}{'port ms':>10}{'TF1 ms':>10}{'diff':>10}{'port n':>8}{'TF1 n':>8}")
    for t in rows[:args.top]:
        p, q = port_side["ms"].get(t, 0.0), tf1_side["ms"].get(t, 0.0)
        print(f"{t:<32}{p:>10.1f}{q:>10.1f}{p - q:>+10.1f}"
              f"{port_side['count'].get(t, 0):>8}{tf1_side['count'].get(t, 0):>8}")
    total_p, total_q = sum(port_side["ms"].values()), sum(tf1_side["ms"].values())
    print(f"{'total':<32}{total_p:>10.1f}{total_q:>10.1f}{total_p - total_q:>+10.1f}"
          f"{sum(port_side['count'].values()):>8}{sum(tf1_side['count'].values()):>8}")
    if kept is not None:
        print(f"profiles: {kept}")
    if args.json:
        _common.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(_common.run_main(main))
