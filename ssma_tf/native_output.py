"""Lines that native libraries write straight to the standard-error file descriptor.

TensorFlow's, LiteRT's and OpenVINO's C++ code writes notes to file descriptor 2, past Python's
`sys.stderr` and its `warnings` filters: the TFLite converter's `fully_quantize: 0,
inference_type: 6, ...` on every int8 conversion, LiteRT's `INFO: Created TensorFlow Lite XNNPACK
delegate for CPU.` on every interpreter, TensorFlow's start-up lines (`ssma_tf.cli.start_up_lines`).
`native_lines_filtered(keep)` runs a block with descriptor 2 sent to a temporary file and then
writes back the lines `keep` returns; when the block raises, every line, as they may explain it.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Callable, Iterator, List


@contextlib.contextmanager
def native_lines_filtered(keep: Callable[[List[str]], List[str]]) -> Iterator[None]:
    """Runs the block with file descriptor 2 captured; writes back `keep(lines)` after it.

    Args:
        keep: takes the captured lines (each with its line end) and returns those to show.

    Where there is no descriptor 2 to borrow (an embedding without one), the block runs as usual.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        except KeyboardInterrupt:
            # Ctrl-C or SIGTERM (`Terminated`) during the block is a stop, not a failure whose
            # lines would explain it (before: TensorFlow's start-up lines, then "terminated";
            # helper 183).
            failed = False
            raise
        finally:
            try:
                sys.stderr.flush()
            finally:
                os.dup2(saved, 2)
                os.close(saved)
            sink.seek(0)
            lines = sink.read().decode("utf-8", errors="replace").splitlines(keepends=True)
            shown = lines if failed else keep(lines)
            if shown:
                sys.stderr.write("".join(shown))
                sys.stderr.flush()


def dropping(*starts: str) -> Callable[[List[str]], List[str]]:
    """A `keep` for `native_lines_filtered` that drops the lines starting with any of `starts`."""
    return lambda lines: [line for line in lines if not line.startswith(starts)]
