"""SSMA over N > 2 modalities (Section 4.2): outputs, names, config, experts from N checkpoints."""

import numpy as np
import pytest

from ssma_tf.checkpoints import load_tf1_checkpoint
from ssma_tf.checkpoints.initialize import _naming_key, initialize_model
from ssma_tf.checkpoints.tf1_import import CheckpointError
from ssma_tf.config import config_from_dict
from ssma_tf.models import SSMA
from ssma_tf.models.factory import is_fusion, num_modalities

H, W, C = 32, 64, 4


@pytest.fixture(scope="module")
def three():
    return SSMA(C, num_modalities=3)


def images(count, seed=0, height=H):
    rng = np.random.default_rng(seed)
    return [rng.uniform(0, 255, (1, height, W, 3)).astype("float32") for _ in range(count)]


def test_three_experts_and_blocks_over_three_streams(three):
    assert [e.name for e in three.encoders] == ["modality1_encoder", "modality2_encoder", "modality3_encoder"]
    assert three.modality3_encoder is three.encoders[2]
    assert [i.name for i in three.inputs] == ["modality1", "modality2", "modality3"]
    assert is_fusion(three) and num_modalities(three) == 3
    outputs = three(images(3), training=False, return_all=True)
    assert tuple(outputs["softmax"].shape) == (1, H, W, C)
    # The gates cover the concatenation of three streams: 3 × 256 latent, 3 × 24 skip channels.
    assert tuple(outputs["gate_latent"].shape) == (1, 2, 4, 768)
    assert tuple(outputs["gate_skip1"].shape) == (1, 8, 16, 72)
    assert three.get_layer("ssma_latent").output_conv.kernel.shape == (1, 1, 768, 256)
    # One more expert (AdapNet++ encoder with eASPP) and wider fusion blocks: exact counts, the
    # N = 2 model with these classes has 56,275,384 (tests/models/test_ssma.py: the released one).
    assert three.count_params() == 82_350_220
    assert three.get_config()["num_modalities"] == 3


def test_bad_inputs_and_arguments(three):
    with pytest.raises(ValueError, match="modality3"):
        three(images(2))
    with pytest.raises(ValueError, match="same batch, height and width"):
        three(images(2) + images(1, height=16))
    with pytest.raises(ValueError, match="num_modalities must be an integer >= 2, got 1"):
        SSMA(C, num_modalities=1)
    with pytest.raises(CheckpointError, match="the original TF1 code fuses two modalities, but this SSMA has 3"):
        load_tf1_checkpoint(three, "anything/model.ckpt")


def test_experts_start_from_a_checkpoints_list(three, tmp_path, monkeypatch):
    # Each distinct source is read once (a throw-away AdapNet++ each, stubbed here) and its
    # encoder goes to the expert at the same position of the list.
    shapes = [w.shape for w in three.modality1_encoder.get_weights()]
    paths = [str(tmp_path / f"expert{i}.weights.h5") for i in (0, 1, 0)]
    for path in paths:
        open(path, "wb").close()
    reads = []

    def weights_of(path, num_classes, dropout_rate, backbone="adapnet_pp", decoder_filters=256):
        reads.append(path)
        return [np.full(shape, paths.index(path) + 1, np.float32) for shape in shapes]

    monkeypatch.setattr("ssma_tf.checkpoints.initialize.unimodal_encoder_weights", weights_of)
    base = dict(model="SSMA", num_classes=C, height=H, width=W, batch_size=1, max_iteration=1,
                learning_rate=1e-3, checkpoint=str(tmp_path / "run"), train_data="x.tfrecords")
    config = config_from_dict(dict(base, modalities=["rgb", "depth", "thermal"], checkpoints=paths),
                              check_paths=False)
    assert config.num_modalities == 3
    messages = initialize_model(three, config)
    assert reads == paths[:2] and len(messages) == 3 and "modality3_encoder" in messages[2]
    assert [float(e.get_weights()[0].flat[0]) for e in three.encoders] == [1.0, 2.0, 1.0]
    with pytest.raises(CheckpointError, match="2 expert checkpoints for an SSMA of 3 modalities"):
        initialize_model(three, config_from_dict(dict(base, checkpoints=paths[:2]), check_paths=False))


def test_an_expert_checkpoint_that_does_not_fit_names_its_config_key(three, tmp_path):
    # A whole SSMA's weights where an expert's AdapNet++ belongs: the error names the file and the
    # key that gave it, so the user knows which line of the config to change.
    wrong = str(tmp_path / "ssma.weights.h5")
    three.save_weights(wrong)
    base = dict(model="SSMA", num_classes=C, height=H, width=W, batch_size=1, max_iteration=1,
                learning_rate=1e-3, checkpoint=str(tmp_path / "run"), train_data="x.tfrecords",
                modalities=["rgb", "depth", "thermal"])
    config = config_from_dict(dict(base, checkpoints=[wrong, wrong, wrong]), check_paths=False)
    with pytest.raises(CheckpointError, match=r"^key 'checkpoints\[0\]': .*ssma\.weights\.h5"):
        initialize_model(three, config)
    two = config_from_dict(dict(base, modalities=None, checkpoint1=wrong, checkpoint2=wrong), check_paths=False)
    with pytest.raises(CheckpointError, match=r"^key 'checkpoint2': boom$"):
        with _naming_key(two, 1):
            raise CheckpointError("boom")
