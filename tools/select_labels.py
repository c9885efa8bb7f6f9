"""`ssma-select-labels` from a clone: the code is in `ssma_tf.cli.select_labels`.

    python tools/select_labels.py --help
"""

import os
import sys

# The clone's own package comes first, installed or not.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ssma_tf.cli.select_labels import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
