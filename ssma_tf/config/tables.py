"""The key tables of `configs/README.md`, written from the declarations.

`python -m ssma_tf.config` prints them; `tests/test_config.py` fails when the README's copy
differs, so the documentation cannot drift from the code.
"""

from __future__ import annotations

from typing import Any

from ssma_tf.config.adaptation import AdaptationConfig
from ssma_tf.config.augmentation import AugmentationConfig
from ssma_tf.config.keys import Key, declared_keys
from ssma_tf.config.run import RunConfig
from ssma_tf.config.semi_supervised import SemiSupervisedConfig


def _format_number(value: Any) -> str:
    if isinstance(value, float) and value and abs(value) < 1e-3:
        mantissa, exponent = f"{value:e}".split("e")
        return f"{float(mantissa):g}e{int(exponent)}"  # 1e-4 rather than 0.0001
    return repr(value) if isinstance(value, float) else str(value)


def _format_default(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return "[" + ", ".join(_format_default(v) for v in value) + "]"
    if isinstance(value, AugmentationConfig):
        return "off" if value == AugmentationConfig.disabled() else "on"
    return _format_number(value)


def _allowed(spec: Key) -> str:
    """What a key accepts, in words, from its declaration."""
    bounds = []
    if spec.above is not None:
        bounds.append(f"> {spec.above:g}")
    if spec.minimum is not None and not (spec.above is not None and spec.minimum <= spec.above):
        bounds.append(f"≥ {spec.minimum:g}")
    if spec.maximum is not None:
        # An integer bound in full, digits grouped (`seed`: 4 294 967 295, not 4.29497e+09).
        shown = f"{spec.maximum:,}".replace(",", " ") if isinstance(spec.maximum, int) else f"{spec.maximum:g}"
        bounds.append(f"≤ {shown}")
    if spec.multiple_of is not None:
        bounds.append(f"multiple of {spec.multiple_of}")
    bound = (" " + ", ".join(bounds)) if bounds else ""
    words = {
        "int": f"integer{bound}",
        "float": f"number{bound}",
        "floats": (f"{spec.length} numbers" if spec.length else "list of numbers") + bound,
        "ints": (f"{spec.length} integers" if spec.length else "list of integers") + bound,
        "bool": "true, false",
        "str": "text",
        "choice": ", ".join(f"`{c}`" for c in spec.choices),
        "gpu_id": "GPU index or indices",
        "path": "path",
        "file": "file",
        "folder": "folder",
        "checkpoint": "checkpoint",
        "checkpoints": "list of checkpoints",
        "names": "list of names",
        "choices": "list of " + ", ".join(f"`{c}`" for c in spec.choices),
        "run_checkpoint": "train: directory; eval: checkpoint",
        "patterns": "files or glob patterns",
        "augmentation": "mapping, true, false",
        "semi_supervised": "mapping, true, false",
        "adaptation": "mapping, true, false",
    }
    return words[spec.kind]


def _cell(spec: Key, default: Any, mode: str) -> str:
    """How a key reads in one mode's column: required, its default, optional or unused."""
    if mode in spec.required:
        return "required"
    if mode not in spec.modes:
        return "–"
    if spec.default_doc is not None:
        return f"default {spec.default_doc}"
    if spec.mode_defaults is not None:
        default = spec.mode_defaults[mode]
    return "optional" if default is None else f"default {_format_default(default)}"


def _section_table(cls: type) -> list[str]:
    """The rows of a section's key table."""
    rows = ["| key | default | accepts | meaning |", "| --- | --- | --- | --- |"]
    for name, spec, default in declared_keys(cls):
        if spec.kind == "range":
            low = f"[{spec.minimum:g}" if spec.minimum is not None else f"({spec.above:g}"
            high = f"{spec.maximum:g}]" if spec.maximum is not None else "∞)"
            accepts = f"[low, high] within {low}, {high}"
        else:
            accepts = _allowed(spec)
        rows.append(f"| `{name}` | {_format_default(default)} | {accepts} | {spec.doc} |")
    return rows


def key_tables() -> str:
    """The markdown key tables of `configs/README.md`, generated from the declarations."""

    def name_cell(name: str, spec: Key) -> str:
        if spec.alias is None:
            return f"`{name}`"
        if spec.original:  # the released files spell it the other way
            return f"`{spec.alias}` (or `{name}`)"
        inverse = ", its inverse" if spec.alias_inverts else ""
        return f"`{name}` (or `{spec.alias}`{inverse})"

    header = ["| key | train | eval | accepts | meaning |", "| --- | --- | --- | --- | --- |"]
    original, new = list(header), list(header)
    for name, spec, default in declared_keys(RunConfig):
        row = (f"| {name_cell(name, spec)} | {_cell(spec, default, 'train')} | "
               f"{_cell(spec, default, 'eval')} | {_allowed(spec)} | {spec.doc} |")
        (original if spec.original else new).append(row)
    augmentation = _section_table(AugmentationConfig)
    semi = _section_table(SemiSupervisedConfig)
    adaptation = _section_table(AdaptationConfig)
    return "\n".join(
        ["Original keys (loaded unchanged):", "", *original, "",
         "New keys (all optional; the defaults are the released behaviour, but for `keep_checkpoints`, "
         "whose release kept up to 1000 checkpoints, and `divergence_factor`, whose release never "
         "stopped a run):", "", *new, "",
         "Keys of the `augmentation` section (absent keys keep these defaults, the paper's):",
         "", *augmentation, "",
         "Keys of the `semi_supervised` section (absent keys keep these defaults, the released "
         "ones of Hoyer et al., CVPR 2021):", "", *semi, "",
         "Keys of the `adaptation` section (absent keys keep these defaults, the released ones "
         "of Araslanov and Roth, CVPR 2021):", "", *adaptation]
    ) + "\n"


# The markers around the generated tables in configs/README.md.
TABLES_BEGIN = "<!-- key tables: generated by `python -m ssma_tf.config` -->\n"
TABLES_END = "<!-- end of key tables -->"


def tables_in(text: str, source: str = "the file") -> str:
    """The generated part of a README between the markers.

    Raises:
        ValueError: a marker is missing.
    """
    if TABLES_BEGIN not in text or TABLES_END not in text:
        raise ValueError(f"{source} lost its generated-table markers ({TABLES_BEGIN.strip()} ... {TABLES_END})")
    return text.split(TABLES_BEGIN, 1)[1].split(TABLES_END, 1)[0]


def with_current_tables(text: str, source: str = "the file") -> str:
    """`text` with the part between the markers replaced by today's `key_tables()`."""
    old = tables_in(text, source)
    head, tail = text.split(TABLES_BEGIN + old + TABLES_END, 1)
    return head + TABLES_BEGIN + key_tables() + TABLES_END + tail
