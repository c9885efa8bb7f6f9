"""Writing files and folders atomically: a reader sees the old version or the new one, never half.

Everything is first written under a temporary name in the destination's own folder (so the final
`os.replace` stays on one file system, where a rename is atomic) and renamed once complete. A
failure, or an interrupt, removes the temporary and leaves the destination as it was.

The temporary is created the way `open` and `mkdir` create any new file, so the result gets the
permissions the user's umask gives (`-rw-r--r--` under the usual 022), not `tempfile.mkstemp`'s
owner-only 0600. Temporary names start with `.partial-` and end with the destination's own name
(its last 32 characters after a digest of it, where the whole would pass the file system's 255
bytes), so writers that go by the extension (Keras wants `.weights.h5` or `.keras`) accept them.

`check_output` tells, before a long job starts, whether its output can be written there at all
(a folder where a file should go, a parent that is a file or not writable, an existing output
without `--overwrite`), so that a result is never computed only to be lost. It also warns, once
per process, of temporaries beside the output that an earlier writer of that same output left
(killed with SIGKILL, out of memory, a power loss: nothing else leaves them), naming them without
removing them, since another process, perhaps on another machine, may still be writing them.
Only the output's own temporaries are looked for, not those of files inside an output folder.

`sha256_of_file` fingerprints a file's contents (a released archive's cache name, the weights a
pruning run was measured on). `file_sizes`, `file_times` and `rewritten_files` tell a resumed run
that its records were converted again into the same files since it started (a saved input
position, or the batches skipped, would mean nothing in the new ones).

A write with `overwrite=False` (`atomic_path`, `atomic_paths`, `atomic_write`) puts its result in
place only where nothing appeared meanwhile: another command writing the same output keeps its
file, and this one fails with an `OutputPathError` (before, the last writer silently replaced the
first one's output, the "exists" refusal being made at start-up only; helper 366).

`resolved_folders` and `folder_holding` tell whether a path lies in one of some folders once
symbolic links are resolved (an output folder inside an input folder, whose files are no inputs).

No TensorFlow here: the data tools use this before they import it.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import tempfile
import threading
import time
import warnings
from typing import IO, Any, Iterator, Optional, Sequence, Union

from ssma_tf.errors import UserInputError, first_line

try:
    import fcntl
except ImportError:  # Windows: no lock between processes
    fcntl = None

PathLike = Union[str, "os.PathLike[str]"]

TEMPORARY_PREFIX = ".partial-"


class OutputPathError(UserInputError):
    """An output cannot be written where the user asked: the message names the path and why."""


# The temporaries already warned of: an output checked twice (a command, then the library it
# calls) names them once.
_WARNED: set = set()


class LeftoverWarning(UserWarning):
    """Temporaries of an earlier write of the same output lie beside it (the commands print it
    as one `warning:` line)."""


def leftover_temporaries(path: PathLike) -> list:
    """The temporaries beside `path` that writers of `path` made (`temporary_name`), sorted."""
    destination = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(destination)
    pattern = re.compile(re.escape(TEMPORARY_PREFIX) + r"\d+-[0-9a-f]{8}-" + re.escape(_temporary_part(name)) + "$")
    try:
        entries = os.listdir(folder)
    except OSError:  # a folder still to be made, or one that cannot be listed
        return []
    return sorted(os.path.join(folder, entry) for entry in entries if pattern.match(entry))


def writer_running(temporary: PathLike) -> bool:
    """Whether the process that made `temporary` (`temporary_name`: its id is in the name) still
    runs on this machine, so that the temporary is its work in progress, not a killed writer's
    leftover. False for a name that holds no process id."""
    match = re.match(re.escape(TEMPORARY_PREFIX) + r"(\d+)-", os.path.basename(os.fspath(temporary)))
    if match is None:
        return False
    try:
        os.kill(int(match.group(1)), 0)
    except ProcessLookupError:
        return False
    except OSError:  # running, under another user
        return True
    return True


def abandoned_temporaries(path: PathLike) -> list:
    """`leftover_temporaries` of `path` whose writer (the process id in their name) no longer runs
    on this machine: left by a killed writer, where a running one's is its work in progress."""
    return [leftover for leftover in leftover_temporaries(path) if not writer_running(leftover)]


