"""How a config key is declared: `key(...)` makes a dataclass field carrying a `Key`.

A `Key` says how the key is read (its kind), what it may hold (range, choices), which modes need
or use it, and what it means in one line. The reader (`ssma_tf.config.reader`) and the tables of
`configs/README.md` (`ssma_tf.config.tables`) both work from these declarations alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

MODES = ("train", "eval")
TRAIN = ("train",)
EVAL = ("eval",)


@dataclasses.dataclass(frozen=True)
class Key:
    """How one config key is read, checked and documented (the metadata of its field).

    Attributes:
        doc: one line: what the key means.
        kind: how its value is read (the reader's `read_<kind>`): "int", "float", "bool",
            "str", "choice", "choices" (a list of choices), "floats", "ints", "names" (the modalities),
            "gpu_id", "path", "file", "folder" (to write in), "checkpoint", "checkpoints" (one per expert),
            "run_checkpoint", "patterns", a section ("augmentation", "semi_supervised",
            "adaptation"), or, in a section, "range".
        required: the modes ("train", "eval") that need the key.
        modes: the modes that use it (documentation: the others accept and ignore it).
        minimum: smallest allowed number (inclusive).
        above: the number must be greater than this.
        maximum: largest allowed number (inclusive).
        multiple_of: the number must be a multiple of this.
        choices: the allowed strings of a "choice".
        length: the number of items of a "floats" or "ints" list.
        items: what the items of a "floats" list are, for errors about all of them.
        check_in: the modes in which a path must exist (when paths are checked at all).
        alias: a second accepted spelling (giving both is an error).
        alias_inverts: the alias holds the negation of the key (`train_experts`).
        original: a key of the released `.config` files.
        mode_defaults: a default per mode, where it depends on the mode (the field's default is
            then the training one).
        default_doc: the default as the tables show it, where it follows from other keys.
    """

    doc: str
    kind: str
    required: tuple[str, ...] = ()
    modes: tuple[str, ...] = MODES
    minimum: Optional[float] = None
    above: Optional[float] = None
    maximum: Optional[float] = None
    multiple_of: Optional[int] = None
    choices: tuple[str, ...] = ()
    length: Optional[int] = None
    items: str = "values"
    check_in: tuple[str, ...] = ()
    alias: Optional[str] = None
    alias_inverts: bool = False
    original: bool = False
    mode_defaults: Optional[Mapping[str, Any]] = None
    default_doc: Optional[str] = None


def key(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING,
        **spec: Any) -> Any:
    """A dataclass field declaring a config key: its default and its `Key` metadata."""
    return dataclasses.field(
        default=default, default_factory=default_factory, metadata={"key": Key(**spec)}
    )


def declared_keys(cls: type) -> tuple[tuple[str, Key, Any], ...]:
    """The (name, `Key`, default) of every declared key of a config class, in declaration order."""
    out = []
    for field in dataclasses.fields(cls):
        spec = field.metadata.get("key")
        if spec is None:
            continue
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        else:
            default = None
        out.append((field.name, spec, default))
    return tuple(out)
