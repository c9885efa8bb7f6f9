"""Learning from unlabeled RGB-D images (Hoyer et al., CVPR 2021): three ways depth helps.

- `mixing`: depth read back from modality 2's colouring, the DepthMix and ClassMix masks, the
  mixed labels and the confidence weight;
- `trainer`: `SemiSupervisedTrainer` (a mean teacher labels mixed images) and `train`;
- `selection`: depth-guided choice of the images to label (farthest-point selection);
- `depth_pretraining`: a segmentation network first trained to predict the measured depth.

The mean teacher itself (`ssma_tf.mean_teacher`) and the photometric noise
(`ssma_tf.photometric`) are shared with domain adaptation. See `docs/semi_supervised.md`.
"""
