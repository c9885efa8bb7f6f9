"""Data for SSMA over N > 2 modalities: list lines of N + 1 columns, records, pipeline, errors."""

import numpy as np
import pytest
import tensorflow as tf

from ssma_tf.data import build_dataset, decode_example, encode_example, read_list_file, write_tfrecords
from ssma_tf.data.augment import AugmentationConfig
from ssma_tf.errors import UserInputError
from ssma_tf.inference.predictor import PredictionError
from ssma_tf.inference.samples import samples_from_list
from tests.data.helpers import blocks_sample, save_png, write_list, write_records

H, W, C = 32, 48, 5


def third(label):
    """A third modality that codes the class in its second channel (nearest-sampled)."""
    code = (label.astype(np.int64) * 40).astype(np.uint8)
    return np.stack([np.full_like(code, 3), code, 255 - code], axis=-1)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("three")
    lines = []
    for i in range(3):
        m1, m2, label = blocks_sample(H, W, C, seed=i)
        names = [f"{i}_{kind}.png" for kind in ("rgb", "depth", "thermal", "label")]
        for name, array in zip(names, (m1[..., ::-1], m2[..., ::-1], third(label)[..., ::-1], label)):
            save_png(root / name, array)
        lines.append(" ".join(names))
    write_list(root / "three.txt", lines)
    write_list(root / "short.txt", [lines[0], " ".join(lines[1].split()[:2] + lines[1].split()[3:])])
    return root


def test_lists_of_n_plus_one_columns_convert_to_n_modality_records(folder, tmp_path):
    summary = write_tfrecords(str(folder / "three.txt"), str(tmp_path / "t.tfrecords"), modalities=3)
    assert summary["modalities"] == 3
    record = next(iter(tf.data.TFRecordDataset(str(tmp_path / "t.tfrecords")))).numpy()
    decoded = decode_example(record)
    m1, m2, label = blocks_sample(H, W, C, seed=0)
    for key, want in (("modality1", m1), ("modality2", m2), ("modality3", third(label)), ("label", label)):
        np.testing.assert_array_equal(decoded[key].numpy(), want)
    assert set(decode_example(record, modalities=2)) == {"modality1", "modality2", "label"}
    # A line with fewer columns than the modalities asked for names the file and the line.
    with pytest.raises(UserInputError, match=r"short\.txt, line 2: has 3 columns, fewer than the 4 of 3 modalities"):
        write_tfrecords(str(folder / "short.txt"), str(tmp_path / "s.tfrecords"), modalities=3)
    assert not (tmp_path / "s.tfrecords").exists()
    assert len(read_list_file(str(folder / "three.txt"), modalities=3)[0]) == 4
    # Prediction lists may leave the label out: N columns are images, fewer are an error.
    write_list(tmp_path / "pair.txt", [str(folder / "0_rgb.png") + " " + str(folder / "0_depth.png")])
    with pytest.raises(PredictionError, match=r"pair\.txt, line 1: .* got 2 columns, fewer than the model's 3"):
        samples_from_list(tmp_path / "pair.txt", fusion=True, modalities=3)
    sample = samples_from_list(folder / "three.txt", fusion=True, modalities=3)[0]
    assert sample.further == (str(folder / "0_thermal.png"),) and sample.label.endswith("0_label.png")


def test_pipeline_gives_n_images_jointly_augmented(tmp_path):
    samples = [blocks_sample(H, W, C, seed=i) for i in range(2)]
    path = str(tmp_path / "three.tfrecords")
    with tf.io.TFRecordWriter(path) as writer:
        for m1, m2, label in samples:
            writer.write(encode_example(m1, label, m2, extra_modalities=[third(label)]))
    augmentation = AugmentationConfig.from_dict({"probability": 1.0}, "test")
    dataset = build_dataset(path, modalities=3, height=H, width=W, batch_size=2, num_classes=C,
                            training=True, augmentation=augmentation, seed=3,
                            modality2_interpolation=["nearest", "nearest"])
    (m1, m2, m3), label = next(iter(dataset))
    label, m2, m3 = label.numpy(), m2.numpy(), m3.numpy()
    inside = label > 0
    # Both nearest-sampled modalities were warped with the label's geometry: they still code it.
    np.testing.assert_array_equal(m2[..., 0][inside], label[inside] * 20)
    np.testing.assert_array_equal(m3[..., 1][inside], label[inside] * 40)
    with pytest.raises(ValueError, match="2 modalities after the first need 2 interpolations"):
        build_dataset(path, modalities=3, height=H, width=W, batch_size=2, num_classes=C, training=False,
                      modality2_interpolation=["nearest"])
    pairs = write_records(tmp_path / "pairs.tfrecords", samples)
    with pytest.raises(UserInputError, match=r"pairs\.tfrecords, record 0: records lack feature\(s\) \['modality3'\] "
                                             r"\(they hold 2 modalities, the model reads 3\): convert .*an AdapNet\+\+'s "
                                             r"input_modality\)"):
        build_dataset(pairs, modalities=3, height=H, width=W, batch_size=2, num_classes=C, training=False)
    # A set of 3- and 2-modality files: the second is named before anything is read (before: the
    # first file's first record was checked, and the second was a TensorFlow traceback at its batch).
    for training in (False, True):
        with pytest.raises(UserInputError, match=r"pairs\.tfrecords, record 0: records lack feature\(s\) "
                                                 r"\['modality3'\]"):
            build_dataset([path, pairs], modalities=3, height=H, width=W, batch_size=2, num_classes=C,
                          training=training)


def test_configs_read_n_modality_records(tmp_path):
    from ssma_tf.config import config_from_dict
    from ssma_tf.evaluation import make_eval_dataset
    from ssma_tf.training import make_train_dataset

    m1, m2, label = blocks_sample(H, W, C, seed=0)
    path = str(tmp_path / "three.tfrecords")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(encode_example(m1, label, m2, extra_modalities=[third(label)]))
    base = dict(num_classes=C, height=H, width=W, batch_size=1, max_iteration=1, learning_rate=1e-3,
                checkpoint=str(tmp_path / "run"), train_data=path, test_data=path)
    # Stage 1 for the third modality: an AdapNet++ expert that sees modality 3 only.
    expert = config_from_dict(dict(base, model="AdapNet_pp", input_modality="modality3"))
    image, _ = next(iter(make_train_dataset(expert)))
    np.testing.assert_array_equal(image.numpy()[0], third(label).astype(np.float32))
    fusion = config_from_dict(dict(base, model="SSMA", modalities=["rgb", "depth", "thermal"]), mode="eval",
                              check_paths=False)
    images, _ = next(iter(make_eval_dataset(fusion)))
    assert len(images) == 3
    np.testing.assert_array_equal(images[2].numpy()[0], third(label).astype(np.float32))
