"""A config section: a frozen dataclass of declared keys read from one YAML mapping.

`augmentation`, `semi_supervised` and `adaptation` are sections: each is a dataclass deriving from
`Section` whose fields are declared with `key(...)` (kind "bool", "choice", "float", "int" or
"range"). `Section` reads a mapping into it (absent keys keep their defaults), validates every
field with an error naming the field and the file, and writes it back as plain YAML values.
Reading a section needs no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from typing import Any, Mapping, Optional, TypeVar

from ssma_tf.config.keys import Key, declared_keys

S = TypeVar("S", bound="Section")
# The largest count a section's integer key takes unless it declares its own: TensorFlow's step
# arithmetic is int32/int64, and `ema_every: 1e20` passed the check and failed in training with an
# OverflowError traceback naming no key (helper 343).
INT_MAXIMUM = 2**31 - 1


class SectionError(ValueError):
    """A bad key or value in a section; `key` is the section's key it is about (None when the
    section itself is not a mapping), so that a reader of a file can name the key's line."""

    def __init__(self, message: str, key: Any = None):
        super().__init__(message)
        self.key = key


class Section:
    """Reading, validation and writing shared by the config sections (see the module docstring).

    Subclasses are frozen dataclasses and set `NAME`, the section's key in a config.
    """

    NAME = "section"

    def __post_init__(self) -> None:
        self._validate(type(self).__name__)

    def _validate(self, source: str) -> None:
        """Raises SectionError (a ValueError) naming the first bad field and `source`."""
        for name, spec, _ in declared_keys(type(self)):
            check_value(source, name, spec, getattr(self, name))

    @classmethod
    def from_dict(cls: type[S], d: Optional[Mapping[str, Any]], source: str = "<dict>") -> S:
        """Builds the section from a mapping (e.g. a YAML section); absent keys keep their defaults.

        Args:
            d: field names to values; ranges may be lists. None means all defaults.
            source: where the mapping came from (a file name), quoted in errors.

        Raises:
            SectionError: (a ValueError) on an unknown key or a bad value, naming the key and
                `source`; its `key` attribute is the key.
        """
        if d is None:
            return cls()
        if not isinstance(d, Mapping):
            raise SectionError(f"{source}: {cls.NAME} settings must be a mapping, got {type(d).__name__}")
        declared = {name: spec for name, spec, _ in declared_keys(cls)}
        values = {}
        for name, value in d.items():
            if name not in declared:
                close = difflib.get_close_matches(str(name), list(declared), n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]!r}?" if close else f" (known keys: {', '.join(sorted(declared))})"
                raise SectionError(f"{source}: unknown {cls.NAME} key {name!r}{hint}", name)
            kind = declared[name].kind
            if kind == "range" and isinstance(value, list):
                value = tuple(value)
            if kind == "float" and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if kind == "int" and isinstance(value, float) and value.is_integer():
                value = int(value)  # `ema_every: 1e2`, as a top-level `max_iteration: 1.5e5` (helper 131)
            values[name] = value
        section = cls.__new__(cls)
        # Filled by hand so that the validation error can name `source`.
        for name, _, default in declared_keys(cls):
            object.__setattr__(section, name, values.get(name, default))
        section._validate(source)
        return section

    def to_dict(self) -> dict[str, Any]:
        """The section as plain YAML-friendly values (ranges as lists)."""
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in dataclasses.asdict(self).items()}


def check_value(source: str, name: str, spec: Key, value: Any) -> None:
    """Checks one field of a section against its declaration; errors name `name` and `source`."""
    if spec.kind == "bool":
        if not isinstance(value, bool):
            raise SectionError(f"{source}: {name!r} must be true or false, got {value!r}", name)
    elif spec.kind == "choice":
        if value not in spec.choices:
            raise SectionError(f"{source}: {name!r} must be one of {', '.join(spec.choices)}, "
                               f"got {value!r}", name)
    elif spec.kind in ("float", "int"):
        kinds = (int,) if spec.kind == "int" else (int, float)
        low = spec.minimum if spec.minimum is not None else -math.inf
        high = spec.maximum if spec.maximum is not None else INT_MAXIMUM if spec.kind == "int" else math.inf
        if (isinstance(value, bool) or not isinstance(value, kinds)
                or not math.isfinite(value) or not low <= value <= high):
            what = "an integer" if spec.kind == "int" else "a number"

            def shown(bound):  # 2147483647, not 2.14748e+09
                return str(int(bound)) if spec.kind == "int" and math.isfinite(bound) else f"{bound:g}"

            raise SectionError(f"{source}: {name!r} must be {what} in [{shown(low)}, {shown(high)}], got {value!r}",
                               name)
    elif spec.kind == "range":
        check_range(source, name, spec, value)
    else:
        raise SectionError(f"{source}: {name!r} has kind {spec.kind!r}, which sections do not read", name)


def check_range(source: str, name: str, spec: Key, value: Any) -> None:
    """Checks a [low, high] range against its declared bounds; errors name `name` and `source`."""
    ok = (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )
    if not ok or not (math.isfinite(value[0]) and math.isfinite(value[1])):
        raise SectionError(f"{source}: {name!r} must be two numbers [low, high], got {value!r}", name)
    low, high = value
    inclusive = spec.minimum is not None
    lowest = spec.minimum if inclusive else spec.above
    if low > high or (lowest is not None and (low < lowest or (low == lowest and not inclusive))):
        raise SectionError(
            f"{source}: {name!r} must satisfy {lowest} {'<=' if inclusive else '<'} low "
            f"<= high, got {list(value)!r}", name
        )
    if spec.maximum is not None and high > spec.maximum:
        raise SectionError(
            f"{source}: {name!r} must lie in {'[' if inclusive else '('}{lowest:g}, "
            f"{spec.maximum:g}], got {list(value)!r}", name
        )
