"""Loading weights into a model, and building the model a checkpoint holds: the one place for both.

Every checkpoint the project reads (`ssma_tf.checkpoints.resolve`: original TF1 checkpoints, the
project's own TF2 checkpoints, Keras `.weights.h5` and `.keras` files) is loaded here:
`load_weights` into a given model, `load_model` and `model_for_checkpoint` building the network
the checkpoint holds, `model_from_config` the network a run config names, and
`unimodal_encoder_weights` the encoder of an AdapNet++ checkpoint for an SSMA expert. Starting a
training run from the weights a config names is `ssma_tf.checkpoints.initialize`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import keras
try:
    import tensorflow as tf
except ImportError:  # a JAX machine: TF2 checkpoints are refused below, before `tf` is used
    tf = None

from ssma_tf.checkpoints.reading import (
    check_h5_shapes, check_keras_archive, check_keras_streams, check_tf2_shapes, keras_file_config, keras_file_widths,
    keras_load_error,
    reading,
    UnnamedNetworkError, refuse_pruned_source, stored_num_classes,
)
from ssma_tf.checkpoints.resolve import FORMAT_KERAS, FORMAT_TF1, FORMAT_TF2, resolve_weights, with_earlier_checkpoint
from ssma_tf.checkpoints.tf1_import import (
    KIND_ADAPNET_PP,
    KIND_IMAGENET,
    KIND_SSMA,
    CheckpointError,
    LoadReport,
    detect_kind,
    has_aux_heads,
    load_tf1_checkpoint,
    num_classes_of,
    read_checkpoint,
)
from ssma_tf.config import ConfigError, ConfigWarning
from ssma_tf.config.runs import is_run, run_config, saved_run_config
from ssma_tf.constants import (
    ADAPNET_PP_BACKBONE, DECODER_FILTERS, EASPP_RATES, FINAL_MODEL, FINAL_WEIGHTS, RUN_CONFIG, SSMA_FUSION,
)
from ssma_tf.constants import SSMA as SSMA_NAME
from ssma_tf.errors import first_line
from ssma_tf.layers.initializers import overwritten_weights
from ssma_tf.models import SSMA, AdapNetPP, FusionBaseline
from ssma_tf.models.factory import build_model, check_model_name, model_name, num_modalities
from ssma_tf.models.widths import decoder_widths

PathLike = Union[str, "os.PathLike[str]"]


def seed_generator_states(model: keras.Model) -> list:
    """The state variables of the model's random seed generators (its dropout layers'), in a fixed
    order. Keras keeps them out of its checkpoints and weight files: a resumed run that does not
    save them draws the dropout masks of the first steps again."""
    return [v for v in model.variables if v.path.endswith("seed_generator_state")]


def load_weights(model: keras.Model, path: str, *, strict: bool = True, initialization: bool = False) -> str:
    """Loads weights into `model` from any supported checkpoint (see the module docstring).

    Args:
        model: an `AdapNetPP` or `SSMA`.
        path: where the weights are.
        strict: fail when the checkpoint lacks some of the model's weights.
        initialization: the weights a training run starts from (`intialize`): the ImageNet
            initialisation checkpoint, which holds the encoder alone, is taken; otherwise it is
            refused (before: a prediction or export ran on a decoder nothing had loaded).

    Returns:
        A one-line (TF1: a few lines) description of what was loaded, for the log.

    Raises:
        CheckpointError: the checkpoint cannot be read (damaged, truncated, another kind of file)
            or does not fit the model (kind, shapes or missing weights): one line naming the
            file and, for a shape, the variable and both shapes.
    """
    try:
        return _load_weights(model, path, strict, initialization)
    except CheckpointError as error:
        raise with_earlier_checkpoint(error, os.fspath(path)) from None


def _load_weights(model: keras.Model, path: str, strict: bool, initialization: bool = False) -> str:
    """`load_weights`, without the older checkpoint named when a folder's newest cannot be read."""
    fmt, resolved = resolve_weights(path)
    if fmt == FORMAT_TF1 and not initialization and detect_kind(read_checkpoint(resolved), resolved) == KIND_IMAGENET:
        raise CheckpointError(f"{resolved} is the ImageNet initialisation of AdapNet++'s encoder, not a trained model "
                              "(it has no decoder): give it as a training config's intialize", path=resolved)
    if fmt == FORMAT_TF1:
        report = load_tf1_checkpoint(model, resolved, strict=strict)
        warn_of_released_rates(model, report, stacklevel=3)  # the caller of load_weights
        return str(report)
    if fmt == FORMAT_TF2:
        if keras.backend.backend() != "tensorflow":
            # Before: TensorFlow's "Checkpoint was expecting model to be a trackable object" traceback.
            beside = [name for name in (FINAL_WEIGHTS, FINAL_MODEL)
                      if os.path.isfile(os.path.join(os.path.dirname(resolved), name))]
            hint = (f"; give the run's {' or '.join(os.path.join(os.path.dirname(resolved), n) for n in beside)}"
                    if beside else "; convert it under TensorFlow (ssma_tf.load_model(...).save(PATH.keras))")
            raise CheckpointError(f"{resolved} is a TensorFlow training checkpoint, which only the TensorFlow backend "
                                  f"reads (this is {keras.backend.backend()}){hint}", path=resolved)
        root = tf.train.Checkpoint(model=model)
        # Before restoring: a checkpoint of another model or class count is one line, not
        # TensorFlow's traceback and hundreds of warnings about unmatched values.
        with _naming_the_run_model(resolved, model):
            check_tf2_shapes(root, resolved, model, strict=strict,
                             hint=", or was written by an ssma-tf from before the eASPP branches were "
                                  "checkpointed")
        with reading(resolved):
            status = root.read(resolved)  # no save_counter: a `write()` checkpoint has none (helper 191)
        # The checkpoint also holds the optimizer, step and data position: only the model matters.
        status.expect_partial()
        if strict:
            try:
                status.assert_existing_objects_matched()
            except AssertionError as error:
                raise CheckpointError(
                    f"{resolved}: the checkpoint does not hold this {type(model).__name__} model "
                    "(was it written for another model or number of classes, or by an ssma-tf from "
                    f"before the eASPP branches were checkpointed?): {first_line(error)}"
                ) from None
        return f"{resolved}: restored the {type(model).__name__} weights (TF2 checkpoint)"
    if resolved.endswith(".keras"):
        check_keras_archive(resolved)
        check_keras_streams(resolved, model)
        refuse_pruned_source(resolved, keras_file_widths(resolved), getattr(model, "widths", None),
                             "intialize" if initialization else f"the weights of this {type(model).__name__}",
                             backbone=getattr(model, "backbone", None))
    else:
        with _naming_the_run_model(resolved, model):
            check_h5_shapes(resolved, model)  # one line instead of Keras' warning per layer
    try:
        with reading(resolved, "weights file"):
            model.load_weights(resolved)
    except CheckpointError:
        raise
    except ValueError as error:
        raise keras_load_error(error, resolved, model) from None
    return f"{resolved}: loaded the {type(model).__name__} weights"


