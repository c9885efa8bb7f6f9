"""The TensorFlow-only inference functions refuse another Keras backend in one line, before any work.

Helper 302, with jax installed: `compiled_predict`, `Predictor`, `export_saved_model`, `flops` and
`export_deployed` failed on Keras' JAX backend deep inside TensorFlow ("Cannot convert a symbolic
tf.Tensor", a TracerArrayConversionError, a NotImplementedError 25 frames deep), `Predictor` only at
its first prediction. jax is not installed here: the tests make `keras.backend.backend()` say "jax",
which is where the refusal reads it, and check that nothing was built or written before it.
"""

import keras
import numpy as np
import pytest

from ssma_tf.errors import UserInputError
from ssma_tf.inference import compiled, deploy, export, flops, predictor
from ssma_tf.losses import ReleasedLoss
from ssma_tf.models import AdapNetPP

HEIGHT, WIDTH = 32, 64


@pytest.fixture
def on_jax(monkeypatch):
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")


@pytest.fixture
def nothing_built(monkeypatch):
    """Fails a test whose refusal came after the inference view or copy was made."""

    def built(*args, **kwargs):
        raise AssertionError("the model was rewritten before the refusal")

    for module in (predictor, export, deploy):
        monkeypatch.setattr(module, "inference_model", built)
    monkeypatch.setattr(compiled, "optimize_for_inference", built)


def _refusal(name: str) -> str:
    """The start of the refusal's one line, as a regular expression."""
    return rf"^{name} runs on Keras' TensorFlow backend, but Keras runs on 'jax': set KERAS_BACKEND=tensorflow"


def _check_line(error: pytest.ExceptionInfo) -> None:
    """One line that says what runs on JAX instead."""
    message = str(error.value)
    assert "\n" not in message
    assert "a jax.jit of it" in message and ".keras/.weights.h5" in message


@pytest.mark.parametrize("fold_batch_norm", [True, False])
def test_compiled_predict_refuses_jax_before_copying_the_model(adapnet, on_jax, nothing_built, fold_batch_norm):
    # Before: with fold_batch_norm=False (the fold refusal's advice) a tf.function of a JAX model,
    # which failed at its first call.
    with pytest.raises(UserInputError, match=_refusal("compiled_predict")) as error:
        compiled.compiled_predict(adapnet, fold_batch_norm=fold_batch_norm)
    _check_line(error)


def test_predictor_refuses_jax_when_built_not_at_its_first_prediction(adapnet, on_jax, nothing_built):
    with pytest.raises(UserInputError, match=_refusal("Predictor")) as error:
        predictor.Predictor(adapnet, size=(HEIGHT, WIDTH))
    _check_line(error)


def test_export_saved_model_refuses_jax_before_writing(adapnet, on_jax, nothing_built, tmp_path):
    target = tmp_path / "export"
    with pytest.raises(UserInputError, match=_refusal("export_saved_model")) as error:
        export.export_saved_model(adapnet, str(target), size=(HEIGHT, WIDTH))
    _check_line(error)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UserInputError, match=_refusal("serving_function")):
        export.serving_function(adapnet, (HEIGHT, WIDTH))


def test_export_deployed_refuses_jax_before_looking_for_a_runtime(adapnet, on_jax, nothing_built, tmp_path,
                                                                   monkeypatch):
    def runtime(name):
        raise AssertionError(f"looked for {name} before the refusal")

    monkeypatch.setattr(deploy, "require", runtime)
    with pytest.raises(UserInputError, match=_refusal("export_deployed")) as error:
        deploy.export_deployed(adapnet, str(tmp_path / "deployed"), format="tflite", size=(HEIGHT, WIDTH))
    _check_line(error)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UserInputError, match=_refusal("softmax_function")):
        deploy.softmax_function(adapnet, (HEIGHT, WIDTH))


@pytest.mark.parametrize("name", ["flops", "op_flops", "inference_function"])
def test_the_flop_count_refuses_jax_before_tracing(adapnet, on_jax, monkeypatch, name):
    def traced(*args, **kwargs):
        raise AssertionError("traced before the refusal")

    monkeypatch.setattr(flops.tf, "function", traced)
    with pytest.raises(UserInputError, match=_refusal(name)) as error:
        getattr(flops, name)(adapnet, HEIGHT, WIDTH)
    _check_line(error)


def test_the_fold_refusal_advises_what_then_runs(on_jax):
    """`optimize_for_inference`'s fold refusal said "give fold_batch_norm=False", which
    `compiled_predict` read as its own advice and then crashed; it now names the copy itself, which
    runs on JAX, as do `inference_model(optimize=True)` and `optimize_for_inference` unfolded."""
    model = AdapNetPP(3, backbone="mobilenet_v2")
    with pytest.raises(ValueError, match="give fold_batch_norm=False and call the copy") as error:
        compiled.optimize_for_inference(model)
    assert "compiled_predict, Predictor and the exports run on TensorFlow only" in str(error.value)
    image = np.random.default_rng(3).uniform(0, 255, (1, HEIGHT, WIDTH, 3)).astype("float32")
    copy = compiled.optimize_for_inference(model, fold_batch_norm=False)
    assert copy.folded_batch_norms == 0 and copy(image, training=False).shape == (1, HEIGHT, WIDTH, 3)
    assert sorted(compiled.inference_model(model, optimize=True).output) == ["logits", "softmax"]


def test_the_refusal_leaves_the_tensorflow_backend_alone(adapnet):
    assert flops.flops(adapnet, HEIGHT, WIDTH) > 0


# ---------------------------------------------------------------------------------------------
# ReleasedLoss's aux_weights.


@pytest.mark.parametrize("value", [3, 3.0])
def test_released_loss_refuses_a_class_count_as_its_aux_weights(value):
    # Before: "TypeError: object of type 'int' has no len()" (helper 302).
    with pytest.raises(ValueError, match=rf"^aux_weights must be two numbers \(up2, up1\), got {value}: "
                                         r"ReleasedLoss takes no num_classes \(it reads C from the outputs\)$"):
        ReleasedLoss(value)


@pytest.mark.parametrize("value", ["ab", (0.6, "0.5"), (0.6, None), iter((0.6, 0.5))])
def test_released_loss_refuses_aux_weights_that_are_not_two_numbers(value):
    with pytest.raises(ValueError, match=r"^aux_weights must be two numbers \(up2, up1\), got "):
        ReleasedLoss(aux_weights=value)


@pytest.mark.parametrize("value", [(0.6, 0.5), [1, 0], np.array([0.6, 0.5])])
def test_released_loss_takes_two_numbers_in_any_sequence(value):
    assert ReleasedLoss(aux_weights=value).aux_weights == tuple(float(w) for w in value)
