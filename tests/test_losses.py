"""The released loss on examples small enough to work out by hand."""

import math
import re

import numpy as np
import pytest
import tensorflow as tf

from ssma_tf.losses import l2_penalty, total_loss, void_class_weights, weighted_cross_entropy

# One image of 1×4 pixels, 3 classes (0 = void). Per pixel: label, softmax.
#   pixel 0: class 1, p = (0.2, 0.5, 0.3)  → −log(0.5) = 0.6931472
#   pixel 1: class 2, p = (0.1, 0.1, 0.8)  → −log(0.8) = 0.2231436
#   pixel 2: void (0), p = (0.6, 0.2, 0.2) → weight 0 → 0
#   pixel 3: id 7 ≥ C, p = (0.3, 0.3, 0.4) → void → 0
# Void pixels stay in the denominator: (0.6931472 + 0.2231436) / 4 = 0.2290727.
LABELS = np.array([[[1, 2, 0, 7]]], dtype=np.int32)
PROBS = np.array(
    [[[[0.2, 0.5, 0.3], [0.1, 0.1, 0.8], [0.6, 0.2, 0.2], [0.3, 0.3, 0.4]]]], dtype=np.float32
)
EXPECTED = 0.2290727


def test_hand_computed_example_sparse_labels():
    loss = weighted_cross_entropy(LABELS, PROBS, num_classes=3)
    assert loss.dtype == tf.float32
    assert float(loss) == pytest.approx(EXPECTED, abs=1e-6)


def test_one_hot_labels_give_the_same_loss():
    # As the original pipeline: an id ≥ C one-hot encodes to an all-zero row.
    one_hot = tf.one_hot(LABELS, 3).numpy()
    assert one_hot[0, 0, 3].sum() == 0
    loss = weighted_cross_entropy(one_hot, PROBS, num_classes=3)
    assert float(loss) == pytest.approx(EXPECTED, abs=1e-6)


def test_ids_with_a_trailing_axis_of_one_are_sparse_ids():
    """(B, H, W, 1), how Keras users often keep sparse labels: ids, not a one-hot of one class
    (read as one, the ids multiplied every class's term: 45 against 8 in the helper's example)."""
    loss = weighted_cross_entropy(LABELS[..., None], PROBS, num_classes=3)
    assert float(loss) == pytest.approx(EXPECTED, abs=1e-6)
    assert float(weighted_cross_entropy(tf.constant(LABELS[..., None]), PROBS, num_classes=3)) == pytest.approx(
        EXPECTED, abs=1e-6)


def test_void_pixels_count_in_the_denominator():
    labelled_only = weighted_cross_entropy(LABELS[:, :, :2], PROBS[:, :, :2], num_classes=3)
    everything = weighted_cross_entropy(LABELS, PROBS, num_classes=3)
    # Same sum, twice the pixel count.
    assert float(everything) == pytest.approx(float(labelled_only) / 2, rel=1e-6)


def test_negative_ids_are_void_too():
    labels = np.array([[[1, 2, -1, 0]]], dtype=np.int32)
    assert float(weighted_cross_entropy(labels, PROBS, 3)) == pytest.approx(EXPECTED, abs=1e-6)


def test_zero_probability_on_the_true_class_is_finite():
    probs = np.array([[[[0.0, 0.0, 1.0]]]], dtype=np.float32)
    loss = weighted_cross_entropy(np.array([[[1]]]), probs, 3)
    assert float(loss) == pytest.approx(-math.log(1e-10), rel=1e-5)


def test_custom_class_weights():
    # Weight 2 on class 1 doubles pixel 0's term: (2·0.6931472 + 0.2231436) / 4.
    loss = weighted_cross_entropy(LABELS, PROBS, 3, class_weights=[0.0, 2.0, 1.0])
    assert float(loss) == pytest.approx((2 * 0.6931472 + 0.2231436) / 4, abs=1e-6)
    # An id ≥ C stays void even when class 0 gets a weight.
    loss = weighted_cross_entropy(np.array([[[7]]]), PROBS[:, :, 3:], 3, class_weights=[1, 1, 1])
    assert float(loss) == 0.0


def test_half_precision_probabilities_are_computed_in_float32():
    loss = weighted_cross_entropy(LABELS, PROBS.astype(np.float16), 3)
    assert loss.dtype == tf.float32
    assert float(loss) == pytest.approx(EXPECTED, abs=1e-3)


