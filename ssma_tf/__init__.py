"""ssma-tf: SSMA and AdapNet++ (Valada, Mohan, Burgard, IJCV 2019) on TensorFlow 2 / Keras 3.

`ssma_tf.load_model("ssma_cityscapes_rgb_depth")` loads a released model (or a local checkpoint,
folder or archive), `ssma_tf.AdapNetPP` and `ssma_tf.SSMA` are the networks (with `from_preset`).
They are imported on first use, not with the package: every module of the package imports this
one (for `SERIALIZATION_PACKAGE`), and `import ssma_tf.config` must not start TensorFlow.

Which package holds what, and the one direction imports run in (checked by `.importlinter`):
`docs/architecture.md`, "The package's layers", with a table of where to find each concept.
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


def lazy_exports(namespace: dict, exports: dict):
    """The module `__getattr__` and `__dir__` of a package whose public names load on first use.

    Args:
        namespace: the package's `globals()`.
        exports: each public name and the module that defines it.

    Returns:
        (`__getattr__`, `__dir__`) for the package to assign.
    """
    package = namespace["__name__"]

    def __getattr__(name: str):
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        namespace[name] = value  # later look-ups skip this function
        return value

    def __dir__():
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__


__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)
