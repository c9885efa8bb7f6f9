"""Shared test helpers: the ../shared fixtures folder and small-model settings."""

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
TESTS = ROOT / "tests"

# The files whose tests take longest on two cores (`pytest --durations=60`, 2026-12-01), heaviest
# first. `make test` hands whole files to its two workers (`--dist loadfile`) in collection order,
# which puts the top-level files (most of the training tests) last: a heavy file handed out at the
# end kept one worker busy while the other idled. They go first; every other file keeps its place.
SLOW_FILES = (
    "test_adaptation.py", "pruning/test_prune_command.py", "test_training_step_equivalence.py",
    "test_training.py", "inference/test_deploy.py", "test_semi_supervised.py", "inference/test_compiled.py",
    "inference/test_export.py", "pruning/test_pruning.py", "test_keras_training.py", "cli/test_run_folder.py",
    "test_training_reliability.py",
)


def pytest_collection_modifyitems(config, items):
    """Runs the `SLOW_FILES` first (a stable sort: the order within each file is kept)."""
    rank = {name: index for index, name in enumerate(SLOW_FILES)}

    def place(item):
        try:
            return rank.get(item.path.relative_to(TESTS).as_posix(), len(SLOW_FILES))
        except ValueError:  # a test outside tests/
            return len(SLOW_FILES)

    items.sort(key=place)


def shared_path(*parts: str) -> pathlib.Path:
    """Returns a path under ../shared, skipping the test when the folder is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (the ../shared fixtures are only on developer and CI machines)")
    return path


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
