"""The `adaptation` section of a config: adapting to an unlabeled target domain.

Only the settings live here (no TensorFlow); the method is in `ssma_tf.adaptation`. The defaults
are those of the released code of Araslanov and Roth, "Self-supervised Augmentation Consistency
for Adapting Semantic Segmentation" (CVPR 2021; `core/config.py` and
`configs/deeplabv2_resnet101_train.yaml`); `docs/adaptation.md` says where this port differs.
"""

from __future__ import annotations

import dataclasses

from ssma_tf.config.keys import key
from ssma_tf.config.sections import Section

METHODS = ("sac", "abn")
OPTIMIZERS = ("sgd", "adam")
PHOTOMETRIC = ("modality1", "all", "none")
# The keys ABN reads: it only runs target batches through the batch norms (`ssma_tf.adaptation`),
# one view per image, flipped but not zoomed (view 0 is the whole base frame).
ABN_KEYS = ("method", "flip_probability")


@dataclasses.dataclass(frozen=True)
class AdaptationConfig(Section):
    """Settings of domain adaptation on `target_data`, with the released defaults."""

    NAME = "adaptation"

    method: str = key(
        "sac", kind="choice", choices=METHODS,
        doc="`sac`: self-supervised augmentation consistency from a baseline (`initialize`); "
            "`abn`: the baseline, source training whose batch norms also see target batches")
    target_weight: float = key(5.0, kind="float", minimum=0.0, maximum=1e6,
                               doc="weight of the target consistency loss (LR_TARGET)")
    target_groups: int = key(2, kind="int", minimum=1, maximum=64,
                             doc="target images per step (NUM_GROUPS); each gives `views` views")
    views: int = key(4, kind="int", minimum=1, maximum=16,
                     doc="views of each target image (GROUP_SIZE); view 0 is the base frame")
    scale_range: tuple[float, float] = key(
        (1.0, 1.1), kind="range", minimum=1.0, maximum=4.0,
        doc="upscaling of the target image before the base crop")
    zoom_range: tuple[float, float] = key(
        (0.5, 1.0), kind="range", above=0.0, maximum=1.0,
        doc="relative size of the crop views 1.. take of the base frame (RND_ZOOM)")
    flip_probability: float = key(0.5, kind="float", minimum=0.0, maximum=1.0,
                                  doc="chance of the group's flip and of each view's own flip, as released "
                                      "(two flips cancel: a view is flipped against the image with chance "
                                      "2p(1 − p), 0.5 at the default)")
    blur_radius: tuple[float, float] = key(
        (0.1, 2.0), kind="range", minimum=0.0, maximum=5.0,
        doc="Gaussian blur sigma range of the student's views (always applied); [0, 0]: off")
    jitter: float = key(0.4, kind="float", minimum=0.0, maximum=0.5,
                        doc="brightness, contrast and saturation jitter of the student's views (RND_JITTER); "
                            "0: no colour jitter, hue included")
    jitter_hue: float = key(0.1, kind="float", minimum=0.0, maximum=0.5,
                            doc="hue jitter of the student's views (fraction of a turn), at most `jitter`, as "
                                "released (min(0.1, RND_JITTER))")
    jitter_probability: float = key(0.5, kind="float", minimum=0.0, maximum=1.0,
                                    doc="chance of the colour jitter (the released MaskRandJitter's fixed p=0.5)")
    greyscale_probability: float = key(0.2, kind="float", minimum=0.0, maximum=1.0,
                                       doc="chance of turning a student's view grey (RND_GREYSCALE)")
    photometric: str = key(
        "modality1", kind="choice", choices=PHOTOMETRIC,
        doc="modalities that get the photometric noise: colour-like ones only (`modality1`), "
            "`all` (one draw per view, the same for every modality) or `none`; the geometry is always shared")
    ema_decay: float = key(0.99, kind="float", minimum=0.0, maximum=0.999999,
                           doc="teacher ← decay · teacher + (1 − decay) · student (NET_MOMENTUM)")
    ema_every: int = key(100, kind="int", minimum=1,
                         doc="teacher update every n steps (NET_MOMENTUM_ITER); weights and "
                             "batch-norm statistics")
    prior_momentum: float = key(0.99, kind="float", minimum=0.0, maximum=0.999999,
                                doc="momentum of the running class means m_c (STAT_MOMENTUM)")
    threshold_upper: float = key(0.75, kind="float", minimum=0.0, maximum=1.0,
                                 doc="a class threshold is this share of the view's peak "
                                     "confidence (RUN_CONF_UPPER)")
    threshold_lower: float = key(0.2, kind="float", minimum=0.0, maximum=1.0,
                                 doc="no threshold is below this (RUN_CONF_LOWER)")
    threshold_beta: float = key(1e-3, kind="float", above=0.0, minimum=1e-9, maximum=1.0,
                                doc="β of the rare-class discount 1 − exp(−m_c/β) (THRESHOLD_BETA)")
    focal_power: float = key(3.0, kind="float", minimum=0.0, maximum=10.0,
                             doc="the focal weight (1 − m_c)^power (FOCAL_P)")
    optimizer: str = key("sgd", kind="choice", choices=OPTIMIZERS,
                         doc="`sgd` (released) or `adam`, at the constant `learning_rate` below "
                             "(`sac` only: `abn` trains with the released protocol)")
    learning_rate: float = key(2.5e-4, kind="float", above=0.0, minimum=1e-12, maximum=10.0,
                               doc="constant learning rate of the adaptation (`sac`)")
    momentum: float = key(0.9, kind="float", minimum=0.0, maximum=0.999,
                          doc="SGD momentum (`sac`)")
    weight_decay: float = key(5e-4, kind="float", minimum=0.0, maximum=1.0,
                              doc="L2 weight decay of the kernels (`sac`; SGD's coupled decay; the released "
                                  "da-sac also decays batch-norm weights)")


def keys_abn_ignores(section: AdaptationConfig) -> list[str]:
    """The keys of `section` set to other values than their defaults that `method: abn` does not
    read (SAC's teacher, views, noise, thresholds and optimizer), in the section's order."""
    def plain(value):
        return tuple(value) if isinstance(value, list) else value

    return [field.name for field in dataclasses.fields(section) if field.name not in ABN_KEYS
            and plain(getattr(section, field.name)) != plain(field.default)]
