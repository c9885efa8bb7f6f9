"""Trains the tiny test model under a multi-replica strategy; a helper process for test_training.

    python tests/distributed_worker.py CONFIG OUT.npz [--logical-cpus N]

With `--logical-cpus N` the CPU is split into N logical devices and a MirroredStrategy spans them;
otherwise the trainer picks the strategy itself (MultiWorkerMirroredStrategy when TF_CONFIG
describes a cluster). Writes every model variable (each replica's copy) and what the run did to
OUT.npz, for the test to compare.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("out")
    parser.add_argument("--logical-cpus", type=int, default=0)
    args = parser.parse_args()

    import keras
    import numpy as np
    import tensorflow as tf

    strategy = None
    if args.logical_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus
        )
        strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(args.logical_cpus)])

    from ssma_tf import training
    from ssma_tf.config import load_config
    from ssma_tf.keras_compat import walk_layers
    from tests.training_helpers import build_tiny_model

    training.trainer.build_model = build_tiny_model  # the code path under test is the trainer's, not the model's
    config = load_config(args.config, "train")
    trainer = training.Trainer(config, strategy=strategy)
    result = trainer.train()

    arrays = {}
    for index, variable in enumerate(trainer.model.variables):
        copies = trainer.strategy.experimental_local_results(variable.value)
        for replica, copy in enumerate(copies):
            arrays[f"var{index}_replica{replica}"] = copy.numpy()
    bn = [
        layer
        for layer in walk_layers(trainer.model)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    np.savez(
        args.out,
        replicas=trainer.strategy.num_replicas_in_sync,
        synchronized=all(layer.synchronized for layer in bn) and bool(bn),
        final_step=result.final_step,
        run_seed=trainer.run_seed,
        losses=np.asarray(result.losses),
        **arrays,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
