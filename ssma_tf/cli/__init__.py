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

The top-level `train.py`, `evaluate.py`, `predict.py` and `tools/*.py` of a clone run the same
code. Commands parse flags, check the config, call the library and turn its errors into one line
on stderr and an exit status (`common.command`: 2 for bad input, 1 for a failed write; `--debug`
adds the traceback); they hold no model or data logic.
"""
