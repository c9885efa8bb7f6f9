"""Inference with AdapNet++ and SSMA: one module per idea, imports running one way (top to bottom).

- `sizes`: model input sizes (multiples of 16); no TensorFlow (the resize methods of each
  modality are `ssma_tf.resampling`'s).
- `rewrites`: graph rewrites that need no TensorFlow: sub-pixel upsampling, the inference copy
  (`copy_for_inference`), precision (`resolve_precision`).
- `precision`: what `precision="auto"` chooses, timed on this machine and cached.
- `batch_norm_folding`: folding batch norms into the preceding convolutions.
- `compiled`: the inference copy with every rewrite (`optimize_for_inference`), the float32
  outputs view (`inference_model`) and the compiled predict function (`compiled_predict`).
- `predictor`: `Predictor`, class maps, probabilities and SSMA gates of image arrays.
- `samples`: the image files to predict (one pair, a list file, two folders paired by name).
- `pictures`: predicting files and writing class-id, colour, overlay and attention pictures.
- `export`: the SavedModel with a uint8 serving signature, and TFLite files.
- `deploy`: OpenVINO IR and TFLite exports at a fixed size, float32 or int8 calibrated on
  TFRecords (the `deploy` extra).
- `backends`: running those exports (`--backend openvino|tflite`), `ExportedPredictor`.
- `settings`: a model and its inference settings from a run config or a checkpoint, as
  `predict.py` and `tools/export.py` name them.
- `timing`: the loop that times repeated calls (the pruning report's latency, the benches).
- `flops`: FLOPs of one inference, counted on the traced graph (the pruning report, the benches).

Loading weights is not here but in `ssma_tf.checkpoints.loading`.
"""
