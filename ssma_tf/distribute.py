"""Devices and `tf.distribute` strategies for training and evaluation.

One code path for every set-up: the training step always runs through `strategy.run`, with

- `MultiWorkerMirroredStrategy` when `TF_CONFIG` describes a cluster of several tasks,
- `MirroredStrategy` over all visible GPUs when there is more than one (batch norms then compute
  their statistics over the global batch, "synchronized batch norm"),
- the default strategy otherwise (one GPU, or the CPU).

`gpu_id` (the original config key) still selects the GPUs, as the released scripts did through
`CUDA_VISIBLE_DEVICES`.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from typing import Any, Optional

import keras
import tensorflow as tf

from ssma_tf.errors import UserInputError, first_line
from ssma_tf.keras_compat import walk_layers

# TF_CONFIG task types that take part in training (an "evaluator" task does not).
_TRAINING_TASK_TYPES = ("chief", "worker")


class DeviceError(UserInputError):
    """`gpu_id` names GPUs that are not there, or comes too late to be applied."""


def configure_devices(gpu_id: Optional[str]) -> None:
    """Makes only the GPUs named by `gpu_id` visible to TensorFlow.

    Sets `CUDA_VISIBLE_DEVICES` as the original scripts did. That only works before CUDA starts,
    so when TensorFlow has already seen the GPUs (e.g. a caller listed them first) the selection
    is also applied with `tf.config.set_visible_devices`. A machine without GPUs trains on the
    CPU whatever `gpu_id` says (every released config says '0'); so does one whose GPUs the
    variable hides all of (`gpu_id: 1` on a machine of one GPU), which the run's first line
    tells ("on 1 replica(s) (CPU)").

    Args:
        gpu_id: "0", "0,1", ... or "-1" for the CPU only; None leaves the devices alone.

    Raises:
        DeviceError: `gpu_id` names more GPUs than are visible (CUDA stops at the first index
            that does not exist: `0,5` on two GPUs gives one), or GPUs that do not exist, or
            comes after TensorFlow initialised its devices. Before: accepted, or a traceback.
    """
    if gpu_id is None:
        return
    wanted = [int(i) for i in gpu_id.split(",") if int(i) >= 0]
    value = ",".join(str(i) for i in wanted) if wanted else "-1"
    previous = os.environ.get("CUDA_VISIBLE_DEVICES")
    listed_before = _devices_listed()
    os.environ["CUDA_VISIBLE_DEVICES"] = value
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return  # no GPUs to choose from, or the variable hid them all
    # The variable took effect where TensorFlow listed the devices after it was set, or under the
    # same value. Before: any list of as many GPUs as asked for was taken for that, and `gpu_id: 1`
    # on one GPU listed earlier trained on GPU 0 (helper 239).
    if (not listed_before or previous == value) and len(gpus) == len(wanted):
        return
    try:
        _select(gpu_id, wanted, gpus)
    except DeviceError:
        # As it was: a second call (a notebook cell run again) would take the value for the
        # variable's effect (helper 241).
        if previous is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = previous
        raise


def _select(gpu_id: str, wanted: list, gpus: list) -> None:
    """Checks `wanted` against the GPUs TensorFlow lists by their indices, and makes only those visible."""
    if len(gpus) < len(wanted):
        raise DeviceError(f"gpu_id {gpu_id!r} asks for {len(wanted)} GPUs, but only {len(gpus)} of them are there: "
                          "the machine's GPUs are numbered from 0 (nvidia-smi lists them)")
    # CUDA had started before the variable was set: every GPU is still listed by its index.
    missing = [i for i in wanted if i >= len(gpus)]
    if missing:
        raise DeviceError(f"gpu_id {gpu_id!r} names GPU(s) {missing}, but only {len(gpus)} exist (numbered from 0)")
    try:
        tf.config.set_visible_devices([gpus[i] for i in wanted], "GPU")
    except RuntimeError:  # the runtime is initialised: too late to change anything
        raise DeviceError(
            f"cannot select GPUs {gpu_id!r}: TensorFlow has already initialised its devices; "
            "set gpu_id before running any TensorFlow operation"
        ) from None


def _devices_listed() -> bool:
    """Whether TensorFlow has listed this machine's devices already (CUDA started: the variable
    can no longer change what it sees); False where this TensorFlow does not say."""
    try:
        from tensorflow.python.eager import context

        return getattr(context.context(), "_physical_devices", None) is not None
    except Exception:  # a TensorFlow without that (private) record: as before, the counts decide
        return False


class ClusterError(UserInputError):
    """`TF_CONFIG` cannot describe this task's place in a cluster; the message says what is wrong."""


