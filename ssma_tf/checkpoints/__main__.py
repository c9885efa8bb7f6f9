"""`python -m ssma_tf.checkpoints` prints the released models as README.md's table (`zoo.yaml`).

A module of its own: `python -m ssma_tf.checkpoints.zoo` ran zoo.py a second time, after this
package had imported it, and Python warned about that before the table.
"""

from ssma_tf.checkpoints.zoo import markdown_table

print(markdown_table())
