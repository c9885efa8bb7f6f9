"""What AdapNet++ and SSMA share as Keras models: the hooks that let `compile` and `fit` train them.

Keras' `fit` calls `model(x, training=True)` and hands the result to `compute_loss` and
`compute_metrics`. The released objective also supervises the two auxiliary heads (Section 3.4),
so while training the models return every output (a dict), and these hooks give the whole dict to
a loss that reads it (`ssma_tf.losses.ReleasedLoss`) and the softmax alone to any other loss and
to the metrics. In inference mode (`predict`, `evaluate`) the models return the softmax, as the
released graph's `softmax` tensor.
"""

from typing import Any, Mapping

from ssma_tf.keras_compat import additional_loss, kept_jax_state, outermost_call
from ssma_tf.losses import MAIN_OUTPUT


class SegmenterTraining:
    """Mixin of `AdapNetPP` and `SSMA` (before `keras.Model` in the bases) for `compile`/`fit`."""

    def resolve_outputs(self, outputs: Mapping[str, Any], training: Any, return_all: Any) -> Any:
        """What `call` returns: every output when asked, or by default while training, when called
        itself (its own `fit`); the softmax inside another model's call."""
        if return_all is None:
            # `fit` passes training=True; the Python bool (not a tensor) is what Keras passes. Inside
            # another model (`keras.Sequential([..., net])`), which was built with the softmax: before,
            # its `fit` got the dict and took its first output, an auxiliary head (AdapNet++, whose
            # classifier got no gradient) or SSMA's gate, without a word (helper 288).
            return_all = training is True and outermost_call(self)
        return outputs if return_all else outputs[MAIN_OUTPUT]

    def compute_output_spec(self, inputs, training=None, mask=None, return_all=None):
        """What a symbolic call gives (a model built around this one: `keras.Sequential`,
        `keras.Model(inputs, net(inputs))`): what `call` gives with the same arguments. Before,
        every output whatever was asked, and the outer model's `predict` failed ("Output with path
        `aux_up2` is not connected"); `return_all` was refused (helper 179). A model trained inside
        another one gives its softmax there, unless called with `return_all=True`."""
        outputs = super().compute_output_spec(inputs, training=training, mask=mask)
        return self.resolve_outputs(outputs, training, return_all)

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, *args, **kwargs):
        """Keras' `compile`, with the checks a loss that reads every output needs."""
        def reads_all(candidate) -> bool:
            return bool(getattr(candidate, "reads_all_outputs", False))

        if isinstance(loss, (list, tuple)) and len(loss) == 1 and reads_all(loss[0]):
            loss = loss[0]  # before: the list hid it, and fit trained the main term alone
        held = loss.values() if isinstance(loss, Mapping) else loss if isinstance(loss, (list, tuple)) else ()
        if any(reads_all(candidate) for candidate in held):
            raise ValueError(f"{type(next(c for c in held if reads_all(c))).__name__} reads every output of the "
                             "model itself (the main and auxiliary heads): give it alone, loss=ReleasedLoss()")
        if isinstance(loss, Mapping) or (isinstance(loss, (list, tuple)) and len(loss) > 1):
            # Before: Keras' loss container, handed the softmax alone by `compute_loss`, failed in
            # fit with "'NoneType' object has no attribute 'loss'" (helper 253).
            given = f"a dict of {sorted(loss)}" if isinstance(loss, Mapping) else f"a list of {len(loss)}"
            raise ValueError(f"loss is {given}: the model's loss is given its softmax alone, not one output each "
                             "(its auxiliary heads are weighed by ReleasedLoss(aux_weights=...)): give one loss")
        if reads_all(loss) and loss_weights is not None:
            # Before: fit called the loss directly and left the weight out; evaluate applied it.
            raise ValueError(f"loss_weights is not applied to {type(loss).__name__}, which weighs the auxiliary "
                             "heads itself: give ReleasedLoss(aux_weights=...), or scale the learning rate")
        return super().compile(optimizer, loss, loss_weights, *args, **kwargs)

    def fit(self, *args, class_weight=None, **kwargs):
        """Keras' `fit`; `class_weight` is refused in one line naming the loss's own (before: Keras
        turned it into a sample weight, a TypeError for arrays and ReleasedLoss' "no sample_weight"
        for datasets, neither naming the cause; helper 143)."""
        _refuse_class_weight("fit", class_weight)
        with kept_jax_state(self):  # a refused batch on JAX left the model without weights (helper 302)
            return super().fit(*args, **kwargs)

    def evaluate(self, *args, **kwargs):
        with kept_jax_state(self):
            return super().evaluate(*args, **kwargs)

    def predict(self, *args, **kwargs):
        with kept_jax_state(self):
            return super().predict(*args, **kwargs)

    def test_on_batch(self, *args, **kwargs):
        with kept_jax_state(self):
            return super().test_on_batch(*args, **kwargs)

    def predict_on_batch(self, *args, **kwargs):
        with kept_jax_state(self):
            return super().predict_on_batch(*args, **kwargs)

    def train_on_batch(self, *args, class_weight=None, **kwargs):
        """Keras' `train_on_batch`; `class_weight` is refused as `fit` refuses it (before: "only
        0-dimensional arrays can be converted to Python scalars"; helper 288)."""
        _refuse_class_weight("train_on_batch", class_weight)
        with kept_jax_state(self):
            return super().train_on_batch(*args, **kwargs)

    def compile_from_config(self, config):
        """What Keras does on loading a compiled model's `.keras` file (it leaves a model with its
        own `compile` uncompiled, with a warning, unless the model says how)."""
        import importlib

        import keras

        # Keras finds a saved class by its registered name only: a class of this package above the
        # models (the trainer's optimizer, `AdamWithMultipliers`) is registered when its module is
        # imported, which the saved object names (before: "Could not locate class"; helper 179), at
        # any depth (mixed_float16's LossScaleOptimizer holds it as its `inner_optimizer`; helper 224).
        for module in sorted(_package_modules(config)):
            importlib.import_module(module)
        self.compile(**keras.saving.deserialize_keras_object(config))
        if hasattr(self, "optimizer") and self.built:
            self.optimizer.build(self.trainable_variables)  # its variables, for the saved state

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        if isinstance(y_pred, Mapping):
            if getattr(self.loss, "reads_all_outputs", False):
                # The compiled-loss container maps one loss over every output of a dict; the
                # released loss wants the dict whole, so it is called directly here.
                total = self.loss(y, y_pred, sample_weight)
                for extra in self.losses:
                    total = total + additional_loss(self, extra)
                return total
            y_pred = y_pred[MAIN_OUTPUT]
        return super().compute_loss(x, y, y_pred, sample_weight, training=training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y_pred, Mapping):
            y_pred = y_pred[MAIN_OUTPUT]
        return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    @classmethod
    def from_preset(cls, preset, **kwargs):
        """A released model by name, or a local checkpoint, folder or archive (KerasHub's API).

        The model zoo lives in `ssma_tf.checkpoints.zoo`, above the models in the import contract;
        importing it (as `ssma_tf.load_model`, `ssma_tf.AdapNetPP` and everything that loads
        checkpoints do) replaces this method with the loader.
        """
        raise RuntimeError(
            f"{cls.__name__}.from_preset({preset!r}) needs the model zoo: import ssma_tf.checkpoints "
            "first, or call ssma_tf.load_model"
        )


def _package_modules(config) -> set:
    """The modules of this package that a saved Keras config names, however deeply nested."""
    found = set()
    if isinstance(config, dict):
        module = config.get("module")
        if isinstance(module, str) and module.startswith("ssma_tf."):
            found.add(module)
        for value in config.values():
            found |= _package_modules(value)
    elif isinstance(config, (list, tuple)):
        for value in config:
            found |= _package_modules(value)
    return found


def _refuse_class_weight(method: str, class_weight: Any) -> None:
    """The one-line refusal of Keras' `class_weight`, which the segmentation losses cannot take."""
    if class_weight is not None:
        raise ValueError(f"{method}(class_weight=...) weighs whole samples; the released loss weighs pixels by "
                         "class itself: compile with loss=ReleasedLoss(class_weights=[...]), one per class")
