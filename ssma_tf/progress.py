"""How far a long loop has got: a bar redrawn in place on a terminal, optional plain log lines.

One reporter for training, the TFRecord converter and the batch tools. The bar is drawn only
when its stream is a terminal, so logs and pipes never fill with carriage returns. Tools whose
output is often kept in a log file ask for `log_every` seconds: they then also print a plain line
(`12/40 (30%), 3.1 files/s, about 9s left`) that often and at the end, terminal or not.
Lines the caller prints itself go through `log`, which lifts the bar out of their way.

No TensorFlow here, so the data tools can report before they import it.
"""

from __future__ import annotations

import sys
import time
from typing import Optional, TextIO

BAR_WIDTH = 30
# Redrawing more often than this costs time and shows nothing new.
_REDRAW_SECONDS = 0.1
# Long data tools run under nohup or with their output in a log file, where no bar is drawn: a
# plain line this often (and at the end) shows how far they are without filling the log.
PIPED_LOG_SECONDS = 10.0


def format_duration(seconds: float) -> str:
    """`1:02:03` for hours, minutes and seconds ("?" when unknown)."""
    if not seconds < float("inf"):  # also catches NaN
        return "?"
    seconds = max(int(round(seconds)), 0)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def format_short_duration(seconds: float) -> str:
    """`1h02m`, `3m05s` or `42s` ("?" when unknown), for log lines."""
    if not seconds < float("inf"):
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{seconds:02d}s"
    return f"{seconds}s"


def is_terminal(stream: object) -> bool:
    """Whether `stream` is an interactive terminal (False for files, pipes and captures)."""
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # a closed stream
        return False


class Progress:
    """Reports `done` out of `total` steps of a loop.

    Args:
        total: the number of steps (files, samples, training steps) in all; a callback use
            (`progress(done, total)`) sets it with each call.
        stream: where to write (default: standard error).
        unit: what a step is, for the rate ("files", "samples", ...).
        prefix: put before every bar and line (e.g. the tool's name).
        log_every: also print a plain log line every this many seconds and at the end, whether
            or not the stream is a terminal; None: the bar only.
    """

    def __init__(
        self,
        total: int,
        *,
        stream: Optional[TextIO] = None,
        unit: str = "files",
        prefix: str = "",
        log_every: Optional[float] = None,
    ):
        self.total = int(total)
        self.stream = stream if stream is not None else sys.stderr
        self.unit = unit
        self.prefix = prefix
        self.log_every = log_every
        self.terminal = is_terminal(self.stream)
        self._start = time.monotonic()
        self._last_line = self._start
        self._last_logged: Optional[int] = None
        self._last_draw = float("-inf")
        self._shown = False
        # The first update's count and time: the pace and the time left are measured from it,
        # not from the start, which holds the start-up (TensorFlow's import, the first batch's
        # tracing): 0.1 samples/s and "about 25h left" for a conversion of 100 samples/s.
        self._first: Optional[tuple[int, float]] = None

    def update(self, done: int, text: Optional[str] = None) -> None:
        """Reports that `done` steps are finished.

        Args:
            done: steps finished so far.
            text: what the bar shows after `done/total` (default: the rate and the time left).
        """
        now = time.monotonic()
        finished = done >= self.total
        if self._first is None:
            self._first = (done, now)
            if not finished:  # no pace to show yet: the first line comes `log_every` later
                self._last_line = now
        if self.log_every is not None and (finished or now - self._last_line >= self.log_every):
            if done != self._last_logged:  # a caller may report its last count twice
                self._last_line, self._last_logged = now, done
                self.log(self._line(done, now))
            return
        if not self.terminal or (not finished and now - self._last_draw < _REDRAW_SECONDS):
            return
        self._last_draw = now
        if text is None:
            pace = self._pace(done, now)
            text = "" if pace is None else f"{pace:.1f} {self.unit}/s, {format_duration((self.total - done) / pace)} left"
        filled = BAR_WIDTH * min(done, self.total) // max(self.total, 1)
        bar = "=" * filled + (">" if filled < BAR_WIDTH else "") + "." * max(BAR_WIDTH - filled - 1, 0)
        # \033[K clears what a longer previous line left behind.
        self.stream.write(f"\r{self.prefix}[{bar}] {done}/{self.total} {text}\033[K")
        self.stream.flush()
        self._shown = True

    def clear(self) -> None:
        """Removes the bar so that a line can take its place (the next update redraws it)."""
        if self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self._shown = False

    def log(self, line: str) -> None:
        """Prints `line` on the stream, above the bar."""
        self.clear()
        print(line, file=self.stream, flush=True)

    def close(self) -> None:
        """Removes the bar for good."""
        self.clear()

    @classmethod
    def bar_or_lines(cls, stream: Optional[TextIO] = None, **kwargs) -> "Progress":
        """A bar on a terminal; elsewhere (a log file, a pipe) a line every `PIPED_LOG_SECONDS`.

        Args:
            stream: where to write (default: standard error).
            **kwargs: the other arguments of `Progress` but `total` (0: set by the callback) and
                `log_every`.
        """
        stream = stream if stream is not None else sys.stderr
        return cls(0, stream=stream, log_every=None if is_terminal(stream) else PIPED_LOG_SECONDS, **kwargs)

    def __call__(self, done: int, total: int) -> None:
        """`update` as a `progress(done, total)` callback (`ssma_tf.data.write_tfrecords` calls it)."""
        self.total = int(total)
        self.update(done)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _pace(self, done: int, now: float) -> Optional[float]:
        """Steps per second since the first update (None until a step more is done after it)."""
        if self._first is None or done <= self._first[0] or now <= self._first[1]:
            return None
        return (done - self._first[0]) / (now - self._first[1])

    def _line(self, done: int, now: float) -> str:
        elapsed = max(now - self._start, 1e-9)
        percent = 100.0 * done / self.total if self.total else 100.0
        if done < self.total:  # 199/200 is not "100%" while the last one is still on its way
            percent = min(percent, 99.0)
        line = f"{self.prefix}{done}/{self.total} ({percent:.0f}%)"
        if done >= self.total:  # the average over the whole run, start-up included
            return line + f", {done / elapsed:.1f} {self.unit}/s, {format_short_duration(elapsed)} in all"
        pace = self._pace(done, now)
        if pace is not None:
            line += f", {pace:.1f} {self.unit}/s, about {format_short_duration((self.total - done) / pace)} left"
        return line
