"""ssma_tf.progress: a bar on a terminal only; the batch tools' log lines unchanged."""

import re

from ssma_tf.progress import Progress, format_duration, format_short_duration


class Stream:
    def __init__(self, tty):
        self.tty, self.text = tty, ""

    def isatty(self):
        return self.tty

    def write(self, text):
        self.text += text

    def flush(self):
        pass


def test_progress_bar_only_on_a_terminal():
    piped, terminal = Stream(False), Stream(True)
    for stream in (piped, terminal):
        bar = Progress(10, stream=stream)
        bar.update(5, "loss 1.0")
        bar.clear()
    assert piped.text == ""
    assert "5/10" in terminal.text and "loss 1.0" in terminal.text
    assert terminal.text.endswith("\r\033[K")  # cleared for the next log line


def test_log_lines_between_bars():
    terminal = Stream(True)
    bar = Progress(4, stream=terminal, unit="samples")
    bar.update(1)
    bar.log("step 1 done")
    bar.update(4)
    bar.close()
    # The line lands on its own row: the bar is wiped first and redrawn after it.
    assert "\r\033[Kstep 1 done\n" in terminal.text
    assert re.search(r"\[=+\] 4/4 [\d.]+ samples/s, 0:00:00 left", terminal.text)


def test_log_lines_are_printed_terminal_or_not():
    for tty in (False, True):
        stream = Stream(tty)
        progress = Progress(2, stream=stream, prefix="predicted ", log_every=2.0)
        progress.update(1)  # not due yet: no line (a bar on a terminal)
        progress.update(2)  # the end: always a line
        # What stays on screen of each printed row (a bar is overwritten by the line after \r).
        rows = [row.split("\r")[-1].replace("\033[K", "") for row in stream.text.split("\n")]
        lines = [row for row in rows if row]
        assert len(lines) == 1 and lines[0].startswith("predicted 2/2 (100%), ")
        assert re.fullmatch(r"predicted 2/2 \(100%\), [\d.]+ files/s, \d+s in all", lines[0])


def test_as_a_callback():
    terminal = Stream(True)
    progress = Progress(0, stream=terminal, unit="samples")
    progress(3, 6)  # progress(done, total), as write_tfrecords calls it
    assert progress.total == 6 and "3/6" in terminal.text


def test_durations():
    assert format_duration(3723) == "1:02:03" and format_duration(float("nan")) == "?"
    assert format_short_duration(3723) == "1h02m" and format_short_duration(185) == "3m05s"
    assert format_short_duration(42) == "42s" and format_short_duration(float("inf")) == "?"


def test_bar_or_lines_draws_a_bar_on_a_terminal_and_prints_lines_in_a_log_file(monkeypatch):
    from ssma_tf import progress as progress_module

    clock = [100.0]
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: clock[0])
    piped, terminal = Stream(False), Stream(True)
    for stream in (piped, terminal):
        clock[0] = 100.0
        progress = Progress.bar_or_lines(stream, unit="samples", prefix="converted ")
        clock[0] += 20  # the start-up: TensorFlow's import, the first images
        progress(1, 30)
        clock[0] += progress_module.PIPED_LOG_SECONDS  # a long conversion: a line is due
        progress(2, 30)
        progress(30, 30)
        progress.close()
    # The pace from the first sample on (before: from the start, "0.1 samples/s, about 25h left"
    # for a conversion of 100 samples/s); the average at the end includes the start-up.
    assert piped.text.splitlines() == [
        "converted 2/30 (7%), 0.1 samples/s, about 4m40s left",
        "converted 30/30 (100%), 1.0 samples/s, 30s in all",
    ]
    assert "\r" in terminal.text and "(100%)" not in terminal.text  # only the bar, then wiped


def test_a_run_short_of_its_end_never_says_100_percent():
    """Before: 199/200 and 996/1000 rounded to "(100%)" while the tool still worked on (helper 327)."""
    stream = Stream(False)
    progress = Progress(1000, stream=stream, log_every=0.0, unit="files", prefix="converted ")
    for done in (1, 996, 999, 1000):
        progress.update(done)
    lines = stream.text.splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "converted 1/1000 (0%)", "converted 996/1000 (99%)", "converted 999/1000 (99%)", "converted 1000/1000 (100%)"]
