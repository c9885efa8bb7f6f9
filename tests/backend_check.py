"""Runs saved models on another Keras backend and compares with the TensorFlow outputs.

Usage (from tests/test_jax_backend.py): KERAS_BACKEND=jax python tests/backend_check.py FOLDER
FOLDER holds `<name>.weights.h5`, `<name>.json` (model class and config) and `<name>.npz`
(inputs and the TF outputs). Prints one line per model and exits non-zero on a mismatch.
"""

import json
import pathlib
import sys

import numpy as np

import keras
from ssma_tf.models import SSMA, AdapNetPP

TOLERANCE = 1e-4


def main(folder: str) -> int:
    classes = {"AdapNetPP": AdapNetPP, "SSMA": SSMA}
    failures = 0
    for spec_path in sorted(pathlib.Path(folder).glob("*.json")):
        spec = json.loads(spec_path.read_text())
        model = classes[spec["class"]].from_config(spec["config"])
        model.load_weights(spec_path.with_suffix(".weights.h5"))
        data = np.load(spec_path.with_suffix(".npz"))
        inputs = [data["modality1"], data["modality2"]] if spec["class"] == "SSMA" else data["modality1"]
        outputs = model(inputs, training=False, return_all=True)
        for name in ("logits", "softmax"):
            value = keras.ops.convert_to_numpy(outputs[name])
            error = float(np.max(np.abs(value - data[name])) / np.max(np.abs(data[name])))
            status = "ok" if error <= TOLERANCE else "MISMATCH"
            failures += status != "ok"
            print(f"{keras.backend.backend()} {spec_path.stem} {name}: relative error {error:.2e} {status}")
    # A training run's TF2 checkpoint: one line pointing at the run's other files (helper 92: a
    # TensorFlow traceback, "Checkpoint was expecting model to be a trackable object").
    run = pathlib.Path(folder) / "run"
    if run.is_dir():
        from ssma_tf.checkpoints import CheckpointError, load_model

        try:
            load_model(str(run / "ckpt-1"), model="AdapNet_pp", num_classes=5)
            print(f"{keras.backend.backend()} run checkpoint: loaded, not refused MISMATCH")
            failures += 1
        except CheckpointError as error:
            expected = ("is a TensorFlow training checkpoint, which only the TensorFlow backend reads (this is jax); "
                        f"give the run's {run / 'final.weights.h5'}")
            status = "ok" if expected in str(error) else "MISMATCH"
            failures += status != "ok"
            print(f"{keras.backend.backend()} run checkpoint: {error} {status}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
