"""Confusion-matrix metrics on a hand-made example, and the released mIoU on random data."""

import json

import numpy as np
import pytest
import tensorflow as tf

from ssma_tf.metrics import ConfusionMatrix, ReleasedMeanIoU, batch_confusion_matrix

# Five classes (0 = void, class 4 never occurs). Eleven pixels, one row:
#   idx    0  1  2  3  4  5  6  7  8  9  10
GT = [0, 0, 1, 1, 1, 1, 2, 2, 2, 3, 9]  # 9 ≥ C is void
PRED = [2, 1, 1, 1, 2, 0, 2, 2, 1, 1, 3]
# After the released masking (prediction 0 on void ground truth), non-void pixels are idx 2..9 (8):
#   class 1: TP 2 (idx 2, 3), FN 2 (idx 4 → 2, idx 5 → 0), FP 2 (idx 8, 9)  → IoU 2/6
#   class 2: TP 2 (idx 6, 7), FN 1 (idx 8),             FP 1 (idx 4)      → IoU 2/4
#   class 3: TP 0,            FN 1 (idx 9),             FP 0 (idx 10 void) → IoU 0/1
#   class 4: absent from ground truth and prediction                       → IoU undefined
# TN = 8 − TP − FP − FN: class 1: 2, class 2: 4, class 3: 7, class 4: 8.
NUM_CLASSES = 5
NAMES = ["void", "road", "car", "tree", "sky"]


def hand_matrix():
    cm = ConfusionMatrix(NUM_CLASSES, class_names=NAMES)
    cm.update(np.array([[GT]]), np.array([[PRED]]))
    return cm


def test_counts():
    cm = hand_matrix()
    np.testing.assert_array_equal(cm.true_positives, [0, 2, 2, 0, 0])
    np.testing.assert_array_equal(cm.false_positives, [0, 2, 1, 0, 0])
    np.testing.assert_array_equal(cm.false_negatives, [0, 2, 1, 1, 0])
    np.testing.assert_array_equal(cm.true_negatives, [0, 2, 4, 7, 8])
    assert cm.num_pixels == 8
    assert cm.num_images == 1
    # Void ground truth is only ever "predicted" void.
    assert cm.matrix[0, 0] == 3 and cm.matrix[0, 1:].sum() == 0


def test_released_miou_counts_absent_classes_as_zero():
    cm = hand_matrix()
    # 100/(C−1) · (1/3 + 1/2 + 0 + 0) = 100/4 · 5/6
    assert cm.miou() == pytest.approx(20.833333, abs=1e-5)
    # Over the classes present (1..3): 100 · (1/3 + 1/2 + 0)/3
    assert cm.mean_iou_present() == pytest.approx(27.777778, abs=1e-5)
    iou = cm.iou()
    np.testing.assert_allclose(iou[1:4], [100 / 3, 50.0, 0.0])
    assert np.isnan(iou[0]) and np.isnan(iou[4])


def test_accuracy_global_iou_fpr_fnr():
    cm = hand_matrix()
    assert cm.pixel_accuracy() == pytest.approx(100 * 4 / 8)
    assert cm.global_iou() == pytest.approx(100 * 4 / 11)  # ΣTP / Σ(TP+FP+FN) = 4 / (6+4+1)
    np.testing.assert_allclose(cm.fpr()[1:], [100 * 2 / 4, 100 * 1 / 5, 0.0, 0.0])
    fnr = cm.fnr()
    np.testing.assert_allclose(fnr[1:4], [100 * 2 / 4, 100 * 1 / 3, 100.0])
    assert np.isnan(fnr[4])  # FN + TP = 0 for an absent class
    summary = cm.summary()
    assert summary["mean_fpr"] == pytest.approx((50 + 20 + 0 + 0) / 4)
    assert summary["mean_fnr"] == pytest.approx((50 + 100 / 3 + 100) / 3)


