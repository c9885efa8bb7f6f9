"""build_dataset: evaluation order and batches, training reproducibility, labels, file patterns."""

import re
import warnings

import numpy as np
import pytest
import tensorflow as tf

from ssma_tf.data import AugmentationConfig, build_dataset, resize_sample
from ssma_tf.data.pipeline import LabelIdsWarning
from tests.data.helpers import M2_STEP, blocks_sample, random_sample, write_records

H, W = 64, 128
NUM_CLASSES = 6


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    """Five 48x96 fusion samples (resized to 64x128 by the pipeline), raw, PNG and in 2 shards."""
    folder = tmp_path_factory.mktemp("records")
    samples = [random_sample(48, 96, NUM_CLASSES, seed=i) for i in range(5)]
    paths = {
        "samples": samples,
        "raw": write_records(folder / "fusion.tfrecords", samples),
        "png": write_records(folder / "fusion_png.tfrecords", samples, encoding="png"),
        "unimodal": write_records(folder / "unimodal.tfrecords", samples, fusion=False),
        "shards": [write_records(folder / f"shard-{i:05d}-of-00002.tfrecords", part)
                   for i, part in enumerate((samples[:3], samples[3:]))],
        "folder": folder,
    }
    return paths


def _eval(files, **kwargs):
    args = dict(modalities=2, height=H, width=W, batch_size=2, num_classes=NUM_CLASSES, training=False)
    args.update(kwargs)
    return list(build_dataset(files, **args))


def test_eval_keeps_order_and_the_last_partial_batch(records):
    batches = _eval(records["raw"])
    assert [label.shape[0] for _, label in batches] == [2, 2, 1]
    # NumPy's integers are counts too (refused before: a class count read from an array).
    counted = _eval(records["raw"], num_classes=np.int64(NUM_CLASSES), batch_size=np.int32(2), height=np.int64(H),
                    modalities=np.int64(2))
    assert [label.shape[0] for _, label in counted] == [2, 2, 1]
    (m1, m2), label = batches[0]
    assert m1.dtype == tf.float32 and m2.dtype == tf.float32 and label.dtype == tf.int32
    assert m1.shape == (2, H, W, 3) and m2.shape == (2, H, W, 3) and label.shape == (2, H, W)
    labels = np.concatenate([label.numpy() for _, label in batches])
    firsts = np.concatenate([m1.numpy() for (m1, _), _ in batches])
    for i, (s1, s2, sl) in enumerate(records["samples"]):
        expected = resize_sample({"modality1": s1, "modality2": s2, "label": sl}, height=H, width=W)
        np.testing.assert_array_equal(labels[i], expected["label"].numpy())
        np.testing.assert_allclose(firsts[i], expected["modality1"].numpy(), atol=1e-4)


def test_eval_streams_know_their_batch_count(records):
    """Keras shows a total and does not warn that the input "ran out of data" (it did at the end
    of every `evaluate` and validation)."""
    args = dict(modalities=2, height=H, width=W, num_classes=NUM_CLASSES, training=False)
    assert build_dataset(records["raw"], batch_size=2, **args).cardinality() == 3
    assert build_dataset(records["shards"], batch_size=4, **args).cardinality() == 2
    assert build_dataset(records["raw"], batch_size=2, repeat=2, **args).cardinality() == 5
    assert len(list(build_dataset(records["raw"], batch_size=2, repeat=2, **args))) == 5


def test_png_shards_glob_and_lists_give_the_same_stream(records):
    reference = _eval(records["raw"])
    for files in (records["png"], records["shards"], str(records["folder"] / "shard-*-of-00002.tfrecords")):
        other = _eval(files)
        assert len(other) == len(reference)
        for ((a1, a2), al), ((b1, b2), bl) in zip(reference, other):
            np.testing.assert_array_equal(a1.numpy(), b1.numpy())
            np.testing.assert_array_equal(a2.numpy(), b2.numpy())
            np.testing.assert_array_equal(al.numpy(), bl.numpy())


