"""Run configuration: original files, shipped files, and errors that name the key and the file."""

import dataclasses
import json
import os
import pathlib
import re
import subprocess
import sys
import textwrap
import warnings

import pytest
import yaml

from ssma_tf import constants
from ssma_tf.config import reader
from ssma_tf.config import (
    ConfigError, ConfigWarning, RunConfig, config_from_dict, declared_keys, key_tables, load_config, parse_overrides,
)
from ssma_tf.data.augment import AugmentationConfig

CONFIGS = pathlib.Path(__file__).resolve().parents[1] / "configs"

# The original AdapNet++ training file, keys exactly as released (with the values filled in).
ORIGINAL_ADAPNET_TRAIN = """\
gpu_id: '0'
model: 'AdapNet_pp'
num_classes: 12
intialize:  'init_checkpoint/Adapnet_pp_init.ckpt'
checkpoint: 'checkpoint/adapnet'
train_data: 'train.tfrecords'
batch_size: 8
skip_step: 5
height: 384
width: 768
max_iteration: 150000
learning_rate: 1e-3
save_step: 100
power: 0.9
"""

# The original SSMA files carry `dataset` and `type` as well.
ORIGINAL_SSMA_TRAIN = """\
gpu_id: '0'
model: 'SSMA'
num_classes: 12
checkpoint1:  'rgb/model.ckpt-150000'
checkpoint2:  'depth/model.ckpt-150000'
checkpoint: 'checkpoint/ssma'
train_data: 'train_fusion.tfrecords'
dataset: 'cityscapes'
batch_size: 7
type: 'rgb_hha'
skip_step: 10
height: 384
width: 768
max_iteration: 100000
learning_rate: 0.001
save_step: 500
power: 0.9
"""

ORIGINAL_SSMA_TEST = """\
gpu_id: '0'
model: 'SSMA'
num_classes: 12
checkpoint: 'checkpoint/ssma/model.ckpt-99999'
test_data: 'test_fusion.tfrecords'
dataset: ''
batch_size: 1
type: 'rgb_hha'
skip_step: 10
height: 384
width: 768
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working directory holding the files the original-style configs point at."""
    monkeypatch.chdir(tmp_path)
    for name in ("train.tfrecords", "train_fusion.tfrecords", "test_fusion.tfrecords"):
        (tmp_path / name).write_bytes(b"")
    for prefix in (
        "init_checkpoint/Adapnet_pp_init.ckpt",
        "rgb/model.ckpt-150000",
        "depth/model.ckpt-150000",
        "checkpoint/ssma/model.ckpt-99999",
    ):
        path = tmp_path / (prefix + ".index")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    return tmp_path


def write(directory, text, name="run.config"):
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def train_dict(**changes):
    d = yaml.safe_load(ORIGINAL_ADAPNET_TRAIN)
    d["learning_rate"] = 0.001
    d.update(changes)
    return {k: v for k, v in d.items() if v is not ...}


def error_for(path_or_dict, mode="train", **kwargs):
    with pytest.raises(ConfigError) as info:
        if isinstance(path_or_dict, dict):
            config_from_dict(path_or_dict, source="test.config", mode=mode, **kwargs)
        else:
            load_config(path_or_dict, mode=mode, **kwargs)
    return info.value


# --- Original files -------------------------------------------------------------------------


def test_original_adapnet_train_file_loads(workdir):
    config = load_config(write(workdir, ORIGINAL_ADAPNET_TRAIN))
    assert config.mode == "train" and config.model == "AdapNet_pp" and not config.is_fusion
    assert config.gpu_id == "0"
    assert config.initialize == str(workdir / "init_checkpoint/Adapnet_pp_init.ckpt")
    assert config.checkpoint == str(workdir / "checkpoint/adapnet")  # relative to the cwd
    assert config.train_data == (str(workdir / "train.tfrecords"),)
    assert config.data == config.train_data
    assert (config.batch_size, config.skip_step, config.save_step) == (8, 5, 100)
    assert (config.height, config.width, config.max_iteration) == (384, 768, 150000)
    assert config.learning_rate == 1e-3 and isinstance(config.learning_rate, float)  # "1e-3"
    assert config.power == 0.9
    # New keys default to the released behaviour.
    assert config.aux_loss_weights == (0.6, 0.5)
    assert config.end_learning_rate == 1e-4
    assert config.dropout_keep_prob == 0.3
    assert config.weight_decay == 0.0
    assert config.adam_epsilon == 1e-8
    assert config.encoder_lr_multiplier == 1.0
    assert config.mixed_precision is None and config.xla is False
    assert config.augmentation == AugmentationConfig.disabled()
    assert config.input_modality == "modality1" and config.aux_heads is True
    assert config.eval_scales == (1.0,) and config.eval_flip is False
    assert config.log_dir == str(workdir / "checkpoint/adapnet/logs")


def test_original_ssma_files_load(workdir):
    config = load_config(write(workdir, ORIGINAL_SSMA_TRAIN))
    assert config.is_fusion and config.freeze_experts is True and config.aux_heads is False
    assert config.checkpoint1 == str(workdir / "rgb/model.ckpt-150000")
    assert config.dataset == "cityscapes" and config.type == "rgb_hha"
    assert config.input_modality is None

    config = load_config(write(workdir, ORIGINAL_SSMA_TEST), mode="eval")
    assert config.mode == "eval" and config.dataset is None  # '' is a blank placeholder
    assert config.checkpoint == str(workdir / "checkpoint/ssma/model.ckpt-99999")
    assert config.data == (str(workdir / "test_fusion.tfrecords"),)
    assert config.max_iteration is None and config.log_dir is None


def test_initialize_spelling_and_gpu_id_forms(workdir):
    config = config_from_dict(
        train_dict(intialize=..., initialize="init_checkpoint/Adapnet_pp_init.ckpt", gpu_id=1)
    )
    assert config.initialize.endswith("Adapnet_pp_init.ckpt") and config.gpu_id == "1"
    assert config_from_dict(train_dict(gpu_id="0, 1")).gpu_id == "0,1"
    assert config_from_dict(train_dict(gpu_id=[0, 2])).gpu_id == "0,2"
    assert config_from_dict(train_dict(gpu_id="")).gpu_id is None
    assert config_from_dict(train_dict(gpu_id=-1)).gpu_id == "-1"


def test_checkpoint_forms(workdir):
    # A pasted `.index` part is cut back to the prefix; directories and weights files count.
    config = config_from_dict(
        train_dict(intialize="init_checkpoint/Adapnet_pp_init.ckpt.index")
    )
    assert config.initialize == str(workdir / "init_checkpoint/Adapnet_pp_init.ckpt")
    (workdir / "own.weights.h5").write_bytes(b"")
    assert config_from_dict(train_dict(intialize="own.weights.h5")).initialize.endswith(".h5")
    eval_dict = {**yaml.safe_load(ORIGINAL_SSMA_TEST), "checkpoint": "checkpoint/ssma"}
    assert config_from_dict(eval_dict, mode="eval").checkpoint == str(workdir / "checkpoint/ssma")


def test_new_keys(workdir):
    config = config_from_dict(
        train_dict(
            aux_loss_weights=[1, 0.25],
            mixed_precision="mixed_bfloat16",
            xla=True,
            seed=7,
            weight_decay=5e-4,
            augmentation={"flip": True, "rotation_range": [-5, 5]},
            eval_scales=[0.75, 1, 1.25],
            input_modality="modality2",
            modality2_interpolation="bilinear",
            one_hot_labels=True,
        )
    )
    assert config.aux_loss_weights == (1.0, 0.25)
    assert config.mixed_precision == "mixed_bfloat16" and config.xla and config.seed == 7
    assert config.augmentation.flip and config.augmentation.rotation_range == (-5, 5)
    assert config.augmentation.scale  # unspecified settings keep the paper's defaults
    assert config.eval_scales == (0.75, 1.0, 1.25)
    assert config.input_modality == "modality2" and config.one_hot_labels
    assert config_from_dict(train_dict(augmentation=True)).augmentation == AugmentationConfig()


def test_ssma_stage_switches(workdir):
    d = yaml.safe_load(ORIGINAL_SSMA_TRAIN)
    assert config_from_dict({**d, "freeze_experts": False}).freeze_experts is False
    assert config_from_dict({**d, "train_experts": True}).freeze_experts is False
    assert config_from_dict({**d, "train_experts": False}).freeze_experts is True
    assert config_from_dict({**d, "aux_heads": True}).aux_heads is True


def test_round_trip_through_yaml(workdir):
    config = config_from_dict(train_dict(augmentation={"flip": True}, seed=3), source="a")
    again = config_from_dict(yaml.safe_load(yaml.safe_dump(config.to_dict())), source="a")
    assert again == config
    ssma = load_config(write(workdir, ORIGINAL_SSMA_TRAIN))
    again = config_from_dict(yaml.safe_load(yaml.safe_dump(ssma.to_dict())), source=ssma.source)
    assert again == ssma


def test_config_is_frozen(workdir):
    config = config_from_dict(train_dict())
    with pytest.raises(AttributeError):
        config.batch_size = 4


# --- Shipped files --------------------------------------------------------------------------

SHIPPED = sorted(CONFIGS.glob("*.config"))


