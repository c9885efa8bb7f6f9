"""The networks: AdapNet++ (unimodal), SSMA (multimodal fusion) and the fusion baselines."""

from ssma_tf.models.adapnet_pp import AdapNetPP
from ssma_tf.models.encoder import AdapNetPPEncoder
from ssma_tf.models.fusion_baselines import FusionBaseline
from ssma_tf.models.ssma import SSMA

__all__ = ["AdapNetPP", "AdapNetPPEncoder", "FusionBaseline", "SSMA"]
