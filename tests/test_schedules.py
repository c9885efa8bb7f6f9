"""The poly schedule against the TF1 formula and TF1's own op."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ssma_tf.config import config_from_dict
from ssma_tf.schedules import PolynomialDecay, schedule_from_config

LR0, END, T, POWER = 1e-3, 1e-4, 1000, 0.9


def formula(step):
    return (LR0 - END) * (1 - min(step, T) / T) ** POWER + END


@pytest.mark.parametrize("step", [0, 1, 250, 500, 999, 1000, 1001, 5000])
def test_matches_the_formula(step):
    schedule = PolynomialDecay(LR0, T, POWER)  # end defaults to TF1's 1e-4
    assert float(schedule(step)) == pytest.approx(formula(step), rel=1e-6)


def test_hand_values():
    schedule = PolynomialDecay(LR0, T, POWER)
    assert float(schedule(0)) == pytest.approx(1e-3, rel=1e-6)
    # (1e-3 − 1e-4) · 0.5^0.9 + 1e-4 = 9e-4 · 0.5358867 + 1e-4
    assert float(schedule(500)) == pytest.approx(5.8229803e-4, rel=1e-6)
    assert float(schedule(T)) == pytest.approx(1e-4, rel=1e-6)
    assert float(schedule(3 * T)) == pytest.approx(1e-4, rel=1e-6)  # no cycling


def test_matches_tf1_polynomial_decay():
    for step in [0, 10, 333, 999, 1000, 1500]:
        reference = tf.compat.v1.train.polynomial_decay(
            LR0, tf.constant(step, tf.int64), T, end_learning_rate=END, power=POWER, cycle=False
        )
        reference = reference() if callable(reference) else reference
        ours = PolynomialDecay(LR0, T, POWER, END)(tf.constant(step, tf.int64))
        assert float(ours) == pytest.approx(float(reference), rel=1e-6)


def test_end_above_start_grows_like_tf1():
    schedule = PolynomialDecay(1e-5, 100, 0.9)
    assert float(schedule(0)) == pytest.approx(1e-5, rel=1e-5)
    assert float(schedule(100)) == pytest.approx(1e-4, rel=1e-5)


def test_serialisation_round_trip_and_optimizer():
    schedule = PolynomialDecay(LR0, T, POWER, 2e-5)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert isinstance(restored, PolynomialDecay)
    assert restored.get_config() == schedule.get_config()

    optimizer = keras.optimizers.Adam(learning_rate=schedule)
    clone = keras.optimizers.Adam.from_config(optimizer.get_config())
    assert float(clone.learning_rate) == pytest.approx(float(schedule(0)), rel=1e-6)
    # The optimizer evaluates it at its own step counter.
    variable = keras.Variable(np.ones(2, np.float32))
    for _ in range(3):
        optimizer.apply_gradients([(tf.ones(2), variable)])
    assert float(optimizer.learning_rate) == pytest.approx(
        (LR0 - 2e-5) * (1 - 3 / T) ** POWER + 2e-5, rel=1e-6
    )


def test_bad_arguments():
    with pytest.raises(ValueError, match="decay_steps"):
        PolynomialDecay(LR0, 0)
    with pytest.raises(ValueError, match="power"):
        PolynomialDecay(LR0, T, power=-1)
    with pytest.raises(ValueError, match="initial_learning_rate"):
        PolynomialDecay(-1.0, T)


def test_schedule_from_config():
    config = config_from_dict(
        {
            "model": "AdapNet_pp", "num_classes": 12, "train_data": "x.tfrecords", "batch_size": 8,
            "height": 384, "width": 768, "max_iteration": T, "learning_rate": LR0,
            "checkpoint": "ckpt", "power": 0.5, "end_learning_rate": 0.0,
        },
        check_paths=False,
    )
    schedule = schedule_from_config(config)
    assert float(schedule(250)) == pytest.approx(LR0 * 0.75**0.5, rel=1e-6)