def test_summary_is_json_and_table_ends_with_miou():
    cm = hand_matrix()
    summary = cm.summary()
    text = json.dumps(summary, allow_nan=False)  # undefined values must be null, not NaN
    assert json.loads(text)["mIoU"] == pytest.approx(20.833333, abs=1e-5)
    sky = summary["per_class"][3]
    assert sky == {
        "id": 4, "name": "sky", "iou": None, "fpr": 0.0, "fnr": None,
        "tp": 0, "fp": 0, "fn": 0, "gt_pixels": 0,
    }
    assert [row["name"] for row in summary["per_class"]] == NAMES[1:]
    assert summary["num_pixels"] == 8 and summary["num_images"] == 1
    table = cm.format_table()
    assert "road" in table and "tree" in table and "void" not in table.splitlines()[1]
    assert table.splitlines()[-1] == "mIoU: 20.833"
    # Names given at report time win; default names are class_<id>.
    assert "class_2" in ConfusionMatrix(NUM_CLASSES).format_table()


def test_streaming_merging_and_input_forms():
    whole = hand_matrix()
    parts = ConfusionMatrix(NUM_CLASSES)
    parts.update(np.array([[GT[:5]]]), np.array([[PRED[:5]]]))
    parts.update(np.array([[GT[5:]]]), np.array([[PRED[5:]]]))
    np.testing.assert_array_equal(parts.matrix, whole.matrix)

    merged = ConfusionMatrix(NUM_CLASSES)
    merged.merge(whole)
    merged.merge(whole)
    np.testing.assert_array_equal(merged.matrix, 2 * whole.matrix)
    assert merged.num_images == 2

    # Probabilities (argmax) and one-hot labels (tf tensors) give the same counts.
    probs = tf.one_hot(np.array([[PRED]]), NUM_CLASSES) * 0.9 + 0.02
    one_hot = tf.one_hot(np.array([[GT]]), NUM_CLASSES)  # id 9 → all-zero row → void
    other = ConfusionMatrix(NUM_CLASSES)
    other.update(one_hot, probs)
    np.testing.assert_array_equal(other.matrix, whole.matrix)

    other.reset()
    assert other.matrix.sum() == 0 and other.num_images == 0


def released_miou(gt, pred, num_classes):
    """The released evaluation, written out per class with boolean masks (the reference)."""
    gt = np.where(gt >= num_classes, 0, gt)
    pred = np.where(gt == 0, 0, pred)
    total = 0.0
    for c in range(1, num_classes):
        tp = np.sum((pred == c) & (gt == c))
        fp = np.sum((pred == c) & (gt != c))
        fn = np.sum((pred != c) & (gt == c))
        total += tp / (tp + fp + fn + 1e-10)
    return total / (num_classes - 1) * 100


def test_matches_the_released_definition_on_random_batches():
    rng = np.random.default_rng(0)
    num_classes = 12
    cm = ConfusionMatrix(num_classes)
    all_gt, all_pred = [], []
    for _ in range(3):
        gt = rng.integers(0, num_classes + 3, size=(2, 8, 16))  # some ids ≥ C
        probs = rng.random((2, 8, 16, num_classes)).astype(np.float32)
        cm.update(gt, probs)
        all_gt.append(gt)
        all_pred.append(probs.argmax(-1))
    expected = released_miou(np.concatenate(all_gt), np.concatenate(all_pred), num_classes)
    assert cm.miou() == pytest.approx(expected, abs=1e-9)
    assert cm.num_images == 6


def test_batch_confusion_matrix_on_device_agrees():
    rng = np.random.default_rng(1)
    gt = rng.integers(-1, 8, size=(2, 8, 16)).astype(np.int32)
    probs = rng.random((2, 8, 16, 6)).astype(np.float32)
    host = ConfusionMatrix(6)
    host.update(np.where(gt < 0, 0, gt), probs)
    device = tf.function(lambda g, p: batch_confusion_matrix(g, p, 6))(gt, probs)
    np.testing.assert_array_equal(device.numpy(), host.matrix)
    one_hot = batch_confusion_matrix(tf.one_hot(gt, 6), probs, 6)
    np.testing.assert_array_equal(one_hot.numpy(), host.matrix)
    accumulated = ConfusionMatrix(6)
    accumulated.update_from_matrix(device, num_images=2)
    assert accumulated.miou() == pytest.approx(host.miou())