_EXAMPLE = ('{"cluster": {"worker": ["node1:12345", "node2:12345"]}, "task": {"type": "worker", "index": 0}}')
# How long a task waits for the others of its cluster to join before it gives up with a line
# saying so (TensorFlow's own limit is an hour, without a word; helper 145).
CLUSTER_JOIN_SECONDS = 600


def cluster_task() -> Optional[tuple[str, int, dict[str, Any]]]:
    """(task type, task index, cluster) of `TF_CONFIG` when it describes more than one training
    task, else None (no `TF_CONFIG`, or a cluster of one).

    Raises:
        ClusterError: not JSON, not a mapping, or a task that is not one of the cluster's (a
            type it does not list, an index beyond its tasks). Before: TensorFlow's traceback.
    """
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as error:
        raise ClusterError(f"TF_CONFIG is not valid JSON ({error.msg} at character {error.pos}); keys and "
                           f"strings need double quotes, e.g. {_EXAMPLE}") from None
    if not isinstance(spec, dict):
        raise ClusterError(f"TF_CONFIG must be a JSON object, e.g. {_EXAMPLE}")
    cluster = spec.get("cluster") or {}  # none: one machine, as TensorFlow reads it
    if not isinstance(cluster, dict) or not all(isinstance(v, list) for v in cluster.values()):
        raise ClusterError(f"TF_CONFIG needs a \"cluster\" mapping task types to lists of host:port, e.g. {_EXAMPLE}")
    if training_tasks(cluster) <= 1:
        return None
    for kind_listed, addresses in cluster.items():
        for position, address in enumerate(addresses):
            # Before: "localhost" without a port was a 41-line traceback ("Could not parse port").
            host, _, port = str(address).rpartition(":")
            if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
                raise ClusterError(f"TF_CONFIG: {kind_listed} task {position} is {address!r}; each task is "
                                   f"\"host:port\" with a port in 1..65535, e.g. {_EXAMPLE}")
    task = spec.get("task")
    kind = task.get("type") if isinstance(task, dict) else None
    index = task.get("index") if isinstance(task, dict) else None
    if isinstance(index, str) and index.strip().isdigit():
        index = int(index)  # TensorFlow reads "1" as 1
    if kind == "evaluator":
        raise ClusterError("TF_CONFIG: an evaluator task does not train; ssma-train runs as a chief or worker "
                           "task (evaluate with ssma-evaluate)")
    if kind not in cluster:
        raise ClusterError(f"TF_CONFIG: task type {kind!r} is not in the cluster ({', '.join(sorted(cluster))}); "
                           f"give \"task\": {{\"type\": ..., \"index\": ...}} naming this machine's place")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[kind]):
        raise ClusterError(f"TF_CONFIG: task index {index!r} of type {kind!r}, but the cluster lists "
                           f"{len(cluster[kind])} {kind} task(s) (index 0 to {len(cluster[kind]) - 1})")
    return kind, index, cluster


def training_tasks(cluster: dict[str, Any]) -> int:
    """The tasks of a `TF_CONFIG` cluster that train (chief and workers; not evaluators or ps)."""
    return sum(len(cluster.get(kind) or ()) for kind in _TRAINING_TASK_TYPES)


