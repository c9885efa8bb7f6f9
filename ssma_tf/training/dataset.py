"""The training input stream of a config: records, online augmentation, per-pipeline seeds."""

from __future__ import annotations

from typing import Any, Optional

import tensorflow as tf

from ssma_tf.data import AugmentationConfig
from ssma_tf.data.pipeline import config_dataset
from ssma_tf.data.unlabeled import read_labeled_subset


def make_train_dataset(config: Any, input_context: Optional[tf.distribute.InputContext] = None,
                       seed_offset: int = 0, seed: Optional[int] = None) -> tf.data.Dataset:
    """The training input stream of a config, for one input pipeline.

    Args:
        config: a training `RunConfig`.
        input_context: from `distribute_datasets_from_function`; gives the per-replica batch
            size and this pipeline's index (each worker shuffles with its own seed).
        seed_offset: added to the config's seed (a resumed run that could not save its data
            position starts a different, still reproducible, stream).
        seed: in place of the config's (a trainer's `run_seed`, drawn when the config has none);
            without either, each call draws one.

    Returns:
        Batches of `(inputs, labels)` of the per-replica batch size, repeated forever.
    """
    batch_size = config.batch_size
    seed = config.seed if seed is None else seed
    if input_context is not None:
        batch_size = input_context.get_per_replica_batch_size(config.batch_size)
        if seed is not None:
            seed += 7919 * input_context.input_pipeline_id
    if seed is not None:
        seed += seed_offset
    # The released code augmented offline: no `augmentation` section means none online (the
    # config gives a switched-off AugmentationConfig then; None here would mean the paper's).
    augmentation = config.augmentation
    if augmentation is None:
        augmentation = AugmentationConfig.disabled()
    elif not isinstance(augmentation, AugmentationConfig):
        augmentation = AugmentationConfig.from_dict(augmentation, source=config.source)
    keep = read_labeled_subset(config.labeled_subset, config.train_data) if config.labeled_subset else None
    return config_dataset(config, config.train_data, training=True, batch_size=batch_size,
                          augmentation=augmentation, seed=seed, keep_indices=keep)
