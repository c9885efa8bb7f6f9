"""Shared test helpers: the ../shared fixtures folder and small-model settings."""

import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


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


@pytest.fixture(autouse=True)
def _collect_garbage_after_each_test():
    """Frees what a test left (models, tf.data iterators) before the next one starts.

    A tf.data iterator that Python's cycle collector happens to free while a later test traces a
    function waits for its pipeline's threads in its destructor, with the GIL held; in the full
    suite on two busy cores such waits added minutes to single tests. Collected here, between
    tests, they cost a fraction of a second.
    """
    yield
    import gc

    gc.collect()