def create_strategy(gpu_id: Optional[str] = None) -> tf.distribute.Strategy:
    """Picks the distribution strategy for this process (see the module docstring).

    Must run before any other TensorFlow work in the process when `TF_CONFIG` describes a
    cluster (MultiWorkerMirroredStrategy has to be created first).

    Args:
        gpu_id: the config's `gpu_id` (None: all visible GPUs).

    Returns:
        The strategy; `tf.distribute.get_strategy()` (the default one) for a single device.
    """
    configure_devices(gpu_id)
    task = cluster_task()
    if task is not None:
        kind, index, cluster = task
        in_main_thread = threading.current_thread() is threading.main_thread()
        handler = signal.getsignal(signal.SIGTERM) if in_main_thread else None
        # While TensorFlow waits for the other tasks it holds the interpreter and its own SIGTERM
        # handler is in place: no Python code runs, and a worker whose peers never came waited
        # TensorFlow's hour without a word, stopped by SIGKILL only (helper 145). A process of its
        # own watches the wait: it ends it after `CLUSTER_JOIN_SECONDS`, with a line, or when
        # SIGTERM or Ctrl-C reach it (a scheduler's and a terminal's go to the whole job).
        # -I: the working folder's modules (a signal.py) are not imported in place of Python's.
        watchdog = subprocess.Popen([sys.executable, "-I", "-c", _WATCHDOG, str(os.getpid()), str(CLUSTER_JOIN_SECONDS),
                                     _not_joined(kind, index, cluster)], stdin=subprocess.PIPE)
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        except (tf.errors.InvalidArgumentError, tf.errors.UnknownError) as error:
            # Before: a 41-line traceback ("Could not start gRPC server") naming no address.
            raise ClusterError(f"TF_CONFIG: cannot listen on {cluster[kind][index]}, this {kind} task {index}'s "
                               f"address ({first_line(error)}): is its port in use by another process, or was "
                               "another task given the same type and index?") from None
        finally:
            watchdog.stdin.close()  # the wait is over: the watchdog leaves
            watchdog.wait()
        if handler is not None:
            # TensorFlow's coordination service puts a handler of its own (a preemption notice
            # nothing listens to) in place of the process's: SIGTERM did nothing, and `kill` or a
            # scheduler's time limit could not stop a worker short of SIGKILL. The command's own
            # (it unwinds and exits 143) is put back.
            signal.signal(signal.SIGTERM, handler)
        return strategy
    gpus = tf.config.list_logical_devices("GPU")
    if len(gpus) > 1:
        return tf.distribute.MirroredStrategy([gpu.name for gpu in gpus])
    return tf.distribute.get_strategy()


# The watchdog of a task waiting for its cluster (`create_strategy`): argv is the task's process id,
# the seconds it may wait, and the line to print when they are over. Its standard input closes when
# the wait ends (or the task dies): it then leaves without a word.
_WATCHDOG = """
import os, select, signal, sys
task, seconds, line = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
def stop(signum, frame):
    os.kill(task, signal.SIGKILL)
    sys.exit(0)
for kind in (signal.SIGTERM, signal.SIGINT):
    if signal.getsignal(kind) is not signal.SIG_IGN:  # ignored by the task (started with &): so here
        signal.signal(kind, stop)
if not select.select([sys.stdin], [], [], seconds)[0]:
    print(line, file=sys.stderr, flush=True)
    os.kill(task, signal.SIGKILL)
"""


