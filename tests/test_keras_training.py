"""Keras-native training: `compile`/`fit`/`evaluate` with the released loss and metrics."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from ssma_tf.config import config_from_dict
from ssma_tf.data import build_dataset
from ssma_tf.evaluation import Evaluator, make_eval_dataset
from ssma_tf.losses import ReleasedLoss, total_loss
from ssma_tf.metrics import (
    ConfusionMatrix, GlobalIoU, MeanFalseNegativeRate, MeanFalsePositiveRate, MeanIoUPresent, PixelAccuracy,
    ReleasedMeanIoU, released_metrics,
)
from ssma_tf.models import SSMA, AdapNetPP
from ssma_tf.training import schedule_from_config
from tests.conftest import ROOT
from tests.inference.helpers import randomize_batch_norms
from tests.training_helpers import write_records


def _labels_and_probs(seed: int, num_classes: int = 5):
    rng = np.random.default_rng(seed)
    # Ids up to C+1: some ground truth is void (0) and some out of range (void as released).
    labels = rng.integers(0, num_classes + 2, size=(3, 8, 16))
    probs = rng.random((3, 8, 16, num_classes)).astype(np.float32)
    # One class never appears in the prediction nor in the ground truth: absent classes count.
    probs[..., 3] = 0
    labels[labels == 3] = 1
    return labels, probs


def test_keras_metrics_equal_the_confusion_matrix_on_identical_predictions():
    confusion = ConfusionMatrix(5)
    metrics = [cls(5) for cls in (ReleasedMeanIoU, MeanIoUPresent, PixelAccuracy, GlobalIoU,
                                  MeanFalsePositiveRate, MeanFalseNegativeRate)]
    for seed in (0, 1):  # two batches accumulate, as over an epoch
        labels, probs = _labels_and_probs(seed)
        confusion.update(labels, probs)
        for metric in metrics:
            # The training-time output dict is accepted too (its softmax counts).
            metric.update_state(labels, {"softmax": probs} if seed else probs)
    summary = confusion.summary()
    expected = [confusion.miou(), summary["mean_iou_present"], summary["pixel_accuracy"],
                summary["global_iou"], summary["mean_fpr"], summary["mean_fnr"]]
    assert [m.name for m in released_metrics(5)] == [m.name for m in metrics]
    for metric, value in zip(metrics, expected):
        assert float(metric.result()) == pytest.approx(value, abs=1e-4), metric.name
    metrics[0].reset_state()
    assert float(metrics[0].result()) == 0.0


def test_labels_with_a_trailing_axis_of_one_are_ids_to_loss_and_metrics():
    """(B, H, W, 1), Keras' usual sparse labels: as (B, H, W), not one-hot of one class (which
    gave a loss several times too large and an mIoU of 0 without an error)."""
    labels, probs = _labels_and_probs(0)
    with_axis = labels[..., None]
    assert float(ReleasedLoss()(with_axis, probs)) == pytest.approx(float(ReleasedLoss()(labels, probs)), rel=1e-6)
    for cls in (ReleasedMeanIoU, PixelAccuracy):
        plain, axis = cls(5), cls(5)
        plain.update_state(labels, probs)
        axis.update_state(tf.constant(with_axis), probs)
        assert float(axis.result()) == float(plain.result()) > 0
    plain, axis = ConfusionMatrix(5), ConfusionMatrix(5)
    plain.update(labels, probs)
    axis.update(with_axis, probs)
    np.testing.assert_array_equal(axis.matrix, plain.matrix)


def test_metric_rejects_sample_weights_and_bad_class_counts():
    labels, probs = _labels_and_probs(0)
    with pytest.raises(ValueError, match="sample_weight"):
        ReleasedMeanIoU(5).update_state(labels, probs, sample_weight=np.ones(3))
    with pytest.raises(ValueError, match="num_classes"):
        ReleasedMeanIoU(1)
    # Metrics of more classes than the model counted the extra ones as never predicted: a lower
    # mIoU without a word (fewer failed in a reshape).
    for count in (7, 4):
        with pytest.raises(ValueError, match=rf"^ReleasedMeanIoU 'miou' counts {count} classes, but the model "
                                             r"predicts 5: give the metrics the model's num_classes$"):
            ReleasedMeanIoU(count).update_state(labels, probs)


def test_released_loss_reads_the_auxiliary_heads_and_equals_total_loss():
    labels, probs = _labels_and_probs(2)
    rng = np.random.default_rng(3)
    outputs = {name: tf.nn.softmax(rng.normal(size=probs.shape).astype(np.float32))
               for name in ("softmax", "aux_up2", "aux_up1")}
    expected, terms = total_loss(labels, outputs)
    loss = ReleasedLoss()
    assert float(loss(labels, outputs)) == pytest.approx(float(expected), rel=1e-6)
    # The softmax alone (inference mode, so `evaluate`) gives the main term.
    assert float(loss(labels, outputs["softmax"])) == pytest.approx(float(terms["main"]), rel=1e-6)
    restored = ReleasedLoss.from_config(ReleasedLoss(aux_weights=(1.0, 0.0)).get_config())
    assert restored.aux_weights == (1.0, 0.0)
    with pytest.raises(ValueError, match="aux_weights"):
        ReleasedLoss(aux_weights=(0.6,))


# For a script loading a `.keras` file of a model on the tiny backbone in another process (the
# registration lasts for a process). It imports no loss or optimizer: the load must find them.
_REGISTER_TINY_BACKBONE = ("from ssma_tf.models.backbones import register_backbone\n"
                           "from tests.models.helpers import TINY_BACKBONE, tiny_pyramid\n"
                           "register_backbone(TINY_BACKBONE, tiny_pyramid)\n")


def _narrow_decoder(fusion=False):
    """A 16-wide decoder (and, for SSMA, fusion blocks) for tests where the network's size is not the point."""
    from ssma_tf.models.widths import decoder_widths

    return {**decoder_widths(16), **({"ssma_latent": 16} if fusion else {})}