# A metrics file an earlier run wrote is small; a larger file is not read to be told from one.
_JSON_SIZE_LIMIT = 16 * 2**20


def check_json_output(path: PathLike, *, what: str = "--json", keys: Sequence[str] = ("mIoU", "per_class")) -> str:
    """`check_output` for a JSON file a command writes over an earlier one: an existing file must
    be a JSON object holding one of `keys` (the metrics of an earlier run) or empty (blank). Any
    other (the config being evaluated, the weights, a picture, an export's `ssma_tf.json`, a
    pruning `report.json`), given by a slip of the path, was replaced without a word.

    Returns:
        The absolute path.

    Raises:
        OutputPathError: as `check_output`, or naming an existing file that is not JSON.
    """
    destination = check_output(path, what=what)
    if os.path.isfile(destination) and os.path.getsize(destination):
        try:
            if os.path.getsize(destination) > _JSON_SIZE_LIMIT:
                raise ValueError("too large")
            with open(destination, encoding="utf-8") as stream:
                text = stream.read()
            content = json.loads(text) if text.strip() else None
            if content is not None and not isinstance(content, dict):
                raise ValueError("not an object")
        except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            shown = os.fspath(path)
            raise OutputPathError(f"{what} {shown} exists and is not a JSON object (is it the config, the weights or "
                                  "another file of yours?); give another path, or delete it first", shown) from None
        if content and keys and not any(key in content for key in keys):  # `{}` holds nothing to lose
            # Before: any object was replaced (an export's metadata, which broke the export).
            shown = os.fspath(path)
            raise OutputPathError(f"{what} {shown} exists and holds no metrics of an earlier run (no "
                                  f"{' or '.join(repr(k) for k in keys)}: another tool's JSON file?); give another "
                                  "path, or delete it first", shown)
    return destination


def check_png_output(path: PathLike, *, what: str) -> str:
    """`check_output` for a picture a command writes over an earlier one: its name ends in `.png`,
    and an existing file must be a PNG (before: `--picture run/scene.keras` replaced the model with
    a picture, by a slip).

    Raises:
        OutputPathError: as `check_output`, or naming an existing file that is not a PNG.
    """
    destination = check_output(path, what=what)
    if os.path.isfile(destination) and os.path.getsize(destination):
        with open(destination, "rb") as stream:
            head = stream.read(8)
        if head != b"\x89PNG\r\n\x1a\n":
            shown = os.fspath(path)
            raise OutputPathError(f"{what} {shown} exists and is not a PNG picture (is it the model, the records or "
                                  "another file of yours?); give another path, or delete it first", shown)
    if not os.fspath(path).lower().endswith(".png"):
        # Before: PNG data written under a `.jpg` name, which viewers and pipelines misread (helper 225).
        raise OutputPathError(f"{what} {os.fspath(path)}: the picture is a PNG; give a name ending in .png",
                              os.fspath(path))
    return destination


def _written_path(path: PathLike) -> str:
    """The absolute path a write of `path` replaces: the file a symbolic link names (the link is
    kept), else `path` itself. Before, the temporary was renamed over the link."""
    destination = os.path.abspath(os.fspath(path))
    return os.path.realpath(destination) if os.path.islink(destination) else destination


def _refuse_special(destination: str, what: str, shown: str) -> None:
    """Refuses an existing output that is neither a file nor a folder: renaming a temporary over
    `/dev/stdout`, `/dev/null` or a pipe replaced the device for every later process (as root)."""
    # /dev/stdout of a command whose output goes to a file is that file (by way of /proc): the
    # rename would replace it under the shell's feet.
    streams = (destination.startswith("/dev/") and not destination.startswith("/dev/shm/")) or \
        os.path.realpath(destination).startswith("/proc/")
    if streams or (os.path.exists(destination) and not (os.path.isfile(destination) or os.path.isdir(destination))):
        raise OutputPathError(f"{what} {shown} is not a file but a device, pipe or socket (or a link to one); give "
                              "the path of a file", shown)