def test_unimodal_inputs_and_fusion_on_unimodal_records(records):
    for files in (records["unimodal"], records["raw"]):  # fusion records serve AdapNet++ too
        inputs, label = _eval(files, modalities=1)[0]
        assert isinstance(inputs, tf.Tensor) and inputs.shape == (2, H, W, 3) and label.shape == (2, H, W)
    with pytest.raises(ValueError, match=r"unimodal\.tfrecords, record 0: no modality2: .* \(model: AdapNet_pp with input_modality: modality1\)"):
        build_dataset(records["unimodal"], modalities=2, height=H, width=W, batch_size=2,
                      num_classes=NUM_CLASSES, training=True)


def test_ids_at_or_above_num_classes_become_void_and_one_hot(tmp_path):
    m1, m2, label = random_sample(H, W, 3, seed=9)
    label[:8] = 255
    label[8:16] = 7
    label[16:24] = 4
    path = write_records(tmp_path / "ids.tfrecords", [(m1, m2, label)])
    # Said, for a class count too small (helper 68: build_dataset(num_classes=4) on 7-class records
    # voided three classes without a word); 255 alone would not be.
    with pytest.warns(LabelIdsWarning, match=r"^1 of the first 1 labelled records of .*ids\.tfrecords have label ids "
                                             r">= num_classes 5 other than 255 \(up to 7; "):
        (_, sparse), = _eval(path, num_classes=5, batch_size=4)
    expected = np.where(label >= 5, 0, label)
    np.testing.assert_array_equal(sparse.numpy()[0], expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error", LabelIdsWarning)
        (_, dense), = _eval(path, num_classes=5, batch_size=4, one_hot=True, warn_label_ids=False)
    assert dense.dtype == tf.float32 and dense.shape == (1, H, W, 5)
    np.testing.assert_array_equal(dense.numpy()[0], np.eye(5, dtype=np.float32)[expected])


def _train(files, seed, batches=3, **kwargs):
    args = dict(modalities=2, height=H, width=W, batch_size=2, num_classes=NUM_CLASSES, training=True, seed=seed)
    args.update(kwargs)
    return list(build_dataset(files, **args).take(batches))


def test_fixed_seed_reproduces_batches_and_training_repeats(records):
    first = _train(records["shards"], seed=11, batches=4)  # 8 samples from 5 records: repeats
    again = _train(records["shards"], seed=11, batches=4)
    other = _train(records["shards"], seed=12, batches=4)
    assert len(first) == 4
    for ((a1, a2), al), ((b1, b2), bl) in zip(first, again):
        np.testing.assert_array_equal(a1.numpy(), b1.numpy())
        np.testing.assert_array_equal(a2.numpy(), b2.numpy())
        np.testing.assert_array_equal(al.numpy(), bl.numpy())
    assert any(not np.array_equal(a[0][0].numpy(), b[0][0].numpy()) for a, b in zip(first, other))
    (m1, m2), label = first[0]
    assert m1.shape == (2, H, W, 3) and m2.shape == (2, H, W, 3) and label.shape == (2, H, W)


def test_training_keeps_modalities_and_labels_aligned(tmp_path):
    samples = [blocks_sample(48, 96, NUM_CLASSES, seed=i, block=12) for i in range(4)]
    path = write_records(tmp_path / "blocks.tfrecords", samples, encoding="png")
    for (m1, m2), label in _train(path, seed=5, batches=4, augmentation=AugmentationConfig(probability=1.0)):
        label = label.numpy()
        assert set(np.unique(label)) <= set(range(NUM_CLASSES))
        # Modality 2 codes the class; it went through the same geometry as the label.
        np.testing.assert_array_equal(m2.numpy()[..., 0], label * M2_STEP)
        assert (m1.numpy() >= 0).all() and (m1.numpy() <= 255).all()


def test_bad_arguments_and_missing_files(records, tmp_path):
    base = dict(modalities=2, height=H, width=W, batch_size=2, num_classes=NUM_CLASSES, training=False)
    with pytest.raises(FileNotFoundError, match="nothing-here"):
        build_dataset(str(tmp_path / "nothing-here-*.tfrecords"), **base)
    with pytest.raises(ValueError, match="height must be a positive integer, got 0"):
        build_dataset(records["raw"], **{**base, "height": 0})
    with pytest.raises(ValueError, match="modalities must be an integer in 1..8, got 9"):
        build_dataset(records["raw"], **{**base, "modalities": 9})
    with pytest.raises(ValueError, match="modality2_interpolation"):
        build_dataset(records["raw"], **base, modality2_interpolation="cubic")
    # Helper 238: a subset for an evaluation was ignored (every record read), and NumPy's
    # integers were called no integers for these two counts alone.
    with pytest.raises(ValueError, match="keep_indices selects training records only"):
        build_dataset(records["raw"], **base, keep_indices=[0])
    training = {**base, "training": True}
    assert build_dataset(records["raw"], **training, repeat=np.int64(1), shuffle_buffer=np.int32(4)) is not None
    for flag in ("repeat", "shuffle_buffer"):
        with pytest.raises(ValueError, match=rf"{flag} must be .*a positive integer, got True"):
            build_dataset(records["raw"], **training, **{flag: True})
    empty = tmp_path / "empty.tfrecords"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.tfrecords: holds no records"):
        build_dataset(str(empty), **base)


def test_a_seed_or_modality2_interpolation_of_the_wrong_type_is_refused_by_name(records):
    """Helper 362: modality2_interpolation None or 5 was a TypeError "... object is not iterable", and a seed of 1.5
    passed until the first batch was built ("Cannot convert 1.5 to EagerTensor of dtype int64")."""
    base = dict(modalities=2, height=16, width=16, batch_size=1, num_classes=NUM_CLASSES, training=True, repeat=1)
    for bad in (None, 5):
        with pytest.raises(ValueError, match=rf"modality2_interpolation must be one of .* got {bad!r}"):
            build_dataset(records["raw"], **base, modality2_interpolation=bad)
    for bad in (1.5, "3", True):
        with pytest.raises(ValueError, match=rf"seed must be None or an integer, got {re.escape(repr(bad))}"):
            build_dataset(records["raw"], **base, seed=bad)
    assert len(list(build_dataset(records["raw"], **base, seed=np.int64(3)))) == 5


def test_keep_indices_past_the_records_are_refused(records):
    """An index past the five records (or negative) matched none, without a word: [0, 99] trained on
    one record, [50] gave a stream meant to run forever no batch at all (helper 341)."""
    base = dict(modalities=2, height=H, width=W, batch_size=1, num_classes=NUM_CLASSES, training=True, seed=0)
    for bad in ([0, 99], [50], [-1], [True]):
        with pytest.raises(ValueError, match=rf"keep_indices holds {bad[-1]!r}, not a record index in 0..4 \(the 5 "
                                             r"records of .*fusion.tfrecords\)"):
            build_dataset(records["raw"], **base, keep_indices=bad)
    with pytest.raises(ValueError, match="keep_indices is empty"):
        build_dataset(records["raw"], **base, keep_indices=[])
    kept = build_dataset(records["raw"], **base, keep_indices=np.array([4, 0]), repeat=1)
    assert sum(1 for _ in kept) == 2


def test_the_modalities_of_records_are_read_per_file_and_unreadable_files_are_left_out(records, tmp_path):
    from ssma_tf.data.pipeline import modalities_in_records, modalities_per_file

    empty, damaged = tmp_path / "empty.tfrecords", tmp_path / "damaged.tfrecords"
    empty.write_bytes(b"")
    damaged.write_bytes(b"not a record")
    files = [records["unimodal"], str(empty), str(damaged), records["raw"]]
    assert modalities_per_file(files) == [1, 2]
    assert modalities_in_records(files) == 1  # the first file's
    assert modalities_in_records([str(damaged), records["raw"]]) is None  # its reader names it
    assert modalities_per_file(str(tmp_path / "gone-*.tfrecords")) == []
    assert modalities_in_records(str(tmp_path / "gone-*.tfrecords")) is None
