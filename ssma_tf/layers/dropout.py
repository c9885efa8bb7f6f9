"""Dropout whose masks differ between the replicas of a `tf.distribute` strategy.

Keras' `Dropout` draws its masks from a seed generator whose state is a variable; under a
`MirroredStrategy` (or `MultiWorkerMirroredStrategy`) every replica holds the same copy of it, so
each replica drew the same masks: image k of every replica's share of the batch was dropped
alike, and a step on N replicas had 1/N of the independent masks one replica draws for the same
global batch. `ReplicaDropout` folds the replica's index into the seed there. On one replica,
without a strategy, outside training and on other backends it is Keras' `Dropout` unchanged, so
one-replica runs draw exactly what they drew before.
"""

from __future__ import annotations

from typing import Optional

import keras
from keras import layers

from ssma_tf import SERIALIZATION_PACKAGE


def replica_index() -> Optional[int]:
    """The index of the replica running now (a tensor or int) when a TensorFlow strategy of more
    than one replica runs a replica's step; None otherwise (one replica, no strategy, another
    backend, cross-replica context)."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    if not tf.distribute.has_strategy() or tf.distribute.in_cross_replica_context():
        return None
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync <= 1:
        return None
    return context.replica_id_in_sync_group


@keras.saving.register_keras_serializable(package=SERIALIZATION_PACKAGE)
class ReplicaDropout(layers.Dropout):
    """`keras.layers.Dropout` with a mask of its own on each replica (module docstring)."""

    def call(self, inputs, training=False):
        replica = replica_index() if training and self.rate > 0 else None
        if replica is None:
            return super().call(inputs, training=training)
        import tensorflow as tf

        # One draw of the shared generator (its state moves as on one replica), then the
        # replica's own stream of it.
        seed = tf.cast(self.seed_generator.next(), tf.int64)
        seed = tf.random.experimental.stateless_fold_in(seed, tf.cast(replica, tf.int64))
        noise_shape = None
        if self.noise_shape is not None:
            shape = tf.shape(inputs)
            noise_shape = tf.stack([shape[i] if size is None else size for i, size in enumerate(self.noise_shape)])
        return tf.nn.experimental.stateless_dropout(inputs, rate=self.rate, seed=seed, noise_shape=noise_shape)
