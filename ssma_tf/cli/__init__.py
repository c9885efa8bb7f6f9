"""The command line of ssma-tf: one module per command, installed as `ssma-*` console scripts.

| command | module | what it does |
| --- | --- | --- |
| `ssma-train` | `train` | trains AdapNet++ or SSMA from a YAML config |
| `ssma-evaluate` | `evaluate` | the released metrics of a config's, run's or file's weights |
| `ssma-predict` | `predict` | class-id, colour, overlay and attention pictures |
| `ssma-export` | `export` | a SavedModel with a uint8 serving signature, and TFLite files |
| `ssma-convert` | `convert` | list files of images to TFRecords |
| `ssma-check-records` | `check_records` | record files checked end to end (CRCs, records, sizes, ids) |
| `ssma-prepare` | `prepare` | depth, disparity or NIR to SSMA's second modality |
| `ssma-convert-tf1` | `convert_tf1` | an original TF1 checkpoint to a Keras weights file |
| `ssma-demo` | `demo` | the whole workflow in miniature on synthetic RGB-D scenes |
| `ssma-scene` | `scene` | scene classification: convert, train, evaluate (Section 5.9) |
| `ssma-prune` | `prune` | staged pruning: rank, prune, fine-tune, evaluate (Section 3.5) |
| `ssma-select-labels` | `select_labels` | which images to label, by depth (semi-supervised) |
| `ssma-pretrain-depth` | `pretrain_depth` | AdapNet++ pretrained to predict depth (semi-supervised) |
| `ssma-importance-weights` | `importance_weights` | sampling weights of target images (adaptation) |
| `python -m ssma_tf.cli.synthetic` | `synthetic` | the synthetic RGB-D street scenes of the demos |
| `make fusion-table` | `fusion_table` | SSMA against the fusion baselines (Table 17) |
| `make semisup-evidence` | `semi_supervised_experiment` | supervised only against ClassMix and DepthMix |
| `make adapt-demo` | `adaptation_demo` | domain adaptation in miniature |

`common` holds what the commands share (the error wrapper `command`, `--version`, `--debug`,
`--set`, the model source, `--size`); `start_up_lines` the filter that keeps TensorFlow's
start-up lines out of the commands' output; `experiment` what the demo and the experiments share (a
command in a child process, training a run unless it is finished, evaluating a run under its own
config, mean and range over seeds; `bench/three_modalities.py` uses it too); `demo_configs/` the
demo's configs.

The top-level `train.py`, `evaluate.py`, `predict.py` and `tools/*.py` of a clone run the same
code. Commands parse flags, check the config, call the library and turn its errors into one line
on stderr and an exit status (`common.command`: 2 for bad input, 1 for a failed write; `--debug`
adds the traceback); they hold no model or data logic.
"""
