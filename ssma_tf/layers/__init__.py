"""Reusable blocks of AdapNet++ and SSMA."""

from ssma_tf.layers.batch_norm import BatchNorm
from ssma_tf.layers.conv_bn import BN_EPSILON, BN_MOMENTUM, ConvBN, batch_norm
from ssma_tf.layers.easpp import EASPP
from ssma_tf.layers.initializers import HeTruncatedNormal, ScaledIdentity
from ssma_tf.layers.multiscale_conv import MultiscaleConv2D
from ssma_tf.layers.residual_unit import ResidualUnit
from ssma_tf.layers.resize import BilinearUpsampling
from ssma_tf.layers.skip_attention import SkipAttention
from ssma_tf.layers.ssma_block import SSMABlock

__all__ = [
    "BatchNorm", "BilinearUpsampling", "BN_EPSILON", "BN_MOMENTUM", "ConvBN", "EASPP", "HeTruncatedNormal",
    "MultiscaleConv2D", "ResidualUnit", "SSMABlock", "ScaledIdentity", "SkipAttention", "batch_norm",
]