# The class count (void included) of the only released models trained with other eASPP rates than
# the default, the 19-class Cityscapes AdapNet++ (`zoo.yaml`; tests/checkpoints/test_zoo.py checks
# that the two agree).
RELEASED_OTHER_RATES = {20: (6, 12, 18)}


def warn_of_released_rates(model: keras.Model, report: LoadReport, stacklevel: int = 1) -> None:
    """Warns (`ConfigWarning`) when a trained TF1 AdapNet++ checkpoint of a released model's
    class count trained with other eASPP rates went into an AdapNet++ of the default rates
    (`warn_of_expert_rates` for SSMA's experts).

    A checkpoint does not hold the rates, and the weights fit either way: the 19-class Cityscapes
    models then predicted with rates 3, 6, 12 instead of 6, 12, 18, without an error.

    `stacklevel`: the frame the warning names, as `warnings.warn`'s, 1 being this function's caller.
    """
    if report.kind == KIND_ADAPNET_PP and isinstance(model, AdapNetPP):
        warn_of_expert_rates(report.checkpoint, model.num_classes, model.easpp_rates, stacklevel + 1)


def warn_of_expert_rates(checkpoint: str, num_classes: int, easpp_rates: Sequence[int], stacklevel: int = 1) -> None:
    """Warns (`ConfigWarning`) when the TF1 AdapNet++ `checkpoint` of `num_classes` classes, the
    class count of a release trained with other eASPP rates, goes into a network (an AdapNet++,
    or SSMA's expert) of the default rates `easpp_rates`; `stacklevel` as `warn_of_released_rates`'s."""
    rates = RELEASED_OTHER_RATES.get(num_classes)
    if rates is None or tuple(easpp_rates) != EASPP_RATES:
        return
    shown = ", ".join(map(str, rates))
    warnings.warn(
        f"{checkpoint}: a TF1 AdapNet++ checkpoint of {num_classes} classes, as the released "
        f"{num_classes - 1}-class Cityscapes models are, which were trained with eASPP rates {shown}; "
        f"the network it goes into has the default rates {', '.join(map(str, EASPP_RATES))}. For a released model, set "
        f"easpp_rates: [{shown}] (config or --set), give ssma-convert-tf1 --easpp-rates {shown.replace(',', '')} "
        "or load_model(..., released_as=NAME); for a model trained with the default rates, nothing is wrong",
        ConfigWarning, stacklevel=stacklevel + 1)


