"""`python -m ssma_tf.checkpoints` prints the released models as README.md's table (`zoo.yaml`).

A module of its own: `python -m ssma_tf.checkpoints.zoo` ran zoo.py a second time, after this
package had imported it, and Python warned about that before the table.
"""

import argparse

from ssma_tf.checkpoints.zoo import initialization_checkpoints, markdown_table

parser = argparse.ArgumentParser(
    prog="python -m ssma_tf.checkpoints",
    description="Prints the released models (ssma_tf/checkpoints/zoo.yaml) as the README's Markdown table; "
                "load one with ssma_tf.load_model(NAME).")
parser.add_argument("--initialization", action="store_true",
                    help="list the released initialisation checkpoints (the ImageNet encoder) and their files instead")
args = parser.parse_args()
if args.initialization:
    for name, entry in initialization_checkpoints().items():
        print(f"{name}: {entry['description']}\n  " + "\n  ".join(entry["files"]))
else:
    print(markdown_table())
