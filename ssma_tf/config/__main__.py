"""`python -m ssma_tf.config`: prints the key tables for `configs/README.md`;
`python -m ssma_tf.config --write configs/README.md` replaces them there."""

import argparse
import sys

from ssma_tf.config.tables import key_tables, with_current_tables
from ssma_tf.files import atomic_write

parser = argparse.ArgumentParser(prog="python -m ssma_tf.config", description=__doc__)
parser.add_argument("--write", metavar="README", help="replace the tables between the markers of this file")
args = parser.parse_args()
if args.write is None:
    print(key_tables(), end="")
else:
    try:
        with open(args.write, encoding="utf-8") as stream:
            text = with_current_tables(stream.read(), args.write)
    except (OSError, ValueError) as error:
        sys.exit(f"error: {error}")
    with atomic_write(args.write) as stream:
        stream.write(text)
    print(f"wrote the key tables into {args.write}")