def _not_joined(kind: str, index: int, cluster: dict[str, Any]) -> str:
    """The line of a task whose cluster has not formed within `CLUSTER_JOIN_SECONDS`."""
    others = [f"{other} {i} ({address})" for other in _TRAINING_TASK_TYPES for i, address in
              enumerate(cluster.get(other) or ()) if (other, i) != (kind, index)]
    return (f"error: TF_CONFIG: this {kind} task {index} waited {CLUSTER_JOIN_SECONDS / 60:g} minutes for the other "
            f"task(s) of its cluster, {', '.join(others)}, to start; check that each was started with this cluster "
            "and its own task, and that each host:port can be reached from here")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes checkpoints, summaries and logs (always, without a cluster)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    # Without an explicit chief, worker 0 plays its part (as in TensorFlow's own conventions).
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def task_id(strategy: tf.distribute.Strategy) -> int:
    """This worker's index in the cluster (0 without one)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return int(resolver.task_id or 0) if resolver is not None and resolver.task_type else 0


def agreed_value(strategy: tf.distribute.Strategy, value: int) -> int:
    """The chief's `value` on every worker of a cluster (every worker calls it); `value` itself
    without a cluster.

    For what each worker draws at its start and all must share (an unseeded run's seed: each
    worker drew its own, and the chief's checkpoints kept one of them).
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return value
    local = tf.constant([value], tf.int64)
    gathered = strategy.gather(strategy.experimental_distribute_values_from_function(lambda context: local), axis=0)
    return int(gathered.numpy()[0])


def check_same_start(strategy: tf.distribute.Strategy, step: int, weights: Any, folder: str,
                     settings: Optional[dict[str, Any]] = None) -> None:
    """Refuses a cluster whose workers start from different steps or weights, or were given
    different settings (every worker calls it).

    Each worker restores from its own view of the checkpoint folder: one that is not shared (or
    a stale copy) started a worker afresh while another resumed, their gradients were summed
    onto different weights, and the chief exported the result as a normal finish. Each worker
    also reads its own config: another `learning_rate` on one of them applied the summed
    gradients at another rate there, and the copies of the weights drifted apart while the
    logged (all-reduced) losses agreed; another `max_iteration` ended the chief first.

    Args:
        strategy: the strategy (nothing is checked without a cluster).
        step: this worker's step after restoring.
        weights: this worker's variables.
        folder: the checkpoint folder, for the message.
        settings: the config values every worker must share (not its paths, which may differ
            between machines), by key.

    Raises:
        ClusterError: on every worker alike, naming each worker's step and the keys that differ.
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return
    settings = dict(settings or {})
    names = sorted(settings)
    # A fingerprint of the weights: each one's sum, summed in float64 (equal weights give equal sums);
    # of each setting: 48 bits of a digest of its value, which float64 holds exactly.
    fingerprint = sum(float(tf.reduce_sum(tf.cast(w, tf.float64))) for w in weights)
    digests = [float(_digest(settings[name])) for name in names]
    local = tf.constant([[float(step), fingerprint, *digests]], tf.float64)
    gathered = strategy.gather(strategy.experimental_distribute_values_from_function(lambda context: local), axis=0)
    rows = gathered.numpy()
    problems = []
    differing = [name for column, name in enumerate(names, start=2) if len(set(rows[:, column].tolist())) > 1]
    if differing:
        own = ", ".join(f"{name} {json.dumps(settings[name], default=str)}" for name in differing)
        problems.append(f"the workers of the cluster were given different settings: {', '.join(differing)} differ"
                        f"{'s' if len(differing) == 1 else ''} "
                        f"(this worker, {task_name(strategy)}: {own}); give every worker the same config and --set "
                        "flags")
    steps = [int(row[0]) for row in rows]
    sums = [float(row[1]) for row in rows]
    scale = max(1.0, max(abs(v) for v in sums))
    if len(set(steps)) > 1 or max(sums) - min(sums) > 1e-6 * scale:
        said = ", ".join(f"replica {index} at step {value}" for index, value in enumerate(steps))
        what = "different steps" if len(set(steps)) > 1 else "the same step but different weights"
        problems.append(
            f"the workers of the cluster start from {what} ({said}): each reads the checkpoint folder {folder} "
            "itself, so it must be one folder every machine sees with the same files (a shared file system); "
            "give every worker that path, then start them again")
    if problems:
        raise ClusterError("; and ".join(problems))


def _digest(value: Any) -> int:
    """48 bits of a SHA-256 of a setting's canonical JSON (`check_same_start`)."""
    import hashlib

    text = json.dumps(value, sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:6], "big")


def task_name(strategy: tf.distribute.Strategy) -> str:
    """This process's task in the cluster, as TF_CONFIG names it ("worker 1"); "" without one."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return ""
    return f"{resolver.task_type} {int(resolver.task_id or 0)}"


def replica_mean(strategy: tf.distribute.Strategy, value: Any) -> Any:
    """The mean of a per-replica value (a loss, a loss term) over all replicas."""
    return strategy.reduce(tf.distribute.ReduceOp.MEAN, value, axis=None)


def replica_sum(strategy: tf.distribute.Strategy, value: Any) -> Any:
    """The sum of a per-replica value (a pixel count) over all replicas."""
    return strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)


def first_replica(strategy: tf.distribute.Strategy, value: Any) -> Any:
    """The first local replica's copy of a per-replica value (the images previewed in the logs)."""
    return strategy.experimental_local_results(value)[0]


def synchronize_batch_norms(model: keras.Model) -> int:
    """Makes every batch norm of `model` compute batch statistics over all replicas.

    Keras 3's `BatchNormalization(synchronized=True)` all-reduces the moments across the
    replicas of the current strategy. The flag is read on every call, so switching it on after
    the model is built is the same as building with it, and keeps the model constructors free
    of distribution concerns. Only worth it with more than one replica; with one it changes
    nothing but the cost.

    Args:
        model: a built model.

    Returns:
        The number of batch-norm layers switched.
    """
    count = 0
    for layer in walk_layers(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
            count += 1
    return count