def test_total_loss_weights_the_auxiliary_terms():
    # Auxiliary heads: uniform probabilities (−log(1/3) = 1.0986123 on both labelled pixels, so
    # each term is 2·1.0986123/4 = 0.5493061) and one that is right with p = 1 (term 0).
    uniform = np.full_like(PROBS, 1.0 / 3.0)
    perfect = np.array(
        [[[[0, 1, 0], [0, 0, 1], [1, 0, 0], [1, 0, 0]]]], dtype=np.float32
    )
    outputs = {"softmax": PROBS, "aux_up2": uniform, "aux_up1": perfect}
    total, terms = total_loss(LABELS, outputs)
    assert set(terms) == {"main", "aux_up2", "aux_up1"}
    assert float(terms["aux_up2"]) == pytest.approx(0.5493061, abs=1e-6)
    assert float(terms["aux_up1"]) == pytest.approx(0.0, abs=1e-6)
    assert float(total) == pytest.approx(EXPECTED + 0.6 * 0.5493061, abs=1e-6)

    swapped = {"softmax": PROBS, "aux_up2": perfect, "aux_up1": uniform}
    total, _ = total_loss(LABELS, swapped)
    assert float(total) == pytest.approx(EXPECTED + 0.5 * 0.5493061, abs=1e-6)

    total, _ = total_loss(LABELS, outputs, aux_weights=(0.0, 0.0))
    assert float(total) == pytest.approx(EXPECTED, abs=1e-6)


def test_total_loss_without_auxiliary_outputs():
    total, terms = total_loss(LABELS, {"softmax": PROBS, "logits": PROBS})
    assert list(terms) == ["main"]
    assert float(total) == pytest.approx(EXPECTED, abs=1e-6)
    total, _ = total_loss(LABELS, PROBS)  # the softmax tensor alone
    assert float(total) == pytest.approx(EXPECTED, abs=1e-6)


def test_gradient_reaches_the_probabilities_of_labelled_pixels_only():
    probs = tf.Variable(PROBS)
    with tf.GradientTape() as tape:
        loss = weighted_cross_entropy(LABELS, probs, 3)
    grad = tape.gradient(loss, probs).numpy()
    # d/dp (−log(p + 1e-10) / 4) = −1 / (4p) at the labelled class; 0 elsewhere.
    assert grad[0, 0, 0, 1] == pytest.approx(-1 / (4 * 0.5), rel=1e-5)
    assert grad[0, 0, 1, 2] == pytest.approx(-1 / (4 * 0.8), rel=1e-5)
    assert np.count_nonzero(grad) == 2


def test_bad_arguments():
    assert void_class_weights(3) == [0.0, 1.0, 1.0]
    with pytest.raises(ValueError, match="class weights"):
        weighted_cross_entropy(LABELS, PROBS, 3, class_weights=[0, 1])
    with pytest.raises(ValueError, match="num_classes"):
        weighted_cross_entropy(LABELS, PROBS, 4)
    with pytest.raises(ValueError, match="rank"):
        weighted_cross_entropy(LABELS[0, 0], PROBS, 3)
    with pytest.raises(ValueError, match="softmax"):
        total_loss(LABELS, {"aux_up1": PROBS})
    with pytest.raises(ValueError, match="aux_weights"):
        total_loss(LABELS, PROBS, aux_weights=(0.6,))


def test_labels_that_do_not_fit_the_predictions_are_named():
    """Before: TensorFlow's broadcasting error from inside the loss (one-hot of another class
    count, another size), or a silent broadcast where one side's axis was 1."""
    from ssma_tf.losses import ReleasedLoss

    loss = ReleasedLoss()
    with pytest.raises(ValueError, match=r"one-hot labels of shape \(1, 1, 4, 2\) have 2 classes on their last "
                                         r"axis, but the predictions \(1, 1, 4, 3\) have 3"):
        loss(np.zeros((1, 1, 4, 2), np.float32), PROBS)
    with pytest.raises(ValueError, match=r"differ in size \(axis 2: 1 and 4\); resize the labels"):
        loss(LABELS[..., :1], PROBS)  # broadcast silently over the row before
    with pytest.raises(ValueError, match=r"differ in batch size \(axis 0: 2 and 1\)"):
        weighted_cross_entropy(np.concatenate([LABELS, LABELS]), PROBS, 3)
    assert float(loss(LABELS, PROBS)) == pytest.approx(EXPECTED, rel=1e-5)


def test_l2_penalty_is_tf1_l2_regularizer():
    # TF1 l2_regularizer(scale)(w) = scale · Σw² / 2: 5e-4 · (1 + 4 + 9 + 16) / 2 = 7.5e-3.
    weights = [tf.Variable([[1.0, 2.0]]), tf.Variable([3.0, 4.0])]
    assert float(l2_penalty(weights, 5e-4)) == pytest.approx(7.5e-3, rel=1e-6)


