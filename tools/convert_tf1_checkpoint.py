"""`ssma-convert-tf1` from a clone, without installing: the code is in `ssma_tf.cli.convert_tf1`.

    python tools/convert_tf1_checkpoint.py --help
"""

import os
import sys

# The clone's own package comes first, installed or not.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ssma_tf.cli.convert_tf1 import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
