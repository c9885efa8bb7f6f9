"""Reusable blocks of AdapNet++ and SSMA, one idea per module; the networks are in `ssma_tf.models`.

- `conv_bn`: convolution, batch norm (and ReLU), the brick of the released graph;
- `batch_norm`: the batch norm with the released arithmetic and a cheaper backward pass;
- `initializers`: the released weight initialisers;
- `multiscale_conv`: the split-dilation 3x3 convolution of the multiscale units;
- `residual_unit`: bottleneck and multiscale residual units of the encoder;
- `easpp`: efficient atrous spatial pyramid pooling (Section 3.2);
- `resize`: TF1's legacy bilinear upsampling of the auxiliary heads;
- `dropout`: dropout with masks of its own on each replica of a `tf.distribute` strategy;
- `ssma_block`: the SSMA fusion block (Section 4.1);
- `skip_attention`: the decoder's channel attention on fused skips (Section 4.2).
"""

from ssma_tf.layers.batch_norm import BatchNorm
from ssma_tf.layers.conv_bn import BN_EPSILON, BN_MOMENTUM, ConvBN, batch_norm
from ssma_tf.layers.dropout import ReplicaDropout
from ssma_tf.layers.easpp import EASPP
from ssma_tf.layers.initializers import HeTruncatedNormal, ScaledIdentity
from ssma_tf.layers.multiscale_conv import MultiscaleConv2D
from ssma_tf.layers.residual_unit import ResidualUnit
from ssma_tf.layers.resize import BilinearUpsampling
from ssma_tf.layers.skip_attention import SkipAttention
from ssma_tf.layers.ssma_block import SSMABlock

__all__ = [
    "BatchNorm", "BilinearUpsampling", "BN_EPSILON", "BN_MOMENTUM", "ConvBN", "EASPP", "HeTruncatedNormal",
    "MultiscaleConv2D", "ReplicaDropout", "ResidualUnit", "SSMABlock", "ScaledIdentity", "SkipAttention", "batch_norm",
]
