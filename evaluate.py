"""Evaluates AdapNet++ or SSMA as a YAML config says: `python evaluate.py -c config/cityscapes_test.config`.

`checkpoint` may be an original TF1 checkpoint (AdapNet++ or SSMA, told apart by its variable
names), a training directory of this project, one of its checkpoints, or a `.weights.h5` file.
Prints per-class IoU, FPR and FNR and the summary metrics; the last line is `mIoU: <value>`
(the released definition, in percent). `--json PATH` also writes every metric with the number
of images. The work is done by `ssma_tf.evaluation`.

Exit status: 0 done, 2 bad config or checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import List, Optional

# Runs from a fresh clone without installing the package.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def main(argv: Optional[List[str]] = None) -> int:
    """Parses the flags, validates the config and evaluates; returns the exit status."""
    parser = argparse.ArgumentParser(description="Evaluate AdapNet++ or SSMA from a YAML .config file.")
    parser.add_argument("-c", "--config", required=True, help="the evaluation config (YAML)")
    parser.add_argument("--json", metavar="PATH", help="also write all metrics to this JSON file")
    parser.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                        help="arithmetic of the network: float32 (default, the original's numbers) or bfloat16 "
                        "(faster where the processor has bfloat16 units, e.g. Intel AMX; see README, Benchmarks)")
    args = parser.parse_args(argv)

    from ssma_tf.config import ConfigError, load_config

    try:
        config = load_config(args.config, "eval")
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    from ssma_tf.checkpoints import CheckpointError
    from ssma_tf.evaluation import evaluate

    try:
        result = evaluate(config, precision=args.precision)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        from ssma_tf.files import atomic_write

        with atomic_write(args.json) as f:  # a reader never sees half a file
            json.dump(result.metrics, f, indent=2)
            f.write("\n")
    print(result.table(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
