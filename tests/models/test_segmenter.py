"""The models' `compile`/`fit` hooks (ssma_tf.models.segmenter), on a tiny model with the same outputs."""

import keras
import numpy as np
import pytest

from ssma_tf.losses import ReleasedLoss, total_loss
from ssma_tf.metrics import ReleasedMeanIoU
from ssma_tf.models.segmenter import SegmenterTraining


class TinyDictSegmenter(SegmenterTraining, keras.Model):
    """A 1×1-convolution stand-in returning the dict of AdapNetPP's outputs."""

    def __init__(self, num_classes: int = 3, **kwargs):
        image = keras.Input(shape=(8, 8, 3))
        outputs = {
            name: keras.layers.Softmax(name=name)(keras.layers.Conv2D(num_classes, 1, name=f"{name}_conv")(image))
            for name in ("softmax", "aux_up2", "aux_up1")
        }
        super().__init__(inputs=image, outputs=outputs, **kwargs)

    def call(self, inputs, training=None, mask=None, return_all=None):
        return self.resolve_outputs(super().call(inputs, training=training, mask=mask), training, return_all)


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (4, 8, 8, 3)).astype("float32"), rng.integers(0, 3, (4, 8, 8))


def test_outputs_are_the_dict_while_training_and_the_softmax_otherwise():
    model = TinyDictSegmenter()
    x, _ = _data()
    assert set(model(x, training=True)) == {"softmax", "aux_up2", "aux_up1"}
    assert model(x, training=False).shape == (4, 8, 8, 3)
    assert model(x).shape == (4, 8, 8, 3)
    assert set(model(x, return_all=True)) == {"softmax", "aux_up2", "aux_up1"}


@pytest.mark.parametrize(
    "loss, with_aux", [(ReleasedLoss(), True), (keras.losses.SparseCategoricalCrossentropy(), False)]
)
def test_compiled_fit_gives_the_dict_to_the_released_loss_and_the_softmax_to_others(loss, with_aux):
    keras.utils.set_random_seed(1)
    model = TinyDictSegmenter()
    x, y = _data()
    outputs = model(x, training=True)
    if with_aux:
        expected, _ = total_loss(y, outputs)
    else:
        expected = keras.losses.SparseCategoricalCrossentropy()(y, outputs["softmax"])
    # Traced (not eager): the hooks run inside the compiled train function.
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=loss, metrics=[ReleasedMeanIoU(3)], run_eagerly=False)
    history = model.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    assert history.history["loss"][0] == pytest.approx(float(expected), rel=1e-5)
    assert "miou" in history.history


def test_from_preset_before_the_zoo_is_imported_says_what_to_import():
    with pytest.raises(RuntimeError, match="import ssma_tf.checkpoints"):
        SegmenterTraining.from_preset.__func__(TinyDictSegmenter, "ssma_cityscapes_rgb_depth")


def test_a_model_built_around_one_predicts_and_trains_with_the_outputs_its_call_gives():
    """Helper 179: a symbolic call gave every output whatever was asked, so a model wrapped in
    another one (`keras.Sequential`, `keras.Model(inputs, net(inputs))`) failed to predict ("Output
    with path `aux_up2` is not connected"), and a symbolic call with return_all was refused."""
    keras.utils.set_random_seed(2)
    model = TinyDictSegmenter()
    x, y = _data()
    image = keras.Input(shape=(8, 8, 3))
    assert model(image).shape == (None, 8, 8, 3) and model(image, training=False).shape == (None, 8, 8, 3)
    assert set(model(image, return_all=True)) == {"softmax", "aux_up2", "aux_up1"}
    assert set(model(image, training=True)) == {"softmax", "aux_up2", "aux_up1"}
    wrapped = keras.Sequential([keras.Input(shape=(8, 8, 3)), keras.layers.Rescaling(1.0), model])
    np.testing.assert_allclose(wrapped.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    # Trained inside another model, it is called there with return_all given: its outputs do not
    # change with `training`.
    outer = keras.Model(image, model(keras.layers.Identity()(image), return_all=False))
    outer.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy())
    history = outer.fit(x, y, epochs=1, batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.parametrize("wrapping", ["sequential", "functional"])
def test_a_model_inside_another_trains_on_its_softmax(wrapping):
    """Helper 288: called with training=True inside another model (which was built with its
    softmax), it returned its dict, and the outer fit took the dict's first output, an auxiliary
    head: AdapNet++'s classifier got no gradient, without a word."""
    keras.utils.set_random_seed(3)
    model = TinyDictSegmenter()
    x, y = _data()
    if wrapping == "sequential":
        outer = keras.Sequential([keras.Input(shape=(8, 8, 3)), model])
    else:
        image = keras.Input(shape=(8, 8, 3))
        outer = keras.Model(image, model(image))
    np.testing.assert_allclose(outer(x, training=True), model(x, training=True)["softmax"], atol=1e-6)
    assert set(model(x, training=True)) == {"softmax", "aux_up2", "aux_up1"}  # called itself: every output
    expected = keras.losses.SparseCategoricalCrossentropy()(y, model(x, training=True)["softmax"])
    outer.compile(optimizer=keras.optimizers.SGD(0.0), loss=keras.losses.SparseCategoricalCrossentropy())
    history = outer.fit(x, y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    assert history.history["loss"][0] == pytest.approx(float(expected), rel=1e-5)


def test_train_on_batch_refuses_class_weight_as_fit_does():
    """Helper 288: "only 0-dimensional arrays can be converted to Python scalars"."""
    model = TinyDictSegmenter()
    model.compile(optimizer="adam", loss=ReleasedLoss())
    x, y = _data()
    with pytest.raises(ValueError, match=r"^train_on_batch\(class_weight=\.\.\.\) weighs whole samples; .* compile "
                                         r"with loss=ReleasedLoss\(class_weights=\[\.\.\.\]\)"):
        model.train_on_batch(x, y, class_weight={0: 0.0, 1: 1.0, 2: 5.0})
    assert np.isfinite(model.train_on_batch(x, y))