def _train_config(records, model, fusion=False):
    values = {
        "model": model, "num_classes": 4, "train_data": str(records), "batch_size": 2,
        "height": 32, "width": 64, "learning_rate": 1e-3, "max_iteration": 3, "skip_step": 1,
        "checkpoint": "unused",
    }
    return config_from_dict(values, source="fit.config", mode="train", check_paths=False)


@pytest.mark.parametrize("model_name", ["AdapNet_pp", "SSMA"])
def test_fit_on_the_data_pipeline_lowers_the_released_loss(tmp_path, model_name, tiny_backbone):
    fusion = model_name == "SSMA"
    records = write_records(tmp_path / "train.tfrecords", 2, height=32, width=64, num_classes=4,
                            fusion=fusion, seed=1)
    config = _train_config(records, model_name, fusion)
    dataset = build_dataset(records, modalities=2 if fusion else 1, height=32, width=64, batch_size=1,
                            num_classes=4, training=False)
    keras.utils.set_random_seed(0)
    # SSMA with trainable experts and the auxiliary heads: the dict path of the loss is exercised.
    # On the tiny backbone with a narrow decoder: the loss, metrics and schedule are the point,
    # and they see the same outputs (softmax and auxiliary heads) as on the released network.
    small = dict(backbone=tiny_backbone, widths=_narrow_decoder(fusion))
    model = SSMA(4, freeze_experts=False, aux_heads=True, **small) if fusion else AdapNetPP(4, **small)
    model.compile(optimizer=keras.optimizers.Adam(schedule_from_config(config)), loss=ReleasedLoss(),
                  metrics=[ReleasedMeanIoU(4)], run_eagerly=True)
    # Eagerly: tracing a training step costs seconds on two CPU cores; the compiled path of
    # compute_loss/compute_metrics is the same Python, and `evaluate` below
    # (test_model_evaluate_miou_equals_the_evaluator) runs it traced.
    # One batch over and over: each epoch's loss is that of one step, computed before its update
    # (in training mode, so with the auxiliary terms).
    history = model.fit(dataset.take(1).cache().repeat(), steps_per_epoch=1, epochs=3, verbose=0)
    losses = history.history["loss"]
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0]
    assert model.optimizer.iterations.numpy() == 3
    # The poly schedule was followed: at step 3 of 3 it reached its floor.
    assert float(model.optimizer.learning_rate) == pytest.approx(config.end_learning_rate, rel=1e-6)
    # Outside fit, the models still return the softmax alone.
    batch = next(iter(dataset))[0]
    assert model(batch, training=False).shape == (1, 32, 64, 4)