def trained_easpp_rates(source: str) -> Optional[list]:
    """The eASPP rates an expert was trained with: its run's config's, else its `.keras` file's;
    None where neither says (weights alone, a TF1 checkpoint: `warn_of_expert_rates`)."""
    rates = saved_run_config(source).get("easpp_rates")
    if rates is None:
        fmt, resolved = resolve_weights(source)
        if fmt == FORMAT_KERAS and resolved.endswith(".keras"):  # not a .weights.h5 file
            rates = (keras_file_config(resolved).get("config") or {}).get("easpp_rates")
    return list(rates) if isinstance(rates, (list, tuple)) else None


def expert_rates_problem(sources: Sequence[str], easpp_rates: Sequence[int], theirs: str,
                         advice: str) -> Optional[tuple[int, str]]:
    """(the index of the expert to blame, the message) when the experts `sources` were trained with
    other eASPP rates than `easpp_rates`, those of the network they start, or with different rates
    from each other; None when they fit or say nothing. The rates are in no weight's shape: such an
    expert loaded and ran at the others without a word (helpers 214, 217, 220).

    Args:
        theirs: what `easpp_rates` are of ("this SSMA's experts have").
        advice: what to do about one expert; `{rates}` stands for its rates.
    """
    trained = {index: trained_easpp_rates(source) for index, source in enumerate(sources)}
    known = {index: rates for index, rates in trained.items() if rates is not None}
    if len({tuple(rates) for rates in known.values()}) > 1:
        listed = ", ".join(f"{sources[index]}: {rates}" for index, rates in known.items())
        second = sorted(known)[1]
        return second, (f"the experts were trained with different easpp_rates ({listed}), but the experts of one "
                        "network share one set: give experts trained with the same rates")
    for index, rates in known.items():
        if tuple(rates) != tuple(easpp_rates):
            return index, (f"{sources[index]} was trained with easpp_rates {rates}, but {theirs} "
                           f"{list(easpp_rates)}: " + advice.format(rates=rates))
    return None


def refuse_other_trained_rates(config: Any, checkpoint: str) -> None:
    """Refuses the weights `checkpoint`, to be evaluated, predicted, exported or pruned in the network
    `config` builds, when their run's `config.yaml` says they were trained with other eASPP rates.

    The rates are in no weight's shape: a run trained with `easpp_rates: [6, 12, 18]` loaded into the
    default [3, 6, 12] and was scored at them without a word (helper 340). A `.keras` file holds its
    own network and rates (`model_from_config`); weights outside a run and TF1 checkpoints say
    nothing of them (the releases: `warn_of_released_rates`).

    Raises:
        CheckpointError: one line naming the config, the checkpoint, both rate lists and what to set.
    """
    try:
        fmt, resolved = resolve_weights(checkpoint)
    except CheckpointError:
        return  # named when the weights are loaded
    if fmt == FORMAT_TF1 or resolved.endswith(".keras"):
        return
    trained = trained_easpp_rates(resolved)
    built = list(getattr(config, "easpp_rates", EASPP_RATES))  # what `build_model` gives every encoder
    if trained is None or tuple(trained) == tuple(built):
        return
    source, where = getattr(config, "source", "<dict>"), getattr(config, "where", None)
    prefix = "" if source == "<dict>" else f"{where('easpp_rates') if where is not None else source}: "
    raise CheckpointError(
        f"{prefix}{checkpoint} was trained with easpp_rates {trained} (its run's {RUN_CONFIG}), but the config's "
        f"network has {built}: set easpp_rates: {trained} in the config (or --set 'easpp_rates={trained}'), "
        "as it was trained", path=checkpoint)


