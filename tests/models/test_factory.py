"""Building a model from a run config, and the config names of the two networks."""

from types import SimpleNamespace

import pytest

from ssma_tf.models import SSMA, AdapNetPP
from ssma_tf.models.backbones import PyramidEncoder
from ssma_tf.models.encoder import AdapNetPPEncoder
from ssma_tf.models.fusion_baselines import FusionBaseline
from ssma_tf.models.scene import SSMASceneClassifier
from ssma_tf.models.factory import MODEL_NAMES, build_model, check_model_name, is_fusion, model_name


def _config(**values):
    defaults = dict(num_classes=3, dropout_keep_prob=0.5, mixed_precision=None, is_fusion=False,
                    freeze_experts=True, aux_heads=False)
    return SimpleNamespace(**{**defaults, **values})


def test_a_unimodal_config_builds_adapnet_with_its_heads_and_precision():
    model = build_model(_config(mixed_precision="mixed_bfloat16"))
    assert isinstance(model, AdapNetPP) and model.aux_heads and model.dropout_rate == 0.5
    assert model.dtype_policy.name == "mixed_bfloat16"
    assert model_name(model) == "AdapNet_pp" and not is_fusion(model)


def test_a_fusion_config_builds_ssma_as_it_says():
    model = build_model(_config(is_fusion=True, freeze_experts=False, aux_heads=True))
    assert isinstance(model, SSMA) and model.aux_heads and not model.freeze_experts
    assert model.dtype_policy.name == "float32"
    assert model_name(model) == "SSMA" and is_fusion(model)


def test_model_names_are_checked():
    assert all(check_model_name(name) == name for name in MODEL_NAMES)
    with pytest.raises(ValueError, match="'AdapNet'"):
        check_model_name("AdapNet")


@pytest.mark.parametrize("build, wrong, meant", [
    (lambda **kw: AdapNetPP(3, **kw), {"aux_head": False}, "aux_heads"),
    (lambda **kw: AdapNetPP(3, **kw), {"dropout": 0.5}, "dropout_rate"),
    (lambda **kw: SSMA(3, **kw), {"freeze_expert": False}, "freeze_experts"),
    (lambda **kw: FusionBaseline(3, "late", **kw), {"aux_head": False}, "aux_heads"),
    (lambda **kw: SSMASceneClassifier(4, **kw), {"num_class": 5}, "num_classes"),
    (lambda **kw: AdapNetPPEncoder(**kw), {"dropout": 0.5}, "dropout_rate"),
    (lambda **kw: PyramidEncoder("mobilenet_v2", **kw), {"droput_rate": 0.5}, "dropout_rate"),
])
def test_a_misspelt_option_is_refused_not_ignored(build, wrong, meant):
    """keras.Model takes any keyword and ignores it: the default network was built silently."""
    key = next(iter(wrong))
    with pytest.raises(TypeError, match=f"got unknown keyword argument\\(s\\) '{key}' \\(did you mean '{meant}'\\?\\)"):
        build(**wrong)


def test_keras_own_options_still_reach_the_model():
    model = AdapNetPP(3, name="mine", trainable=False, dtype="float32", aux_heads=False)
    assert model.name == "mine" and not model.trainable