def test_model_evaluate_miou_equals_the_evaluator(tmp_path, tiny_backbone):
    records = write_records(tmp_path / "test.tfrecords", 5, height=32, width=64, num_classes=4, seed=5)
    values = {"model": "AdapNet_pp", "num_classes": 4, "checkpoint": str(tmp_path), "test_data": records,
              "batch_size": 2, "height": 32, "width": 64}
    config = config_from_dict(values, source="eval.config", mode="eval", check_paths=False)
    # The tiny backbone and a narrow decoder: evaluate's traced metrics and the saved loss are the
    # point, not the network's size (the full one's trace costs half a minute on two cores).
    model = AdapNetPP(4, backbone=tiny_backbone, widths=_narrow_decoder())
    randomize_batch_norms(model, seed=3)
    dataset = make_eval_dataset(config)
    confusion = Evaluator(model, 4, dataset.element_spec).run(dataset)
    model.compile(loss=ReleasedLoss(), metrics=released_metrics(4))
    result = model.evaluate(dataset, verbose=0, return_dict=True)
    assert confusion.miou() > 0
    assert result["miou"] == pytest.approx(confusion.miou(), abs=1e-3)
    assert result["pixel_accuracy"] == pytest.approx(confusion.pixel_accuracy(), abs=1e-3)
    # Saved compiled, the model opens with keras.saving.load_model once ssma_tf.models is
    # imported (as the README says), loss and metrics included: before, ReleasedLoss was unknown.
    model.save(tmp_path / "compiled.keras")
    script = ("import keras, ssma_tf.models\n"
              + _REGISTER_TINY_BACKBONE +
              f"model = keras.saving.load_model({str(tmp_path / 'compiled.keras')!r})\n"
              "print(type(model.loss).__name__)\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.split()[-1] == "ReleasedLoss", done.stderr[-2000:]


def test_the_released_loss_is_the_same_on_one_and_two_replicas():
    """Keras divides each replica's loss by the replica count and its loss tracker multiplies
    back; the released loss is a scalar, which Keras' reduction leaves unscaled, so `evaluate` and
    `fit` under a MirroredStrategy of 2 reported (and differentiated) twice the loss."""
    from tests.training_helpers import run_on_two_logical_cpus

    script = """
import keras
from ssma_tf.losses import ReleasedLoss
from ssma_tf.metrics import released_metrics

def build():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, padding="same", activation="softmax")(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=ReleasedLoss(), metrics=released_metrics(4))
    return model

rng = np.random.default_rng(0)
x = rng.uniform(0, 1, (8, 8, 8, 3)).astype("float32")
y = rng.integers(0, 4, (8, 8, 8)).astype("int32")
data = lambda: tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
one = build()
single, *metrics_one = one.evaluate(data(), verbose=0)
fitted_one = one.fit(data(), epochs=1, verbose=0, shuffle=False).history["loss"][0]
with strategy.scope():
    two = build()
double, *metrics_two = two.evaluate(data(), verbose=0)
# The confusion counts (two int32 parts, added on each replica) summed over the replicas.
np.testing.assert_allclose(metrics_one, metrics_two, rtol=1e-6)
fitted_two = two.fit(data(), epochs=1, verbose=0, shuffle=False).history["loss"][0]
print(single, double, fitted_one, fitted_two)
assert abs(double - single) < 1e-5 * single, (single, double)
assert abs(fitted_two - fitted_one) < 1e-4 * fitted_one, (fitted_one, fitted_two)
# The same step: the gradients were not doubled.
for a, b in zip(one.get_weights(), two.get_weights()):
    np.testing.assert_allclose(a, b, atol=1e-5)
"""
    result = run_on_two_logical_cpus(script)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]


def test_the_metrics_compile_under_xla():
    """Keras compiles fit and evaluate with XLA where it sees a GPU (`jit_compile="auto"`): the
    metrics' bincount has no fixed size there (helper 101: "DenseBincount must be a
    compile-time constant", the README's compile/fit example failing at its first step)."""
    import keras
    import tensorflow as tf

    from ssma_tf.losses import ReleasedLoss
    from ssma_tf.metrics import ConfusionMatrix, released_metrics

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, padding="same", activation="softmax")(inputs))
    model.compile(optimizer="adam", loss=ReleasedLoss(), metrics=released_metrics(4), jit_compile=True)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (4, 8, 8, 3)).astype("float32")
    y = rng.integers(0, 4, (4, 8, 8)).astype("int32")
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    results = model.evaluate(tf.data.Dataset.from_tensor_slices((x, y)).batch(2), return_dict=True, verbose=0)
    host = ConfusionMatrix(4)
    host.update(y, model.predict(x, verbose=0))
    assert results["miou"] == pytest.approx(host.miou(), abs=1e-4)