def check_output(
    path: PathLike,
    *,
    what: str = "output",
    directory: bool = False,
    overwrite: Optional[bool] = True,
) -> str:
    """Checks that `path` can be written, before the work that produces it starts.

    Leaves nothing behind (it writes and removes one empty file, as permissions do not tell
    whether a disk is read-only). Missing parent folders are fine (the writers create them) as long as the
    nearest existing one is a folder the user may write in.

    Args:
        path: the file (or, with `directory`, the folder) to be written.
        what: how the error names it (`--json`, `--output`, ...).
        directory: the output is a folder; otherwise an existing folder at `path` is an error.
        overwrite: False: an existing `path` is an error; True: it is replaced (its parent
            must be writable); None: files are written into the existing folder (with
            `directory`; the folder itself must be writable).

    Returns:
        The absolute path.

    Raises:
        OutputPathError: naming `path` and what is wrong with it.
    """
    shown = os.fspath(path)
    if not shown:
        # `--json "$OUT"` with OUT unset: before, called "a folder" (the current one), or, where a
        # command tested the flag's truth, nothing written and exit 0 (helper 340).
        raise OutputPathError(f"{what} is empty; give a {'folder' if directory else 'file'} name", shown)
    if not directory and shown.endswith(("/", os.sep)):
        # Before: `--json results/` wrote a file named `results` where no such folder existed yet.
        raise OutputPathError(f"{what} {shown} ends with '/', a folder's name; give a file name", shown)
    _refuse_special(os.path.abspath(shown), what, shown)
    link = os.path.abspath(shown)
    if directory and os.path.islink(link) and not os.path.exists(link):
        # The writers make folders through the link's own path: each command failed late and
        # otherwise ("File exists" after the model was built, "No such file or directory";
        # helper 200).
        raise OutputPathError(f"{what} {shown} is a symbolic link to {os.readlink(link)}, which does not exist: "
                              f"make that folder, or give another {what}", shown)
    destination = _written_path(path)
    if os.path.lexists(destination):
        if os.path.isdir(destination) and not directory:
            raise OutputPathError(f"{what} {shown} is a folder; give a file name", shown)
        if directory and not os.path.isdir(destination):
            raise OutputPathError(f"{what} {shown} is a file; give a folder", shown)
        if overwrite is False:
            raise OutputPathError(f"{what} {shown} exists; pass --overwrite to replace it", shown)
    # The folder the new entry is made in: the output folder itself when files go into it.
    into = directory and overwrite is None and os.path.isdir(destination)
    folder = destination if into else os.path.dirname(destination)
    while not os.path.lexists(folder):
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        raise OutputPathError(f"{what} {shown}: {folder} is a file, not a folder", shown)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} {shown}: the folder {folder} is not writable", shown)
    try:
        # Permissions alone do not tell (root passes them on a read-only disk or in /proc): the
        # failure came after the work, naming a temporary or blaming the input being read.
        handle, probe = tempfile.mkstemp(prefix=".ssma-write-check-", dir=folder)
        os.close(handle)
        os.remove(probe)
    except OSError as error:
        raise OutputPathError(f"{what} {shown}: cannot write in the folder {folder} "
                              f"({error.strerror or first_line(error)})", shown) from None
    leftovers = [entry for entry in leftover_temporaries(destination) if entry not in _WARNED]
    if leftovers:
        _WARNED.update(leftovers)
        size = sum(_size(entry) for entry in leftovers)
        warnings.warn(LeftoverWarning(
            f"{len(leftovers)} unfinished temporar{'y' if len(leftovers) == 1 else 'ies'} of {what} {shown} "
            f"({size / 1e6:.1f} MB), left by an earlier writer that did not finish: {', '.join(leftovers)}; remove "
            f"{'it' if len(leftovers) == 1 else 'them'} unless another process is writing {shown} now"), stacklevel=2)
    return destination


def free_bytes(directory: PathLike) -> Optional[int]:
    """Bytes the user can still write in `directory` (None where the system cannot tell)."""
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


def resolved_folders(folders: Sequence[PathLike]) -> list:
    """Each folder with its resolved path and a trailing separator, for `folder_holding`."""
    return [(folder, os.path.join(os.path.realpath(folder), "")) for folder in folders]


def folder_holding(path: PathLike, folders: Sequence[tuple]) -> Optional[PathLike]:
    """The folder of `folders` (`resolved_folders`) that `path` is or lies in, links resolved;
    None for none."""
    real = os.path.realpath(path)
    return next((folder for folder, prefix in folders if real.startswith(prefix) or real + os.sep == prefix), None)


