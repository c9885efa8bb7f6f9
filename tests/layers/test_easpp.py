"""The eASPP's weights reach every checkpoint format the project writes."""

import h5py
import keras
import numpy as np
import tensorflow as tf

from ssma_tf.layers import EASPP


def _easpp(seed):
    inputs = keras.Input((8, 8, 6))
    model = keras.Model(inputs, EASPP(8, 4, (1, 2, 3), name="easpp")(inputs))
    for variable in model.variables:
        rng = np.random.default_rng(seed)
        variable.assign(rng.normal(size=variable.shape).astype(variable.dtype) + seed)
        seed += 1
    return model


def test_a_tf2_checkpoint_holds_every_branch(tmp_path):
    saved, restored = _easpp(1), _easpp(1000)
    path = tf.train.Checkpoint(model=saved).save(str(tmp_path / "ckpt"))
    tf.train.Checkpoint(model=restored).restore(path).assert_existing_objects_matched()
    # A kernel and four batch-norm variables in each of conv1x1, 3 branches of 4, pooling, projection.
    assert len(saved.variables) == 5 * (1 + 3 * 4 + 2)
    for a, b in zip(saved.variables, restored.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_weights_files_keep_the_branch_layout(tmp_path):
    saved, restored = _easpp(1), _easpp(1000)
    saved.save_weights(tmp_path / "w.weights.h5")
    names = []
    with h5py.File(tmp_path / "w.weights.h5") as handle:
        handle.visit(names.append)
    # The atrous branches are stored once, in the `branches` list, as in files written before
    # the attributes that make TF2 checkpoints see them were added.
    assert any("easpp/branches/container" in name for name in names)
    assert not any("checkpointed" in name for name in names)
    restored.load_weights(tmp_path / "w.weights.h5")
    for a, b in zip(saved.variables, restored.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
