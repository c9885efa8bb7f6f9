"""A mean teacher: a copy of a model whose weights are a moving average of the student's.

Tarvainen and Valpola, "Mean teachers are better role models" (NeurIPS 2017); the schedule is
the one of the released code of Hoyer et al. (CVPR 2021) and of ClassMix: update t, counted from
1 as the released training loop counts its steps, uses the decay `min(1 − 1/(t+1), decay)`. The
teacher starts as a copy of the student, the first update averages the two half and half (0.5),
and the average then forgets ever more slowly up to `decay`.

The module is independent of what the teacher is used for (DepthMix pseudo-labels here,
augmentation consistency for domain adaptation elsewhere): it pairs the variables of two models
of the same architecture by position, and updates the teacher's in place. A teacher that runs
with `training=False` (batch norms in inference mode, as domain adaptation's) needs its
batch-norm statistics to follow the student's too (`include_statistics`); one that normalises
with its own batches' statistics (DepthMix, as released) averages parameters only. Under a
`tf.distribute` strategy, call `update` in cross-replica context (outside `strategy.run`): the
average is computed once and written to every replica's copy.
"""

from __future__ import annotations

from typing import Any, Optional

import keras
import tensorflow as tf


def ema_decay_at(update: Any, decay: float) -> Any:
    """The decay of update number `update` (1-based, as released): `min(1 − 1/(update + 1), decay)`.

    Works on Python numbers and on tensors.
    """
    if isinstance(update, (int, float)):
        return min(1.0 - 1.0 / (update + 1.0), decay)
    update = tf.cast(update, tf.float32)
    return tf.minimum(1.0 - 1.0 / (update + 1.0), tf.constant(decay, tf.float32))


class MeanTeacher:
    """Keeps `teacher`'s weights an exponential moving average of `student`'s.

    Args:
        student: the model being trained.
        teacher: a model of the same architecture (built; its weights are overwritten by `copy`).
        decay: the largest decay α of `teacher ← α·teacher + (1 − α)·student`.
        every: update once every this many calls of `maybe_update` (steps); 1: every step.
        include_statistics: also average the non-trainable weights (batch-norm moving mean and
            variance); otherwise the teacher keeps those it has (the released code averaged
            parameters only, with a teacher that normalised with batch statistics).
        warmup: use the schedule `min(1 − 1/(t+1), decay)` (t the 1-based update); False:
            always `decay`.

    Attributes:
        updates: a tf int64 variable, the number of updates made (checkpoint it with the run:
            `tracked()` returns what to save).
    """

    def __init__(self, student: keras.Model, teacher: keras.Model, *, decay: float = 0.99,
                 every: int = 1, include_statistics: bool = True, warmup: bool = True):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"decay must be in [0, 1), got {decay!r}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        student_weights, teacher_weights = student.weights, teacher.weights
        if len(student_weights) != len(teacher_weights):
            raise ValueError(
                f"teacher and student differ: {len(teacher_weights)} weights against "
                f"{len(student_weights)}; build the teacher from the same config")
        for s, t in zip(student_weights, teacher_weights):
            if tuple(s.shape) != tuple(t.shape):
                raise ValueError(f"teacher weight {t.path} has shape {tuple(t.shape)}, the "
                                 f"student's {s.path} {tuple(s.shape)}")
        self.student = student
        self.teacher = teacher
        self.decay = float(decay)
        self.every = every
        self.include_statistics = include_statistics
        self.warmup = warmup
        # The student's trainable flags decide, not the teacher's: the teacher is never trained.
        trainable = {id(v) for v in student.trainable_weights}
        self._pairs = [
            (t, s) for s, t in zip(student_weights, teacher_weights)
            if id(s) in trainable or (include_statistics and _is_float(s))
        ]
        self._copy_pairs = list(zip(teacher_weights, student_weights))
        self.updates = tf.Variable(0, dtype=tf.int64, trainable=False, name="teacher_updates",
                                   aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.calls = tf.Variable(0, dtype=tf.int64, trainable=False, name="teacher_calls",
                                 aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    def tracked(self) -> dict[str, Any]:
        """What a `tf.train.Checkpoint` must hold so that a resumed run continues the average."""
        return {"teacher": self.teacher, "teacher_updates": self.updates,
                "teacher_calls": self.calls}

    def copy(self) -> None:
        """Sets every teacher weight to the student's (a fresh start)."""
        for t, s in self._copy_pairs:
            t.assign(s)

    def current_decay(self) -> Any:
        """The decay the next update uses."""
        if not self.warmup:
            return tf.constant(self.decay, tf.float32)
        return ema_decay_at(self.updates + 1, self.decay)

    def last_decay(self) -> Any:
        """The decay the newest update used (a float32 tensor); 0 before the first one, when
        the teacher is still the student's copy."""
        made = tf.cast(self.updates, tf.float32)
        if not self.warmup:
            return tf.where(made > 0, tf.constant(self.decay, tf.float32), 0.0)
        return ema_decay_at(made, self.decay)

    def update(self) -> Any:
        """One update of the average; returns the decay it used (a float32 tensor)."""
        alpha = self.current_decay()
        # One weight after the other: left to itself, the executor computes many weights'
        # `a·t` and `(1 − a)·s` before assigning any and holds them all. Chained, SSMA's
        # DepthMix step (batch 4, 96×192) peaked at 1575 MiB of live tensors instead of 1819.
        # In eager mode the loop runs in order anyway.
        previous: list[Any] = []
        for t, s in self._pairs:
            with tf.control_dependencies(previous):
                a = tf.cast(alpha, t.dtype)
                value = a * t + (1.0 - a) * tf.cast(s, t.dtype)
            t.assign(value)
            previous = [value]
        self.updates.assign_add(1)
        return alpha

    def maybe_update(self) -> Any:
        """Counts a step and updates on every `every`-th one; returns whether it did (a tensor)."""
        self.calls.assign_add(1)
        due = tf.equal(self.calls % self.every, 0)
        if self.every == 1:
            self.update()
            return due

        def run():
            self.update()
            return tf.constant(True)

        return tf.cond(due, run, lambda: tf.constant(False))


def _is_float(variable: Any) -> bool:
    """Floating-point weights (batch-norm statistics), not counters such as a seed generator's."""
    dtype: Optional[str] = getattr(variable, "dtype", None)
    return dtype is not None and "float" in str(dtype)