def _warn_of_unused_rates(config: Any, loaded: keras.Model) -> None:
    """Warns (`ConfigWarning`) when a config that gives `easpp_rates` itself (a line of its file, or
    `--set`) evaluates or predicts a `.keras` file of other rates: the file's network is used whole,
    at its own rates (before: the config's were dropped without a word; helper 340)."""
    rates = getattr(loaded, "easpp_rates", None)  # the fusion baselines keep the released ones
    given = {name for name, _ in (*getattr(config, "lines", ()), *getattr(config, "overridden", ()))}
    if rates is None or "easpp_rates" not in given or tuple(config.easpp_rates) == tuple(rates):
        return
    warnings.warn(f"{config.where('easpp_rates')}: easpp_rates {list(config.easpp_rates)} is not used: "
                  f"{config.checkpoint} holds its whole network, which runs at the eASPP rates it was saved "
                  f"with, {list(rates)}", ConfigWarning, stacklevel=3)  # the caller of model_from_config


@contextlib.contextmanager
def _naming_the_run_model(resolved: str, model: keras.Model) -> Iterator[None]:
    """Adds the model a training run was made with to an error about weights that do not fit.

    A run folder holds `config.yaml` beside its checkpoints; when its `model` is not the one being
    loaded (an AdapNet++ run given to an SSMA config), that is the cause, which a variable's
    shape alone does not tell.
    """
    try:
        yield
    except CheckpointError as error:
        trained = run_model(resolved)
        # Only the two networks a config names (other Keras models have no config name).
        wanted = SSMA_NAME if isinstance(model, (SSMA, FusionBaseline)) else (
            model_name(model) if isinstance(model, AdapNetPP) else None)
        if trained is None or wanted is None or trained.lower() == wanted.lower():
            raise
        # The run's model first, and the variable without the shape's own guess (before: "give the
        # decoder_filters it was trained with" for an SSMA run given as an expert).
        text = str(error)
        cut = text.find(" in the model")
        detail = text[:cut + len(" in the model")] if cut >= 0 else text
        raise CheckpointError(
            f"the run {os.path.dirname(resolved)} trained model: {trained} (its {RUN_CONFIG}), not {wanted}, and "
            f"its weights do not fit ({detail}); give that run's config or a checkpoint of an {wanted}"
        ) from None


def run_model(resolved: str) -> Optional[str]:
    """The `model` key of the `config.yaml` of the run `resolved` is in (None: none, or unreadable)."""
    model = saved_run_config(resolved).get("model")
    return model if isinstance(model, str) else None


def model_for_checkpoint(prefix: str, easpp_rates: Sequence[int] = EASPP_RATES) -> keras.Model:
    """Builds the model (AdapNetPP or SSMA, right number of classes) that a trained TF1 checkpoint fits.

    The checkpoint does not hold the eASPP rates the network was trained with: `easpp_rates`.

    Raises:
        CheckpointError: not a TF1 checkpoint, or the ImageNet initialisation (no decoder).
    """
    shapes = read_checkpoint(prefix)
    kind = detect_kind(shapes, prefix)
    # With the auxiliary heads the checkpoint holds: the original code leaves them out with
    # `has_aux_loss=False` (before: such an AdapNet++ was refused as lacking 10 variables; helper 222).
    aux_heads = has_aux_heads(shapes)
    if kind == KIND_SSMA:
        return SSMA(num_classes_of(shapes, prefix), easpp_rates=easpp_rates, aux_heads=aux_heads)
    if kind == KIND_ADAPNET_PP:
        return AdapNetPP(num_classes_of(shapes, prefix), easpp_rates=easpp_rates, aux_heads=aux_heads)
    raise CheckpointError(f"{prefix} is the ImageNet initialisation of AdapNet++'s encoder, not a trained model (it "
                          "has no decoder): give it as a training config's intialize", path=prefix)