def test_parts_frozen_after_building_stay_frozen_through_a_keras_file(tmp_path, tiny_backbone):
    """Helper 101: the reloaded model had the constructor's trainable parts, Keras skipped the
    optimizer's state with a warning (its iterations back at 0), and the next fit trained what
    was frozen."""
    import warnings

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2, 32, 64, 3)).astype("float32")
    y = rng.integers(0, 4, (2, 32, 64)).astype("int32")
    # The tiny backbone: the flags are recorded per layer whatever the backbone.
    small = dict(backbone=tiny_backbone, widths=_narrow_decoder())
    model = AdapNetPP(4, **small)
    model.encoder.trainable = False
    model.compile(optimizer="adam", loss=ReleasedLoss())
    model.fit(x, y, batch_size=2, epochs=1, verbose=0)
    trainable = len(model.trainable_variables)
    model.save(tmp_path / "a.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # "Skipping variable loading for optimizer"
        reloaded = keras.models.load_model(tmp_path / "a.keras")
    assert reloaded.encoder.trainable is False and len(reloaded.trainable_variables) == trainable
    assert int(reloaded.optimizer.iterations.numpy()) == 1
    # SSMA: an expert unfrozen after building (its constructor freezes them).
    ssma = SSMA(4, backbone=tiny_backbone, widths=_narrow_decoder(fusion=True))
    ssma.encoders[0].trainable = True
    ssma.compile(optimizer="adam", loss=ReleasedLoss())
    # The optimizer's state for the trainable variables, as a step makes it (without tracing one).
    ssma.optimizer.build(ssma.trainable_variables)
    ssma.save(tmp_path / "s.keras")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        back = keras.models.load_model(tmp_path / "s.keras")
    assert [e.trainable for e in back.encoders] == [True, False]
    assert len(back.trainable_variables) == len(ssma.trainable_variables)
    # Every expert unfrozen (helper 118: no layer differed from the model's flag, nothing was
    # recorded, and the constructor froze them again: 49 trainable variables of 457).
    ssma.encoders[1].trainable = True
    again = SSMA.from_config(ssma.get_config())
    assert [e.trainable for e in again.encoders] == [True, True]
    assert len(again.trainable_variables) == len(ssma.trainable_variables)
    # A network as its constructor built it says nothing more.
    assert "trainable_layers" not in AdapNetPP(4, **small).get_config()


def test_compile_refuses_what_fit_would_not_apply_to_the_released_loss(tiny_backbone):
    """Helper 101: loss_weights was applied by evaluate and not by fit; a one-element list hid
    the loss from the models, which then trained the main term alone; dtype float16 rounded it."""
    model = AdapNetPP(4, backbone=tiny_backbone, widths=_narrow_decoder())  # compile's checks: any size will do
    with pytest.raises(ValueError, match=r"^loss_weights is not applied to ReleasedLoss, which weighs the auxiliary "
                                         r"heads itself: give ReleasedLoss\(aux_weights=\.\.\.\)"):
        model.compile(optimizer="adam", loss=ReleasedLoss(), loss_weights=10.0)
    with pytest.raises(ValueError, match=r"^ReleasedLoss reads every output of the model itself"):
        model.compile(optimizer="adam", loss={"softmax": ReleasedLoss()})
    model.compile(optimizer="adam", loss=[ReleasedLoss()])
    assert isinstance(model.loss, ReleasedLoss)  # unwrapped: the auxiliary heads are trained
    # One loss per output (helper 253: fit failed with "'NoneType' object has no attribute 'loss'").
    loss = "sparse_categorical_crossentropy"
    for several, given in (({"softmax": loss, "aux_up2": loss, "aux_up1": loss, "logits": None},
                            r"a dict of \['aux_up1', 'aux_up2', 'logits', 'softmax'\]"),
                           ([loss, loss, loss, None], "a list of 4")):
        with pytest.raises(ValueError, match=rf"^loss is {given}: the model's loss is given its softmax alone, not "
                                             r"one output each \(its auxiliary heads are weighed by "
                                             r"ReleasedLoss\(aux_weights=\.\.\.\)\): give one loss$"):
            model.compile(optimizer="adam", loss=several)
    model.compile(optimizer="adam", loss=[loss])  # one loss in a list: the softmax's, as Keras takes it
    with pytest.raises(ValueError, match=r"ReleasedLoss computes in float32 .*got dtype='float16'"):
        ReleasedLoss(dtype="float16")
    assert ReleasedLoss(dtype="float32").dtype == "float32"
    # Helper 143: class_weight became Keras' sample weight, a TypeError for arrays and "takes no
    # sample_weight" for datasets, neither naming the cause.
    with pytest.raises(ValueError, match=r"^fit\(class_weight=\.\.\.\) weighs whole samples; .* compile with "
                                         r"loss=ReleasedLoss\(class_weights=\[\.\.\.\]\)"):
        model.fit(np.zeros((1, 16, 16, 3), np.float32), np.zeros((1, 16, 16), np.int32),
                  class_weight={i: 1.0 for i in range(4)})


def test_labels_of_unknown_rank_are_named():
    """Helper 101: Keras traced labels of two ranks with no rank, and the loss said only
    "Cannot iterate over a shape with unknown rank"."""
    probabilities = tf.fill((1, 4, 4, 3), 1 / 3)

    @tf.function(input_signature=[tf.TensorSpec(None, tf.int32)])
    def loss(labels):
        return ReleasedLoss()(labels, probabilities)

    with pytest.raises(ValueError, match=r"labels of unknown rank .*tf.ensure_shape\(label, \[H, W\]\)"):
        loss(tf.zeros((1, 4, 4), tf.int32))


def test_the_configs_optimizer_trains_with_fit_on_replicas_and_its_keras_file_loads(tmp_path, tiny_backbone):
    """Helper 179: `make_optimizer` left the all-reduce to the trainer's step always, so `fit`
    under a MirroredStrategy applied each replica's own gradient; a `.keras` file of a model
    compiled with it did not load ("Could not locate class 'AdamWithMultipliers'"), and its
    learning-rate factors were not saved."""
    from ssma_tf.training import AdamWithMultipliers, make_optimizer

    values = {"model": "AdapNet_pp", "num_classes": 3, "height": 32, "width": 32, "batch_size": 2,
              "max_iteration": 10, "learning_rate": 1e-3, "train_data": "x.tfrecords",
              "checkpoint": str(tmp_path / "run"), "encoder_lr_multiplier": 0.0}
    config = config_from_dict(values, check_paths=False)
    keras.utils.set_random_seed(0)
    from ssma_tf.models.widths import decoder_widths

    model = AdapNetPP(3, backbone=tiny_backbone, widths=decoder_widths(16))  # small: the optimizer is the point
    model(np.zeros((1, 32, 32, 3), np.float32))
    optimizer = make_optimizer(config, model)
    assert isinstance(optimizer, AdamWithMultipliers) and optimizer.aggregate_gradients
    model.compile(optimizer=optimizer, loss=ReleasedLoss())
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32"), rng.integers(0, 3, (2, 32, 32))
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "fitted.keras")
    # Under mixed_float16 the optimizer is a LossScaleOptimizer around it, whose module was not
    # imported on loading: Keras' "could not be deserialized properly" (helper 224).
    mixed = config_from_dict({**values, "mixed_precision": "mixed_float16"}, check_paths=False)
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        half = AdapNetPP(3, backbone=tiny_backbone, widths=decoder_widths(16))
        half(np.zeros((1, 32, 32, 3), np.float32))
        half.compile(optimizer=make_optimizer(mixed, half), loss=ReleasedLoss())
        half.optimizer.build(half.trainable_variables)  # as a step of fit does
        half.save(tmp_path / "mixed.keras")
    finally:
        keras.mixed_precision.set_global_policy(policy)
    script = (
        "import sys, numpy as np, keras\n"
        "import ssma_tf.models\n"
        + _REGISTER_TINY_BACKBONE +
        "mixed = keras.saving.load_model(sys.argv[2])\n"  # first: the loads below import the optimizer's module
        "print(type(mixed.optimizer).__name__, type(mixed.optimizer.inner_optimizer).__name__)\n"
        "model = keras.saving.load_model(sys.argv[1])\n"
        "optimizer = model.optimizer\n"
        "encoder = {optimizer.learning_rate_multiplier(v) for v in model.encoder.trainable_variables}\n"
        "others = {optimizer.learning_rate_multiplier(v) for v in model.trainable_variables} - encoder\n"
        "print(type(optimizer).__name__, optimizer.aggregate_gradients, encoder == {0.0} and others == {1.0})\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "fitted.keras"), str(tmp_path / "mixed.keras")],
                          capture_output=True,
                          text=True, timeout=300, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    # Loaded in a process that imported the models only, with the encoders' factor 0 and 1 elsewhere.
    assert done.stdout.split()[-5:] == ["LossScaleOptimizer", "AdamWithMultipliers", "AdamWithMultipliers", "True",
                                        "True"], done.stdout


def _tiny_model(jit_compile):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, padding="same", activation="softmax")(inputs))
    model.compile(optimizer="adam", loss=ReleasedLoss(), metrics=released_metrics(4), jit_compile=jit_compile)
    return model