def test_weight_decay_covers_what_the_release_declared_its_regulariser_on():
    """The released `network_base.py` attached `l2_regularizer` to kernels and to batch-norm
    gamma and beta; `weight_decay` penalised the kernels only (helper 127). SAC keeps its kernels."""
    import collections

    from ssma_tf.losses import decayed_kernels, decayed_weights
    from ssma_tf.models import SSMA

    model = SSMA(3, freeze_experts=False)
    model([np.zeros((1, 32, 32, 3), np.float32)] * 2)
    counts = collections.Counter(v.name for v in decayed_weights(model))
    trainable = collections.Counter(v.name for v in model.trainable_variables)
    assert set(counts) == {"kernel", "gamma", "beta"} and trainable["bias"] > 0
    assert all(counts[name] == trainable[name] for name in counts)
    assert {v.name for v in decayed_kernels(model)} == {"kernel"}


def test_sparse_ids_give_the_one_hot_products_values_and_gradients():
    # The sparse path selects the label's probability instead of multiplying by a one-hot tensor;
    # every other term of the released sum is an exact zero, so the arithmetic is the same. Only
    # the vectorised reciprocal in the log's gradient may round an element in its last bit
    # differently, as it lands elsewhere in a SIMD packet for a (B, H, W) than a (B, H, W, C) tensor.
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(2, 5, 7, 6)).astype(np.float32)
    probs = tf.Variable(tf.nn.softmax(logits))
    aux = tf.Variable(tf.nn.softmax(logits[..., ::-1] * 2))
    labels = rng.integers(-1, 8, size=(2, 5, 7)).astype(np.int32)  # void, classes and ids >= C
    weights = [0.0, 1.0, 2.5, 1.0, 0.3, 1.0]
    results = []
    for given in (labels, tf.one_hot(labels, 6).numpy()):
        with tf.GradientTape() as tape:
            total, terms = total_loss(given, {"softmax": probs, "aux_up2": aux}, class_weights=weights)
        results.append((total.numpy(), terms["aux_up2"].numpy(), *[g.numpy() for g in tape.gradient(total, [probs, aux])]))
    for sparse, one_hot in zip(*results):
        np.testing.assert_allclose(sparse, one_hot, rtol=2e-7, atol=0)
        np.testing.assert_array_equal(sparse != 0, one_hot != 0)
    assert np.count_nonzero(results[0][2]) > 0


def test_a_label_axis_of_unknown_size_is_told_apart_when_the_batch_runs():
    """Traced with `[None] * 4`, (B, H, W, 1) ids were read as one-hot of one class (a loss
    several times too large); one-hot labels through the same trace keep their value."""
    from ssma_tf.metrics import batch_confusion_matrix

    spec = tf.TensorSpec([None] * 4, tf.float32)
    loss = tf.function(lambda labels, probs: weighted_cross_entropy(labels, probs, num_classes=3),
                       input_signature=[spec, spec])
    matrix = tf.function(lambda labels, probs: batch_confusion_matrix(labels, probs, 3),
                         input_signature=[spec, spec])
    ids = LABELS[..., None].astype(np.float32)
    one_hot = tf.one_hot(LABELS, 3).numpy()
    assert float(loss(ids, PROBS)) == pytest.approx(EXPECTED, abs=1e-6)
    assert float(loss(one_hot, PROBS)) == pytest.approx(EXPECTED, abs=1e-6)
    want = batch_confusion_matrix(LABELS, PROBS, 3).numpy()
    np.testing.assert_array_equal(matrix(ids, PROBS).numpy(), want)
    np.testing.assert_array_equal(matrix(one_hot, PROBS).numpy(), want)
    assert want[1:].sum() == 2 and want[0, 0] == 2  # pixels 0 and 1; the void ones in row 0


def test_an_auxiliary_output_of_another_shape_is_named():
    """Helper 203: a smaller aux_up2 was TensorFlow's broadcasting error; with one-hot labels a
    1x1 aux_up1 broadcast into a wrong loss without a word."""
    labels = tf.ones((1, 8, 8), tf.int32)
    main = tf.nn.softmax(tf.random.normal((1, 8, 8, 3)))
    for name, shape, given in (("aux_up2", (1, 4, 4, 3), labels), ("aux_up1", (1, 1, 1, 3), tf.one_hot(labels, 3))):
        aux = tf.nn.softmax(tf.random.normal(shape))
        told = f"the auxiliary output '{name}' has shape {shape}, but 'softmax' has (1, 8, 8, 3): resize the auxiliary"
        with pytest.raises(ValueError, match=re.escape(told)):
            total_loss(given, {"softmax": main, name: aux})


