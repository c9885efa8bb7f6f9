"""ssma-tf: SSMA and AdapNet++ (Valada, Mohan, Burgard, IJCV 2019) on TensorFlow 2 / Keras 3.

`ssma_tf.load_model("ssma_cityscapes_rgb_depth")` loads a released model (or a local checkpoint,
folder or archive), `ssma_tf.AdapNetPP` and `ssma_tf.SSMA` are the networks (with `from_preset`).
They are imported on first use, not with the package: every module of the package imports this
one (for `SERIALIZATION_PACKAGE`), and `import ssma_tf.config` must not start TensorFlow.
"""

import importlib

__version__ = "0.1.0"

# Every serializable class of the project is registered under this package name, so that
# `.keras` files name their classes `ssma_tf>ClassName`.
SERIALIZATION_PACKAGE = "ssma_tf"

# Each public name and the module that defines it. The networks come through the zoo module,
# which gives them `from_preset` when it is imported.
_EXPORTS = {
    "load_model": "ssma_tf.checkpoints.zoo",
    "presets": "ssma_tf.checkpoints.zoo",
    "AdapNetPP": "ssma_tf.checkpoints.zoo",
    "SSMA": "ssma_tf.checkpoints.zoo",
}


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