def test_bad_input():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="predicted ids"):
        cm.update(np.array([[[1, 1]]]), np.array([[[1, 3]]]))
    with pytest.raises(ValueError, match="shape"):
        cm.update(np.array([[[1, 1, 1]]]), np.array([[[1, 1]]]))
    with pytest.raises(ValueError, match="class names"):
        ConfusionMatrix(3, class_names=["void", "a"])
    with pytest.raises(ValueError, match="num_classes"):
        ConfusionMatrix(1)
    with pytest.raises(ValueError, match="matrix"):
        cm.update_from_matrix(np.zeros((4, 4)))
    # Probabilities of fewer classes than counted (helper 88: mIoU 75 for a perfect prediction, the
    # class past theirs counted as never predicted); the Keras metric refused it already.
    labels = np.array([[[1, 2, 3, 4]]])
    probs = np.eye(5, dtype=np.float32)[labels][..., :4]
    with pytest.raises(ValueError, match=r"^the predictions have 4 classes \(their last axis\), but the confusion "
                                         r"matrix counts 5: give it the model's num_classes$"):
        ConfusionMatrix(5).update(labels, probs)
    with pytest.raises(ValueError, match="the predictions have 4 classes"):
        batch_confusion_matrix(labels, probs, 5)

    # One-hot labels of another channel count (helper 148: ids on 3 channels, a label PNG read as
    # RGB, gave the Keras metrics 0 without a word; C + 1 channels dropped pixels under XLA).
    probs = np.eye(4, dtype=np.float32)[np.array([[[1, 2, 3, 1]]])]
    for channels in (3, 5):
        labels = np.ones((1, 1, 4, channels), np.float32)
        expected = rf"^one-hot labels must have 4 channels, got shape \(1, 1, 4, {channels}\)$"
        with pytest.raises(ValueError, match=expected):
            batch_confusion_matrix(labels, probs, 4)
        with pytest.raises(ValueError, match="one-hot labels must have 4 channels"):
            ReleasedMeanIoU(4).update_state(labels, probs)
        with pytest.raises(ValueError, match="one-hot labels must have 4 channels"):
            ConfusionMatrix(4).update(labels, probs)


def test_empty_matrix_reports_nothing_undefined_as_numbers():
    summary = ConfusionMatrix(3).summary()
    assert summary["mIoU"] == 0.0  # the released formula: every class absent counts 0
    assert summary["pixel_accuracy"] is None and summary["mean_iou_present"] is None
    json.dumps(summary, allow_nan=False)


def test_keras_metric_counts_stay_exact_past_int32():
    """Counts are two int32 parts (JAX without 64-bit mode truncates int64 variables): a cell
    past 2**31 pixels, and the low part's carry, keep the exact count and the released mIoU."""
    from ssma_tf.metrics import ReleasedMeanIoU

    rng = np.random.default_rng(4)
    gt = rng.integers(0, 5, size=(2, 64, 64)).astype(np.int32)
    probs = rng.random((2, 64, 64, 5)).astype(np.float32)
    host = ConfusionMatrix(5)
    metric = ReleasedMeanIoU(5)
    for _ in range(300):  # 300 x 8192 pixels: the low part carries into the high one
        host.update(gt, probs)
        metric.update_state(gt, probs)
    metric.counts_high.assign(metric.counts_high + 3000)  # 3000 x 2**20 > 2**31 pixels a cell
    np.testing.assert_array_equal(metric.counts.numpy(), host.matrix + 3000 * 2**20)
    assert int(np.max(metric.counts_low.numpy())) < 2**20
    high = ConfusionMatrix(5)
    high.update_from_matrix(host.matrix + 3000 * 2**20, num_images=1)
    assert float(metric.result()) == pytest.approx(high.miou(), rel=1e-6)  # the result is float32
    metric.reset_state()
    assert float(np.sum(metric.counts.numpy())) == 0.0


