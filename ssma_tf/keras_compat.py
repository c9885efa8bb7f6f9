"""The few Keras internals the project uses where Keras offers no public API, each behind one name.

Every other module uses public Keras APIs only. What is here can change with any Keras release,
so each function checks what it relies on and fails with a `KerasInternalsError` naming the
missing piece instead of silently doing something else; `tests/test_keras_compat.py` exercises
each of them against the installed Keras.

- `walk_layers`: every layer inside a model, nested models and the sub-layers of custom layers
  included (`Layer._flatten_layers`). `Model.layers` lists only the top level, and a custom layer
  such as `ConvBN` keeps its convolution and batch norm as attributes that no public API lists.
- `variable_key`: the optimizer's key of a variable (`_var_key`), which is the same for a Keras
  variable, its TensorFlow variable and each replica's copy under `tf.distribute`; a per-variable
  learning rate must be looked up by it inside `update_step`.
- `optimized_variables`: the variables a built optimizer updates, in its order
  (`_trainable_variables`), for saving per-variable settings by their place.
- `adam_slots`: Adam's first and second moment of a variable (`_get_variable_index`,
  `_momentums`, `_velocities`), for applying Adam's update as one fused kernel and for reading
  the gradient of a first step back from its first moment.
- `ExternalGradientAggregation`: an optimizer mixin that can skip Keras' all-reduce of the
  gradients (the TensorFlow optimizer's `_all_reduce_sum_gradients` hook), for a training step
  that all-reduces them itself. Keras 3 has no public switch for it.
- `scale_loss_for_replicas`: a loss divided by the number of replicas in sync, as Keras' own
  losses are inside `Loss.__call__` (`keras.src.losses.loss.scale_loss_for_distribution`); the
  trainer's loss tracker multiplies it back. A loss that returns its own scalar skips that
  division, and `fit`/`evaluate` under a `MirroredStrategy` of N then report N times the loss.
- `additional_loss`: one `add_loss` term of a model reduced as `compute_loss` reduces them
  (`Model._aggregate_additional_loss`), for a `compute_loss` that calls its loss directly (the
  released loss reads every output of the dict a model returns while training).
- `graph_producers` and `graph_consumer_count`: where a layer of a functional model (Keras'
  MobileNet v2) takes its input from and how many layers read its output (`Layer._inbound_nodes`,
  `_outbound_nodes`, `Node.parent_nodes`), for folding a batch norm into the convolution before
  it; Keras lists a functional model's layers but not their connections.
- `outermost_call`: whether a layer is the outermost one of the Keras call in progress
  (`CallContext.entry_layer`), so that a network trained by its own `fit` can return every output
  while one called inside another model (`keras.Sequential([..., net])`) returns what that model
  was built with.
- `kept_jax_state`: puts back a model's variables that Keras' JAX trainer detached for a `fit`,
  `evaluate` or `predict` that raised (`Variable._value`, `Trainer._jax_state`,
  `jax_state_sync`): it takes them off the variables for the call and gives them back only when
  the call ends normally, so a refused input left a model that could not be called or saved.
- `swap_class`: gives a built layer another class that computes differently with the same
  variables (batch-norm folding, sub-pixel upsampling). Rebuilding through `get_config` /
  `from_config` or `keras.models.clone_model(clone_function=...)` cannot reach the convolution and
  batch norm inside a custom layer, so the copy keeps its layers and only their `call` changes.

Not an internal, but shared by every layer of the package: `check_tensorflow_backend`, the one
wording of the refusal of a function that runs on Keras' TensorFlow backend only.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any, Iterable, Iterator, List, Optional, Tuple

import keras

from ssma_tf.errors import UserInputError


class KerasInternalsError(RuntimeError):
    """The installed Keras no longer has an internal this module relies on."""


def _require(owner: Any, name: str, what: str, owner_name: str = "") -> Any:
    """`owner.name`, or a `KerasInternalsError` naming what Keras no longer has."""
    attribute = getattr(owner, name, None)
    if attribute is None:
        owner_name = owner_name or (owner.__name__ if isinstance(owner, type) else type(owner).__name__)
        raise KerasInternalsError(
            f"keras {keras.__version__} has no {owner_name}.{name} ({what}); ssma_tf/keras_compat.py "
            "must be adapted to this Keras release"
        )
    return attribute


def check_tensorflow_backend(name: str) -> None:
    """Refuses `name` (a function or class of the package) in one line when Keras runs on another
    backend than TensorFlow.

    Its tf.functions, SavedModels and TF profiler graphs trace the model with TensorFlow ops; on
    JAX that failed deep inside, e.g. "Cannot convert a symbolic tf.Tensor" or a
    TracerArrayConversionError (helper 302). The wording is the trainer's, plus what runs on JAX.

    Raises:
        UserInputError: naming `name`, the backend and what to do instead.
    """
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise UserInputError(
            f"{name} runs on Keras' TensorFlow backend, but Keras runs on {backend!r}: set KERAS_BACKEND=tensorflow "
            "before Keras is imported; on JAX, call the model itself or a jax.jit of it (ssma_tf.models' networks "
            "and their .keras/.weights.h5 files work there)")


def walk_layers(layer: keras.Layer) -> List[keras.Layer]:
    """Every layer inside `layer` (not `layer` itself), depth first, each once.

    Args:
        layer: a model or layer.

    Returns:
        The layers of nested models and the sub-layers of custom layers, recursively.
    """
    flatten = _require(layer, "_flatten_layers", "the recursive list of sub-layers")
    return list(flatten(include_self=False, recursive=True))


def variable_key(optimizer: keras.optimizers.Optimizer, variable: Any) -> Any:
    """The key under which `optimizer` knows `variable` (one per variable, across replicas)."""
    return _require(optimizer, "_var_key", "the key of a variable in the optimizer")(variable)


def optimized_variables(optimizer: keras.optimizers.Optimizer) -> List[Any]:
    """The variables a built optimizer updates, in the order it was built on (`_trainable_variables`)."""
    return list(_require(optimizer, "_trainable_variables", "the variables an optimizer was built on"))


def adam_slots(optimizer: keras.optimizers.Adam, variable: Any) -> Tuple[Any, Any]:
    """Adam's (first moment, second moment) variables for `variable`.

    Args:
        optimizer: a built Keras `Adam` (or subclass).
        variable: one of the variables it updates (a Keras variable, or its TensorFlow one).

    Returns:
        The two optimizer variables, in the form Keras stores them.
    """
    index = _require(optimizer, "_get_variable_index", "the index of a variable in the optimizer")(variable)
    momentums = _require(optimizer, "_momentums", "Adam's first moments")
    velocities = _require(optimizer, "_velocities", "Adam's second moments")
    return momentums[index], velocities[index]


def scale_loss_for_replicas(value: Any) -> Any:
    """`value` divided by the replicas in sync under a `tf.distribute` strategy (else unchanged),
    as Keras scales the per-replica value of its own losses."""
    from keras.src.losses import loss as keras_loss

    scale = _require(keras_loss, "scale_loss_for_distribution", "the per-replica scaling of a loss",
                     "keras.src.losses.loss")
    return scale(value)


def additional_loss(model: keras.Model, loss: Any) -> Any:
    """One of `model.losses` (an `add_loss` term) reduced as Keras' `compute_loss` reduces it."""
    return _require(model, "_aggregate_additional_loss", "the reduction of an add_loss term", "keras.Model")(loss)


