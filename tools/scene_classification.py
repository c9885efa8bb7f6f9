"""`ssma-scene` from a clone, without installing: the code is in `ssma_tf.cli.scene`.

    python tools/scene_classification.py --help
"""

import os
import sys

# The clone's own package comes first, installed or not.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ssma_tf.cli.scene import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
