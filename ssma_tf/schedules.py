"""The released learning-rate schedule: TF1 `tf.train.polynomial_decay` without cycling.

    lr(step) = (lr0 − end) · (1 − min(step, T) / T) ^ power + end

with `T = max_iteration` and `end = 1e-4` (the TF1 default the released code kept). After T steps
the rate stays at `end`. Note that `end` is a floor, not a fraction of lr0: with lr0 below 1e-4
(SSMA stage 3 uses 1e-5) the default would make the rate grow, so such configs set
`end_learning_rate` themselves.
"""

from __future__ import annotations

from typing import Any

import keras
from keras import ops

from ssma_tf import SERIALIZATION_PACKAGE

TF1_END_LEARNING_RATE = 1e-4


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class PolynomialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """TF1 `polynomial_decay(cycle=False)` as a Keras schedule (ARCHITECTURE.md, "Loss").

    Args:
        initial_learning_rate: lr0, the rate at step 0.
        decay_steps: T (the config's `max_iteration`); the rate reaches `end_learning_rate` there.
        power: exponent of the decay (the config's `power`).
        end_learning_rate: the rate from step T on (TF1 default 1e-4).
    """

    def __init__(
        self,
        initial_learning_rate: float,
        decay_steps: int,
        power: float = 0.9,
        end_learning_rate: float = TF1_END_LEARNING_RATE,
    ):
        super().__init__()
        if initial_learning_rate < 0:
            raise ValueError(f"initial_learning_rate must be >= 0, got {initial_learning_rate}")
        if int(decay_steps) != decay_steps or decay_steps < 1:
            raise ValueError(f"decay_steps must be a positive integer, got {decay_steps}")
        if power < 0:
            raise ValueError(f"power must be >= 0, got {power}")
        if end_learning_rate < 0:
            raise ValueError(f"end_learning_rate must be >= 0, got {end_learning_rate}")
        self.initial_learning_rate = float(initial_learning_rate)
        self.decay_steps = int(decay_steps)
        self.power = float(power)
        self.end_learning_rate = float(end_learning_rate)

    def __call__(self, step: Any) -> Any:
        """The learning rate (float32 scalar) at `step` (an int or a scalar tensor)."""
        # min(step, T) clamps past the end, like TF1 with cycle=False (no restart).
        step = ops.minimum(ops.cast(step, "float32"), float(self.decay_steps))
        fraction = 1.0 - step / float(self.decay_steps)
        decayed = (self.initial_learning_rate - self.end_learning_rate) * ops.power(
            fraction, self.power
        )
        return ops.cast(decayed + self.end_learning_rate, "float32")

    def get_config(self) -> dict[str, Any]:
        return {
            "initial_learning_rate": self.initial_learning_rate,
            "decay_steps": self.decay_steps,
            "power": self.power,
            "end_learning_rate": self.end_learning_rate,
        }


def schedule_from_config(config: Any) -> PolynomialDecay:
    """The schedule a training `RunConfig` asks for (lr0, T = max_iteration, power, end).

    Args:
        config: a `ssma_tf.config.RunConfig` in train mode.

    Returns:
        The `PolynomialDecay` schedule.
    """
    if config.learning_rate is None or config.max_iteration is None:
        raise ValueError(f"{config.source}: training needs learning_rate and max_iteration")
    return PolynomialDecay(
        initial_learning_rate=config.learning_rate,
        decay_steps=config.max_iteration,
        power=config.power,
        end_learning_rate=config.end_learning_rate,
    )
