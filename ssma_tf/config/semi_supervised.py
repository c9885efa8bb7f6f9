"""The `semi_supervised` section of a config: mean teacher with DepthMix or ClassMix.

Only the settings live here (no TensorFlow); the mixing is in `ssma_tf.mixing`, the teacher in
`ssma_tf.mean_teacher` and the training step in `ssma_tf.semi_supervised`. The defaults are those
of the released code of Hoyer et al., "Three Ways to Improve Semantic Segmentation with
Self-Supervised Depth Estimation" (CVPR 2021); `docs/semi_supervised.md` lists where this port
differs on purpose.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

from ssma_tf.config.sections import check_range as _check_range
from ssma_tf.config.keys import declared_keys, key

METHODS = ("depthmix", "classmix")
# How modality 2 colours depth: the colour map, and which end of it is near.
DEPTH_ENCODINGS = ("jet_near_red", "jet_near_blue", "gray_near_bright", "gray_near_dark")


@dataclasses.dataclass(frozen=True)
class SemiSupervisedConfig:
    """Settings of mean-teacher training on unlabeled images, with the released defaults.

    Each field is declared with its range; a bad value is a ValueError naming the field and the
    source (the config reader turns it into a `ConfigError` naming the section).
    """

    method: str = key("depthmix", kind="choice", choices=METHODS,
                      doc="`depthmix` (mask from measured depth) or `classmix` (mask from half "
                          "the classes of one image's pseudo-label)")
    ema_decay: float = key(0.99, kind="float", minimum=0.0, maximum=0.999999,
                           doc="largest decay of the teacher's moving average; step t uses "
                               "min(1 − 1/(t+1), ema_decay)")
    ema_every: int = key(1, kind="int", minimum=1, doc="update the teacher every n steps")
    ema_batch_norm: bool = key(
        True, kind="bool",
        doc="average the batch-norm statistics too (the teacher runs its batch norms in "
            "inference mode, so they must follow the student)")
    consistency_weight: float = key(1.0, kind="float", minimum=0.0, maximum=1e6,
                                    doc="weight of the loss on the mixed images")
    confidence: float = key(0.968, kind="float", minimum=0.0, maximum=1.0,
                            doc="pseudo-label confidence; the consistency loss is weighted by "
                                "the fraction of mixed pixels at least this confident")
    depth_margin: float = key(0.03, kind="float", minimum=0.0, maximum=1.0,
                              doc="DepthMix pastes image i where its nearness ≥ j's − margin "
                                  "(nearness 0..1 along the depth colour map)")
    depth_encoding: str = key(
        "jet_near_red", kind="choice", choices=DEPTH_ENCODINGS,
        doc="how modality 2 colours depth (black: missing), e.g. `jet_near_red` for the "
            "synthetic data and jet-coded disparity")
    use_ground_truth: bool = key(True, kind="bool",
                                 doc="a mix image with a label uses it instead of the teacher's "
                                     "prediction")
    jitter: float = key(0.25, kind="float", minimum=0.0, maximum=0.5,
                        doc="colour jitter strength on mixed modality 1 (brightness, contrast, "
                            "saturation, hue); 0: off")
    jitter_probability: float = key(0.8, kind="float", minimum=0.0, maximum=1.0,
                                    doc="chance of jittering a mixed image")
    blur_sigma: tuple[float, float] = key(
        (0.15, 1.15), kind="range", minimum=0.0, maximum=3.0,
        doc="Gaussian blur sigma range in pixels on mixed modality 1; [0, 0]: off")
    blur_probability: float = key(0.5, kind="float", minimum=0.0, maximum=1.0,
                                  doc="chance of blurring a mixed image")

    def __post_init__(self) -> None:
        self._validate("SemiSupervisedConfig")

    def _validate(self, source: str) -> None:
        """Raises ValueError naming the first bad field and `source`."""
        for name, spec, _ in declared_keys(SemiSupervisedConfig):
            value = getattr(self, name)
            if spec.kind == "bool":
                if not isinstance(value, bool):
                    raise ValueError(f"{source}: {name!r} must be true or false, got {value!r}")
            elif spec.kind == "choice":
                if value not in spec.choices:
                    raise ValueError(
                        f"{source}: {name!r} must be one of {', '.join(spec.choices)}, "
                        f"got {value!r}")
            elif spec.kind in ("float", "int"):
                kinds = (int,) if spec.kind == "int" else (int, float)
                if (isinstance(value, bool) or not isinstance(value, kinds)
                        or not spec.minimum <= value <= (spec.maximum or float("inf"))):
                    top = "∞" if spec.maximum is None else f"{spec.maximum:g}"
                    raise ValueError(
                        f"{source}: {name!r} must be a{'n integer' if spec.kind == 'int' else ' number'}"
                        f" in [{spec.minimum:g}, {top}], got {value!r}")
            else:
                _check_range(source, name, spec, value)

    @classmethod
    def from_dict(cls, d: Optional[Mapping[str, Any]],
                  source: str = "<dict>") -> "SemiSupervisedConfig":
        """Builds the settings from a mapping (a YAML section); absent keys keep their defaults.

        Raises:
            ValueError: on an unknown key or a bad value, naming the key and `source`.
        """
        if d is None:
            return cls()
        if not isinstance(d, Mapping):
            raise ValueError(f"{source}: semi_supervised settings must be a mapping, "
                             f"got {type(d).__name__}")
        declared = {name: spec for name, spec, _ in declared_keys(cls)}
        values = {}
        for name, value in d.items():
            if name not in declared:
                raise ValueError(f"{source}: unknown semi_supervised key {name!r} "
                                 f"(known keys: {', '.join(sorted(declared))})")
            if declared[name].kind == "range" and isinstance(value, list):
                value = tuple(value)
            if declared[name].kind == "float" and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            values[name] = value
        config = cls.__new__(cls)
        # Filled by hand so that the validation error can name `source`.
        for name, _, default in declared_keys(cls):
            object.__setattr__(config, name, values.get(name, default))
        config._validate(source)
        return config

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain YAML-friendly values (ranges as lists)."""
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in dataclasses.asdict(self).items()}
