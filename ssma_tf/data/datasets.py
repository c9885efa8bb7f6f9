"""Class names and colour palettes of the known datasets, read from `datasets.yaml`.

The metadata is data, not code: `datasets.yaml` beside this module lists, for each dataset, its
classes in id order (id 0 is void) with an RGB colour each. `get_dataset_info` returns one entry;
`dataset_info_or_none` is the look-up of what falls back to generic names and colours instead.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
import re
from typing import Dict, Optional, Tuple, Union

import numpy as np

from ssma_tf.config.yaml_reader import read_yaml_file
from ssma_tf.constants import generic_class_names

DATASETS_FILE = pathlib.Path(__file__).resolve().with_name("datasets.yaml")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Classes of one dataset.

    Attributes:
        name: canonical dataset name (a key of `datasets.yaml`).
        class_names: class names in id order; `class_names[0]` is void.
        palette: one RGB colour (0..255) per class id.
    """

    name: str
    class_names: Tuple[str, ...]
    palette: Tuple[Tuple[int, int, int], ...]

    @property
    def num_classes(self) -> int:
        """Number of classes, void included (the `num_classes` of a run configuration)."""
        return len(self.class_names)

    @property
    def palette_array(self) -> np.ndarray:
        """The palette as a (num_classes, 3) uint8 array, ready for `visualize.colorize`."""
        return np.asarray(self.palette, dtype=np.uint8).reshape(-1, 3)


def _normalise(name: str) -> str:
    """Folds case, spaces and hyphens so that 'ScanNet-v2' finds 'scannet_v2'."""
    return re.sub(r"[\s\-]+", "_", name.strip().lower())


def _parse_entry(name: str, entry: object, source: str) -> Tuple[DatasetInfo, Tuple[str, ...]]:
    """Checks one dataset entry and returns its info and aliases; errors name the file and key."""
    where = f"{source}: dataset {name!r}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be a mapping, got {type(entry).__name__}")
    unknown = set(entry) - {"description", "aliases", "classes"}
    if unknown:
        raise ValueError(f"{where} has unknown keys {sorted(unknown)}")
    classes = entry.get("classes")
    if not isinstance(classes, list) or len(classes) < 2:
        raise ValueError(f"{where} needs a 'classes' list with void and at least one class")
    names, colours = [], []
    for class_id, item in enumerate(classes):
        if not isinstance(item, dict) or set(item) != {"name", "color"}:
            raise ValueError(f"{where}, class {class_id} must be {{name: ..., color: [r, g, b]}}, got {item!r}")
        class_name = item["name"]
        if not isinstance(class_name, str) or not class_name.strip():
            # YAML 1.1 reads `on`, `no`, `null`, `1` as no name. Before: they became the names
            # 'True', 'None', '1' without a word (helper 291).
            raise ValueError(f"{where}, class {class_id}: the name must be a non-empty text, got {class_name!r} "
                             "(YAML reads on, off, yes, no, true, false, null and numbers as other values: "
                             "quote the name, e.g. name: 'on')")
        colour = item["color"]
        # A bool is an int to Python: before, `color: [yes, 0, 255]` was (True, 0, 255) (helper 291).
        if (
            not isinstance(colour, list)
            or len(colour) != 3
            or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in colour)
        ):
            raise ValueError(f"{where}, class {class_id} ({class_name!r}) has a bad colour {colour!r}: three integers "
                             "0..255")
        names.append(class_name)
        colours.append(tuple(colour))
    if len(set(names)) != len(names):
        duplicates = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"{where} repeats class names {duplicates}")
    # One colour for two classes: a colour label maps it to one id and the other class is never
    # learned or scored; prediction pictures cannot tell them apart (before: accepted; helper 334).
    shared = [(first, later) for later, colour in enumerate(colours) for first in range(later)
              if colours[first] == colour]
    if shared:
        first, later = shared[0]
        raise ValueError(f"{where} gives classes {first} ({names[first]!r}) and {later} ({names[later]!r}) the "
                         f"same colour {list(colours[later])}: each class needs a colour of its own")
    aliases = entry.get("aliases", []) or []
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise ValueError(f"{where}: 'aliases' must be a list of names, got {aliases!r}")
    info = DatasetInfo(name=name, class_names=tuple(names), palette=tuple(colours))
    return info, tuple(aliases)


@functools.lru_cache(maxsize=8)
def _load(path: str) -> Tuple[Dict[str, DatasetInfo], Dict[str, str]]:
    """Reads and checks a datasets file; returns (infos by name, canonical name by lookup key)."""
    content = read_yaml_file(path, "the datasets file")  # a ConfigError (a ValueError) naming it
    if not isinstance(content, dict) or not content:
        raise ValueError(f"{path} must map dataset names to entries")
    infos: Dict[str, DatasetInfo] = {}
    lookup: Dict[str, str] = {}
    for name, entry in content.items():
        info, aliases = _parse_entry(str(name), entry, path)
        infos[info.name] = info
        for key in (info.name,) + aliases:
            folded = _normalise(key)
            if folded in lookup and lookup[folded] != info.name:
                raise ValueError(
                    f"{path}: name {key!r} is used by both {lookup[folded]!r} and {info.name!r}"
                )
            lookup[folded] = info.name
    return infos, lookup


def known_datasets(path: Optional[Union[str, os.PathLike]] = None) -> Tuple[str, ...]:
    """Returns the canonical names of the datasets described in the datasets file.

    Args:
        path: a datasets YAML file; defaults to the `datasets.yaml` shipped with the package.
    """
    infos, _ = _load(os.fspath(path or DATASETS_FILE))
    return tuple(infos)


def get_dataset_info(
    name: str, path: Optional[Union[str, os.PathLike]] = None
) -> DatasetInfo:
    """Returns the class names and palette of a dataset.

    Args:
        name: a dataset name or alias, case-insensitive ('cityscapes', 'ScanNet-v2', 'forest').
        path: a datasets YAML file; defaults to the `datasets.yaml` shipped with the package.

    Returns:
        The dataset's `DatasetInfo`.

    Raises:
        ValueError: if the name is unknown (the message lists the known names) or the file is bad.
    """
    source = os.fspath(path or DATASETS_FILE)
    infos, lookup = _load(source)
    canonical = lookup.get(_normalise(str(name)))
    if canonical is None:
        raise ValueError(
            f"unknown dataset {name!r}; known datasets in {source}: {', '.join(infos)}"
        )
    return infos[canonical]


def class_names_or_generic(name: Optional[str], path: Optional[Union[str, os.PathLike]],
                           num_classes: int) -> list[str]:
    """The class names of a config's dataset (`dataset_info_or_none`), else `void, class_1, ...`."""
    info = dataset_info_or_none(name, path, num_classes)
    return list(info.class_names) if info is not None else generic_class_names(num_classes)


def dataset_info_or_none(
    name: Optional[str], path: Optional[Union[str, os.PathLike]] = None, num_classes: Optional[int] = None
) -> Optional[DatasetInfo]:
    """The dataset's `DatasetInfo`, or None where there is none that fits.

    For what falls back to generic class names and colours instead of failing (metric tables,
    TensorBoard previews and names): None when `name` is None, when `path` (a config's own
    `palette` file) or the shipped file does not describe it, or when it has other than
    `num_classes` classes. Reading a config has already refused an unknown name and another class
    count; this look-up also serves configs made without those checks.
    """
    if name is None:
        return None
    try:
        info = get_dataset_info(name, path)
    except ValueError:
        return None
    return info if num_classes is None or info.num_classes == num_classes else None