def test_every_dataset_has_every_file():
    names = {p.name for p in SHIPPED}
    for dataset in ("cityscapes", "synthia", "sun_rgbd", "scannet", "forest"):
        for pattern in (
            "adapnet_pp_{}_train", "adapnet_pp_{}_test", "ssma_{}_stage1_modality1",
            "ssma_{}_stage1_modality2", "ssma_{}_stage2", "ssma_{}_stage3", "ssma_{}_test",
        ):
            assert pattern.format(dataset) + ".config" in names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_config_validates(path):
    mode = "eval" if path.name.endswith("_test.config") else "train"
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)  # no shipped file may trip a warning
        config = load_config(path, mode=mode, check_paths=False)
    expected_classes = {
        "cityscapes": 12, "synthia": 12, "sun_rgbd": 38, "scannet_v2": 21, "freiburg_forest": 6,
    }
    assert config.num_classes == expected_classes[config.dataset]
    assert (config.height, config.width) == (384, 768)
    name = path.name
    if "stage1" in name:
        assert config.model == "AdapNet_pp" and config.initialize is not None
        assert config.input_modality == ("modality2" if "modality2" in name else "modality1")
    if "stage2" in name:
        assert config.model == "SSMA" and not config.freeze_experts
        assert config.encoder_lr_multiplier == 0.1 and config.learning_rate == 1e-3
        assert config.checkpoint1.endswith("stage1_modality1")
        assert config.checkpoint2.endswith("stage1_modality2")
    if "stage3" in name:
        assert config.model == "SSMA" and config.freeze_experts
        assert config.learning_rate == 1e-5 and config.end_learning_rate < config.learning_rate
        assert config.initialize.endswith("ssma_stage2")
    if "adapt_synthia_to_cityscapes" in name:
        assert config.adaptation is not None and config.target_data is not None
        assert config.adaptation.method == ("abn" if name.endswith("_abn.config") else "sac")
        if config.is_fusion:
            # ABN's batch norms must see the target and SAC adapts the whole network: frozen
            # experts (SSMA's default) would keep the encoders' statistics and weights.
            assert not config.freeze_experts
        if config.adaptation.method == "sac":
            assert config.initialize.endswith(name.rsplit("_", 1)[0].split("cityscapes_")[1] + "_abn")
            assert config.importance_weights.startswith(config.initialize)
    if mode == "train":
        assert config.augmentation == AugmentationConfig()  # the paper's augmentations


# --- Errors ---------------------------------------------------------------------------------


def test_misspelt_key_names_key_file_and_suggestion(workdir):
    text = ORIGINAL_ADAPNET_TRAIN.replace("learning_rate:", "learning_rat:")
    path = write(workdir, text)
    error = error_for(path)
    assert error.key == "learning_rat" and error.source == str(path)
    assert str(path) in str(error) and "learning_rat" in str(error)
    assert "did you mean 'learning_rate'" in str(error)
    assert isinstance(error, ValueError)

    error = error_for(write(workdir, ORIGINAL_ADAPNET_TRAIN + "initialise: x\n"))
    assert error.key == "initialise" and "did you mean 'initialize'" in str(error)
    error = error_for(train_dict(colour="red"))
    assert error.key == "colour" and "did you mean" not in str(error)
    # A section's key written with a dot, as `--set semi_supervised.method=classmix` gives it
    # (before: "did you mean 'semi_supervised'?").
    error = error_for(train_dict(**{"augmentation.flip": False}))
    assert str(error).endswith("key 'augmentation.flip': unknown key: a section's keys go inside it, 'augmentation: "
                               "{flip: VALUE}' in a file, --set 'augmentation={flip: VALUE}' on the command line "
                               "(which changes that key of the file's section, keeping the others)")
    assert "a section's keys" not in str(error_for(train_dict(**{"checkpoint.dir": "x"})))  # not a section
    # A section's key at the top, a top-level key inside a section (helper 186: "did you mean
    # 'eval_flip'?" and "did you mean 'target_weight'?", other settings).
    error = error_for(train_dict(flip=True))
    assert str(error).endswith("key 'flip': unknown key: a key of the 'augmentation' section, which goes inside it, "
                               "'augmentation: {flip: VALUE}' in a file, --set 'augmentation={flip: VALUE}' on the "
                               "command line")
    assert "a key of the 'semi_supervised' or 'adaptation' sections, which goes inside one of them" in str(
        error_for(train_dict(ema_decay=0.9)))
    error = error_for(train_dict(adaptation={"target_data": "x.tfrecords"}))
    assert str(error).endswith("unknown adaptation key 'target_data': a key of the config itself, which goes outside "
                               "the section, on a line of its own ('target_data: VALUE')")
    assert "unknown augmentation key 'height': a key of the config itself" in str(
        error_for(train_dict(augmentation={"flip": True, "height": 3})))


def test_wrong_types(workdir):
    for key, value, expected in [
        ("batch_size", "eight", "an integer"),
        ("batch_size", True, "an integer"),
        ("learning_rate", "fast", "a number"),
        ("xla", "yes please", "true or false"),
        ("gpu_id", "first", "GPU index"),
        ("aux_loss_weights", 0.6, "a list of numbers"),
        ("augmentation", "paper", "mapping"),
        ("train_data", 5, "a file, a glob pattern"),
    ]:
        error = error_for(train_dict(**{key: value}))
        assert error.key == key and expected in str(error), (key, str(error))
        assert "test.config" in str(error)


def test_bad_values(workdir):
    for key, value, expected in [
        ("height", 380, "multiple of 16"),
        ("width", 0, ">= 16"),
        ("num_classes", 1, ">= 2"),
        ("model", "SSMA_", "did you mean 'SSMA'"),
        ("model", "adapnet", "AdapNet_pp, SSMA"),
        ("dropout_keep_prob", 1.5, "(0, 1]"),
        ("mixed_precision", "float8", "mixed_float16"),
        ("aux_loss_weights", [0.6], "expected 2 numbers"),
        ("eval_scales", [1.0, 0], "> 0"),
        ("learning_rate", 0, "> 0"),
        ("augmentation", {"flip": True, "spin": 3}, "spin"),
        ("augmentation", {"crop_range": [0.9, 1.5]}, "crop_range"),
        ("dataset", "kitti", "unknown dataset"),
        ("input_modality", "depth", "modality1, modality2"),
    ]:
        error = error_for(train_dict(**{key: value}))
        assert error.key == key and expected in str(error), (key, str(error))
    error = error_for(train_dict(dataset="freiburg_forest"))
    assert error.key == "num_classes" and "6 classes" in str(error)
    # A dataset of one's own without `palette:` says which key names its file (helper 334: the shipped
    # names alone); with a palette file the name is looked up there, and the hint would be wrong.
    assert str(error_for(train_dict(dataset="fields"))).endswith(
        "; for a dataset of your own, name the file that describes it with palette: FILE (docs/your_dataset.md, "
        "step 4)")


def test_missing_keys(workdir):
    error = error_for(train_dict(max_iteration=...))
    assert error.key == "max_iteration" and "missing" in str(error) and error.missing
    error = error_for(train_dict(learning_rate=None))  # `learning_rate:` left blank
    assert error.key == "learning_rate" and "empty" in str(error) and error.missing
    # Callers that can do without a key (prediction without data) tell these apart by the flag,
    # also when a --set emptied the key.
    assert not error_for(train_dict(max_iteration="many")).missing
    from ssma_tf.config.reader import config_with_overrides

    with pytest.raises(ConfigError) as emptied:
        config_with_overrides(train_dict(), {"max_iteration": None}, source="t.config")
    assert emptied.value.missing and "with --set max_iteration=" in str(emptied.value)
    error = error_for(train_dict(checkpoint=" "))  # the original templates' placeholder
    assert error.key == "checkpoint"
    eval_dict = yaml.safe_load(ORIGINAL_SSMA_TEST)
    del eval_dict["test_data"]
    error = error_for(eval_dict, mode="eval")
    assert error.key == "test_data"
    # What evaluation does not need, training does not ask of it, and vice versa.
    assert config_from_dict(yaml.safe_load(ORIGINAL_SSMA_TEST), mode="eval").skip_step == 10
    error = error_for(yaml.safe_load(ORIGINAL_SSMA_TEST), mode="train")
    assert error.key == "train_data"


def test_paths_that_do_not_exist(workdir):
    error = error_for(train_dict(train_data="nope/*.tfrecords"))
    assert error.key == "train_data" and "nope" in str(error)
    error = error_for(train_dict(train_data=["train.tfrecords", "missing.tfrecords"]))
    assert error.key == "train_data" and "missing.tfrecords" in str(error)
    error = error_for(train_dict(intialize="init_checkpoint/other.ckpt"))
    assert error.key == "intialize" and "other.ckpt.index" in str(error)
    eval_dict = {**yaml.safe_load(ORIGINAL_SSMA_TEST), "checkpoint": "checkpoint/ssma/model.ckpt-1"}
    error = error_for(eval_dict, mode="eval")
    assert error.key == "checkpoint" and "model.ckpt-1" in str(error)
    (workdir / "a_file").write_text("")
    error = error_for(train_dict(checkpoint="a_file"))
    assert error.key == "checkpoint" and "directory" in str(error)
    error = error_for(train_dict(train_data=str(workdir)))
    assert error.key == "train_data" and f"{workdir} is a folder; give its files" in str(error)
    error = error_for(train_dict(checkpoint="a_file/run"))  # TensorFlow's traceback at the first summary
    assert error.key == "checkpoint" and "a_file is a file, not a folder" in str(error)
    # Helper 85: TensorFlow's "is not a directory [Op:CreateSummaryFileWriter]" traceback, after the
    # model was built.
    error = error_for(train_dict(log_dir="a_file/logs"))
    assert error.key == "log_dir" and "cannot be written: folder " in str(error)
    assert "a_file is a file, not a folder" in str(error)
    # The same configs pass without path checks, and a glob matching a file passes with them.
    config_from_dict(train_dict(train_data="nope/*.tfrecords"), check_paths=False)
    config_from_dict(eval_dict, mode="eval", check_paths=False)
    config = config_from_dict(train_dict(train_data="*.tfrecords"))
    assert config.train_data[0].endswith("*.tfrecords")


def test_inconsistent_keys(workdir):
    error = error_for(train_dict(initialize="init_checkpoint/Adapnet_pp_init.ckpt"))
    assert error.key == "intialize" and "not both" in str(error)
    error = error_for(train_dict(checkpoint1="rgb/model.ckpt-150000"))
    assert error.key == "checkpoint1" and "SSMA" in str(error)
    error = error_for(train_dict(freeze_experts=True))
    assert error.key == "freeze_experts"
    error = error_for(train_dict(aux_heads=False))
    assert error.key == "aux_heads" and "aux_loss_weights" in str(error)
    ssma = yaml.safe_load(ORIGINAL_SSMA_TRAIN)
    error = error_for({**ssma, "checkpoint2": None})
    assert error.key == "checkpoint2"
    error = error_for({**ssma, "intialize": "init_checkpoint/Adapnet_pp_init.ckpt"})
    assert error.key == "intialize" and "not both" in str(error)
    error = error_for({**ssma, "input_modality": "modality1"})
    assert error.key == "input_modality"
    error = error_for({**ssma, "train_experts": True, "freeze_experts": True})
    assert error.key == "train_experts"


