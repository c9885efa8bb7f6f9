"""Run configuration: the original YAML `.config` files, validated into a typed, frozen object.

The released scripts read a flat YAML mapping (`python train.py -c config/cityscapes_train.config`)
and looked keys up as they went, so a typo surfaced hours later as a `KeyError`, or never. Here the
whole file is checked before anything heavy starts: every key is known (a misspelt one gets the
closest known key as a suggestion), every required key is there, every value has the right type and
range, and every path the run will read exists. Any problem is a `ConfigError` that names the key
and the file.

Where things are:
- `run.py`: every key, declared once as a field of `RunConfig` made with `key(...)` (`keys.py`):
  its type, default, allowed range or choices, the modes that need it, a one-line description;
  `augmentation.py`: the same for the keys of the `augmentation` section (`AugmentationConfig`);
- `yaml_reader.py`: `ConfigError`, and reading any YAML file of the package (configs, run
  configs, datasets files) with one loader and one set of messages;
- `reader.py`: one reader per kind of key (none per key), and every rule that ties
  several keys together (fusion or unimodal model, `checkpoint1` with `checkpoint2`, defaults
  that follow from other keys, the dataset's class count);
- `sections.py`: a config section (a frozen dataclass of declared keys read from one mapping);
  `semi_supervised.py` and `adaptation.py`: the keys of those two sections;
- `runs.py`: the resolved `config.yaml` a training run writes, and reading a run folder back;
- `tables.py`: `configs/README.md`'s key tables, generated from the declarations
  (`python -m ssma_tf.config` prints them; a test fails when the two drift apart).

The original keys load unchanged (`gpu_id`, `model`, `num_classes`, `intialize` — sic —,
`checkpoint1`, `checkpoint2`, `checkpoint`, `train_data`, `test_data`, `batch_size`, `skip_step`,
`height`, `width`, `max_iteration`, `learning_rate`, `save_step`, `power`, and the SSMA files'
`dataset` and `type`). The new keys are optional and default to what the released code did.

Relative paths resolve against the current working directory, as they did in the original scripts
(which passed them straight to TensorFlow); the loaded config holds absolute paths, so later
changes of directory do not matter.

Loading a config imports no TensorFlow, so a bad config is reported in a fraction of a second.
"""

from ssma_tf.config.augmentation import AugmentationConfig
from ssma_tf.config.keys import MODES, Key, declared_keys, key
from ssma_tf.config.reader import (
    KNOWN_KEYS,
    PRETRAINING_RUN,
    REQUIRED_KEYS,
    ConfigError,
    ConfigWarning,
    config_from_dict,
    config_with_overrides,
    load_config,
    parse_overrides,
    refuse_pretraining,
)
from ssma_tf.config.run import RunConfig
from ssma_tf.config.tables import key_tables

__all__ = [
    "KNOWN_KEYS",
    "MODES",
    "PRETRAINING_RUN",
    "REQUIRED_KEYS",
    "AugmentationConfig",
    "ConfigError",
    "ConfigWarning",
    "Key",
    "RunConfig",
    "config_from_dict",
    "config_with_overrides",
    "declared_keys",
    "key",
    "key_tables",
    "load_config",
    "parse_overrides",
    "refuse_pretraining",
]
