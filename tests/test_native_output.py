"""`ssma_tf.native_output`: lines written to file descriptor 2 by native code, filtered."""

import os

import pytest

from ssma_tf.native_output import dropping, native_lines_filtered


def test_dropped_lines_go_and_the_others_come_back_in_order(capfd):
    with native_lines_filtered(dropping("INFO: ", "fully_quantize:")):
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nkept one\n")
        os.write(2, b"fully_quantize: 0, inference_type: 6\nkept two\n")
    assert capfd.readouterr().err == "kept one\nkept two\n"


def test_a_failing_block_shows_every_line(capfd):
    with pytest.raises(RuntimeError, match="converter failed"):
        with native_lines_filtered(dropping("INFO: ")):
            os.write(2, b"INFO: what led to it\n")
            raise RuntimeError("converter failed")
    assert capfd.readouterr().err == "INFO: what led to it\n"


def test_a_stop_during_the_block_keeps_the_filter(capfd):
    """Ctrl-C or SIGTERM while TensorFlow was imported showed its start-up lines, which the filter
    hides, before "terminated" (helper 183): a stop is not a failure they would explain."""
    from ssma_tf.errors import Terminated

    for stop in (KeyboardInterrupt, Terminated):
        with pytest.raises(stop):
            with native_lines_filtered(dropping("I0000 ")):
                os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on.\nkept\n")
                raise stop()
        assert capfd.readouterr().err == "kept\n"