def test_file_level_errors(workdir):
    error = error_for(write(workdir, "model: SSMA\nmodel: AdapNet_pp\n"))
    assert "duplicate key 'model'" in str(error) and "line 2" in str(error)
    error = error_for(write(workdir, "model: [SSMA\n"))
    assert "not valid YAML" in str(error) and "run.config" in str(error)
    # A list or mapping as a key (helper 186: a TypeError traceback, in a file and in --set alike).
    error = error_for(write(workdir, "model: SSMA\n[a, b]: 1\n"))
    assert str(error).endswith("not valid YAML (line 2, column 1): found a key that is a list; keys are names")
    from ssma_tf.config import parse_overrides
    from ssma_tf.errors import UserInputError

    with pytest.raises(UserInputError, match=r"value '\{\{a: 1\}: true\}' is not valid YAML: found a key that is a "
                                             "mapping; keys are names"):
        parse_overrides(["augmentation={{a: 1}: true}"])
    error = error_for(write(workdir, "- a\n- b\n"))
    assert "mapping" in str(error)
    # Before: a UnicodeDecodeError traceback from every command.
    (workdir / "latin.config").write_bytes(b"model: SSMA\nnum_classes: 3\n# caf\xe9\n")
    error = error_for(str(workdir / "latin.config"))
    assert str(error) == f"{workdir / 'latin.config'}: not UTF-8 text (byte 0xe9 on line 3)"
    error = error_for(write(workdir, ""))
    assert "empty" in str(error)
    error = error_for(workdir / "absent.config")
    assert "absent.config" in str(error)
    with pytest.raises(ValueError, match="mode"):
        config_from_dict(train_dict(), mode="test")


def test_a_config_built_in_code_names_no_file():
    # Commands raise these too (a folder that is not a run): "<dict>: " is no file a user can open.
    assert str(ConfigError("ck/nope is not a training run")) == "ck/nope is not a training run"
    assert str(ConfigError("must be >= 1, got 0", key="batch_size")) == "key 'batch_size': must be >= 1, got 0"
    assert str(ConfigError("bad", key="height", source="a.config")) == "a.config: key 'height': bad"


def test_warnings_for_legal_but_odd_settings(workdir):
    with pytest.warns(ConfigWarning, match="grow"):
        config_from_dict(train_dict(learning_rate=1e-5))
    # A flat schedule (helper 211: a rate equal to the floor trained at one rate, unsaid).
    with pytest.warns(ConfigWarning, match=r"end_learning_rate equals learning_rate \(0.0001\), so the poly schedule "
                                           r"stays at that rate and never decays"):
        config_from_dict(train_dict(learning_rate=1e-4, end_learning_rate=1e-4))
    ssma = yaml.safe_load(ORIGINAL_SSMA_TRAIN)
    with pytest.warns(ConfigWarning, match="no effect"):
        config_from_dict({**ssma, "encoder_lr_multiplier": 0.1})
    # Stacking and FuseNet train their encoders whatever freeze_experts says, at this rate (before:
    # "has no effect" while the optimizer scaled 204 of their variables by it).
    # Stacking has no experts: a factor slows its one network's encoder, which is said (helper 193: a
    # stage-2 config reused for it trained 204 of its 228 variables at 0.1x without a word).
    for fusion in constants.END_TO_END_FUSIONS:
        experts = {} if fusion in constants.EXPERTLESS_FUSIONS else {"checkpoint1": ssma["checkpoint1"],
                                                                      "checkpoint2": ssma["checkpoint2"]}
        fused = {k: v for k, v in ssma.items() if not k.startswith("checkpoint")}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConfigWarning)
            config = config_from_dict({**fused, **experts, "checkpoint": "ck", "fusion": fusion,
                                       "encoder_lr_multiplier": 0.1}, check_paths=False)
        assert config.encoder_lr_multiplier == 0.1
        said = [str(w.message) for w in caught if issubclass(w.category, ConfigWarning)]
        if fusion in constants.EXPERTLESS_FUSIONS:
            assert len(said) == 1 and said[0].endswith(
                "encoder_lr_multiplier 0.1 scales the encoder of fusion: stacking, which has no experts: its one "
                "network's encoder learns that much slower than its decoder (the paper trains it like an "
                "AdapNet++: 1)"), said
        else:
            assert said == [], (fusion, said)
    # SAC trains with its own optimizer settings: the released protocol's keys would be read by nothing.
    sac = train_dict(adaptation={}, target_data="records/train.tfrecords")
    with pytest.warns(ConfigWarning) as caught:
        config_from_dict({**sac, "weight_decay": 1e-3}, source="s.config", check_paths=False)
    assert [str(w.message) for w in caught] == [
        "s.config: key 'weight_decay' not used by adaptation method sac, which trains with its own optimizer (sgd) "
        "at the constant adaptation.learning_rate (0.00025) with adaptation.weight_decay (0.0005); change those "
        "in the adaptation section"]
    with pytest.warns(ConfigWarning, match=r"keys 'weight_decay', 'power' not used by adaptation method sac"):
        config_from_dict({**sac, "weight_decay": 1e-3, "power": 1.0}, check_paths=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)
        config_from_dict(sac, check_paths=False)  # learning_rate is required, so never named
        config_from_dict({**sac, "weight_decay": 1e-3, "adaptation": {"method": "abn"}}, check_paths=False)
        config_from_dict({**sac, "adaptation": {"method": "abn", "zoom_range": [0.5, 1.0]}}, check_paths=False)
        config_from_dict({**sac, "input_modality": "modality2", "adaptation": {"photometric": "all"}},
                         check_paths=False)
    # The other way round: SAC's keys under ABN were read by nothing, without a word.
    with pytest.warns(ConfigWarning) as caught:
        config_from_dict({**sac, "adaptation": {"method": "abn", "learning_rate": 1e-5, "optimizer": "adam"}},
                         source="a.config", check_paths=False)
    assert [str(w.message) for w in caught] == [
        "a.config: adaptation keys 'optimizer', 'learning_rate' not used by method abn, which only runs target "
        "batches through the batch norms (of the section it reads flip_probability) and trains "
        "with the top-level optimizer settings"]
    # ABN's one view per image is the whole frame: zoom_range was read by nothing (helper 93).
    with pytest.warns(ConfigWarning, match=r"adaptation key 'zoom_range' not used by method abn"):
        config_from_dict({**sac, "adaptation": {"method": "abn", "zoom_range": [0.1, 0.2]}}, check_paths=False)
    # Two flips cancel: more than 0.5 flips fewer views (1.0: none).
    with pytest.warns(ConfigWarning) as caught:
        config_from_dict({**sac, "adaptation": {"flip_probability": 1.0}}, source="a.config", check_paths=False)
    assert [str(w.message) for w in caught] == [
        "a.config: adaptation.flip_probability 1 flips each target group and each of its views with that chance, "
        "and two flips cancel: a view is flipped against its image with chance 2p(1 - p) = 0, the most (0.5) "
        "at p = 0.5"]
    # Noise on modality 1, which an expert of modality 2 does not read (before: no noise, no word).
    with pytest.warns(ConfigWarning, match=r"adaptation.photometric is modality1, but this AdapNet_pp reads "
                                           r"modality2: its student's views get no photometric noise"):
        config_from_dict({**sac, "input_modality": "modality2"}, check_paths=False)
    semi = train_dict(semi_supervised={"method": "depthmix"}, unlabeled_data="records/train.tfrecords",
                      input_modality="modality2")
    with pytest.warns(ConfigWarning, match=r"semi_supervised's colour jitter and blur go to the mixed modality 1"):
        config_from_dict(semi, check_paths=False)


def test_records_that_match_nothing_are_named_with_where_they_may_be(workdir, monkeypatch):
    """Shards of the name, or a path relative to the config's folder run from another: before,
    a bare "no file matches"."""
    for index in range(2):
        (workdir / f"train_png-0000{index}-of-00002.tfrecords").write_bytes(b"")
    error = error_for(write(workdir, ORIGINAL_ADAPNET_TRAIN.replace("'train.tfrecords'", "'train_png.tfrecords'")))
    assert error.key == "train_data" and error.detail == (
        f"no file matches {workdir / 'train_png.tfrecords'}; its shards are there "
        f"(train_png-00000-of-00002.tfrecords, ...): give {workdir / 'train_png-*-of-*.tfrecords'}")
    config = write(workdir, ORIGINAL_ADAPNET_TRAIN)
    (workdir / "elsewhere").mkdir()
    monkeypatch.chdir(workdir / "elsewhere")
    error = error_for(str(config))
    assert error.key == "intialize" and error.detail.endswith(
        f"(relative paths are read from the current folder, {workdir / 'elsewhere'}; this one is in the config's "
        f"folder: run from {workdir}, or give the path from here)")
    # A path typed on the command line is not the config's: no hint about its folder.
    error = error_for(str(config), overrides={"intialize": "init_checkpoint/Adapnet_pp_init.ckpt"})
    assert error.key == "intialize" and "relative paths" not in error.detail
    error = error_for(str(config), overrides={"intialize": None})
    assert error.key == "train_data" and error.detail.endswith(
        f"(relative paths are read from the current folder, {workdir / 'elsewhere'}; this one is in the config's "
        f"folder: run from {workdir}, or give the path from here)")
    # A config in configs/ naming paths from the folder above, run from configs/ (the shipped
    # configs; before: no hint, helper 321).
    (workdir / "configs").mkdir()
    shipped = write(workdir / "configs", ORIGINAL_ADAPNET_TRAIN)
    monkeypatch.chdir(workdir / "configs")
    error = error_for(str(shipped))
    assert error.key == "intialize" and error.detail.endswith(
        f"(relative paths are read from the current folder, {workdir / 'configs'}; this one is in the folder above "
        f"the config's: run from {workdir}, or give the path from here)")