def load_keras_model(path: str, classes: Sequence[type]) -> keras.Model:
    """A `.keras` file's model, checked to be one of `classes`."""
    check_keras_archive(path)
    try:
        with reading(path, "model file"), overwritten_weights():  # Keras loads every weight or fails
            model = keras.saving.load_model(path, compile=False)
    except CheckpointError:
        raise
    except ValueError as error:  # Keras' word for an archive without a readable model config
        raise CheckpointError(f"cannot read the model file {path}: {first_line(error)}", path=path) from None
    except TypeError as error:  # a class this package does not register, e.g. a scene classifier
        hint = "; a scene classifier is used with ssma-scene" if "SceneClassifier" in str(error) else ""
        raise CheckpointError(f"{path} holds a model this command cannot use: {first_line(error)}{hint}",
                              path=path) from None
    if not isinstance(model, tuple(classes)):
        wanted = " or ".join(c.__name__ for c in classes)
        article = "" if len(classes) > 1 else "an " if wanted[0] in "AEIOU" else "a "
        raise CheckpointError(f"{path} holds a {type(model).__name__}, not {article}{wanted}")
    return model


def load_model(
    checkpoint: PathLike, model: Optional[str] = None, num_classes: Optional[int] = None,
    easpp_rates: Sequence[int] = EASPP_RATES,
) -> keras.Model:
    """Builds the network a checkpoint holds and loads its weights.

    An original TF1 checkpoint and a `.keras` file say which model and how many classes they
    hold; the project's own checkpoints and `.weights.h5` files need `model` and `num_classes`,
    unless they lie in a training run's folder, whose `config.yaml` says them (and the backbone,
    fusion, modalities and widths: `model_from_config`).

    Args:
        checkpoint: TF1 or TF2 checkpoint prefix, a training directory, a `.weights.h5` or
            `.keras` file.
        model: "AdapNet_pp" or "SSMA" (checked against the checkpoint when it says itself).
        num_classes: classes including void (likewise).
        easpp_rates: the eASPP rates of the network a TF1 checkpoint is loaded into (it does not
            hold them; the other files say them or are built with the default).

    Returns:
        The model with its weights, ready for `Predictor` or `export_saved_model`.

    Raises:
        CheckpointError: nothing readable at `checkpoint`, or it does not fit the model.
        ValueError: a missing or bad `model`/`num_classes`.
    """
    if model is not None:
        check_model_name(model)
    fmt, resolved = resolve_weights(os.fspath(checkpoint))
    built: Optional[keras.Model] = None
    if fmt == FORMAT_TF1:
        built = _built_and_loaded(lambda: model_for_checkpoint(resolved, easpp_rates), resolved)
    elif resolved.endswith(".keras"):
        built = load_keras_model(resolved, (AdapNetPP, SSMA, FusionBaseline))
    if built is not None:
        check_matches(resolved, (model_name(built), built.num_classes), model, num_classes)
        return built
    run = _readable_run_config(checkpoint)
    if run is not None and model in (None, run.model) and num_classes in (None, run.num_classes):
        # A training run's folder, or a file in it: its config.yaml says the network, backbone,
        # fusion, modalities and widths included, as the commands read it (before: the Python
        # API said "does not say which network it holds", and fine-tuning from a MobileNet v2 run
        # built a ResNet AdapNet++).
        try:
            return model_from_config(dataclasses.replace(run, checkpoint=resolved))
        except CheckpointError as error:
            # A damaged newest checkpoint names the folder's older one, as the commands do (helper 152).
            raise with_earlier_checkpoint(error, os.fspath(checkpoint)) from None
    if model is None or num_classes is None:
        raise UnnamedNetworkError(
            f"{resolved} does not say which network it holds: give model= (AdapNet_pp or SSMA) and "
            "num_classes=, or load it from its training run's folder, whose config.yaml says them"
        )
    if model == SSMA_NAME:
        # Trained SSMA models have auxiliary heads or not (`aux_heads`); a weights file must
        # match the structure exactly, so try without them first, as released.
        try:
            return _built_and_loaded(lambda: SSMA(num_classes, aux_heads=False), resolved)
        except CheckpointError as released:
            try:
                return _built_and_loaded(lambda: SSMA(num_classes, aux_heads=True), resolved)
            except CheckpointError:
                raise released from None  # the released form's counts (before: the heads' 757 weights)
    # A trained AdapNet++ has its auxiliary heads (training builds them); one saved from
    # `AdapNetPP(aux_heads=False)` has not (before: refused as "another model").
    try:
        return _built_and_loaded(lambda: AdapNetPP(num_classes, aux_heads=True), resolved)
    except CheckpointError as with_heads:
        try:
            return _built_and_loaded(lambda: AdapNetPP(num_classes, aux_heads=False), resolved)
        except CheckpointError:
            raise with_heads from None


