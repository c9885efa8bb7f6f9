"""The networks: AdapNet++ (unimodal), SSMA (multimodal fusion) and the fusion baselines.

Built from the blocks of `ssma_tf.layers`; weights are loaded by `ssma_tf.checkpoints`.

- `encoder`, `decoder`, `adapnet_pp`: the AdapNet++ encoder, decoder and segmenter (Section 3);
- `ssma`: SSMA over two (or more) expert encoders (Section 4);
- `fusion_baselines`: the other fusion methods of the paper's tables (Section 5.7);
- `backbones`: the expert encoder interface, and MobileNet v2 as another expert;
- `scene`: SSMA for scene classification (Section 5.9);
- `segmenter`: what AdapNet++ and SSMA share as Keras models (`compile`/`fit` hooks);
- `widths`: channel widths by layer name (the released ones, and pruned ones);
- `factory`: building a network from a config or a model name.
"""

# The loss and metrics a compiled model saves with it: registered here too, so that
# `keras.saving.load_model` opens a `.keras` file saved after `compile`/`fit` once this package
# is imported, as it opens an uncompiled one.
from ssma_tf import losses as _losses, metrics as _metrics  # noqa: F401
from ssma_tf.models.adapnet_pp import AdapNetPP
from ssma_tf.models.encoder import AdapNetPPEncoder
from ssma_tf.models.fusion_baselines import FusionBaseline
from ssma_tf.models.scene import SSMASceneClassifier
from ssma_tf.models.ssma import SSMA

__all__ = ["AdapNetPP", "AdapNetPPEncoder", "FusionBaseline", "SSMA", "SSMASceneClassifier"]