def test_ssma_train_warns_of_settings_a_training_run_would_regret(workdir):
    """Only ssma-train: other commands read the same keys otherwise (ssma-pretrain-depth reads
    unlabeled_data without a semi_supervised section)."""
    from ssma_tf.config.reader import ssma_train_warnings

    def warned(**changes):
        with warnings.catch_warnings():
            warnings.simplefilter("error", ConfigWarning)  # none at load time
            return ssma_train_warnings(config_from_dict(train_dict(**changes), source="t.config", check_paths=False))

    assert warned() == []
    # test_data is read after training, by ssma-evaluate RUN: a typo is named at the start.
    (line,) = warned(test_data="records/vall.tfrecords")
    assert re.search(r"^t.config: key 'test_data': no file matches .*vall\.tfrecords; training does not read it, but "
                     r"evaluating the run \(ssma-evaluate RUN\) will$", line)
    # A file whose path holds '[' is there, though no pattern matches it (helper 131).
    (workdir / "d [v2]").mkdir()
    (workdir / "d [v2]" / "test.tfrecords").write_bytes(b"")
    assert warned(test_data=str(workdir / "d [v2]" / "test.tfrecords")) == []
    # Keys only a section reads, without the section: the run would train without the method.
    (line,) = warned(unlabeled_data="records/train.tfrecords")
    assert "key 'unlabeled_data' is read only with the 'semi_supervised' section" in line
    (line,) = warned(target_data="records/train.tfrecords", adaptation=False)
    assert "key 'target_data' is read only with the 'adaptation' section" in line
    # Switched off on the command line: the warning names the --set, not the file, as the culprit.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)
        config = reader.config_with_overrides(train_dict(unlabeled_data="records/u.tfrecords", semi_supervised=True),
                                              {"semi_supervised": False}, source="t.config", check_paths=False)
    (line,) = ssma_train_warnings(config)
    assert line == ("t.config: key 'unlabeled_data' is read only with the 'semi_supervised' section, which --set "
                    "semi_supervised=False switches off: this run does not use it")
    # SSMA with frozen experts that nothing starts: they would stay random.
    ssma = yaml.safe_load(ORIGINAL_SSMA_TRAIN)
    unstarted = config_from_dict({k: v for k, v in ssma.items() if k not in ("checkpoint1", "checkpoint2")},
                                 check_paths=False)
    assert "freeze_experts is true, but nothing starts the experts of this SSMA" in ssma_train_warnings(unstarted)[0]
    assert ssma_train_warnings(dataclasses.replace(unstarted, freeze_experts=False)) == []
    # ImageNet weights for MobileNet v2 backbones start those only (the warning said "random").
    imagenet = dataclasses.replace(unstarted, backbone="mobilenet_v2", backbone_weights="imagenet.h5")
    (line,) = ssma_train_warnings(imagenet)
    assert ("only backbone_weights does, for their MobileNet v2 backbones: what follows them (the eASPP, and a "
            "baseline expert's decoder) stays at its random initial weights") in line
    assert "they stay at their random" not in line
    # The baselines with frozen experts likewise (average and maximum would train nothing at all);
    # stacking and FuseNet train end to end.
    for fusion in ("average", "maximum", "late", "lfc", "cmode"):
        (line,) = ssma_train_warnings(dataclasses.replace(unstarted, fusion=fusion))
        assert f"nothing starts the experts of this fusion {fusion} (no checkpoint1" in line
    for fusion in ("stacking", "fusenet"):
        assert ssma_train_warnings(dataclasses.replace(unstarted, fusion=fusion)) == []


@pytest.mark.parametrize("section", ["semi_supervised", "adaptation"])
def test_an_empty_mode_section_is_an_error_not_a_run_without_it(section):
    """`semi_supervised:` with nothing after it is YAML's null, which other keys read as absent."""
    keys = {"semi_supervised": {"unlabeled_data": "u.tfrecords"}, "adaptation": {"target_data": "t.tfrecords"}}
    text = yaml.safe_dump(train_dict(**keys[section])) + f"{section}:\n"
    error = error_for(yaml.safe_load(text), check_paths=False)
    assert str(error) == (f"test.config: key '{section}': is empty; write '{section}: {{}}' for its defaults, or "
                          f"'{section}: false' to train without it")
    assert getattr(config_from_dict({**yaml.safe_load(text), section: {}}, check_paths=False), section) is not None


# --- Declarations -------------------------------------------------------------------------------


def test_readme_key_tables_match_the_declarations(tmp_path):
    from ssma_tf.config.tables import TABLES_BEGIN, TABLES_END, tables_in

    readme = (CONFIGS / "README.md").read_text(encoding="utf-8")
    assert tables_in(readme, "configs/README.md").strip() == key_tables().strip(), (
        "configs/README.md's key tables differ from the declarations in ssma_tf/config/; "
        "run `python -m ssma_tf.config --write configs/README.md`"
    )
    # --write replaces only what is between the markers.
    stale = tmp_path / "README.md"
    stale.write_text(f"# Keys\n\n{TABLES_BEGIN}| old | table |\n{TABLES_END}\n\nMore text.\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "ssma_tf.config", "--write", str(stale)], capture_output=True,
                          text=True, cwd=CONFIGS.parent)
    assert done.returncode == 0, done.stderr
    assert stale.read_text(encoding="utf-8") == f"# Keys\n\n{TABLES_BEGIN}{key_tables()}{TABLES_END}\n\nMore text.\n"
    stale.write_text("no markers\n")
    done = subprocess.run([sys.executable, "-m", "ssma_tf.config", "--write", str(stale)], capture_output=True,
                          text=True, cwd=CONFIGS.parent)
    assert done.returncode == 1 and "lost its generated-table markers" in done.stderr
    assert stale.read_text() == "no markers\n"


def test_every_key_is_declared_with_a_description_and_a_known_kind():
    for cls, readable in ((RunConfig, lambda kind: hasattr(reader._Reader, f"read_{kind}")),
                          (AugmentationConfig, lambda kind: kind in ("bool", "float", "range"))):
        for name, spec, _ in declared_keys(cls):
            assert spec.doc and "\n" not in spec.doc, name
            assert readable(spec.kind), (name, spec.kind)
            assert (spec.kind in ("choice", "choices")) == bool(spec.choices), name
    # Defaults are written once: in ssma_tf.constants, read by the declarations and the library.
    defaults = {name: default for name, _, default in declared_keys(RunConfig)}
    assert defaults["aux_loss_weights"] == constants.AUX_LOSS_WEIGHTS == (0.6, 0.5)
    assert defaults["end_learning_rate"] == constants.END_LEARNING_RATE == 1e-4


def test_loading_a_config_imports_no_tensorflow(tmp_path):
    # A fresh interpreter: the test process itself has TensorFlow loaded already.
    good = tmp_path / "good.config"
    good.write_text(ORIGINAL_SSMA_TRAIN + "augmentation: {flip: true, rotation_range: [-5, 5]}\n")
    bad = tmp_path / "bad.config"
    bad.write_text(ORIGINAL_SSMA_TRAIN + "augmentation: {flip: true}\neval_flip: maybe\n")
    script = textwrap.dedent(
        f"""
        import json, sys, time
        import ssma_tf.files, ssma_tf.progress  # the other helpers the tools use before TensorFlow
        from ssma_tf.config import ConfigError, load_config
        config = load_config({str(good)!r}, check_paths=False)
        assert config.augmentation.flip and config.augmentation.rotation_range == (-5, 5)
        assert config.dataset == "cityscapes"
        start = time.perf_counter()
        try:
            load_config({str(bad)!r}, check_paths=False)
        except ConfigError as error:
            message = str(error)
        seconds = time.perf_counter() - start
        print(json.dumps({{"tf": sorted(m for m in sys.modules if m.split(".")[0] in
                                        ("tensorflow", "keras", "jax", "torch")),
                          "seconds": seconds, "message": message}}))
        """
    )
    root = pathlib.Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "PYTHONPATH": str(root)}, timeout=60)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["tf"] == []
    assert "eval_flip" in result["message"] and "true or false" in result["message"]
    assert result["seconds"] < 1.0


def test_ssma_over_n_modalities_keys(workdir):
    ssma = yaml.safe_load(ORIGINAL_SSMA_TRAIN)
    del ssma["checkpoint1"], ssma["checkpoint2"]
    for prefix in ("rgb", "depth", "thermal"):
        (workdir / f"{prefix}.weights.h5").write_bytes(b"")
    three = dict(ssma, modalities=["rgb", "depth", "thermal"],
                 checkpoints=["rgb.weights.h5", "depth.weights.h5", "thermal.weights.h5"],
                 modality_interpolations=["nearest", "bilinear"])
    config = config_from_dict(three, source="three.config")
    assert config.num_modalities == config.record_modalities == 3
    assert config.interpolations == ("nearest", "bilinear")
    assert [os.path.basename(p) for p in config.expert_checkpoints] == [
        "rgb.weights.h5", "depth.weights.h5", "thermal.weights.h5"]
    again = config_from_dict(yaml.safe_load(yaml.safe_dump(config.to_dict())), source="three.config")
    assert again == config
    # The two-modality keys stay: checkpoint1/checkpoint2 are the experts' list for N = 2.
    pair = config_from_dict(yaml.safe_load(ORIGINAL_SSMA_TRAIN), source="pair.config")
    assert pair.num_modalities == 2 and pair.interpolations == ("nearest",)
    assert [os.path.basename(p) for p in pair.expert_checkpoints] == ["model.ckpt-150000"] * 2
    expert = config_from_dict(train_dict(input_modality="modality3"), source="e.config")
    assert expert.record_modalities == 3 and expert.num_modalities == 1

    assert "lists 2 checkpoints but the model fuses 3" in str(
        error_for(dict(three, checkpoints=three["checkpoints"][:2])))
    # Without 'modalities', the count 2 is the default's: the message says which key sets it.
    assert ("lists 3 checkpoints but the model fuses 2 modalities (no 'modalities' key: 2, the default); give "
            "one per expert, or list the 3 modalities under 'modalities'") in str(
        error_for(dict(three, modalities=None, modality_interpolations=None)))
    assert error_for(dict(three, checkpoints=None, checkpoint1="rgb.weights.h5",
                          checkpoint2="depth.weights.h5")).key == "checkpoint1"
    assert error_for(dict(ssma, checkpoints=["rgb.weights.h5", "depth.weights.h5"],
                          checkpoint1="rgb.weights.h5")).key == "checkpoint1"
    assert error_for(dict(three, modality_interpolations=["nearest"])).key == "modality_interpolations"
    assert error_for(dict(three, modalities=["rgb"])).key == "modalities"
    assert error_for(dict(three, modalities=["rgb", "rgb"])).key == "modalities"
    assert error_for(train_dict(modalities=["rgb", "depth"])).key == "modalities"
    assert error_for(train_dict(checkpoints=["rgb.weights.h5"])).key == "checkpoints"
    message = str(error_for(dict(three, checkpoints=["rgb.weights.h5", "nothing", "x"])))
    assert message.startswith("test.config: key 'checkpoints': no checkpoint at") and "nothing" in message
    # A weights file's name: it is missing, not "expected a TF checkpoint prefix with a
    # 'depth.weights.h5.index' beside it".
    message = str(error_for(dict(three, checkpoints=["rgb.weights.h5", "gone/depth.weights.h5", "x"])))
    assert message.startswith("test.config: key 'checkpoints': no weights file at") and "index" not in message


