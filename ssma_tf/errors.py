"""The package's error for bad input: what the user gave is wrong, not the code.

Every error that a user can fix by changing a file, a flag or a config key derives from
`UserInputError`, and its message names the culprit (file, line, key, variable or record index).
The commands catch it and exit with status 2 and one line; anything else is an internal bug and
keeps its traceback. Subclasses live next to the code that raises them (`ConfigError` in
`ssma_tf.config`, `CheckpointError` in `ssma_tf.checkpoints`, ...); this module only holds the base,
so that every layer of the package can import it.
"""

from __future__ import annotations

import re
from typing import Optional


class UserInputError(ValueError):
    """Bad input from the user: a file, a flag, a config key or a record.

    Attributes:
        path: the file (or folder) at fault, when there is one.
        detail: the message without the location prefix.
    """

    def __init__(self, message: str, path: Optional[str] = None):
        self.path = None if path is None else str(path)
        self.detail = message
        super().__init__(message if path is None or str(path) in message else f"{path}: {message}")


_GRAPH_EXECUTION_ERROR = "Graph execution error:"
_GRAPH_STACK_LINES = ("Detected at node", "<stack traces unavailable>")


def first_line(error: BaseException) -> str:
    """The first line of an error's message for a one-line report; its class name when it has none.

    TensorFlow wraps an op's message in the function's and the op's names
    (`{{function_node __wrapped__X}} <message> [Op:X]`): only the message is kept.
    """
    text = str(error).strip()
    lines = text.splitlines()
    line = lines[0] if text else type(error).__name__
    if line == _GRAPH_EXECUTION_ERROR:
        # A tf.function's error: this header, the nodes' stacks (indented frames under "Detected
        # at node ..."), then the op's own message. Before: "(UnavailableError: Graph execution
        # error:)" where a lost task's error said "Socket closed".
        line = next((candidate for candidate in lines[1:] if candidate.strip()
                     and not candidate[0].isspace() and not candidate.startswith(_GRAPH_STACK_LINES)), line)
    line = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", line)
    return re.sub(r"\s*\[Op:\w+\]$", "", line)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by the commands' handler (`ssma_tf.cli.common`); a
    `KeyboardInterrupt`, so code that cleans up after Ctrl-C cleans up after it too. Here, at the
    bottom of the package, so that library code can raise it again where a native library
    wrapped it (OpenVINO's converter)."""


# Whether the commands' SIGTERM handler has run (`ssma_tf.cli.common`). Python discards an
# exception raised in a finaliser (`__del__`), and a signal handler runs between whatever
# bytecodes come next, a garbage collection's finalisers among them (the TFLite converter's
# objects): the `Terminated` raised there was printed as "Exception ignored in ..." and the
# command went on to write its output and exit 0. The flag outlives the lost exception.
_termination = {"requested": False}


def request_termination() -> None:
    """Records that SIGTERM arrived (the commands' handler, before it raises `Terminated`)."""
    _termination["requested"] = True


def clear_termination() -> None:
    """Forgets an earlier SIGTERM (a command starting, or one that has reported it)."""
    _termination["requested"] = False


def raise_if_terminated() -> None:
    """Raises `Terminated` again when SIGTERM arrived and its exception may have been lost.

    Called where work is about to become visible (an output renamed into place, a training
    step begun) and when a command's `main` returns, so that a stop asked for is a stop.
    """
    if _termination["requested"]:
        raise Terminated()
