"""The `augmentation` section of a config: switches and ranges of the training augmentation.

Only the settings live here (no TensorFlow); the transforms are in `ssma_tf.data.augment`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional

from ssma_tf.config.keys import Key, declared_keys, key


@dataclasses.dataclass(frozen=True)
class AugmentationConfig:
    """Switches and ranges of the training augmentation, with the paper's defaults (Section 5.1.3).

    Each enabled transform is applied to a sample independently with `probability` (the paper
    gives no probability; 0.5 keeps unaugmented views in the mix). Parameters are drawn uniformly
    from their range. The transforms themselves are in `ssma_tf.data.augment`; this is only the
    `augmentation` section of a config, so reading it needs no TensorFlow.

    Each field is declared with its range; a bad value is a ValueError naming the field and the
    source.
    """

    probability: float = key(0.5, kind="float", minimum=0.0, maximum=1.0,
                             doc="chance that each enabled transform is applied to a sample")
    rotation: bool = key(True, kind="bool", doc="rotate about the image centre")
    rotation_range: tuple[float, float] = key(
        (-13.0, 13.0), kind="range", minimum=-180.0, maximum=180.0,
        doc="rotation in degrees (positive turns the content counter-clockwise)")
    skew: bool = key(True, kind="bool", doc="horizontal shear")
    skew_range: tuple[float, float] = key(
        (0.05, 0.10), kind="range", minimum=0.0,
        doc="shear factor k (x += k · y), its sign drawn at random")
    scale: bool = key(True, kind="bool", doc="zoom about the centre")
    scale_range: tuple[float, float] = key(
        (0.5, 2.0), kind="range", above=0.0,
        doc="zoom factor: > 1 zooms in, < 1 shrinks the image and brings in void border")
    crop: bool = key(True, kind="bool",
                     doc="keep a random window and stretch it to the output size")
    crop_range: tuple[float, float] = key(
        (0.8, 0.9), kind="range", above=0.0, maximum=1.0,
        doc="fraction of each side the window keeps")
    flip: bool = key(True, kind="bool", doc="mirror left-right")
    brightness: bool = key(True, kind="bool", doc="add a value to modality 1")
    brightness_range: tuple[float, float] = key(
        (-40.0, 40.0), kind="range", minimum=-255.0, doc="value added (0..255 scale)")
    contrast: bool = key(True, kind="bool",
                         doc="scale modality 1 about its per-channel mean")
    contrast_range: tuple[float, float] = key(
        (0.5, 1.5), kind="range", minimum=0.0, doc="contrast factor")
    vignetting: bool = key(True, kind="bool",
                           doc="darken modality 1 towards the corners (Gaussian falloff)")
    vignetting_range: tuple[float, float] = key(
        (210.0, 300.0), kind="range", above=0.0,
        doc="sigma in pixels of a 768-pixel-wide image (scaled with the width)")

    def __post_init__(self) -> None:
        self._validate("AugmentationConfig")

    def _validate(self, source: str) -> None:
        """Raises ValueError naming the first bad field and `source`."""
        for name, spec, _ in declared_keys(AugmentationConfig):
            value = getattr(self, name)
            if spec.kind == "bool":
                if not isinstance(value, bool):
                    raise ValueError(f"{source}: {name!r} must be true or false, got {value!r}")
            elif spec.kind == "float":
                if (isinstance(value, bool) or not isinstance(value, (int, float))
                        or not spec.minimum <= value <= spec.maximum):
                    raise ValueError(
                        f"{source}: {name!r} must be a number in "
                        f"[{spec.minimum:g}, {spec.maximum:g}], got {value!r}"
                    )
            else:
                _check_range(source, name, spec, value)

    @classmethod
    def from_dict(
        cls, d: Optional[Mapping[str, Any]], source: str = "<dict>"
    ) -> "AugmentationConfig":
        """Builds a config from a mapping (e.g. a YAML section); absent keys keep their defaults.

        Args:
            d: Mapping of field names to values; ranges may be lists. None means all defaults.
            source: Where the mapping came from (a file name), quoted in errors.

        Returns:
            The validated config.

        Raises:
            ValueError: On an unknown key or a bad value, naming the key and `source`.
        """
        if d is None:
            return cls()
        if not isinstance(d, Mapping):
            raise ValueError(
                f"{source}: augmentation settings must be a mapping, got {type(d).__name__}"
            )
        declared = {name: spec for name, spec, _ in declared_keys(cls)}
        values = {}
        for name, value in d.items():
            if name not in declared:
                raise ValueError(
                    f"{source}: unknown augmentation key {name!r} "
                    f"(known keys: {', '.join(sorted(declared))})"
                )
            if declared[name].kind == "range" and isinstance(value, list):
                value = tuple(value)
            values[name] = value
        config = cls.__new__(cls)
        # Fill the frozen dataclass by hand so the validation error can name `source`.
        for name, _, default in declared_keys(cls):
            object.__setattr__(config, name, values.get(name, default))
        config._validate(source)
        return config

    def to_dict(self) -> dict[str, Any]:
        """Returns the config as plain YAML-friendly values (ranges as lists)."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in dataclasses.asdict(self).items()
        }

    @classmethod
    def disabled(cls) -> "AugmentationConfig":
        """A config that changes nothing (training then only resizes)."""
        return cls(**{name: False for name, spec, _ in declared_keys(cls) if spec.kind == "bool"})


def _check_range(source: str, name: str, spec: Key, value: Any) -> None:
    """Checks a [low, high] range against its declared bounds; errors name `name` and `source`."""
    ok = (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )
    if not ok or not (math.isfinite(value[0]) and math.isfinite(value[1])):
        raise ValueError(f"{source}: {name!r} must be two numbers [low, high], got {value!r}")
    low, high = value
    inclusive = spec.minimum is not None
    lowest = spec.minimum if inclusive else spec.above
    if low > high or low < lowest or (low == lowest and not inclusive):
        raise ValueError(
            f"{source}: {name!r} must satisfy {lowest} {'<=' if inclusive else '<'} low "
            f"<= high, got {list(value)!r}"
        )
    if spec.maximum is not None and high > spec.maximum:
        raise ValueError(
            f"{source}: {name!r} must lie in {'[' if inclusive else '('}{lowest:g}, "
            f"{spec.maximum:g}], got {list(value)!r}"
        )