def test_a_key_given_with_set_is_named_by_either_spelling(workdir):
    """`--set intialize=RUN` (the released spelling) is kept as `initialize`: warnings that ask
    for it by its config spelling named the file alone."""
    from ssma_tf.config.reader import config_with_overrides

    config = config_with_overrides(train_dict(), {"intialize": "rgb/model.ckpt-150000"}, source="t.config")
    for spelling in ("intialize", "initialize"):
        assert config.where(spelling) == "t.config with --set intialize='rgb/model.ckpt-150000'"
    assert config.where("batch_size") == "t.config"


def test_an_error_about_a_key_of_a_file_names_its_line(workdir):
    """The file and the key were named, not the line (YAML's own errors name it)."""
    path = write(workdir, """\
        model: AdapNet_pp
        num_classes: 12

        max_iteraton: 10
    """)
    assert str(error_for(path)) == (f"{path}, line 4: key 'max_iteraton': unknown key; did you mean "
                                    "'max_iteration'?")
    path = write(workdir, ORIGINAL_ADAPNET_TRAIN.replace("batch_size: 8", "batch_size: eight"))
    line = 1 + next(n for n, text in enumerate(path.read_text().splitlines()) if text.startswith("batch_size"))
    assert str(error_for(path)).startswith(f"{path}, line {line}: key 'batch_size': expected")
    # A key given on the command line is named as such, without the file's line.
    from ssma_tf.config import load_config

    with pytest.raises(ConfigError) as info:
        load_config(path, overrides={"batch_size": "nine"})
    assert str(info.value).startswith(f"{path} with --set batch_size='nine': key 'batch_size': expected")
    # A key spelled as its alias: the line of that spelling.
    text = ORIGINAL_ADAPNET_TRAIN.replace("'init_checkpoint/Adapnet_pp_init.ckpt'", "missing/weights.h5")
    path = write(workdir, text)
    line = 1 + next(n for n, text in enumerate(path.read_text().splitlines()) if text.startswith("intialize"))
    error = error_for(path)
    assert str(error).startswith(f"{path}, line {line}: key 'in") and error.line == line
    # A key inside a section: its own line (before: the section's), for a bad value and for an
    # unknown key, in block and in flow style.
    path = write(workdir, ORIGINAL_ADAPNET_TRAIN + "semi_supervised:\n  method: depthmix\n\n  ema_decay: 2\n")
    line = len(path.read_text().splitlines())
    assert str(error_for(path, check_paths=False)).startswith(
        f"{path}, line {line}: key 'semi_supervised': 'ema_decay' must be a number")
    path = write(workdir, ORIGINAL_ADAPNET_TRAIN + "augmentation: {flip: true,\n  flop: true}\n")
    assert str(error_for(path, check_paths=False)).startswith(
        f"{path}, line {len(path.read_text().splitlines())}: key 'augmentation': unknown augmentation key 'flop'")
    # The line of a key found wrong after reading (`RunConfig.where`), e.g. by the trainer.
    path = write(workdir, ORIGINAL_ADAPNET_TRAIN)
    line = 1 + next(n for n, text in enumerate(path.read_text().splitlines()) if text.startswith("batch_size"))
    config = load_config(path, check_paths=False)
    assert config.where("batch_size") == f"{path}, line {line}"
    assert config.where("initialize") == config.where("intialize") == f"{path}, line 4"
    assert config.where("semi_supervised") == str(path)  # not in the file


def test_a_section_given_with_set_changes_the_files_section_key_by_key(workdir):
    """`--set 'adaptation={ema_every: 10}'` on an ABN config replaced the whole section, so the run
    trained SAC (the default method) without a word; the same for semi_supervised's method."""
    from ssma_tf.config.reader import config_with_overrides

    abn = train_dict(adaptation={"method": "abn"}, target_data="records/train.tfrecords")
    with pytest.warns(ConfigWarning, match="adaptation key 'ema_every' not used by method abn"):
        config = config_with_overrides(abn, {"adaptation": {"ema_every": 10}}, source="a.config", check_paths=False)
    assert config.adaptation.method == "abn" and config.adaptation.ema_every == 10
    augmented = train_dict(augmentation={"flip": False, "rotation": False})
    config = config_with_overrides(augmented, {"augmentation": {"skew": False}}, source="a.config")
    assert (config.augmentation.flip, config.augmentation.rotation, config.augmentation.skew) == (False, False, False)
    # true is {} (helper 150: it put back the defaults, SAC for an ABN config, flip for flip: false).
    assert config_with_overrides(abn, {"adaptation": True}, source="a.config", check_paths=False).adaptation.method \
        == "abn"
    assert config_with_overrides(augmented, {"augmentation": True}, source="a.config").augmentation.flip is False
    assert config_with_overrides(train_dict(), {"augmentation": True}, source="a.config").augmentation.flip is True
    # A value that is not a mapping still replaces the section: false switches it off.
    assert config_with_overrides(abn, {"adaptation": False}, source="a.config", check_paths=False).adaptation is None
    # An error about the merged section names the --set as given.
    with pytest.raises(ConfigError, match=r"with --set adaptation=\{'views': 0\}"):
        config_with_overrides(abn, {"adaptation": {"views": 0}}, source="a.config", check_paths=False)


def test_a_set_of_a_key_the_file_spells_as_its_alias_is_blamed_on_the_set(workdir):
    """`--set intialize=...` over the file's `intialize:` was kept as `initialize`, and its error
    named the file's line, whose value the --set had replaced (helper 167)."""
    path = write(workdir, ORIGINAL_ADAPNET_TRAIN)
    for spelling in ("intialize", "initialize"):
        error = error_for(str(path), overrides={spelling: "missing/b.weights.h5"})
        assert str(error).startswith(f"{path} with --set {spelling}='missing/b.weights.h5': key '")
        assert error.line is None and "missing/b.weights.h5" in str(error)
    config = load_config(str(path), overrides={"intialize": "", "learning_rate": 0.001})
    assert "initialize" not in dict(config.lines) and "batch_size" in dict(config.lines)


def test_a_key_yaml_reads_as_no_name_in_a_sections_set_is_blamed_on_the_set(workdir):
    """`--set 'augmentation={yes: true}'` was blamed on the file, without the --set (helper 167)."""
    path = write(workdir, ORIGINAL_ADAPNET_TRAIN + "augmentation:\n  flip: true\n")
    error = error_for(str(path), check_paths=False, overrides={"augmentation": {True: True}})
    assert str(error).startswith(f"{path} with --set augmentation={{True: True}}: key 'augmentation': YAML reads one "
                                 "of its keys as True (bool), not as a name")
    # The file's own such key is still the file's, with its line.
    path = write(workdir, ORIGINAL_ADAPNET_TRAIN + "augmentation:\n  on: true\n")
    error = error_for(str(path), check_paths=False, overrides={"augmentation": {"flip": False}})
    assert str(error).startswith(f"{path}, line {len(path.read_text().splitlines())}: key 'augmentation: on'")


def test_a_files_section_key_is_blamed_with_its_line_when_a_set_changes_another_key_of_the_section(workdir):
    """A typo in the file's `augmentation:` section was blamed on `--set 'augmentation={scale: ...}'`,
    without the file's line, though the --set gave only a right key."""
    path = write(workdir, ORIGINAL_ADAPNET_TRAIN + "augmentation:\n  fliip: true\n  scale: [0.5, 2.0]\n")
    line = len(path.read_text().splitlines()) - 1
    error = error_for(str(path), check_paths=False, overrides={"augmentation": {"scale": [0.5, 1.5]}})
    assert str(error).startswith(f"{path}, line {line}: key 'augmentation': unknown augmentation key 'fliip'")
    # The --set's own key is still blamed on the --set.
    error = error_for(str(path), check_paths=False, overrides={"augmentation": {"fliip": False}})
    assert str(error).startswith(f"{path} with --set augmentation={{'fliip': False}}: key 'augmentation'")


def test_a_dataset_given_on_the_command_line_is_blamed_for_the_class_count_not_the_file(workdir):
    """`--set dataset=freiburg_forest` on a 12-class config blamed the file's num_classes line."""
    path = write(workdir, yaml.safe_dump(train_dict(dataset="cityscapes", num_classes=12)))
    error = error_for(str(path), overrides={"dataset": "freiburg_forest"})
    assert error.key == "dataset" and (
        "dataset freiburg_forest has 6 classes (void included), but num_classes is 12 (" in str(error))
    error = error_for(str(path), overrides={"num_classes": 7})
    assert error.key == "num_classes" and "dataset cityscapes has 12 classes" in str(error)


