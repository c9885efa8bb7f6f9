"""The `augmentation` section of a config: switches and ranges of the training augmentation.

Only the settings live here (no TensorFlow); the transforms are in `ssma_tf.data.augment`.
"""

from __future__ import annotations

import dataclasses

from ssma_tf.config.keys import declared_keys, key
from ssma_tf.config.sections import Section


@dataclasses.dataclass(frozen=True)
class AugmentationConfig(Section):
    """Switches and ranges of the training augmentation, with the paper's defaults (Section 5.1.3).

    Each enabled transform is applied to a sample independently with `probability` (the paper
    gives no probability; 0.5 keeps unaugmented views in the mix). Parameters are drawn uniformly
    from their range. The transforms themselves are in `ssma_tf.data.augment`; this is only the
    `augmentation` section of a config, so reading it needs no TensorFlow.

    Each field is declared with its range; a bad value is a ValueError naming the field and the
    source (reading, validation and writing come from `Section`).
    """

    NAME = "augmentation"

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
                         doc="scale modality 1 about its mean intensity (one mean for all channels)")
    contrast_range: tuple[float, float] = key(
        (0.5, 1.5), kind="range", minimum=0.0, doc="contrast factor")
    vignetting: bool = key(True, kind="bool",
                           doc="darken modality 1 towards the corners (Gaussian falloff)")
    vignetting_range: tuple[float, float] = key(
        (210.0, 300.0), kind="range", above=0.0,
        doc="sigma in pixels of a 768-pixel-wide image (scaled with the width)")

    @classmethod
    def disabled(cls) -> "AugmentationConfig":
        """A config that changes nothing (training then only resizes)."""
        return cls(**{name: False for name, spec, _ in declared_keys(cls) if spec.kind == "bool"})