def load_like(model: keras.Model, checkpoint: str, num_classes: int) -> keras.Model:
    """The network `model` is (its class, backbone, widths, modalities and rates), built for
    `num_classes` classes, with the weights of an own TF2 checkpoint or `.weights.h5` file that
    does not say its network (no training run's config beside it); with auxiliary heads or
    without, as the file holds them.

    Raises:
        CheckpointError: the file does not fit such a network (the error of `model`'s own heads).
    """
    config = dict(model.get_config(), num_classes=int(num_classes))
    first = bool(config.get("aux_heads", True))
    try:
        return _built_and_loaded(lambda: type(model).from_config(dict(config, aux_heads=first)), checkpoint)
    except CheckpointError as error:
        if "aux_heads" not in config:
            raise
        try:
            return _built_and_loaded(lambda: type(model).from_config(dict(config, aux_heads=not first)), checkpoint)
        except CheckpointError:
            raise error from None


def _built_and_loaded(build: Callable[[], keras.Model], path: str) -> keras.Model:
    """The network `build` makes, with the weights at `path` loaded strictly (`load_weights`): its
    initial kernels are not drawn, as every weight is then loaded (`overwritten_weights`)."""
    with overwritten_weights():
        model = build()
    load_weights(model, path)
    return model


def _readable_run_config(checkpoint: PathLike) -> Optional[Any]:
    """The training config of the run `checkpoint` lies in; None outside a run, or when its
    `config.yaml` cannot be read as one (written by an older version, say: the weights then load
    as they did without it)."""
    if not is_run(checkpoint):
        return None
    try:
        return run_config(checkpoint, "train", check_paths=False)
    except ConfigError:
        return None


def model_from_config(config: Any) -> keras.Model:
    """Builds the network a `RunConfig` describes and loads its `checkpoint`.

    A `.keras` checkpoint holds the network itself, widths included (a pruned one,
    `ssma_tf.pruning`): it is loaded whole and checked against the config's model and classes.

    Raises:
        CheckpointError: no checkpoint there, it does not fit the model, or its run was trained with
            other eASPP rates (`refuse_other_trained_rates`; a `.keras` file's are warned of).
    """
    if str(config.checkpoint).endswith(".keras"):
        loaded = load_model(config.checkpoint, config.model, config.num_classes)
        if num_modalities(loaded) != config.num_modalities:
            # Found when the first batch of the config's images meets the model otherwise.
            raise CheckpointError(
                f"{config.checkpoint} holds a model of {num_modalities(loaded)} modalities, but the config "
                f"{config.source} reads {config.num_modalities}")
        backbone = getattr(loaded, "backbone", ADAPNET_PP_BACKBONE)
        if backbone != config.backbone:
            # The file's network would be used whole: results under the config's name of another one.
            raise CheckpointError(
                f"{config.checkpoint} holds a model on the {backbone} backbone, but the config {config.source} "
                f"says backbone: {config.backbone}")
        fusion, wanted = getattr(loaded, "fusion", SSMA_FUSION), config.fusion or SSMA_FUSION
        if config.num_modalities > 1 and fusion != wanted:
            # Before: a late-fusion network evaluated under an SSMA config's name without a word.
            raise CheckpointError(
                f"{config.checkpoint} holds a model with fusion {fusion}, but the config {config.source} "
                f"says fusion: {wanted}")
        _warn_of_unused_rates(config, loaded)
        return loaded
    refuse_other_trained_rates(config, config.checkpoint)  # before minutes of building
    return _built_and_loaded(lambda: build_model(config), config.checkpoint)


def check_matches(source: str, held: tuple[str, int], model: Optional[str], num_classes: Optional[int]) -> None:
    """Raises CheckpointError when a self-describing checkpoint, holding the network and class
    count `held`, contradicts the `model` or `num_classes` given (None: not given)."""
    if model is not None and model != held[0]:
        raise CheckpointError(f"{source} holds {held[0]}, not {model}")
    if num_classes is not None and num_classes != held[1]:
        raise CheckpointError(f"{source} has {held[1]} classes, not {num_classes}")