def test_bfloat16_probabilities_count_as_probabilities():
    """A bfloat16 array is no NumPy floating type: it was taken for class ids ("labels of shape
    (2, 8, 8) do not fit predictions of rank 4")."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    probabilities = rng.uniform(size=(2, 8, 8, 5)).astype(np.float32)
    labels = rng.integers(0, 5, (2, 8, 8))
    reference, half = ConfusionMatrix(5), ConfusionMatrix(5)
    reference.update(labels, tf.constant(probabilities, tf.bfloat16).numpy().astype(np.float32))
    half.update(labels, tf.constant(probabilities, tf.bfloat16))
    np.testing.assert_array_equal(half.matrix, reference.matrix)


def test_class_ids_in_a_floating_type_are_refused_not_argmaxed_over_the_width():
    """Helper 203: float ids of a width of C were argmaxed over the width (mIoU 0 instead of 50,
    one pixel counted), and of another width blamed num_classes."""
    labels = np.array([[[1, 1, 2]]])
    preds = np.array([[[1, 2, 2]]], np.float32)
    with pytest.raises(ValueError, match=r"the predictions \(float32, shape \(1, 1, 3\)\) have the shape of the "
                                         r"labels \(1, 1, 3\): class ids in a floating type, .*cast them to "
                                         "integers"):
        ConfusionMatrix(3).update(labels, preds)
    with pytest.raises(ValueError, match="cast them to integers"):
        ConfusionMatrix(3).update(labels[..., None], np.array([[[1, 2, 2, 0]]], np.float32)[..., :3])
    counted = ConfusionMatrix(3)
    counted.update(labels, preds.astype(np.int64))
    assert counted.matrix.sum() == 3
    # One-hot (and soft) labels have the predictions' shape and still count.
    one_hot = ConfusionMatrix(3)
    one_hot.update(np.eye(3)[[[1, 1, 2]]], np.eye(3, dtype=np.float32)[[[1, 2, 2]]])
    soft = ConfusionMatrix(3)
    soft.update(np.array([[[0.1, 0.8, 0.1]]]), np.array([[[0.2, 0.7, 0.1]]], np.float32))
    np.testing.assert_array_equal(one_hot.matrix, counted.matrix)
    assert soft.matrix[1, 1] == 1
    # Integer ids of 0 and 1 with at most one 1 in a row of the image look one-hot, but are ids
    # (helper 213: with a width of C, counted as probabilities over the width).
    ids = np.zeros((1, 4, 4), np.int64)
    ids[0, 0, 2] = ids[0, 2, 1] = 1
    said = (r"the labels \(int64, shape \(1, 4, 4\)\) have the shape of the predictions: integer labels of that "
            r"shape are class ids; give one-hot labels as floats, or cast class-id predictions to integers")
    with pytest.raises(ValueError, match=said):
        ConfusionMatrix(4).update(ids, ids.astype(np.float32))
    # Counts past int64 in the running total, Python ints past uint64, float16 (helper 220).
    total = ConfusionMatrix(2)
    total.update_from_matrix(np.array([[2**62, 0], [0, 0]]))
    with pytest.raises(ValueError, match=r"adding 4611686018427387904 at row 0, column 0 would take the count past"):
        total.update_from_matrix(np.array([[2**62, 0], [0, 0]]))
    assert total.matrix[0, 0] == 2**62
    with pytest.raises(ValueError, match=r"matrix holds 1.8446744073709552e\+19 at row 0, column 0"):
        ConfusionMatrix(2).update_from_matrix([[2**64, 0], [0, 0]])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ConfusionMatrix(2).update_from_matrix(np.array([[3, 0], [0, 1]], np.float16))


def test_counts_that_are_not_whole_numbers_are_refused():
    """Helper 203: 1.7 was counted 1, and a negative count added as it was."""
    # Helper 213: inf and counts beyond int64 passed, and were cast to -2^63.
    for bad, value in (([[0, 0, 0], [0, -5, 0], [0, 0, 1]], "-5"), ([[0, 0, 0], [0, 1, 0], [0, 0, 1.7]], "1.7"),
                       ([[0, 0, 0], [0, np.inf, 0], [0, 0, 1]], "inf"),
                       ([[0, 0, 0], [0, 1e20, 0], [0, 0, 1]], "1e\\+20"),
                       ([[0, 0, 0], [0, 2.0**63, 0], [0, 0, 1]], "9.223372036854776e\\+18"),
                       (np.array([[0, 0, 0], [0, 2**63, 0], [0, 0, 1]], np.uint64), "9223372036854775808")):
        matrix = ConfusionMatrix(3)
        with pytest.raises(ValueError, match=rf"whole numbers in 0..2\^63-1, but the matrix holds {value} at row "):
            matrix.update_from_matrix(np.array(bad))
        assert matrix.matrix.sum() == 0
    matrix = ConfusionMatrix(3)
    matrix.update_from_matrix(np.array([[0, 0, 0], [0, 2.0, 1], [0, 0, 3]], np.float32), num_images=1)
    assert matrix.matrix.tolist() == [[0, 0, 0], [0, 2, 1], [0, 0, 3]]


def test_the_training_time_output_dict_is_counted_by_its_softmax():
    """Helper 278: "labels of shape (2, 8, 8) do not fit predictions of rank 0" (the dict made a
    0-d object array), where the Keras metrics take the same dict."""
    rng = np.random.default_rng(0)
    probabilities = rng.random((2, 8, 8, 4)).astype(np.float32)
    labels = rng.integers(0, 4, (2, 8, 8))
    outputs = {"softmax": probabilities, "logits": probabilities[..., ::-1]}
    expected, given = ConfusionMatrix(4), ConfusionMatrix(4)
    expected.update(labels, probabilities)
    given.update(labels, outputs)
    np.testing.assert_array_equal(given.matrix, expected.matrix)
    np.testing.assert_array_equal(batch_confusion_matrix(labels, outputs, 4), expected.matrix)


def test_non_finite_probabilities_warn_naming_the_count():
    """Helper 308: a network giving NaN (a damaged checkpoint, float16 overflow) was counted as
    predicting void everywhere (the argmax of a NaN row is 0): mIoU 0 without a word."""
    import warnings

    labels = np.array([[[1, 2, 1, 2]]])
    probs = np.eye(3, dtype=np.float32)[labels]
    probs[0, 0, :2] = np.nan
    probs[0, 0, 3, 1] = np.inf
    cm = ConfusionMatrix(3)
    with pytest.warns(RuntimeWarning, match=r"^the network gave non-finite probabilities \(NaN or inf\) at 3 of 4 "
                                            r"pixels \(75.0 %\): they count as predictions of void \(class 0\)"):
        cm.update(labels, probs)
    assert cm.matrix.sum() == 4  # still counted, as the device path counts them
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ConfusionMatrix(3).update(labels, np.eye(3, dtype=np.float32)[labels])


def test_colour_label_images_beside_probabilities_blame_the_labels():
    """Helper 308: RGB label PNGs (uint8, values up to 255) beside a 3-class model's probabilities
    had the shape of the predictions, and the valid probabilities were blamed as float class ids."""
    labels = np.zeros((1, 8, 8, 3), np.uint8)
    labels[0, :4] = (128, 64, 128)
    probs = np.full((1, 8, 8, 3), 1 / 3, np.float32)
    said = (r"^the labels \(uint8, shape \(1, 8, 8, 3\)\) have the shape of the predictions and hold values up to "
            r"128: colour label images\? give class ids \(B, H, W\) or \(B, H, W, 1\)$")
    with pytest.raises(ValueError, match=said):
        ConfusionMatrix(3).update(labels, probs)
    # As floats, as `keras.utils.img_to_array` reads them (helper 320: the probabilities blamed still).
    with pytest.raises(ValueError, match=r"^the labels \(float32, shape \(1, 8, 8, 3\)\) have the shape of the "
                                         r"predictions and hold values up to 128\.0: colour label images\?"):
        ConfusionMatrix(3).update(labels.astype(np.float32), probs)
    # Ids beside float ids still blame the predictions.
    with pytest.raises(ValueError, match="cast them to integers"):
        ConfusionMatrix(3).update(np.array([[[1, 1, 2]]]), np.array([[[1, 2, 2]]], np.float32))


def test_floating_sparse_labels_that_are_not_whole_ids_are_refused():
    """Helper 308: labels resized bilinearly (1.333, 2.667) were cut to ids 1 and 2 and counted as
    classes that are not there; NaN labels counted as void."""
    probs = np.eye(4, dtype=np.float32)[np.array([[[1, 2, 3, 1]]])]
    for bad, count, example in (([1.0, 1.3333334, 2.6666667, 3.0], 2, "1.33333"), ([1.0, np.nan, 3.0, 1.0], 1, "nan")):
        labels = np.array([[bad]], np.float32)
        cm = ConfusionMatrix(4)
        with pytest.raises(ValueError, match=rf"^{count} of the 4 sparse labels \(float32\) are not whole class ids, "
                                             rf"e.g. {example}: .*resize label images with nearest-neighbour "
                                             "interpolation$"):
            cm.update(labels, probs)
        with pytest.raises(ValueError, match="nearest-neighbour"):
            cm.update(labels[..., None], probs)  # (B, H, W, 1)
        assert cm.matrix.sum() == 0
    # Whole ids in a floating type still count, as before.
    whole = ConfusionMatrix(4)
    whole.update(np.array([[[1.0, 2.0, 3.0, 1.0]]], np.float32), probs)
    assert np.trace(whole.matrix) == 4


def test_the_device_counts_and_the_keras_metrics_refuse_what_the_host_refuses():
    """Before: `batch_confusion_matrix` and the Keras metrics (`released_metrics`) cut labels resized
    bilinearly to the id below them, 1.75 to class 1, and scored them without a word, where
    `ConfusionMatrix.update` refused them (helper 332); the same words now, eagerly and when a traced
    batch runs."""
    from ssma_tf.metrics import released_metrics

    probs = np.eye(4, dtype=np.float32)[np.array([[[1, 2, 3, 1]]])]
    fractional = np.array([[[1.0, 1.75, 3.0, 1.0]]], np.float32)
    said = (r"^1 of the 4 sparse labels \(float32\) are not whole class ids, e\.g\. 1\.75: labels resized bilinearly "
            r"mix neighbouring ids; resize label images with nearest-neighbour interpolation$")
    metric = ReleasedMeanIoU(4)
    for given in (fractional, fractional[..., None], tf.constant(fractional)):
        with pytest.raises(ValueError, match=said):
            batch_confusion_matrix(given, probs, 4)
        with pytest.raises(ValueError, match=said):
            metric.update_state(given, probs)
        with pytest.raises(ValueError, match=said):
            ConfusionMatrix(4).update(np.asarray(given), probs)
    assert int(metric.counts.numpy().sum()) == 0
    update = tf.function(metric.update_state, input_signature=[tf.TensorSpec([None, 1, 4], tf.float32),
                                                               tf.TensorSpec([None, 1, 4, 4], tf.float32)])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[1\] \[of the\] \[4\] \[sparse labels \(float32\) "
                                                              r"are not whole class ids, e\.g\.\] \[1\.75\]"):
        update(fractional, probs)
    # Whole ids as floats, 255.0 (void) among them, count as the integers do, eagerly and traced.
    whole = np.array([[[1.0, 2.0, 255.0, 1.0]]], np.float32)
    host = ConfusionMatrix(4)
    host.update(whole.astype(np.int64), probs)
    np.testing.assert_array_equal(batch_confusion_matrix(whole, probs, 4).numpy(), host.matrix)
    update(whole, probs)
    np.testing.assert_array_equal(metric.counts.numpy(), host.matrix)
    for counted in released_metrics(4):
        counted.update_state(tf.constant(whole[..., None]), probs)
        np.testing.assert_array_equal(counted.counts.numpy(), host.matrix)
