"""The record schema: reading the original records, raw/PNG encodings, auto detection."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from ssma_tf.data import decode_example, encode_example
from ssma_tf.data.schema import PNG_SIGNATURE
from tests.conftest import shared_path
from tests.data.helpers import random_sample

FIXTURE_RECORDS = [("original_ssma_format.tfrecords", "triplets.txt"), ("original_adapnet_format.tfrecords", "pairs.txt")]


def _proto_arrays(serialized: bytes) -> dict:
    """Decodes a raw record with protobuf and numpy only, independently of the project's reader."""
    feature = tf.train.Example.FromString(serialized).features.feature
    height, width = feature["height"].int64_list.value[0], feature["width"].int64_list.value[0]
    arrays = {}
    for key in ("modality1", "modality2", "label"):
        if key in feature:
            shape = (height, width) if key == "label" else (height, width, 3)
            arrays[key] = np.frombuffer(feature[key].bytes_list.value[0], np.uint8).reshape(shape)
    return arrays


@pytest.mark.parametrize("record_name,list_name", FIXTURE_RECORDS)
def test_reader_gives_the_arrays_of_the_original_records(record_name, list_name):
    folder = shared_path("fixtures", "original_format")
    lines = (folder / list_name).read_text().split()
    columns = 3 if list_name == "triplets.txt" else 2
    samples = [lines[i : i + columns] for i in range(0, len(lines), columns)]
    records = [r.numpy() for r in tf.data.TFRecordDataset(str(folder / record_name))]
    assert len(records) == len(samples) == 5
    for serialized, paths in zip(records, samples):
        decoded = {k: v.numpy() for k, v in decode_example(serialized).items()}
        expected = _proto_arrays(serialized)
        assert sorted(decoded) == sorted(expected)
        for key, array in expected.items():
            assert decoded[key].dtype == np.uint8
            np.testing.assert_array_equal(decoded[key], array, err_msg=key)
        # And the record holds the images of the list, colour images in BGR order.
        np.testing.assert_array_equal(decoded["modality1"], np.asarray(Image.open(folder / paths[0]))[..., ::-1])
        np.testing.assert_array_equal(decoded["label"], np.asarray(Image.open(folder / paths[-1])))
        if columns == 3:
            np.testing.assert_array_equal(decoded["modality2"], np.asarray(Image.open(folder / paths[1]))[..., ::-1])


def test_png_records_decode_to_the_same_arrays_as_raw_ones():
    modality1, modality2, label = random_sample(24, 40, 12, seed=3)
    gray = np.repeat(modality2[..., :1], 3, axis=2)  # a depth-like map, stored as a gray PNG
    for m2 in (modality2, gray):
        raw = encode_example(modality1, label, m2, encoding="raw")
        png = encode_example(modality1, label, m2, encoding="png")
        assert png != raw
        png_feature = tf.train.Example.FromString(png).features.feature
        assert png_feature["modality1"].bytes_list.value[0].startswith(PNG_SIGNATURE)
        from_raw = decode_example(raw, modalities=2)
        from_png = decode_example(png, modalities=2)
        for key in ("modality1", "modality2", "label"):
            np.testing.assert_array_equal(from_png[key].numpy(), from_raw[key].numpy(), err_msg=key)
        np.testing.assert_array_equal(from_raw["modality2"].numpy(), m2)


def test_png_encoding_is_smaller_for_smooth_images():
    ys, xs = np.mgrid[0:64, 0:128]
    modality1 = np.stack([xs * 2, ys * 4, xs + ys], -1).astype(np.uint8)
    label = (xs // 32).astype(np.uint8)
    raw = encode_example(modality1, label, encoding="raw")
    png = encode_example(modality1, label, encoding="png")
    assert len(png) < len(raw) / 4


def test_raw_pixels_that_start_like_a_png_are_read_as_raw():
    modality1, _, label = random_sample(8, 8, 5, seed=0)
    flat = modality1.reshape(-1)
    flat[: len(PNG_SIGNATURE)] = np.frombuffer(PNG_SIGNATURE, np.uint8)
    decoded = decode_example(encode_example(modality1, label, encoding="raw"))
    np.testing.assert_array_equal(decoded["modality1"].numpy(), modality1)


def test_unimodal_record_has_no_modality2_and_graph_mode_needs_modalities():
    modality1, _, label = random_sample(8, 12, 5, seed=1)
    serialized = encode_example(modality1, label)
    assert sorted(decode_example(serialized)) == ["label", "modality1"]

    @tf.function
    def decode_without_structure(x):
        return decode_example(x)

    with pytest.raises(ValueError, match="modalities"):
        decode_without_structure(tf.constant(serialized))
    decoded = tf.function(lambda x: decode_example(x, modalities=1))(tf.constant(serialized))
    np.testing.assert_array_equal(decoded["label"].numpy(), label)


def test_encode_rejects_bad_arrays():
    modality1, modality2, label = random_sample(8, 12, 5, seed=2)
    with pytest.raises(ValueError, match="modality2 is 8x6 but the label is 8x12"):
        encode_example(modality1, label, modality2[:, :6])
    with pytest.raises(ValueError, match="uint8"):
        encode_example(modality1.astype(np.float32), label)
    with pytest.raises(ValueError, match="HxW class ids"):
        encode_example(modality1, label[..., None])
    with pytest.raises(ValueError, match="encoding"):
        encode_example(modality1, label, encoding="jpeg")


def test_a_png_of_the_records_area_but_another_size_is_refused(tmp_path):
    """Helper 165: height and width swapped by a writer (the same area) reshaped the PNG's pixels
    into a scrambled image and label without a word; only another area failed."""
    from ssma_tf.data.pipeline import build_dataset, naming_damaged_records
    from ssma_tf.data.records import RecordError

    modality1, _, label = random_sample(32, 48, 3, seed=2)
    example = tf.train.Example.FromString(encode_example(modality1, label, encoding="png"))
    example.features.feature["height"].int64_list.value[0] = 48
    example.features.feature["width"].int64_list.value[0] = 32
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"a PNG image's size \(height, width\) differs"):
        decode_example(example.SerializeToString())
    path = str(tmp_path / "swapped.tfrecords")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(example.SerializeToString())
    with pytest.raises(RecordError, match=r"swapped\.tfrecords, record 0: modality1 is a 32x48 PNG but the record "
                                          r"says 48x32"):
        with naming_damaged_records(path, 1):
            for _ in build_dataset(path, num_classes=3, height=48, width=32, batch_size=1, training=False,
                                   modalities=1):
                pass


def test_a_record_holds_its_features_in_key_order_so_a_conversion_repeats_byte_for_byte():
    """Helper 190: the protobuf runtime wrote the feature map in a hash order that changes from
    process to process: one list converted twice gave records of other bytes (equal Examples)."""
    from ssma_tf.data.scene import encode_scene

    modality1, modality2, label = random_sample(8, 8, 3, 0)
    serialized = encode_example(modality1, label, modality2)
    keys = [b"height", b"label", b"modality1", b"modality2", b"width"]
    where = [serialized.index(b"\n" + bytes([len(key)]) + key) for key in keys]  # each map entry's key field
    assert where == sorted(where), where
    assert serialized == tf.train.Example.FromString(serialized).SerializeToString(deterministic=True)
    scene = encode_scene([modality1] * 3, 1)
    assert scene == tf.train.Example.FromString(scene).SerializeToString(deterministic=True)