def file_sizes(paths: Sequence[PathLike]) -> dict:
    """The size in bytes of each file in `paths`, by its path as given."""
    return {os.fspath(path): os.path.getsize(path) for path in paths}


def file_times(paths: Sequence[PathLike]) -> dict:
    """The last modification time of each file in `paths`, in nanoseconds, by its path as given:
    a file converted again into records of the same total size (another order of the same
    images) has the size it had, not the time."""
    return {os.fspath(path): os.stat(path).st_mtime_ns for path in paths}


def rewritten_files(sizes: tuple[Optional[dict], dict], times: tuple[Optional[dict], dict]) -> str:
    """The files written again between two looks, as their new sizes say (`size_changes`), else
    as their modification times do, "PATH modified at TIME, of the same size"; "" when none
    were. `sizes` and `times` are (before, now) pairs of `file_sizes` and `file_times`; a before
    of None (recorded by an earlier version) is not compared."""
    (sizes_before, sizes_now), (times_before, times_now) = sizes, times
    changed = size_changes(sizes_before, sizes_now) if sizes_before is not None else ""
    if changed or times_before is None:
        return changed
    changed = _time_changes(times_before, times_now)
    return changed and f"{changed}, of the same size"


def _time_changes(before: dict, now: dict, *, shown: int = 2) -> str:
    """The files in both `before` and `now` (`file_times`) modified in between, as "PATH
    modified at TIME", the first `shown` and how many more; "" when none were."""
    changed = [f"{path} modified at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(now[path] / 1e9))}"
               for path in sorted(set(before) & set(now)) if before[path] != now[path]]
    more = f" and {len(changed) - shown} more" if len(changed) > shown else ""
    return "; ".join(changed[:shown]) + more


def size_changes(before: dict, now: dict, *, shown: int = 2) -> str:
    """The files whose sizes (`file_sizes`) differ between `before` and `now`, as
    "PATH OLD -> NEW bytes" ('absent' for a file in one only), the first `shown` and how many
    more; "" when none differ."""
    changed = [f"{path} {before.get(path, 'absent')} -> {now.get(path, 'absent')} bytes"
               for path in sorted(set(before) | set(now)) if before.get(path) != now.get(path)]
    more = f" and {len(changed) - shown} more" if len(changed) > shown else ""
    return "; ".join(changed[:shown]) + more


def _size(path: str) -> int:
    """Bytes of a file, or of the files under a folder (0 for what cannot be read)."""
    if not os.path.isdir(path):
        try:
            return os.path.getsize(path)
        except OSError:
            return 0
    return sum(_size(os.path.join(root, name)) for root, _, names in os.walk(path) for name in names)


# The longest file name most file systems take (ext4, XFS, btrfs, tmpfs, APFS), in bytes, and
# the longest `<pid>-<random>-` of a temporary (process ids reach 4194304).
_NAME_MAX = 255
_TAG_MAX = len("4194304-0123abcd-")


def _temporary_part(name: str) -> str:
    """The part of a temporary's name that names its destination `name`: the name itself, or,
    where the temporary's would be too long for the file system (a legal name of 230-255 bytes;
    before: "File name too long" after the work, reported as a failed write; helper 236), a
    digest of it and its last characters, so that the extension (`.keras`, `.weights.h5`) stays."""
    if len(TEMPORARY_PREFIX) + _TAG_MAX + len(name.encode()) <= _NAME_MAX:
        return name
    return f"{hashlib.sha256(name.encode()).hexdigest()[:16]}-{name[-32:]}"


def temporary_name(path: PathLike) -> str:
    """A fresh name beside `path` for writing it: `.partial-<pid>-<random>-<name>` (the name
    shortened where the file system would refuse it whole).

    Args:
        path: the destination.

    Returns:
        An absolute path in the destination's folder that nothing uses yet.
    """
    path = os.path.abspath(os.fspath(path))
    folder, name = os.path.split(path)
    # The process id tells leftovers of different runs apart; the random part makes two writers
    # of one process (threads) miss each other too.
    tag = f"{os.getpid()}-{secrets.token_hex(4)}"
    return os.path.join(folder, f"{TEMPORARY_PREFIX}{tag}-{_temporary_part(name)}")