# The host's words (`ConfusionMatrix.update`, helper 308), which the loss now says too: eagerly as one
# sentence, in a traced step as TensorFlow's assertion prints its parts, each in brackets.
NOT_WHOLE, RESIZE = (r"sparse labels \(float32\) are not whole class ids, e\.g\.",
                     r": labels resized bilinearly mix neighbouring ids; resize label images with nearest-neighbour "
                     r"interpolation")
SAID = rf"^1 of the 4 {NOT_WHOLE} 1\.75{RESIZE}$"
TRACED_SAID = rf"\[1\] \[of the\] \[4\] \[{NOT_WHOLE}\] \[1\.75\] \[{RESIZE}\]"


def test_floating_sparse_labels_that_are_not_whole_ids_are_refused_by_the_loss():
    """Before: the loss's int32 cast cut 1.75 to class 1 and NaN to an arbitrary id, so labels resized
    bilinearly trained on classes that are not there, without a word; the host `ConfusionMatrix`
    refused the same labels (helper 332)."""
    from ssma_tf.losses import ReleasedLoss

    fractional = np.array([[[1.0, 1.75, 0.0, 7.0]]], np.float32)
    for given in (fractional, fractional[..., None], tf.constant(fractional)):
        with pytest.raises(ValueError, match=SAID):
            weighted_cross_entropy(given, PROBS, num_classes=3)
        with pytest.raises(ValueError, match=SAID):
            ReleasedLoss()(given, PROBS)
    with pytest.raises(ValueError, match=r"^2 of the 4 .* e\.g\. nan: labels resized"):
        weighted_cross_entropy(np.array([[[1.0, np.nan, np.inf, 2.0]]], np.float32), PROBS, num_classes=3)
    # Whole ids in a floating type (255.0, void, too) and one-hot labels give the loss of the integers.
    whole = LABELS.astype(np.float32)
    whole[0, 0, 3] = 255.0
    for given in (whole, tf.constant(whole, tf.float16), whole[..., None], tf.one_hot(LABELS, 3).numpy()):
        assert float(weighted_cross_entropy(given, PROBS, num_classes=3)) == pytest.approx(EXPECTED, abs=1e-6)
    assert float(ReleasedLoss()(whole, PROBS)) == pytest.approx(EXPECTED, abs=1e-6)


def test_fractional_ids_fail_a_traced_step_with_the_hosts_words():
    """Before: a `tf.function` cut 1.75 to class 1 without a word (helper 332). Nothing is known of the
    values when it is traced: the step fails when it runs, with the words the host says; soft labels
    (fractions by nature) through a trace that cannot tell them from ids until then still pass."""
    unknown = tf.TensorSpec([None] * 4, tf.float32)
    any_axis = tf.function(lambda labels, probs: weighted_cross_entropy(labels, probs, num_classes=3),
                           input_signature=[unknown, unknown])
    sparse = tf.function(lambda labels, probs: weighted_cross_entropy(labels, probs, num_classes=3),
                         input_signature=[tf.TensorSpec([None, 1, 4], tf.float32), unknown])
    fractional = np.array([[[1.0, 1.75, 0.0, 7.0]]], np.float32)
    for loss, given in ((any_axis, fractional[..., None]), (sparse, fractional)):
        with pytest.raises(tf.errors.InvalidArgumentError, match=TRACED_SAID):
            loss(given, PROBS)
    assert float(sparse(LABELS.astype(np.float32), PROBS)) == pytest.approx(EXPECTED, abs=1e-6)
    soft = np.array([[[[0.0, 0.5, 0.5], [0.0, 0.25, 0.75], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]]], np.float32)
    want = -(0.5 * math.log(0.5) + 0.5 * math.log(0.3) + 0.25 * math.log(0.1) + 0.75 * math.log(0.8)) / 4
    assert float(any_axis(soft, PROBS)) == pytest.approx(want, rel=1e-5)
    # Under XLA, which compiles an assertion to nothing, no check is built: its condition would make the
    # step wait for a copy of the predicate to the host on a GPU, to no end.
    compiled = tf.function(lambda labels: weighted_cross_entropy(labels, PROBS, num_classes=3), jit_compile=True)
    assert float(compiled(LABELS.astype(np.float32))) == pytest.approx(EXPECTED, abs=1e-6)
    assert "conditional" not in compiled.experimental_get_compiler_ir(fractional)(stage="optimized_hlo")
