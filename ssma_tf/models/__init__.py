"""The networks: AdapNet++ (unimodal) and SSMA (multimodal fusion)."""

from ssma_tf.models.adapnet_pp import AdapNetPP
from ssma_tf.models.encoder import AdapNetPPEncoder
from ssma_tf.models.ssma import SSMA

__all__ = ["AdapNetPP", "AdapNetPPEncoder", "SSMA"]
