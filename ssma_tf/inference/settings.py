"""A model and its inference settings as the command-line tools name them: a config, a checkpoint.

`setup_inference` reads a run config (evaluation or training), loads the weights it or a
`--checkpoint` names (through `ssma_tf.checkpoints.loading`, the one place weights are loaded) and
collects what inference takes from the config: model size, dataset colours, the interpolation of
SSMA's second modality and AdapNet++'s input modality. `predict.py` and `tools/export.py` use it.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any, Mapping, Optional, Tuple, Union

import keras

from ssma_tf.checkpoints import CheckpointError
from ssma_tf.checkpoints.initialize import check_checkpoint_fits, other_input_modality_warning
from ssma_tf.checkpoints.loading import load_model, model_from_config
from ssma_tf.checkpoints.resolve import resolve_weights
from ssma_tf.checkpoints.zoo import fitting_release
from ssma_tf.config import PRETRAINING_RUN, ConfigError, ConfigWarning, RunConfig, load_config, refuse_pretraining
from ssma_tf.config.reader import Required, check_not_moved
from ssma_tf.config.runs import is_run, run_config, run_weights, saved_run_config
from ssma_tf.constants import EASPP_RATES
from ssma_tf.data.datasets import DatasetInfo, get_dataset_info
from ssma_tf.errors import UserInputError, first_line

PathLike = Union[str, "os.PathLike[str]"]


def load_run_config(path: PathLike, overrides: Optional[Mapping[str, Any]] = None,
                    checkpoint_given: bool = False) -> Any:
    """Reads a run config for prediction or export.

    An evaluation config names the weights in `checkpoint`; a training config names the folder
    the run wrote, whose newest checkpoint (or `final.weights.h5`) holds the trained weights.
    Data paths are not checked: prediction reads other files. A config for prediction alone
    needs no data or training keys: the model, its classes and size, and the weights
    (`checkpoint`, unless `checkpoint_given`: the command's `--checkpoint`).

    Args:
        path: the config file.
        overrides: keys replacing the file's (`--set`), validated like them.
        checkpoint_given: the weights come from elsewhere; the config may leave `checkpoint` out.

    Returns:
        The `ssma_tf.config.RunConfig`.

    Raises:
        ConfigError: the file is not a valid evaluation, training or prediction config.
    """
    unused = _UNUSED_KEYS + (("checkpoint",) if checkpoint_given else ())
    for mode in ("eval", "train"):
        try:
            return load_config(path, mode, check_paths=False, overrides=overrides)
        except ConfigError as error:
            if not error.missing and error.key not in unused:
                raise
    needed = tuple(name for name in ("model", "num_classes", "height", "width", "checkpoint") if name not in unused)
    # Before: "key 'train_data': is missing; train needs it" for a config of the model alone.
    try:
        return load_config(path, "eval", check_paths=False, overrides=overrides,
                           required=Required(needed, "the model"))
    except ConfigError as error:
        if error.key == "checkpoint" and error.missing:
            raise ConfigError(f"{error.detail.split(';')[0]}: name the weights there, or give --checkpoint",
                              key="checkpoint", source=error.source) from None
        raise


# Keys an evaluation or a training config needs that prediction and export do not read.
_UNUSED_KEYS = ("test_data", "train_data", "batch_size", "max_iteration", "learning_rate")


@dataclasses.dataclass
class InferenceSetup:
    """A model with its weights and the settings its config gives for inference.

    Attributes:
        model: the `AdapNetPP` or `SSMA`.
        dataset: class names and colours (`DatasetInfo`), or None.
        size: the config's (height, width), or None without a config.
        modality2_interpolation: the config's, else "nearest" (a tuple, one per modality after
            the first, where the config gives `modality_interpolations`).
        input_modality: AdapNet++: the config's input modality, else "modality1".
        configured: whether a config (given, or a training run's) gave these settings.
    """

    model: keras.Model
    dataset: Optional[Any] = None
    size: Optional[Tuple[int, int]] = None
    modality2_interpolation: Union[str, Tuple[str, ...]] = "nearest"
    input_modality: str = "modality1"
    configured: bool = False


def dataset_by_name(name: str, palette: Optional[str] = None) -> Any:
    """The `DatasetInfo` of `--dataset NAME`: from the run's own `palette` file, else the shipped one.

    Raises:
        ConfigError: the name is in neither file (the message lists the known names).
    """
    if palette is not None:
        try:
            return get_dataset_info(name, palette)
        except ValueError:
            pass  # not one of the run's own datasets: perhaps a shipped one
    try:
        return get_dataset_info(name)
    except ValueError as error:
        # A dataset of the user's own palette file is known only through a config naming it.
        own = ("" if palette is not None else "; a dataset of your own palette file: give -c with a config "
               "that names it (palette: FILE, dataset: NAME)")
        raise ConfigError(f"--dataset: {error}{own}") from None


def _check_config_weights(run: RunConfig) -> None:
    """Checks that the weights `run.checkpoint` names are there; the error names the config and
    its key (before: "no checkpoint at X", the config and the key left to guess)."""
    try:
        resolve_weights(run.checkpoint)
    except CheckpointError as error:
        raise ConfigError(str(error), key="checkpoint", source=run.where("checkpoint")) from None


def _check_given_weights(run: RunConfig, checkpoint: PathLike, given: str) -> None:
    """Checks weights given beside a config (`--checkpoint`, or `--set checkpoint=` with a run):
    a depth-pretraining run is refused (before: "the checkpoint has 2 classes"), and a network
    trained on the other modality than the config feeds it is warned of (before, for `RUN --set
    checkpoint=`: fed the wrong images without a word, and an export recorded the config's
    modality; helper 337)."""
    if saved_run_config(checkpoint).get("pretraining"):
        raise ConfigError(f"{given}: this is {PRETRAINING_RUN}", source=run.source)
    swapped = other_input_modality_warning(run, os.fspath(checkpoint))
    if swapped is not None:
        warnings.warn(swapped, ConfigWarning, stacklevel=3)  # the caller of setup_inference


def setup_inference(
    config: Optional[PathLike] = None,
    checkpoint: Optional[PathLike] = None,
    model: Optional[str] = None,
    num_classes: Optional[int] = None,
    dataset: Optional[str] = None,
    overrides: Optional[Mapping[str, Any]] = None,
) -> InferenceSetup:
    """Loads a model as the command-line tools name it: a run config, a checkpoint, or both.

    A training run's folder, or a file in it (`final.keras`), also stands for its config: the
    `config.yaml` the run wrote gives the model, classes, size and dataset, so the folder alone
    is enough (`ssma_tf.config.runs`).

    Args:
        config: a run config (`load_run_config`); its `checkpoint`, model, classes, size,
            dataset and interpolation apply unless overridden.
        checkpoint: weights to load instead of the config's: a checkpoint, weights or `.keras`
            file, or a training run's folder.
        model, num_classes: the network, for weights that do not say
            (see `ssma_tf.checkpoints.loading.load_model`).
        dataset: dataset name for the colours, instead of the config's.
        overrides: config keys to replace (`--set`), validated like the file's.

    Raises:
        ConfigError, CheckpointError: as `load_run_config`, `load_model` and
            `get_dataset_info` raise them.
    """
    if config is None and checkpoint is None:
        raise ConfigError("give a config or a checkpoint")
    if config is None and is_run(checkpoint):
        # As a training config: an evaluation one would need test data, which prediction lacks.
        run = run_config(checkpoint, "train", overrides, check_paths=False)
        if "checkpoint" in (overrides or {}):
            # The weights `--set checkpoint=` names, through the run's config, as ssma-evaluate RUN
            # reads them (before: dropped for the run's final model without a word, even a path
            # that does not exist).
            _check_config_weights(run)
            _check_given_weights(run, run.checkpoint, f"--set checkpoint={run.checkpoint}")
            checkpoint = None
        else:
            checkpoint = run_weights(checkpoint)
            if os.path.isdir(checkpoint):
                checkpoint = None  # an unfinished run: its newest checkpoint, through its config
            elif model in (None, run.model) and num_classes in (None, run.num_classes):
                # A file of the run (`final.weights.h5`) goes through the run's config, which builds the
                # network it fits: a weights file names neither the fusion nor the modalities,
                # backbone or widths (before: a default SSMA was built and refused the weights).
                run = dataclasses.replace(run, checkpoint=checkpoint)
                checkpoint = None
    elif config is None:
        if overrides:
            raise ConfigError(f"--set needs a config: {checkpoint} is not a training run's folder")
        run = None
    else:
        if checkpoint is None:
            # A copied or moved run's config.yaml names the other folder's weights.
            check_not_moved(config, overrides, "give the folder itself as RUN, or --checkpoint {folder}")
        run = load_run_config(config, overrides, checkpoint_given=checkpoint is not None)
        if checkpoint is None:
            _check_config_weights(run)
        if checkpoint is not None:
            _check_given_weights(run, checkpoint, f"--checkpoint {checkpoint}")
            if model in (None, run.model) and num_classes in (None, run.num_classes):
                # The config's network with these weights, as the config's own checkpoint would
                # be (before: a default AdapNet++ or SSMA was built, so the config's backbone,
                # fusion, modalities and widths were dropped without a word).
                run = dataclasses.replace(run, checkpoint=os.fspath(checkpoint))
                checkpoint = None
    if run is not None:
        refuse_pretraining(run)  # a depth network predicted (or exported) as a 2-class segmenter
    if checkpoint is not None:
        loaded = load_model(checkpoint, model or (run.model if run else None),
                            num_classes or (run.num_classes if run else None), _release_rates(checkpoint))
    else:
        # A run of another fusion or number of modalities is named before the build (before,
        # with -c: "holds 1170 arrays but this SSMA has 1085 weights").
        check_checkpoint_fits(run, run.checkpoint)
        loaded = model_from_config(run)
    if dataset is not None:
        info = dataset_by_name(dataset, run.palette if run is not None else None)
    else:
        info = _dataset_of(run) if run is not None else None
    if info is not None and info.num_classes != loaded.num_classes:
        raise ConfigError(
            f"dataset {info.name} has {info.num_classes} classes (void included), the model {loaded.num_classes}"
        )
    if run is None:
        return InferenceSetup(loaded, info)
    return InferenceSetup(
        loaded, info, (run.height, run.width),
        run.modality2_interpolation if run.modality_interpolations is None else run.modality_interpolations,
        run.input_modality or "modality1", configured=True,
    )


def _release_rates(checkpoint: PathLike) -> Tuple[int, ...]:
    """The eASPP rates of the released model whose folder holds `checkpoint` (the 19-class
    Cityscapes models': 6, 12, 18), else the default: a checkpoint does not hold them."""
    release = fitting_release(checkpoint)
    return release.easpp_rates if release is not None else EASPP_RATES


def _dataset_of(run: Any) -> Optional[DatasetInfo]:
    """The config's dataset; a palette file that is not there (a run folder copied to another
    machine keeps its absolute path) is a one-line error naming the key, as the config check
    gives when the paths are checked."""
    try:
        return run.dataset_info()
    except ValueError as error:
        raise ConfigError(first_line(error), key="palette" if run.palette else "dataset", source=run.source) from None


def check_interpolation_flag(interpolation: Optional[str], model: Any, input_modality: str, *,
                             modalities: Optional[int] = None) -> None:
    """`--modality2_interpolation` on a network that reads no modality 2 and on is an error
    (`ssma-predict`, `ssma-export`).

    Args:
        modalities: the images an exported network reads, in place of `model` (None there).

    Raises:
        UserInputError: naming the flag and what the network reads.
    """
    from ssma_tf.models.factory import num_modalities
    from ssma_tf.resampling import resize_methods

    modalities = num_modalities(model) if modalities is None else modalities
    fusion = modalities >= 2
    if interpolation and not fusion and input_modality == "modality1":
        raise UserInputError("--modality2_interpolation is for SSMA or an expert of modality 2 and on; this "
                             "AdapNet++ reads modality1, resized bilinearly")
    if not interpolation or isinstance(interpolation, str):
        return
    given = ",".join(interpolation)
    if fusion and len(interpolation) != modalities - 1:
        # A list that is too long is cut for a config (an expert shares its fusion's list), but on
        # the command line it names another network.
        raise UserInputError(f"--modality2_interpolation {given} gives {len(interpolation)} methods, but this SSMA "
                             f"reads {modalities} modalities: give one per modality after the first "
                             f"({modalities - 1}), or one for all")
    try:
        resize_methods(interpolation, modalities, input_modality)
    except ValueError as error:
        raise UserInputError(f"--modality2_interpolation {given}: {error}") from None


def reads_modality2_and_on(model: Any, input_modality: str) -> bool:
    """Whether `model` (an SSMA, or an AdapNet++ expert of `input_modality`) reads an image that
    `--modality2_interpolation` resizes."""
    from ssma_tf.models.factory import is_fusion

    return is_fusion(model) or input_modality != "modality1"


def warn_of_unknown_interpolation(setup: InferenceSetup, interpolation: Any, input_modality: str,
                                  compared: Optional[str] = None) -> None:
    """Warns (`ConfigWarning`) when a network reading modality 2 and on comes without a config and
    the flag is not given: its modalities are resized by the default, nearest, which may not be how
    it was trained (a `.keras` file does not hold it; an export keeps the default in its metadata).

    Args:
        compared: the path of `ssma-predict --compare`, where the network is the compared one:
            the warning names it and says what to give for it.
    """
    if interpolation or setup.configured or not reads_modality2_and_on(setup.model, input_modality):
        return
    give = ("give its training run's folder, or --modality2_interpolation" if compared else
            "give the run's config (-c) or --modality2_interpolation")
    warnings.warn(f"{f'--compare {compared}: ' if compared else ''}no config says how modality 2 and on were resized "
                  f"in training: resizing them by nearest, the default; {give} (one method, or one per modality "
                  "after the first) if it was otherwise", ConfigWarning, stacklevel=2)
