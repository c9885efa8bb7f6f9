"""The AdapNet++ decoder, shared by AdapNet++ and SSMA (Valada et al. 2019, Sections 3.3, 4.2)."""

from keras import layers

from ssma_tf.constants import DECODER_FILTERS
from ssma_tf.layers import BilinearUpsampling, ConvBN, SkipAttention

__all__ = ["DECODER_FILTERS", "CLASS_LAYERS", "build_decoder"]
# The layers whose weights have a class axis: the 1×1 classifier, the last learned upsampling and
# the two auxiliary heads. Fine-tuning to another class set starts these afresh.
CLASS_LAYERS = ("classifier", "up3", "aux_up2_head", "aux_up1_head")


def build_decoder(features, skip2, skip1, num_classes: int, *, skip_attention: bool,
                  aux_heads: bool, dtype=None, widths=None) -> dict:
    """Wires the decoder on symbolic tensors and returns its named outputs.

    Two ×2 learned upsamplings, each followed by concatenation with a skip (1/8, then 1/4
    resolution) and two 3×3 CBR refinements; a 1×1 CBR classifier (its ReLU before the last
    upsampling is a quirk of the released graph) and a ×4 learned upsampling to the input size.

    Args:
        features: the H/16 feature map (eASPP output, or the fused one for SSMA).
        skip2: the H/8 skip (24 channels).
        skip1: the H/4 skip (24 channels).
        num_classes: C.
        skip_attention: SSMA's channel attention on the skips.
        aux_heads: build the two auxiliary heads of the multiresolution supervision.
        dtype: layer dtype policy.
        widths: output channels of `up1`, `refine1_conv1`, ... by name, for a pruned decoder
            (`ssma_tf.models.widths`); the others keep 256.

    Returns:
        dict with `logits`, `softmax` and, with aux_heads, `aux_up2` and `aux_up1`
        (probabilities at the input size).
    """
    widths = widths or {}

    def width(name: str) -> int:
        return widths.get(name, DECODER_FILTERS)

    up1 = ConvBN(width("up1"), 4, strides=2, activation=None, transposed=True, name="up1", dtype=dtype)(features)
    if skip_attention:
        skip2 = SkipAttention(name="skip_attention2", dtype=dtype)([up1, skip2])
    x = layers.Concatenate(name="concat_skip2", dtype=dtype)([up1, skip2])
    x = ConvBN(width("refine1_conv1"), 3, name="refine1_conv1", dtype=dtype)(x)
    x = ConvBN(width("refine1_conv2"), 3, name="refine1_conv2", dtype=dtype)(x)
    up2 = ConvBN(width("up2"), 4, strides=2, activation=None, transposed=True, name="up2", dtype=dtype)(x)
    if skip_attention:
        skip1 = SkipAttention(name="skip_attention1", dtype=dtype)([up2, skip1])
    x = layers.Concatenate(name="concat_skip1", dtype=dtype)([up2, skip1])
    x = ConvBN(width("refine2_conv1"), 3, name="refine2_conv1", dtype=dtype)(x)
    x = ConvBN(width("refine2_conv2"), 3, name="refine2_conv2", dtype=dtype)(x)
    x = ConvBN(num_classes, 1, name="classifier", dtype=dtype)(x)
    logits = ConvBN(num_classes, 8, strides=4, activation=None, transposed=True, name="up3", dtype=dtype)(x)
    # Probabilities in float32 even under mixed precision: the loss takes their logarithm.
    outputs = {
        "logits": layers.Activation("linear", dtype="float32", name="logits")(logits),
        "softmax": layers.Softmax(dtype="float32", name="softmax")(logits),
    }
    if aux_heads:
        # up2 is at 1/4 of the input size, up1 at 1/8.
        for name, source, factor in (("aux_up2", up2, 4), ("aux_up1", up1, 8)):
            head = ConvBN(num_classes, 1, activation=None, name=f"{name}_head", dtype=dtype)(source)
            head = BilinearUpsampling(factor, name=f"{name}_resize", dtype=dtype)(head)
            outputs[name] = layers.Softmax(dtype="float32", name=name)(head)
    return outputs