def unimodal_encoder_weights(path: str, num_classes: Optional[int], dropout_rate: float,
                             backbone: str = ADAPNET_PP_BACKBONE,
                             decoder_filters: Optional[int] = DECODER_FILTERS) -> list:
    """The encoder weights of a unimodal AdapNet++ checkpoint, in `AdapNetPPEncoder` order.

    Builds a throw-away `AdapNetPP`, loads the checkpoint into it and returns its encoder's
    weights, so that an SSMA expert can start from it (the released `checkpoint1`/`checkpoint2`
    semantics: only the encoder is used, the decoder is dropped).

    Args:
        path: TF1 AdapNet++/ImageNet checkpoint, or own AdapNet++ weights.
        num_classes: classes of the AdapNet++ that wrote own weights (TF1 checkpoints and `.keras`
            files say it themselves); None: the class count the weights have (their last
            upsampling kernel's, see `stored_num_classes`).
        dropout_rate: only to build an identical encoder; does not change its weights.
        backbone: the experts' backbone (`adapnet_pp` or `mobilenet_v2`).
        decoder_filters: the decoder width the AdapNet++ that wrote own `.weights.h5` weights was
            built with (the fusion config's `decoder_filters`: its experts are trained with the same
            one; a `.keras` file says it itself). None: as the expert's training run says (the
            `config.yaml` beside its weights), else the released 256.

    Returns:
        The list of arrays for `encoder.set_weights`.

    Raises:
        CheckpointError: the checkpoint is unreadable, of an SSMA, of another backbone, or does
            not fit an AdapNet++ of `num_classes` classes.
    """
    fmt, resolved = resolve_weights(path)
    if fmt == FORMAT_TF1:
        shapes = read_checkpoint(resolved)
        kind = detect_kind(shapes, resolved)
        if kind == KIND_SSMA:
            raise CheckpointError(
                f"{resolved} is an SSMA checkpoint; an expert starts from a unimodal AdapNet++ one"
            )
        # An ImageNet checkpoint has no decoder: any class count builds the same encoder.
        num_classes = num_classes_of(shapes, resolved) if kind != KIND_IMAGENET else (num_classes or 2)
    if fmt == FORMAT_KERAS and resolved.endswith(".keras"):
        loaded = load_keras_model(resolved, (AdapNetPP,))
        if loaded.backbone != backbone:
            raise CheckpointError(f"the model file {resolved} holds an AdapNet++ on the {loaded.backbone} backbone, "
                                  f"but the experts are on the {backbone} backbone", path=resolved)
        refuse_pruned_source(resolved, getattr(loaded.encoder, "widths", None), None, "an expert")
        return loaded.encoder.get_weights()
    if num_classes is None:
        num_classes = stored_num_classes(fmt == FORMAT_TF2, resolved)
    if decoder_filters is None:
        run = _readable_run_config(path)
        decoder_filters = run.decoder_filters if run is not None else DECODER_FILTERS
    # Released widths are dropped by the model's check: the default builds the released decoder.
    # A TF1 checkpoint's decoder is the released one whatever the fusion's `decoder_filters` (before:
    # refused, naming a decoder variable of a good checkpoint that is never used).
    widths = decoder_widths(DECODER_FILTERS if fmt == FORMAT_TF1 else decoder_filters)
    # A TF1 checkpoint with the heads it holds (an AdapNet++ trained with `has_aux_loss=False` has
    # none; before: refused though only its encoder is used; helper 222).
    aux_heads = has_aux_heads(shapes) if fmt == FORMAT_TF1 else True
    with overwritten_weights():  # the encoder is loaded strictly below; only it is returned
        model = AdapNetPP(num_classes, aux_heads=aux_heads, dropout_rate=dropout_rate, backbone=backbone,
                          widths=widths)
    if fmt == FORMAT_TF1:
        # Strict means the whole encoder for an ImageNet checkpoint, the whole model otherwise.
        load_tf1_checkpoint(model, resolved, strict=True)
    else:
        load_weights(model, resolved)
    return model.encoder.get_weights()