def test_a_model_given_on_the_command_line_is_blamed_for_a_key_of_the_other_model(workdir):
    """`--set model=SSMA` on an expert's config blamed the file's input_modality line."""
    path = write(workdir, yaml.safe_dump(train_dict(input_modality="modality2")))
    error = error_for(str(path), overrides={"model": "SSMA"})
    assert error.key == "model" and "the file's key 'input_modality' (" in str(error)
    assert "is for AdapNet_pp; SSMA reads both modalities; unset it with --set input_modality=" in str(error)
    error = error_for(str(path), overrides={"model": "SSMA", "input_modality": "modality2"})
    assert error.key == "input_modality"


def test_easpp_rates_are_three_positive_integers_built_into_the_network(workdir):
    """A checkpoint does not hold the eASPP rates: the config says them (the released 19-class
    Cityscapes models were trained with 6, 12, 18 and loaded with the default 3, 6, 12)."""
    from ssma_tf.models.factory import build_model

    config = config_from_dict(train_dict(easpp_rates=[6, 12, 18], num_classes=3), source="test.config")
    assert config.easpp_rates == (6, 12, 18) and config.to_dict()["easpp_rates"] == [6, 12, 18]
    assert build_model(config).encoder.easpp_rates == (6, 12, 18)
    assert build_model(config_from_dict(train_dict(num_classes=3), source="t")).encoder.easpp_rates == (3, 6, 12)
    assert "expected 3 integers, got 2" in str(error_for(train_dict(easpp_rates=[6, 12])))
    assert "easpp_rates" in str(error_for(train_dict(easpp_rates=[6, 12, 1.5])))
    assert "easpp_rates" in str(error_for(train_dict(easpp_rates=[0, 6, 12])))
    assert "easpp_rates" in str(error_for(train_dict(easpp_rates=6)))
    fusion = dict(train_dict(easpp_rates=[6, 12, 18]), model="SSMA", fusion="average")
    fusion.pop("input_modality", None)
    assert "the fusion baselines keep the released [3, 6, 12] (fusion: average)" in str(error_for(fusion))


def test_aux_heads_are_refused_on_a_fusion_without_a_decoder_of_its_own(workdir):
    """Before: `fusion: late` with `aux_heads: true` trained without them, `aux_loss_weights` read by nothing."""
    from ssma_tf.models.factory import build_model

    def fusion(name, **extra):
        values = dict(train_dict(num_classes=3, **extra), model="SSMA", fusion=name)
        values.pop("input_modality", None)
        return values

    for name in ("average", "maximum", "late", "cmode"):
        assert str(error_for(fusion(name, aux_heads=True))).endswith(
            f"key 'aux_heads': fusion: {name} combines its experts' outputs and has no decoder of its own to put "
            "auxiliary heads on (those of ssma, stacking, lfc, fusenet have); leave aux_heads out")
        assert config_from_dict(fusion(name, aux_heads=False), source="t").aux_heads is False
    for name in ("lfc", "stacking"):
        config = config_from_dict(fusion(name, aux_heads=True), source="t")
        assert build_model(config).aux_heads is True


def test_a_moved_run_folder_is_not_resumed_at_its_old_path(workdir):
    """`config.yaml` holds absolute paths: read from a moved folder holding checkpoints it is
    refused (before: a run from step 0 into the old path); a new checkpoint takes its log_dir
    along (before: the old run's logs folder)."""
    from ssma_tf.config.runs import run_config, write_run_config

    (workdir / "runA").mkdir()
    config = load_config(write(workdir, ORIGINAL_ADAPNET_TRAIN.replace("checkpoint/adapnet", "runA")))
    write_run_config(config, workdir / "runA")
    assert "log_dir" not in yaml.safe_load((workdir / "runA" / "config.yaml").read_text())
    # The file as written before the fix: the derived log_dir spelled out.
    old = yaml.safe_load((workdir / "runA" / "config.yaml").read_text())
    old["log_dir"] = str(workdir / "runA" / "logs")
    (workdir / "runA" / "config.yaml").write_text(yaml.safe_dump(old))
    assert load_config(workdir / "runA" / "config.yaml").checkpoint == str(workdir / "runA")

    (workdir / "runA").rename(workdir / "runB")
    moved = workdir / "runB" / "config.yaml"
    # A copy as a template (no run's checkpoints beside it) still names where its run goes; so
    # does a folder holding some other checkpoint (the ImageNet initialisation).
    reader.check_not_moved(moved)
    (workdir / "runB" / "AdapNet_pp_init.ckpt.index").write_bytes(b"")
    reader.check_not_moved(moved)
    assert load_config(moved).checkpoint == str(workdir / "runA")
    (workdir / "runB" / "ckpt-5.index").write_bytes(b"")
    (workdir / "runB" / "checkpoint").write_text('model_checkpoint_path: "ckpt-5"\n')
    with pytest.raises(ConfigError) as caught:
        reader.check_not_moved(moved)  # what ssma-train and ssma-pretrain-depth do first
    error = caught.value
    assert error.key == "checkpoint" and str(workdir / "runB") in str(error) and "moved" in str(error)
    assert f"--set checkpoint={workdir / 'runB'}" in str(error) and "give it a new checkpoint folder" in str(error)
    reader.check_not_moved(moved, {"checkpoint": str(workdir / "runB")})
    # The other commands read it as it is (ssma-prune, ssma-importance-weights: weights named apart).
    assert load_config(moved).checkpoint == str(workdir / "runA")

    resumed = load_config(moved, overrides={"checkpoint": str(workdir / "runB")})
    assert (resumed.checkpoint, resumed.log_dir) == (str(workdir / "runB"), str(workdir / "runB" / "logs"))
    assert run_config(workdir / "runB", "train").log_dir == str(workdir / "runB" / "logs")
    # A log_dir of its own stays.
    own = yaml.safe_load(moved.read_text())
    own["log_dir"] = str(workdir / "tb")
    moved.write_text(yaml.safe_dump(own))
    assert load_config(moved, overrides={"checkpoint": str(workdir / "runB")}).log_dir == str(workdir / "tb")


def test_yaml_1_1_integers_are_not_read_as_octal_or_base_60(workdir):
    """`010` was 8 and `1:30` was 90, in the file and in `--set` alike, silently."""
    for text in ("010", "1:30"):
        error = error_for(write(workdir, ORIGINAL_ADAPNET_TRAIN.replace("save_step: 100", f"save_step: {text}")))
        assert (error.key, error.line) == ("save_step", 13) and f"got '{text}' (str)" in str(error)
        assert parse_overrides([f"save_step={text}"]) == {"save_step": text}
    # gpu_id reads the text as written (`010` is no longer device 8); `1:0` is no id (before: 60).
    assert "gpu_id" in str(error_for(write(workdir, ORIGINAL_ADAPNET_TRAIN.replace("gpu_id: '0'", "gpu_id: 1:0"))))
    assert parse_overrides(["a=0", "b=-12", "c=1_000", "d=0x10", "e=1e-3", "f=07.5"]) == {
        "a": 0, "b": -12, "c": 1000, "d": 16, "e": 1e-3, "f": 7.5}