def outermost_call(layer: keras.Layer) -> bool:
    """Whether `layer` is the outermost Keras layer of the call in progress (True outside a call):
    False inside another model's call, such as a `keras.Sequential` holding it."""
    from keras.src.backend.common import global_state

    get = _require(global_state, "get_global_attribute", "the state holding the call context",
                   "keras.src.backend.common.global_state")
    context = get("current_call_ctx")
    if context is None:
        return True
    return _require(context, "entry_layer", "the layer a call entered Keras through", "CallContext") is layer


@contextlib.contextmanager
def kept_jax_state(model: keras.Model) -> Iterator[None]:
    """Keeps `model`'s variables through a Keras `fit`, `evaluate` or `predict` (and their
    `*_on_batch`) on the JAX backend that raises; does nothing on another backend.

    Keras' JAX trainer detaches every variable's value for the call (`_purge_model_variables`)
    and reattaches the state of its last step when the call ends (`jax_state_sync`); a step that
    raises (a refused input shape, an error of the loss) left every variable without a value, and
    the model could then neither be called nor saved (helper 302). On an error, the state of the
    call's last completed step is reattached (that of a `fit` that trained some steps), then the
    values held before the call where none came back.
    """
    if keras.backend.backend() != "jax":
        yield
        return
    optimizer = getattr(model, "optimizer", None)
    # Each once, by identity (a model's variables include its metrics' ones): linear, as this
    # runs at every `predict`.
    variables = {id(v): v for v in (*model.variables, *getattr(model, "metrics_variables", ()),
                                    *(optimizer.variables if optimizer is not None else ()))}
    held = [(variable, _require(variable, "_value", "a variable's value", "keras.Variable"))
            for variable in variables.values()]
    before = getattr(model, "_jax_state", None)
    try:
        yield
    except BaseException:
        state = getattr(model, "_jax_state", None)
        if state is not None and state is not before and not getattr(model, "_jax_state_synced", True):
            _require(model, "jax_state_sync", "the JAX trainer's reattaching of its state", "keras.Model")()
        for variable, value in held:
            if variable._value is None and value is not None:
                variable.assign(value)
        raise


