"""Tests for ssma_tf.errors: the base of bad-input errors and the one-line form of any error."""

import pytest

from ssma_tf.errors import UserInputError, first_line


def test_first_line_keeps_the_message_of_a_tensorflow_op_error():
    wrapped = OSError("{{function_node __wrapped__SaveV2_dtypes_3}} ckpt-1_temp: File too large [Op:SaveV2]\n"
                      "trace line")
    assert first_line(wrapped) == "ckpt-1_temp: File too large"
    assert first_line(IndexError("Read less bytes than requested\nmore")) == "Read less bytes than requested"


def test_first_line_of_a_graph_execution_error_is_the_ops_message():
    """A tf.function's error starts with a header and the nodes' stacks (before: a lost task was
    reported as "(UnavailableError: Graph execution error:)", its "Socket closed" lost)."""
    message = ("Graph execution error:\n\nDetected at node CollectiveReduceV2 defined at (most recent call last):\n"
               '  File "train.py", line 3, in <module>\n\n  File "trainer.py", line 9, in step\n    loss = f(x)\n\n'
               "Detected at node Other defined at (most recent call last):\n<stack traces unavailable>\n"
               "Socket closed\nAdditional GRPC error information from remote target /job:worker/task:1")
    assert first_line(RuntimeError(message)) == "Socket closed"
    assert first_line(RuntimeError("Graph execution error:\n\n")) == "Graph execution error:"


@pytest.mark.parametrize("error", [KeyError(), ValueError("  \n ")])
def test_first_line_of_an_error_without_a_message_is_its_class(error):
    assert first_line(error) == type(error).__name__


def test_a_user_input_error_names_its_file_once():
    assert str(UserInputError("line 3: bad", "a.txt")) == "a.txt: line 3: bad"
    assert str(UserInputError("a.txt, line 3: bad", "a.txt")) == "a.txt, line 3: bad"
