"""The `semi_supervised` section of a config: mean teacher with DepthMix or ClassMix.

Only the settings live here (no TensorFlow); the mixing is in `ssma_tf.semi_supervised.mixing`, the teacher in
`ssma_tf.mean_teacher` and the training step in `ssma_tf.semi_supervised.trainer`. The defaults are those
of the released code of Hoyer et al., "Three Ways to Improve Semantic Segmentation with
Self-Supervised Depth Estimation" (CVPR 2021); `docs/semi_supervised.md` lists where this port
differs on purpose.
"""

from __future__ import annotations

import dataclasses

from ssma_tf.config.keys import key
from ssma_tf.config.sections import Section

METHODS = ("depthmix", "classmix")
TEACHER_BATCH_NORMS = ("batch", "moving")
# How modality 2 colours depth: the colour map, and which end of it is near.
DEPTH_ENCODINGS = ("jet_near_red", "jet_near_blue", "gray_near_bright", "gray_near_dark")


@dataclasses.dataclass(frozen=True)
class SemiSupervisedConfig(Section):
    """Settings of mean-teacher training on unlabeled images, with the released defaults.

    Each field is declared with its range; a bad value is a ValueError naming the field and the
    source (the config reader turns it into a `ConfigError` naming the section); reading,
    validation and writing come from `Section`.
    """

    NAME = "semi_supervised"

    method: str = key("depthmix", kind="choice", choices=METHODS,
                      doc="`depthmix` (mask from measured depth) or `classmix` (mask from half "
                          "the classes of one image's pseudo-label)")
    ema_decay: float = key(0.99, kind="float", minimum=0.0, maximum=0.999999,
                           doc="largest decay of the teacher's moving average; update t (from 1) "
                               "uses min(1 − 1/(t+1), ema_decay)")
    ema_every: int = key(1, kind="int", minimum=1, doc="update the teacher every n steps")
    teacher_batch_norm: str = key(
        "batch", kind="choice", choices=TEACHER_BATCH_NORMS,
        doc="`batch`: the teacher's batch norms normalise each mix batch with its own statistics "
            "and only parameters are averaged (released); `moving`: inference mode, with moving "
            "statistics averaged from the student's too")
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
                        doc="colour jitter strength on mixed modality 1 (kornia 0.4's brightness, "
                            "contrast, saturation, hue, as released); 0: off")
    jitter_probability: float = key(0.8, kind="float", minimum=0.0, maximum=1.0,
                                    doc="chance of jittering a mixed batch (one draw per batch)")
    blur_sigma: tuple[float, float] = key(
        (0.15, 1.15), kind="range", minimum=0.0, maximum=3.0,
        doc="Gaussian blur sigma range in pixels on mixed modality 1; [0, 0]: off")
    blur_probability: float = key(0.5, kind="float", minimum=0.0, maximum=1.0,
                                  doc="chance of blurring a mixed batch (one draw and sigma per batch)")