@contextlib.contextmanager
def atomic_write(
    path: PathLike, mode: str = "w", *, encoding: str | None = None, overwrite: bool = True
) -> Iterator[IO]:
    """Opens a file to write `path` atomically: `with atomic_write(p) as f: f.write(...)`.

    The parent folders are created. The content goes to a temporary file beside `path`, which
    replaces `path` when the block ends normally and is removed when it raises.

    Args:
        path: the destination; an existing file there is replaced.
        mode: "w" (text) or "wb" (bytes).
        encoding: for text; None means UTF-8 (not the locale's encoding).
        overwrite: False: a file that appeared at `path` meanwhile is kept (`atomic_path`).

    Yields:
        The open temporary file.

    Raises:
        ValueError: for a mode other than "w" or "wb".
        OutputPathError: with `overwrite=False`, `path` appeared while the block wrote.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    with atomic_path(path, overwrite=overwrite) as temporary:
        # O_EXCL: never write into a file someone else just made; mode 0o666 minus the umask
        # gives new files their usual permissions (mkstemp would make them 0600).
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with open(handle, mode, encoding=encoding) as stream:
            yield stream


@contextlib.contextmanager
def atomic_path(path: PathLike, *, directory: bool = False, overwrite: bool = True,
                _placed: Optional[list] = None) -> Iterator[str]:
    """A temporary name to write `path` under, for writers that need a name rather than a stream.

    Examples are Keras' `save_weights`, a `TFRecordWriter`, or a SavedModel folder:
    `with atomic_path("out/final.weights.h5") as partial: model.save_weights(partial)`.
    When the block ends normally the temporary replaces `path`; when it raises, the temporary
    is removed. Several outputs that must appear together can be nested (or entered on one
    `contextlib.ExitStack`): none is renamed before every block has finished writing.

    Args:
        path: the destination file or folder; an existing one is replaced. A folder is replaced
            only once the new one is complete: the old one is moved aside, the new one renamed
            in, then the old one deleted.
        directory: create the temporary as an empty folder (with the umask's permissions) for
            the block to fill; otherwise nothing is created and the block's writer creates the
            file.
        overwrite: False: nothing at `path` is replaced, not even what appeared while the block
            wrote (another command writing the same output): a file is put in place with a hard
            link, which fails where the destination exists (where the file system has no hard
            links, and for a folder, the destination is looked for just before the rename, which
            leaves a tiny window); what appeared is kept and the temporary removed.
        _placed: `atomic_paths`' list of the destinations put in place with `overwrite=False`.

    Yields:
        The temporary path (absolute, in the folder of `path`, ending with the name of `path`, or
        its last 32 characters where the whole would be too long: `temporary_name`).

    Raises:
        FileNotFoundError: the block wrote nothing under the temporary name.
        OutputPathError: with `overwrite=False`, `path` appeared while the block wrote.
        OSError: a failed write (a full disk, say) names `path`, not the temporary, so that the
            commands can report it in one line.
    """
    _refuse_special(os.path.abspath(os.fspath(path)), "output", os.fspath(path))
    destination = _written_path(path)
    folder = os.path.dirname(os.path.abspath(destination))
    with _OPEN_GUARD:
        made = _missing_folders(folder)
        os.makedirs(folder, exist_ok=True)
        _OPEN_FOLDERS[folder] = _OPEN_FOLDERS.get(folder, 0) + 1
    temporary = temporary_name(destination)
    closed = False
    try:
        if directory:
            os.mkdir(temporary, 0o777)  # the umask takes off what it always does
        yield temporary
        if not os.path.lexists(temporary):
            raise FileNotFoundError(f"nothing was written to {temporary} for {destination}")
        if overwrite:
            _replace(temporary, destination)
        else:
            # Before: replaced whatever another command had written there meanwhile (helper 366).
            _put_new(temporary, destination, os.fspath(path))
            if _placed is not None:
                _placed.append(destination)
    except OSError as error:
        remove_path(temporary)
        closed = _close_folder(folder, made)
        if error.errno is not None and error.filename in (None, temporary):
            # A write reports no file name, and the temporary's means nothing to the user.
            raise OSError(error.errno, error.strerror or str(error), os.fspath(path)) from error
        inside = temporary + os.sep
        if error.errno is not None and isinstance(error.filename, str) and error.filename.startswith(inside):
            # A file of a temporary folder (an export's model_float32.tflite): named where it
            # was going, the temporary folder being gone (helper 132).
            named = os.path.join(os.fspath(path), error.filename[len(inside):])
            raise OSError(error.errno, error.strerror or str(error), named) from error
        raise
    except BaseException:
        remove_path(temporary)
        closed = _close_folder(folder, made)
        raise
    finally:
        if not closed:
            _close_folder(folder, [])  # written: its folders stay


def _missing_folders(folder: str) -> list:
    """The folders of `folder`'s path that do not exist yet, deepest first."""
    missing = []
    folder = os.path.abspath(folder)
    while folder and not os.path.lexists(folder):
        missing.append(folder)
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    return missing


# The folders of the outputs being written by `atomic_path` in this process, with how many:
# a failed write does not remove a folder another one is about to write into (helper 243).
_OPEN_FOLDERS: dict = {}
_OPEN_GUARD = threading.Lock()


def _close_folder(folder: str, made: Sequence[str]) -> bool:
    """Ends a write into `folder`, and removes the folders it `made` for its output, deepest
    first, where still empty and no other write of this process is going on in them: a failure
    leaves nothing new (before: its empty folders; helper 242). Another process writing into a
    new folder at that very moment may find it gone (a narrow race; its write fails, naming it).
    Returns True."""
    with _OPEN_GUARD:
        count = _OPEN_FOLDERS.get(folder, 0) - 1
        if count > 0:
            _OPEN_FOLDERS[folder] = count
        else:
            _OPEN_FOLDERS.pop(folder, None)
        for made_folder in made:
            inside = made_folder + os.sep
            if any(open_folder == made_folder or open_folder.startswith(inside) for open_folder in _OPEN_FOLDERS):
                break
            try:
                os.rmdir(made_folder)
            except OSError:
                break
    return True


class _SignalsHeld:
    """SIGINT and SIGTERM caught between `hold` and `release`, then delivered (the first one).

    Python runs signal handlers in the main thread, whatever thread the signal reached, so a
    handler of its own is what holds them back (a signal mask of the main thread would not,
    beside TensorFlow's threads). Outside the main thread, or for a handler not set from Python,
    nothing is held. Nested holds compose: the inner release hands the signal to the outer catch.
    """

    def __init__(self) -> None:
        self._previous: dict = {}
        self._caught: list = []

    def hold(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for number in (signal.SIGINT, signal.SIGTERM):
            handler = signal.getsignal(number)
            if handler is not None:  # None: set outside Python, and it could not be put back
                self._previous[number] = handler
                signal.signal(number, self._catch)

    def _catch(self, number: int, frame: Any) -> None:
        self._caught.append(number)

    def release(self) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self._previous.clear()
        if self._caught:
            number = self._caught[0]
            self._caught.clear()
            handler = signal.getsignal(number)
            if callable(handler):
                handler(number, None)  # as the signal's delivery runs it (KeyboardInterrupt, the commands' SIGTERM)
            elif handler == signal.SIG_DFL:
                signal.raise_signal(number)  # its default action: the process ends, as it would have


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Runs the block with SIGINT and SIGTERM held back, then delivers one that came: for steps
    that must all happen once begun (renames that put several outputs, or a new folder, in place)."""
    held = _SignalsHeld()
    held.hold()
    try:
        yield
    finally:
        held.release()


@contextlib.contextmanager
def atomic_paths(paths: Sequence[PathLike], *, directory: bool = False,
                 overwrite: Union[bool, Sequence[bool]] = True) -> Iterator[list]:
    """`atomic_path` for outputs that appear together, such as the shards of a record set: the
    temporary names, renamed once the block has ended, with SIGINT and SIGTERM held back while
    they are (helper 271: an interrupt between two renames left new shards beside old ones, or a
    lone new shard that a glob reads). An interrupt during the block leaves every output as it was.

    `overwrite` (one flag, or one per path) as for `atomic_path`. Where a destination not to be
    replaced appeared meanwhile, none of the outputs is put in place: every such destination is
    looked for before the first rename, and one that appears after that look (a tiny window) makes
    the outputs already put in place with `overwrite=False` be removed again (those replaced with
    `overwrite=True` stay replaced). `OutputPathError` names the first that appeared."""
    flags = [overwrite] * len(paths) if isinstance(overwrite, bool) else [bool(flag) for flag in overwrite]
    if len(flags) != len(paths):
        raise ValueError(f"overwrite gives {len(flags)} flags for {len(paths)} paths")
    kept = [path for path, flag in zip(paths, flags) if not flag]
    held = _SignalsHeld()
    placed: list = []

    def take_back(kind: Any, error: Any, trace: Any) -> bool:
        if kind is not None:  # this command's new outputs go with the one that could not be put in place
            for destination in placed:
                remove_path(destination)
        return False

    def look(kind: Any, error: Any, trace: Any) -> bool:
        if kind is None:
            for path in kept:
                if os.path.lexists(_written_path(path)):
                    raise _appeared(os.fspath(path))
        return False

    with contextlib.ExitStack() as stack:
        stack.callback(held.release)  # last: after every rename (or removal)
        stack.push(take_back)  # after every rename, still with the signals held
        temporaries = [stack.enter_context(atomic_path(path, directory=directory, overwrite=flag, _placed=placed))
                       for path, flag in zip(paths, flags)]
        stack.push(look)  # second: before the renames
        stack.callback(held.hold)  # first: before the renames
        yield temporaries


def _appeared(shown: str) -> OutputPathError:
    """The error for an output that appeared while this process was writing it."""
    return OutputPathError(f"'{shown}' appeared while this command was writing it (another command writing the "
                           "same output?): it is left as it is and this command's result is dropped; pass "
                           "--overwrite to replace it, or give another output", shown)


# A hard link that the file system refuses (not one that exists): FAT and some network file
# systems, or a link across devices.
_NO_LINKS = {errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENOSYS, errno.EMLINK, errno.EACCES}


def _put_new(source: str, destination: str, shown: str) -> None:
    """Renames `source` to `destination` where nothing is at `destination`, else raises
    `OutputPathError` (the caller removes `source`). A file is put in place with a hard link (it
    fails where the destination exists, whenever it appeared); a folder, or a file where the file
    system has no hard links, after a look for the destination just before the rename: something
    appearing between the two is still replaced (a tiny window; a rename onto an empty folder
    succeeds on POSIX)."""
    if not os.path.isdir(source) or os.path.islink(source):
        try:
            os.link(source, destination, follow_symlinks=False)
        except FileExistsError:
            raise _appeared(shown) from None
        except OSError as error:
            if error.errno not in _NO_LINKS:
                raise
        else:
            with contextlib.suppress(FileNotFoundError):
                os.remove(source)
            return
    if os.path.lexists(destination):
        raise _appeared(shown)
    os.rename(source, destination)


def _replace(source: str, destination: str) -> None:
    if os.path.isdir(source) and os.path.isdir(destination) and not os.path.islink(destination):
        # A rename cannot replace a non-empty folder: move the old one aside first, so that the
        # destination is missing only between two renames, and delete it after. An interrupt is
        # held until the old one is gone (helper 271: raised during its removal, it reported the
        # command interrupted with the new folder in place and the old one left half-deleted).
        with signals_held():
            old = temporary_name(destination)
            os.replace(destination, old)
            try:
                os.replace(source, destination)
            except BaseException:
                os.replace(old, destination)
                raise
            shutil.rmtree(old, ignore_errors=True)
        return
    os.replace(source, destination)


def remove_path(path: str) -> None:
    """Removes a file, a link (not what it points to) or a folder with its content; nothing if missing."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


# The files of a TF checkpoint beside its prefix, which people paste instead of the prefix.
_TF_CHECKPOINT_PART = re.compile(r"\.(index|meta|data-\d{5}-of-\d{5})$")


def matched_files(pattern: PathLike) -> list:
    """The files a path or glob pattern names, sorted: the path itself when it is a file (a name
    such as `data [v2]/x.tfrecords` reads as a pattern but is no match of it), else the
    pattern's matches that are files (none for a folder or nothing)."""
    pattern = os.fspath(pattern)
    if os.path.isfile(pattern):
        return [pattern]
    return sorted(path for path in glob.glob(pattern) if os.path.isfile(path))


def checkpoint_prefix(path: PathLike) -> str:
    """`path` without a pasted TF checkpoint part (`.index`, `.meta`, `.data-00000-of-00001`)."""
    return _TF_CHECKPOINT_PART.sub("", os.fspath(path))


def sha256_of_file(path: PathLike) -> str:
    """The SHA-256 of a file's contents (hex), read in blocks: a network's weights are hundreds of MB."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


# The lock files this process holds: path -> [open file, how many holders in this process]. The
# holders of one process share the lock (a test resumes a run with a second Trainer while the
# first lives); other processes wait for it or are refused.
_HELD_LOCKS: dict = {}
_HELD_LOCKS_GUARD = threading.Lock()


class LockedError(UserInputError):
    """Another process holds a lock file (`take_lock`); `holder` says which ("process 1234")."""

    def __init__(self, message: str, path: Optional[str] = None, holder: str = "another process"):
        super().__init__(message, path)
        self.holder = holder


def take_lock(path: PathLike, *, wait: bool, waiting: Optional[str] = None) -> str:
    """Takes the exclusive lock file `path` (an `flock`, where the system has it) for this
    process; holders in one process share it and each gives it back with `give_lock`.

    Args:
        path: the lock file (created, never removed: removing one another process waits on
            would let a third take a lock of its own).
        wait: wait for another process's lock; else raise `LockedError`, naming the process
            (its id is written into the file).
        waiting: printed to standard error once when `wait` has to wait.

    Returns:
        The lock file's path, for `give_lock`.
    """
    path = os.path.abspath(os.fspath(path))
    with _HELD_LOCKS_GUARD:
        if path in _HELD_LOCKS:
            _HELD_LOCKS[path][1] += 1
            return path
    # Outside the guard: waiting for another process may take minutes (a download), and other
    # threads give back or take other locks meanwhile.
    handle = _locked_file(path, wait, waiting)
    with _HELD_LOCKS_GUARD:
        if path in _HELD_LOCKS:  # where `flock` is missing, another thread may have come first
            handle.close()
            _HELD_LOCKS[path][1] += 1
        else:
            _HELD_LOCKS[path] = [handle, 1]
    return path


def _locked_file(path: str, wait: bool, waiting: Optional[str]) -> IO:
    """`path` opened and `flock`ed exclusively, this process's id written into it (`take_lock`)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    handle = open(path, "a+")
    try:
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    handle.seek(0)
                    holder = handle.read().strip() or "another process"
                    raise LockedError(f"held by {holder}", path=path, holder=holder) from None
                if waiting:
                    import sys

                    print(waiting, file=sys.stderr, flush=True)
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()}\n")
        handle.flush()
    except BaseException:
        handle.close()
        raise
    return handle


def give_lock(path: str) -> None:
    """Gives back one hold of `take_lock`'s lock; the last one releases it."""
    with _HELD_LOCKS_GUARD:
        held = _HELD_LOCKS.get(path)
        if held is None:
            return
        held[1] -= 1
        if held[1] == 0:
            del _HELD_LOCKS[path]
            held[0].close()  # releases the flock


def folder_lock_path(folder: PathLike, kind: str) -> str:
    """The lock file of `kind` for `folder`, outside it (in this user's temporary folder), so that
    taking it writes nothing into the folder: `<tmp>/ssma_tf-locks-<uid>/<kind>-<hash>.lock`."""
    name = hashlib.sha256(os.path.realpath(os.fspath(folder)).encode()).hexdigest()[:16]
    user = getattr(os, "getuid", lambda: "user")()
    return os.path.join(tempfile.gettempdir(), f"ssma_tf-locks-{user}", f"{kind}-{name}.lock")


@contextlib.contextmanager
def folder_held(folder: PathLike, kind: str, refusal: str) -> Iterator[None]:
    """Holds the `kind` lock of `folder` (`folder_lock_path`) for the block, without waiting.

    Raises:
        UserInputError: another process holds it: `refusal` with `{holder}` filled in ("process
            1234"), naming `folder`.
    """
    try:
        taken = take_lock(folder_lock_path(folder, kind), wait=False)
    except LockedError as error:
        raise UserInputError(refusal.format(holder=error.holder), path=os.fspath(folder)) from None
    try:
        yield
    finally:
        give_lock(taken)


@contextlib.contextmanager
def held_lock(path: PathLike, *, waiting: Optional[str] = None) -> Iterator[None]:
    """`take_lock(path, wait=True)` for the block."""
    taken = take_lock(path, wait=True, waiting=waiting)
    try:
        yield
    finally:
        give_lock(taken)
