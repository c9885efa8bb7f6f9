"""`python -m ssma_tf.config`: prints the key tables for `configs/README.md`."""

from ssma_tf.config.tables import key_tables

print(key_tables(), end="")
