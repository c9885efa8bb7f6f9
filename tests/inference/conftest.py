"""Models shared by the inference tests, built once per session (building them takes seconds)."""

import keras
import pytest

from ssma_tf.inference.predictor import Predictor
from ssma_tf.models import SSMA, AdapNetPP
from tests.inference.helpers import randomize_batch_norms


@pytest.fixture(scope="session")
def adapnet():
    # Seeded: the kernels otherwise depend on what the worker ran before, and the int8 test's
    # agreement with float32 varied with them (0.79 against its 0.8 once).
    keras.utils.set_random_seed(11)
    model = AdapNetPP(4)
    randomize_batch_norms(model, seed=1)
    return model


@pytest.fixture(scope="session")
def predictor(adapnet):
    """One RGB predictor for the AdapNet++ tests, so that its functions are traced once."""
    return Predictor(adapnet)


@pytest.fixture(scope="session")
def ssma():
    model = SSMA(3)
    randomize_batch_norms(model, seed=2)
    return model
