"""Tests for ssma_tf.errors: the base of bad-input errors and the one-line form of any error."""

import pytest

from ssma_tf.errors import UserInputError, first_line


def test_first_line_keeps_the_message_of_a_tensorflow_op_error():
    wrapped = OSError("{{function_node __wrapped__SaveV2_dtypes_3}} ckpt-1_temp: File too large [Op:SaveV2]\n"
                      "trace line")
    assert first_line(wrapped) == "ckpt-1_temp: File too large"
    assert first_line(IndexError("Read less bytes than requested\nmore")) == "Read less bytes than requested"


@pytest.mark.parametrize("error", [KeyError(), ValueError("  \n ")])
def test_first_line_of_an_error_without_a_message_is_its_class(error):
    assert first_line(error) == type(error).__name__


def test_a_user_input_error_names_its_file_once():
    assert str(UserInputError("line 3: bad", "a.txt")) == "a.txt: line 3: bad"
    assert str(UserInputError("a.txt, line 3: bad", "a.txt")) == "a.txt, line 3: bad"
