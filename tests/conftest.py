"""Shared test helpers: the ../shared fixtures folder and small-model settings."""

import contextlib
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def lock_held_elsewhere(lock):
    """Another process holding the lock file `lock` (`ssma_tf.files.take_lock`) for the block;
    yields that process (its `pid` is the one the refusals name)."""
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys\n"
        "from ssma_tf.files import take_lock\n"
        f"take_lock({str(lock)!r}, wait=False)\n"
        "print('locked', flush=True)\n"
        "sys.stdin.readline()\n")], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline() == "locked\n"
        yield holder
    finally:
        holder.communicate("\n", timeout=60)


SHARED = ROOT.parent / "shared"


def _share_the_cores_between_workers() -> None:
    """Under `pytest -n N`, gives each worker's TensorFlow (and the processes its tests start)
    1/N of the cores for its operations.

    TensorFlow sizes its thread pool to every core in each process: two workers training full-size
    networks at once ran twice as many threads as cores, and on two cores the file of Keras
    training tests took 105 s beside the training-step equivalence file against 68 s with one
    thread each (that file 137 s against 132 s). Set before TensorFlow is imported; a value
    in the environment is kept.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if "PYTEST_XDIST_WORKER" in os.environ and workers > 1:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # macOS
        threads = str(max(1, cores // workers))
        os.environ.setdefault("TF_NUM_INTRAOP_THREADS", threads)
        os.environ.setdefault("OMP_NUM_THREADS", threads)


_share_the_cores_between_workers()


def shared_path(*parts: str) -> pathlib.Path:
    """Returns a path under ../shared, skipping the test when the folder is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (the ../shared fixtures are only on developer and CI machines)")
    return path


# The test files that take longest (seconds of one worker, `--durations` of a full run on two
# Xeon cores), longest first. `make test` hands the two workers whole files in collection order
# (`--dist loadfile --no-loadscope-reorder`); these go first and the many short files fill in
# behind them, so that both workers end together. Before, xdist sent the files with most tests
# first, and a 2-minute file starting last kept one worker busy alone for 90 s. A name missing
# here only costs balance.
LONGEST_FILES = (
    "test_semi_supervised.py", "test_training.py", "pruning/test_prune_command.py", "test_adaptation.py",
    "checkpoints/test_finetune.py", "checkpoints/test_loading.py", "checkpoints/test_tf1_import.py",
    "models/test_fusion_baselines.py", "test_training_reliability.py", "test_training_step_equivalence.py",
    "test_scene.py", "inference/test_deploy.py", "checkpoints/test_zoo.py", "test_keras_training.py",
    "pruning/test_pruning.py", "cli/test_run_folder.py", "checkpoints/test_convert.py", "cli/test_errors.py",
    "checkpoints/test_damaged.py", "test_predict_script.py", "inference/test_compiled.py",
    "checkpoints/test_evaluated_rates.py", "inference/test_export.py", "models/test_ssma.py",
    "inference/test_predictor.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: index for index, name in enumerate(LONGEST_FILES)}

    def file_rank(item):
        return rank.get(item.nodeid.split("::")[0].removeprefix("tests/"), len(LONGEST_FILES))

    items.sort(key=file_rank)  # stable: the order within a file and among the others stays


@pytest.fixture(scope="session")
def tf1_fixture_dir(tmp_path_factory) -> pathlib.Path:
    """The original TF1 AdapNet++ checkpoint (12 classes) and what the original graph computed,
    extracted once per session: `model.ckpt.*` and `reference.npz`."""
    import tarfile

    archive = shared_path("fixtures", "tf1_adapnet_pp.tar.gz")
    folder = tmp_path_factory.mktemp("tf1_adapnet_pp")
    with tarfile.open(archive) as tar:
        tar.extractall(folder, filter="data")
    return folder


@pytest.fixture
def tiny_backbone():
    """`backbone: tiny` (`tests.models.helpers.tiny_pyramid`) registered for one test, for tests of
    what is around a backbone. Registered for good, it would change the list of known backbones
    that other tests of the same worker see. Its own patch: a test's `monkeypatch.undo()` keeps it."""
    from ssma_tf.models import backbones
    from tests.models.helpers import TINY_BACKBONE, tiny_pyramid

    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(backbones._BACKBONES, TINY_BACKBONE, tiny_pyramid)
        yield TINY_BACKBONE


@pytest.fixture(autouse=True, scope="module")
def _collect_everything_after_each_module():
    """Frees what a test file left, the objects frozen during its tests included (below)."""
    yield
    import gc

    gc.unfreeze()
    gc.collect()
    gc.freeze()


@pytest.fixture(autouse=True)
def _collect_garbage_between_tests(_collect_everything_after_each_module):
    """Frees what the tests before left (models, tf.data iterators) before this one starts.

    A tf.data iterator that Python's cycle collector happens to free while a later test traces a
    function waits for its pipeline's threads in its destructor, with the GIL held; in the full
    suite on two busy cores such waits added minutes to single tests. Collected here, between
    tests, they cost a fraction of a second.

    What survives is frozen (`gc.freeze`): the next collection looks only at what was made since.
    A full collection of a worker's heap (TensorFlow's and Keras' modules, the module fixtures'
    models) took 0.2-0.5 s, before each of some 960 tests: 260 s of the suite's 33 CPU minutes.
    The frozen objects are looked at once per test file, when its module fixtures are gone. This
    runs before a test rather than after it, because pytest lets go of a test's fixture values
    (models) only after their teardown: frozen there, they would stay until the file's end.

    The long waits are tf.data's autotuning: a freed iterator waits for its pipeline's optimising
    thread (py-spy, 2026-12-07: `IteratorResource::~IteratorResource` waiting on its thread pools).
    Turned off for the tests (`options.autotune.enabled = False` on every pipeline), the waits
    were gone, but the pipelines then computed more batches ahead: on test_semi_supervised.py and
    test_adaptation.py with two workers, 314 s against 320 s, with 11 % more CPU time (99 s of
    waits before five tests with autotuning on). Left on, as a user's run has it.
    """
    import gc
    import time
    import warnings

    started = time.perf_counter()
    found = gc.collect()
    gc.freeze()
    took = time.perf_counter() - started
    if took > 5.0:
        # Seen in full parallel runs only (20 s before a test that needs no fixture): named in the
        # warnings summary so that the cause can be found from a run's log.
        warnings.warn(f"collecting what the tests before left took {took:.1f} s ({found} unreachable objects)",
                      UserWarning, stacklevel=1)