def test_fit_and_evaluate_refuse_labels_resized_bilinearly():
    """Before: labels resized bilinearly (1.75 between ids 1 and 2) trained and scored as the id below
    them, `evaluate` giving an mIoU without a word, where `ConfusionMatrix.update` refused them; the
    README says `released_metrics` equal evaluate.py's (helper 332). Whole ids as floats, void 255.0
    among them, still train and score as the integers, with XLA too (which compiles the check to
    nothing)."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (4, 8, 8, 3)).astype("float32")
    ids = rng.integers(0, 4, (4, 4, 4, 1)).astype("float32")
    resized = tf.image.resize(ids, (8, 8)).numpy()[..., 0]
    assert (resized != np.floor(resized)).any()
    said = (r"\[of the\] \[\d+\] \[sparse labels \(float32\) are not whole class ids, e\.g\.\] \[[\d.]+\] \[: labels "
            r"resized bilinearly mix neighbouring ids; resize label images with nearest-neighbour interpolation\]")
    model = _tiny_model(jit_compile=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match=said):
        model.evaluate(x, resized, batch_size=2, verbose=0)
    with pytest.raises(tf.errors.InvalidArgumentError, match=said):
        model.fit(x, resized, batch_size=2, epochs=1, verbose=0)
    whole = np.round(resized)
    whole[0, :2] = 255.0
    results = []
    for labels, jit_compile in ((whole.astype("int32"), False), (whole, False), (whole, True)):
        model = _tiny_model(jit_compile)
        history = model.fit(x, labels, batch_size=2, epochs=1, verbose=0, shuffle=False).history
        results.append((history["loss"], model.evaluate(x, labels, batch_size=2, verbose=0)))
    np.testing.assert_allclose(results[1][0], results[0][0], rtol=1e-6)
    np.testing.assert_allclose(results[1][1], results[0][1], rtol=1e-6)
    np.testing.assert_allclose(results[2][1], results[0][1], rtol=1e-3)
    host = ConfusionMatrix(4)
    host.update(whole, model.predict(x, verbose=0))
    assert results[2][1][1] == pytest.approx(host.miou(), abs=1e-4) and host.miou() > 0


def test_an_outer_model_trains_the_auxiliary_heads_through_its_own_compute_loss():
    """The README's way for a network inside another model: `return_all=True` in the outer model
    and a `compute_loss` giving `ReleasedLoss` the dict (before, the README offered `return_all`
    alone, which `compile(loss=ReleasedLoss())` met with Keras' "path ('logits',) ... can't be
    found"; helper 332)."""
    from ssma_tf.models.widths import decoder_widths

    keras.utils.set_random_seed(0)
    net = AdapNetPP(4, backbone="mobilenet_v2", widths=decoder_widths(16), dropout_rate=0.0)
    released = ReleasedLoss()

    class Outer(keras.Model):
        def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
            return released(y, y_pred)

    inputs = keras.Input((32, 64, 3))
    outer = Outer(inputs, net(inputs, return_all=True))
    outer.compile(optimizer=keras.optimizers.SGD(0.0))  # the loss at the start, weights kept
    images = np.random.default_rng(0).random((2, 32, 64, 3)).astype(np.float32)
    labels = np.random.default_rng(1).integers(0, 4, (2, 32, 64))
    loss = outer.fit(images, labels, epochs=1, verbose=0).history["loss"][0]
    # The released loss with its auxiliary terms: what the network's own fit computes.
    np.testing.assert_allclose(loss, float(released(labels, net(images, training=True))), rtol=1e-5)
    heads = [v for v in net.trainable_weights if v.path.startswith(("aux_up1_head", "aux_up2_head"))]
    with tf.GradientTape() as tape:
        value = released(labels, outer(images, training=True))
    assert heads and all(g is not None for g in tape.gradient(value, heads))