# The hook Keras' TensorFlow optimizer calls to all-reduce the gradients before applying them.
_AGGREGATION_HOOK = "_all_reduce_sum_gradients"


class ExternalGradientAggregation:
    """Optimizer mixin: with `aggregate_gradients = False`, gradients are applied as given.

    Put it before the Keras optimizer class (`class MyAdam(ExternalGradientAggregation,
    keras.optimizers.Adam)`) and set `self.aggregate_gradients`. With True (the default) Keras
    all-reduces the gradients across replicas as usual.
    """

    aggregate_gradients: bool = True

    def _all_reduce_sum_gradients(self, grads_and_vars: Iterable[Tuple[Any, Any]]):
        if self.aggregate_gradients:
            hook = _require(super(), _AGGREGATION_HOOK, "the all-reduce of gradients", "keras.optimizers.Optimizer")
            return hook(grads_and_vars)
        return list(grads_and_vars)


def check_gradient_aggregation_hook() -> None:
    """Raises `KerasInternalsError` when Keras' TensorFlow optimizer lacks the aggregation hook."""
    if keras.backend.backend() != "tensorflow":
        return  # the hook only exists in the TensorFlow optimizer; other backends never all-reduce
    _require(keras.optimizers.Optimizer, _AGGREGATION_HOOK, "the all-reduce of gradients")


def graph_producers(layer: keras.Layer) -> Optional[List[Any]]:
    """The operations whose outputs `layer` reads in the one functional graph it is called in.

    Returns:
        Those operations (layers) in input order, or None when `layer` was called in no graph or
        in more than one (shared between graphs: no single producer).
    """
    nodes = _require(layer, "_inbound_nodes", "the calls of a layer in functional graphs")
    if len(nodes) != 1:
        return None
    parents = _require(nodes[0], "parent_nodes", "the nodes a call's inputs come from", "Node")
    return [_require(parent, "operation", "the layer of a node", "Node") for parent in parents]


def graph_consumer_count(layer: keras.Layer) -> int:
    """How many calls in functional graphs read `layer`'s output."""
    return len(_require(layer, "_outbound_nodes", "the calls that read a layer's output"))


def swap_class(layer: keras.Layer, new_class: type) -> None:
    """Makes the built `layer` an instance of `new_class`, keeping its variables and graph place.

    Args:
        layer: a built layer.
        new_class: a direct subclass of `type(layer)` that overrides `call` only (same signature,
            no `__init__`, `build` or own state).

    Raises:
        ValueError: `new_class` is not such a subclass.
    """
    old_class = type(layer)
    if new_class.__bases__ != (old_class,):
        raise ValueError(f"{new_class.__name__} must derive directly from {old_class.__name__} to replace it")
    extra = set(vars(new_class)) - {"call", "__doc__", "__module__", "__qualname__", "__firstlineno__",
                                    "__static_attributes__"}
    if extra:
        raise ValueError(f"{new_class.__name__} may only override call, but defines {sorted(extra)}")
    if inspect.signature(new_class.call) != inspect.signature(old_class.call):
        raise ValueError(
            f"{new_class.__name__}.call{inspect.signature(new_class.call)} must take what "
            f"{old_class.__name__}.call{inspect.signature(old_class.call)} takes"
        )
    if not layer.built:
        raise ValueError(f"{layer.name} must be built before its class is swapped")
    layer.__class__ = new_class
