"""`ReplicaDropout`: Keras' dropout on one replica, a mask of its own on each replica of a strategy."""

import keras
import numpy as np

from ssma_tf.layers import ReplicaDropout
from tests.training_helpers import run_on_two_logical_cpus

_REPLICAS = """
import keras
from ssma_tf.layers import ResidualUnit

with strategy.scope():
    unit = ResidualUnit(8, 8, dropout_rate=0.7, name="unit")
    unit.build((None, 8, 8, 8))
image = tf.random.stateless_uniform((1, 8, 8, 8), seed=(1, 2))

@tf.function
def step():
    return strategy.run(lambda: unit(image, training=True))

for _ in range(2):
    first, second = strategy.experimental_local_results(step())
    assert not np.allclose(first.numpy(), second.numpy()), "the replicas dropped alike"
    assert_replicas_agree(unit)  # the seed generator's state moves alike on both
print("OK")
"""


def test_one_replica_draws_what_keras_dropout_draws():
    inputs = np.ones((2, 6, 6, 4), np.float32)
    ours, theirs = ReplicaDropout(0.7, seed=3), keras.layers.Dropout(0.7, seed=3)
    for _ in range(2):
        np.testing.assert_array_equal(ours(inputs, training=True), theirs(inputs, training=True))
    np.testing.assert_array_equal(ours(inputs, training=False), inputs)


def test_each_replica_of_a_strategy_draws_its_own_mask():
    """Helper 92: under MirroredStrategy every replica held the same seed state and dropped the
    same units, so N replicas drew 1/N of the masks one replica draws for the same global batch."""
    run = run_on_two_logical_cpus(_REPLICAS)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "OK" in run.stdout
