"""`ssma-train` (what `train.py` runs) on the tiny stand-in model, for tests that run it as a process.

`python -m tests.tiny_train -c CONFIG [--set ...]`: the command's own `main`, flags, log and exit
status, with `ssma_tf.training.trainer.build_model` replaced by `tests.training_helpers.build_tiny_model`
so that a run takes seconds (the kill test starts it several times).
"""

import sys

from ssma_tf import training
from ssma_tf.cli.train import main
from tests.training_helpers import build_tiny_model

if __name__ == "__main__":
    training.trainer.build_model = build_tiny_model
    sys.exit(main(sys.argv[1:]))
