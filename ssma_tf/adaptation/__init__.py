"""Adapting a trained model to an unlabeled target domain (Araslanov and Roth, CVPR 2021).

- `views`: groups of views of a target image and moving predictions between their frames;
- `pseudo_labels`: class-wise adaptive thresholds, the running class prior, the focal loss;
- `importance`: importance sampling of target images by the classes a baseline predicts;
- `target`: the target-domain input stream;
- `trainer`: `AdaptationTrainer` (`method: sac` and its `abn` baseline) and `train`.

See `docs/adaptation.md`.
"""
