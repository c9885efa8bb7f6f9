"""The poly schedule a training config gets, against the TF1 formula and TF1's own op."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from ssma_tf.config import ConfigError, config_from_dict
from ssma_tf.training import schedule_from_config

LR0, END, T, POWER = 1e-3, 1e-4, 1000, 0.9


def formula(step):
    return (LR0 - END) * (1 - min(step, T) / T) ** POWER + END


def poly(learning_rate, max_iteration, power, end_learning_rate=None):
    """The schedule of a training config with these keys (end absent: the config's default)."""
    keys = {"learning_rate": learning_rate, "max_iteration": max_iteration, "power": power}
    if end_learning_rate is not None:
        keys["end_learning_rate"] = end_learning_rate
    return schedule_from_config(train_config(**keys))


def train_config(**keys):
    base = {
        "model": "AdapNet_pp", "num_classes": 12, "train_data": "x.tfrecords", "batch_size": 8,
        "height": 384, "width": 768, "max_iteration": T, "learning_rate": LR0, "checkpoint": "ckpt",
    }
    return config_from_dict({**base, **keys}, check_paths=False)


@pytest.mark.parametrize("step", [0, 1, 250, 500, 999, 1000, 1001, 5000])
def test_matches_the_formula(step):
    schedule = poly(LR0, T, POWER)  # end defaults to TF1's 1e-4
    assert float(schedule(step)) == pytest.approx(formula(step), rel=1e-6)


def test_hand_values():
    schedule = poly(LR0, T, POWER)
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
        ours = poly(LR0, T, POWER, END)(tf.constant(step, tf.int64))
        assert float(ours) == pytest.approx(float(reference), rel=1e-6)


def test_end_above_start_grows_like_tf1():
    with pytest.warns(UserWarning, match="grow"):  # the config warns about it
        schedule = poly(1e-5, 100, 0.9)
    assert float(schedule(0)) == pytest.approx(1e-5, rel=1e-5)
    assert float(schedule(100)) == pytest.approx(1e-4, rel=1e-5)


def test_serialisation_round_trip_and_optimizer():
    schedule = poly(LR0, T, POWER, 2e-5)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert isinstance(restored, keras.optimizers.schedules.PolynomialDecay)
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
    # The config rejects what would make a bad schedule, naming the key.
    with pytest.raises(ConfigError, match="max_iteration"):
        train_config(max_iteration=0)
    with pytest.raises(ConfigError, match="power"):
        train_config(power=-1)
    with pytest.raises(ConfigError, match="learning_rate"):
        train_config(learning_rate=-1.0)
    evaluation = config_from_dict(
        {"model": "AdapNet_pp", "num_classes": 12, "test_data": "x.tfrecords", "batch_size": 1,
         "height": 384, "width": 768, "checkpoint": "ckpt"},
        mode="eval", check_paths=False,
    )
    with pytest.raises(ValueError, match="learning_rate and max_iteration"):
        schedule_from_config(evaluation)


def test_schedule_from_config():
    config = train_config(power=0.5, end_learning_rate=0.0)
    schedule = schedule_from_config(config)
    assert float(schedule(250)) == pytest.approx(LR0 * 0.75**0.5, rel=1e-6)