def test_yaml_merge_keys_signed_fractions_and_whole_floats_in_sections_are_read(workdir):
    """A merge key (`<<: *defaults`) was "could not determine a constructor for the tag ...merge";
    `-.5` was a string ("expected a number, got '-.5' (str)"); a section's integer refused `1e2`,
    which a top-level one reads as 100 (helper 131)."""
    from ssma_tf.config.reader import config_with_overrides

    text = yaml.safe_dump(train_dict()) + (
        "shared: &teacher {method: classmix, confidence: 0.9}\n".replace("shared", "semi_supervised")
        + "unlabeled_data: records/train.tfrecords\n")
    path = write(workdir, text.replace("semi_supervised: &teacher", "semi_supervised:\n  <<: &teacher"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        config = load_config(str(path), check_paths=False)
    assert (config.semi_supervised.method, config.semi_supervised.confidence) == ("classmix", 0.9)
    assert parse_overrides(["a=-.5", "b=+.5", "c=.5e-1"]) == {"a": -0.5, "b": 0.5, "c": 0.05}
    abn = train_dict(adaptation={"method": "sac"}, target_data="records/train.tfrecords")
    config = config_with_overrides(abn, {"adaptation": {"ema_every": 1e2}}, source="a.config", check_paths=False)
    assert config.adaptation.ema_every == 100 and isinstance(config.adaptation.ema_every, int)
    # 1e20 passed and failed in training with an OverflowError traceback naming no key (helper 343).
    for section, extra in (("adaptation", {"method": "sac"}), ("semi_supervised", {})):
        with pytest.raises(ConfigError, match=rf"key '{section}': 'ema_every' must be an integer in "
                                              r"\[1, 2147483647\], got 100000000000000000000$"):
            config_with_overrides(abn, {section: {**extra, "ema_every": 1e20}}, source="a.config", check_paths=False)


def test_a_seed_beyond_what_the_generators_take_is_refused_by_the_reader(workdir):
    """Before: accepted, then a traceback from keras.utils.set_random_seed in the trainer."""
    error = error_for(train_dict(seed=2**32))
    assert error.key == "seed" and "[0, 4294967295]" in str(error)
    assert config_from_dict(train_dict(seed=2**32 - 1)).seed == 2**32 - 1


def test_aux_loss_weights_without_auxiliary_heads_are_warned_of(workdir):
    """SSMA builds no auxiliary heads unless asked: the weights were read by nothing, silently."""
    ssma = yaml.safe_load(ORIGINAL_SSMA_TRAIN)
    with pytest.warns(ConfigWarning, match=r"aux_loss_weights weighs the auxiliary heads' losses, and this SSMA has "
                                           r"none: they take aux_heads: true; the weights are not used"):
        config_from_dict({**ssma, "aux_loss_weights": [1.0, 1.0]})  # a warning: older runs' config.yaml resume
    with pytest.warns(ConfigWarning, match="a fusion with a decoder"):
        config_from_dict({**ssma, "aux_loss_weights": [1.0, 1.0], "fusion": "average", "checkpoint1": None,
                          "checkpoint2": None}, check_paths=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)
        assert config_from_dict({**ssma, "aux_loss_weights": [1.0, 1.0], "aux_heads": True}).aux_loss_weights == (1, 1)
        # The default (every SSMA run's config.yaml spells it out) and zeros pass; evaluation reads neither.
        config_from_dict({**ssma, "aux_loss_weights": list(constants.AUX_LOSS_WEIGHTS)})
        config_from_dict({**ssma, "aux_loss_weights": [0, 0]})
        test = yaml.safe_load(ORIGINAL_SSMA_TEST)
        config_from_dict({**test, "aux_loss_weights": [1.0, 1.0]}, mode="eval")


def test_an_empty_augmentation_section_is_an_error_and_set_unsets_it(workdir):
    """Every shipped config has `augmentation: {}`; commenting its keys out turned augmentation
    off without a word."""
    path = write(workdir, ORIGINAL_ADAPNET_TRAIN + "augmentation:\n  # flip: false\n")
    error = error_for(path)
    assert (error.key, error.line) == ("augmentation", 15) and "is empty; write 'augmentation: {}'" in str(error)
    assert load_config(path, overrides={"augmentation": None}).augmentation == AugmentationConfig.disabled()
    assert load_config(path, "eval", check_paths=False, required=reader.Required((), "a test")).mode == "eval"


def test_keys_yaml_reads_as_booleans_are_named_as_written_with_their_line(workdir):
    error = error_for(write(workdir, ORIGINAL_ADAPNET_TRAIN + "on: true\n"))
    assert (error.key, error.line) == ("on", 15) and "YAML reads this key as True (bool)" in str(error)
    error = error_for(write(workdir, ORIGINAL_ADAPNET_TRAIN + "augmentation:\n  flip: true\n  yes: 1\n"))
    assert (error.key, error.line) == ("augmentation: yes", 17)


def test_a_value_starting_with_a_yaml_sign_is_met_with_the_advice_to_quote_it(workdir):
    error = error_for(write(workdir, ORIGINAL_ADAPNET_TRAIN.replace("'train.tfrecords'", "*.tfrecords")))
    assert "line 6" in str(error) and "quote it, '*.tfrecords'" in str(error)
    # With --set, the whole flag: the shell takes quotes off a value quoted alone (helper 150).
    advice = r"quote it inside the shell's quotes, --set \"train_data='\*_train.tfrecords'\"$"
    with pytest.raises(ConfigError, match=advice):
        parse_overrides(["train_data=*_train.tfrecords"])
    assert parse_overrides(["train_data='*_train.tfrecords'"]) == {"train_data": "*_train.tfrecords"}
    # As an item of a list, in block and flow style.
    for listed in ("train_data:\n  - *.tfrecords\n", "train_data: [a.tfrecords, *.tfrecords]\n"):
        text = ORIGINAL_ADAPNET_TRAIN.replace("train_data: 'train.tfrecords'\n", listed)
        assert "quote it, '*.tfrecords'" in str(error_for(write(workdir, text)))


def test_warnings_name_the_line_or_the_set_that_gave_the_value(workdir):
    path = write(workdir, ORIGINAL_ADAPNET_TRAIN)
    with pytest.warns(ConfigWarning) as caught:
        load_config(path, overrides={"end_learning_rate": 0.1})
    assert str(caught[0].message).startswith(f"{path} with --set end_learning_rate: end_learning_rate 0.1")
    with pytest.warns(ConfigWarning) as caught:
        load_config(write(workdir, ORIGINAL_ADAPNET_TRAIN + "end_learning_rate: 0.1\n"))
    assert str(caught[0].message).startswith(f"{path}, line 15: end_learning_rate 0.1")


def test_a_modality2_interpolation_an_rgb_expert_does_not_read_is_warned_of(workdir):
    """`modality2_interpolation: bilinear` for an AdapNet++ of modality 1 was read by nothing."""
    path = write(workdir, ORIGINAL_ADAPNET_TRAIN + "modality2_interpolation: bilinear\n")
    line = len(path.read_text().splitlines())
    with pytest.warns(ConfigWarning, match=rf"^{re.escape(str(path))}, line {line}: modality2_interpolation bilinear "
                                           r"is not used: this AdapNet_pp reads modality1 only"):
        load_config(str(path), check_paths=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)  # the expert of modality 2 reads it
        load_config(str(path), check_paths=False, overrides={"input_modality": "modality2"})
        config_from_dict(train_dict(modality2_interpolation="nearest"), check_paths=False)


def test_a_modality2_interpolation_the_list_overrides_is_warned_of(workdir):
    """Both keys given and disagreeing: the list won without a word."""
    ssma = yaml.safe_load(ORIGINAL_SSMA_TRAIN)
    with pytest.warns(ConfigWarning, match=r"modality2_interpolation bilinear is not used: modality_interpolations "
                                           r"gives modality 2's \(nearest\)"):
        config = config_from_dict({**ssma, "modality2_interpolation": "bilinear",
                                   "modality_interpolations": ["nearest"]})
    assert config.interpolations == ("nearest",)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)  # a run's config.yaml: the default beside the list
        config_from_dict({**ssma, "modality2_interpolation": "nearest", "modality_interpolations": ["bilinear"]})


def test_a_savedmodel_export_given_as_an_exported_model_to_evaluate_is_named_as_such(tmp_path):
    """`ssma-evaluate --exported SAVEDMODEL --backend tflite` said "not an OpenVINO or TFLite export
    ...; or a config with -c", which refuses that folder too (helper 132)."""
    from ssma_tf.config.runs import export_config

    (tmp_path / "saved" / "assets.extra").mkdir(parents=True)
    metadata = tmp_path / "saved" / "assets.extra" / "ssma_tf.json"
    metadata.write_text(json.dumps({"format": "ssma_tf SavedModel export",
                                    "tflite": {"float32": "model_float32.tflite"}}))
    with pytest.raises(ConfigError, match=r"saved is a SavedModel export with TFLite conversions "
                                          r"\(model_float32\.tflite: uint8 images in, .*export with ssma-export "
                                          r"--format tflite \(or openvino\)"):
        export_config(tmp_path / "saved", {"test_data": "t.tfrecords"})
    metadata.write_text(json.dumps({"format": "ssma_tf SavedModel export"}))
    with pytest.raises(ConfigError, match=r"is not an OpenVINO or TFLite export \(metadata 'backend': None\); "
                                          r"give such an export folder \(ssma-export --format openvino or tflite\)"):
        export_config(tmp_path / "saved", {"test_data": "t.tfrecords"})


def test_cluster_settings_hold_every_key_but_the_paths_whatever_is_set(workdir):
    """Helper 220: built from `to_dict`, which leaves unset keys out, a worker given `--set seed=5`
    sent a longer row than the others, and the gather failed with a TensorFlow error."""
    plain, seeded = config_from_dict(train_dict()), config_from_dict(train_dict(seed=5))
    assert list(plain.cluster_settings()) == list(seeded.cluster_settings())
    assert plain.cluster_settings()["seed"] is None and seeded.cluster_settings()["seed"] == 5
    assert not {"train_data", "checkpoint", "gpu_id", "log_dir"} & set(plain.cluster_settings())


def test_yaml_syntax_errors_name_the_line_where_the_unclosed_construct_started(workdir):
    """Helper 285: YAML's context was dropped, so an unclosed quote on line 9 of 11 was "line 12:
    found unexpected end of stream", and a second document "but found another document"."""
    lines = ORIGINAL_ADAPNET_TRAIN.splitlines()[:11]
    quoted = "\n".join(lines[:8] + ["height: '384"] + lines[9:]) + "\n"
    assert str(error_for(write(workdir, quoted))).endswith(
        "not valid YAML (line 12, column 1): found unexpected end of stream, while scanning a quoted scalar "
        "started on line 9")
    listed = "\n".join(lines[:9] + ["eval_scales: [1.0,"] + lines[10:]) + "\n"
    assert str(error_for(write(workdir, listed))).endswith(
        "(line 12, column 1): expected ',' or ']', but got '<stream end>', while parsing a flow sequence started on "
        "line 10")
    assert str(error_for(write(workdir, "model: AdapNet_pp\nnum_classes:5\nbatch_size: 4\n"))).endswith(
        "(line 3, column 1): could not find expected ':', while scanning a simple key started on line 2")
    assert str(error_for(write(workdir, ORIGINAL_ADAPNET_TRAIN + "---\nbatch_size: 4\n"))).endswith(
        "(line 15, column 1): expected a single document in the stream, but found another document")
    with pytest.raises(ConfigError, match=r"value \"'abc\" is not valid YAML: found unexpected end of stream, while "
                                          r"scanning a quoted scalar started at column 1$"):
        parse_overrides(["dataset='abc"])


def test_numbers_and_dates_yaml_cannot_build_are_errors_not_tracebacks(workdir):
    """Helper 285: `0x_` and `._` matched the number resolvers, and `int('', 16)` or `float('.')`
    then raised a ValueError traceback (exit 1), in the file and in --set alike."""
    error = error_for(write(workdir, ORIGINAL_ADAPNET_TRAIN + "seed: 0x_\n"))
    assert (error.key, error.line) == ("seed", 15) and "got '0x_' (str)" in str(error)
    assert parse_overrides(["learning_rate=._", "seed=-0x_", "a=0x_1", "b=._5", "c=0x1F"]) == {
        "learning_rate": "._", "seed": "-0x_", "a": 1, "b": 0.5, "c": 31}
    # What the resolvers still take and the constructors refuse (a date that is none): an error with the line.
    error = error_for(write(workdir, ORIGINAL_ADAPNET_TRAIN + "dataset: 2020-13-45\n"))
    assert str(error).endswith("not valid YAML (line 15, column 10): '2020-13-45' reads as a date but is not one "
                               "(month must be in 1..12); quote it to mean text")
    with pytest.raises(ConfigError, match=r"key 'dataset': value '\[2020-02-30\]' is not valid YAML: '2020-02-30' "
                                          r"reads as a date but is not one \(day is out of range for month\)"):
        parse_overrides(["dataset=[2020-02-30]"])


@pytest.mark.parametrize("value", ["none", "false", "float32", "'off'"])
def test_mixed_precision_turned_off_in_words_says_how_to_leave_it_out(workdir, value):
    """Helper 285: "must be one of mixed_float16, mixed_bfloat16, got 'none'" (the trainer prints
    `mixed_precision: none` for float32) or "expected a string, got False (bool)"."""
    error = error_for(write(workdir, ORIGINAL_ADAPNET_TRAIN + f"mixed_precision: {value}\n"))
    assert (error.key, error.line) == ("mixed_precision", 15)
    assert str(error).endswith("; to train in float32, leave the key out (or --set mixed_precision=)")
    assert "must be one of mixed_float16, mixed_bfloat16, got" in str(error)
    assert load_config(write(workdir, ORIGINAL_ADAPNET_TRAIN + "mixed_precision:\n")).mixed_precision is None
    # A slip in a policy's name gets the suggestion alone.
    assert str(error_for(train_dict(mixed_precision="mixed_float61"))).endswith("did you mean 'mixed_float16'?")
    # A choice every config needs is not told to be left out (helper 295: `model: none` was, and then
    # "is missing").
    for value in ("none", False):
        message = str(error_for(train_dict(model=value)))
        assert "model" in message and "leave the key out" not in message, message


def test_a_duplicate_key_gets_its_first_line_and_no_advice_to_quote(workdir):
    """Helper 285: the quoting advice was built from the repeated line's value, so `checkpoint1: *c`
    twice said "a value starting with '*' is YAML syntax, not text: quote it"."""
    text = "anchors: &c rgb/model.ckpt\ncheckpoint1: *c\nmodel: SSMA\ncheckpoint1: *c\n"
    assert str(error_for(write(workdir, text))).endswith(
        "not valid YAML (line 4, column 1): duplicate key 'checkpoint1' (first on line 2)")
    # The advice stays where a sign is the slip.
    assert str(error_for(write(workdir, "model: SSMA\ncheckpoint1: *c\n"))).endswith(
        "found undefined alias 'c'; a value starting with '*' is YAML syntax, not text: quote it, '*c'")


def test_the_help_of_set_quotes_its_list_example_for_the_shell():
    """Helper 285: `--set train_data=[a.tfrecords,b.tfrecords]` is a shell glob (a file named
    `train_data=a` turns it into that name; zsh stops with "no matches found")."""
    import argparse

    from ssma_tf.cli.common import add_overrides

    parser = argparse.ArgumentParser()
    add_overrides(parser)
    assert "--set 'train_data=[a.tfrecords, b.tfrecords]'" in " ".join(parser.format_help().split())


def test_a_word_yaml_reads_as_a_bool_for_a_text_key_is_met_with_the_advice_to_quote_it(workdir):
    """Helper 285: `dataset: no` was "expected a string, got False (bool)", without why."""
    error = error_for(write(workdir, ORIGINAL_ADAPNET_TRAIN + "dataset: no\n"))
    assert (error.key, error.line) == ("dataset", 15)
    assert str(error).endswith("expected a string, got False (bool): YAML reads yes, no, on and off as true or "
                               "false; quote the word")
    from ssma_tf.config.reader import config_with_overrides

    # The --set as typed (helper 330: "with --set dataset=True", never typed).
    with pytest.raises(ConfigError, match=r"with --set dataset=on: key 'dataset': expected a string, got True "
                                          r"\(bool\): YAML reads"):
        config_with_overrides(train_dict(), parse_overrides(["dataset=on"]), source="t.config", check_paths=False)


@pytest.mark.parametrize("text, where, said", [
    ("checkpoint: \x1b[0mcheckpoint/adapnet\n", "line 15, column 13",
     "control character U+001B (escape) is not allowed in YAML (a terminal colour code pasted in?)"),
    # A Windows line break is one (the column counts from it).
    ("seed: 1\r\ndataset: \x0c\n", "line 16, column 10", "control character U+000C (form feed) is not allowed in YAML"),
    ("dataset: c\x00ityscapes\n", "line 15, column 11", "control character U+0000 (NUL) is not allowed in YAML"),
    ("dataset: \ufffe\n", "line 15, column 10", "noncharacter U+FFFE is not allowed in YAML"),
])
def test_a_character_yaml_refuses_in_a_file_is_named_with_its_line_and_column(workdir, text, where, said):
    """Helper 330. Before: PyYAML's two lines, "not valid YAML: unacceptable character #x001b:
    special characters are not allowed\\n  in "<unicode string>", position 67", without a line."""
    path = workdir / "run.config"
    path.write_bytes((ORIGINAL_ADAPNET_TRAIN + text).encode("utf-8"))
    error = error_for(path)
    assert str(error) == f"{path}, {where}: {said}"
    assert "\n" not in str(error) and f"line {error.line}, column {error.column}" == where


def test_a_utf16_file_without_a_byte_order_mark_is_told_to_be_saved_as_utf8(workdir):
    """Helper 330. Before: "unacceptable character #x0000 ... position 1", two lines, and nothing
    about the encoding (UTF-16 without a BOM decodes as UTF-8, a NUL beside every letter)."""
    path = workdir / "run.config"
    path.write_bytes(ORIGINAL_ADAPNET_TRAIN.encode("utf-16-le"))
    assert str(error_for(path)) == (f"{path}, line 1, column 2: control character U+0000 (NUL) is not allowed in "
                                    "YAML; the file looks like UTF-16 (a NUL beside every letter): save it as UTF-8")


def test_a_character_yaml_refuses_in_a_set_is_named_with_the_key_and_its_place(workdir):
    """Helper 330. Before: "--set: key 'checkpoint': value '\\x1b[0mruns/a' is not valid YAML:
    unacceptable character #x001b: special characters are not allowed\\n  in "<unicode string>",
    position 0", two lines."""
    with pytest.raises(ConfigError) as info:
        parse_overrides(["batch_size=4", "checkpoint=\x1b[0mruns/a"])
    assert str(info.value) == ("--set: key 'checkpoint': value '\\x1b[0mruns/a': control character U+001B (escape) "
                               "at character 1 of the value is not allowed in YAML (a terminal colour code pasted in?)")
    with pytest.raises(ConfigError) as info:
        parse_overrides(["checkpoint=runs/\x0ca"])
    assert str(info.value) == ("--set: key 'checkpoint': value 'runs/\\x0ca': control character U+000C (form feed) "
                               "at character 6 of the value is not allowed in YAML")


def test_a_set_is_named_in_errors_as_it_was_typed(workdir):
    """Helper 330. Before: the item rebuilt from its value in Python's words, "with --set
    augmentation={True: True}" for `--set 'augmentation={on: true}'`, "augmentation.flip=True"
    for `augmentation.flip=true`, "learning_rate=0.002" for `learning_rate=2e-3`."""
    path = write(workdir, ORIGINAL_ADAPNET_TRAIN)
    for item, said in (("augmentation={on: true}", "YAML reads one of its keys as True (bool)"),
                       ("augmentation.flip=true", "unknown key: a section's keys go inside it"),
                       ("batch_size= nine", "expected an integer, got 'nine' (str)")):
        error = error_for(str(path), overrides=parse_overrides([item]))
        typed = item.replace("= ", "=")  # the spaces around the value are no part of it
        assert str(error).startswith(f"{path} with --set {typed}: key '{item.partition('=')[0]}") and said in str(error)
    # Errors found after loading name it so too (`RunConfig.where`).
    items = ["learning_rate=2e-3", "intialize=rgb/model.ckpt-150000"]
    config = load_config(str(path), overrides=parse_overrides(items))
    assert config.where("learning_rate") == f"{path} with --set learning_rate=2e-3"
    assert config.where("initialize") == f"{path} with --set intialize=rgb/model.ckpt-150000"
    # A value a caller replaced after parsing, or a plain mapping, is shown from its value, as before.
    overrides = parse_overrides(["batch_size=8"])
    overrides["batch_size"] = "eight"
    assert f"{path} with --set batch_size='eight': key" in str(error_for(str(path), overrides=overrides))
    assert f"{path} with --set batch_size='eight': key" in str(error_for(str(path), overrides={**overrides}))


def test_a_key_a_yaml_merge_brings_in_is_named_with_its_line(workdir):
    """Helper 330. Before: "run.config: key 'bogus': unknown key" for a key given by `<<: {...}`,
    without the line that a key of the file's own gets; the same inside a section."""
    path = write(workdir, ORIGINAL_ADAPNET_TRAIN + "<<: {batch_size: 5, bogus: 1}\n")
    error = error_for(path)
    assert str(error) == f"{path}, line 15: key 'bogus': unknown key" and error.line == 15
    # An alias, and a list of mappings: the line where the merged key is written; the file's own
    # key (`batch_size`, line 7) wins over the merged one, as its value does.
    text = ORIGINAL_ADAPNET_TRAIN.replace("gpu_id: '0'", "augmentation: &a {flip: true, fliip: 1}") + (
        "<<: [{seed: 1}, *a, {batch_size: nine}]\n")
    mapping = reader.read_yaml_file(write(workdir, text), "the config file")
    assert (mapping.line_of("fliip"), mapping.line_of("seed"), mapping.line_of("batch_size")) == (1, 15, 7)
    # In a section: the merged key's line, an explicit key of the section winning.
    path = write(workdir, ORIGINAL_ADAPNET_TRAIN + "augmentation:\n  flip: true\n  <<: {flip: 1, fliip: 2}\n")
    error = error_for(path)
    assert str(error).startswith(f"{path}, line 17: key 'augmentation': unknown augmentation key 'fliip'")
    assert reader.read_yaml_file(path, "the config file").inner_line_of("augmentation", "flip") == 16
    # A mapping that merges itself (legal YAML) is read once, not until a RecursionError.
    path = write(workdir, ORIGINAL_ADAPNET_TRAIN + "<<: &m {bogus: 1, <<: *m}\n")
    assert str(error_for(path)) == f"{path}, line 15: key 'bogus': unknown key"
