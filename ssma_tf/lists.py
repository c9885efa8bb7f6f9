"""List files: one sample per line, its paths separated by spaces, by tabs, or quoted.

The converter (`ssma-convert`), the prediction command (`ssma-predict --list`) and the modality
tools (`ssma-prepare --from-list`, `--list-file`) read and write lists the same way:

- `rgb/a.png depth/a.png label/a.png`: fields separated by spaces (the original tools' format);
- a line holding a tab is split at tabs only, so its paths may contain spaces:
  `rgb/a b.png<TAB>label/a b.png`;
- otherwise a path with spaces is quoted, with double or single quotes:
  `"rgb/a b.png" "label/a b.png"`. A quote opens a quoted path only at a path's start, so an
  apostrophe inside a word (`it's/a.png`) is part of the path. Backslashes are kept as they are
  (no escapes), so Windows paths need no doubling.

Blank lines and lines starting with `#` (after blanks) are skipped, whatever they hold; a path
that starts with `#` is quoted (`"#0001.png" ...`), as `format_line` writes it. Lines end at a
line feed, a carriage return, or both. Fields are split at ASCII blanks only, as the original
tools split them: a no-break space (U+00A0, U+202F in macOS screenshot names) inside a path is
part of it (any space at an unquoted path's ends is dropped). An empty quoted path (`""`) is
an error. Files are UTF-8 (a byte-order mark is
allowed); anything else is an error naming the file and the line. No TensorFlow here: the converter checks a list before it loads it.
"""

from __future__ import annotations

import os
import re
from typing import List, Optional, Sequence, Tuple, Union

from ssma_tf.errors import UserInputError

PathLike = Union[str, "os.PathLike[str]"]

_QUOTES = ("\"", "'")
# The blanks that separate fields: ASCII only (before: `str.split` also cut paths at Unicode
# spaces, and the error named half a path; helper 236).
_BLANKS = " \t\n\r\f\v"
_BLANK_RUN = re.compile(r"[ \t\n\r\f\v]+")


class ListFileError(UserInputError):
    """A list file cannot be read or has a bad line; the message names the file and the line."""


class MissingFileError(UserInputError, FileNotFoundError):
    """A file the user named (a list file, an image in a list) does not exist."""


# Added to errors about a list line whose words may be one path cut at its spaces.
SPACES_HINT = " (a path with spaces? quote it or separate the paths by tabs)"
ESCAPED_SPACE_HINT = (" (a space escaped with a backslash? list files take no escapes: quote the path or separate "
                      "the paths by tabs)")


def spaces_hint(fields: Sequence[str], index: int, folder: str) -> str:
    """`SPACES_HINT` when the line's field `index`, which names no file, is a word of a path cut
    at its spaces: "my rgb.png depth.png label.png" lacks 'my', but 'my rgb.png' is there (or
    'my images/a b.png', three words); `ESCAPED_SPACE_HINT` when the path is there once its
    spaces escaped as a shell would ('my\\ rgb.png') are plain. Paths are relative to `folder`;
    "" otherwise."""
    joined = [" ".join(fields[start:end]) for start in range(index + 1)
              for end in range(max(index + 1, start + 2), len(fields) + 1)]
    if any(os.path.isfile(os.path.join(folder, os.path.expanduser(j))) for j in joined):
        return SPACES_HINT
    # A space escaped as a shell would ('depth\ jet/0.png'): the backslash is part of the path here.
    if any("\\ " in j and os.path.isfile(os.path.join(folder, os.path.expanduser(j.replace("\\ ", " "))))
           for j in joined):
        return ESCAPED_SPACE_HINT
    return ""


def place_hint(field: str, folder: str) -> str:
    """A hint for a list's path that names no file, when it names one read otherwise: a Windows
    path (backslashes are no folder separators here), paths of a line with a tab that were meant
    to be split at spaces or unquoted, or a path relative to the current folder rather than to
    the list's; "" otherwise."""
    if "\\" in field:
        posix = os.path.join(folder, os.path.expanduser(field.replace("\\", "/")))
        there = f": '{os.path.normpath(posix)}' is there" if os.path.isfile(posix) else ""
        return f" (backslashes are no folder separators on this system: write the list's paths with '/'{there})"
    if any(c.isspace() for c in field) or any(q in field for q in _QUOTES):
        # Only a line with a tab keeps spaces unquoted or quotes in a field: split at tabs, a mix
        # of tabs and spaces or a quoted path on it stays one path that names no file.
        try:
            words = split_line(field.replace("\t", " "))
        except ValueError:
            words = []
        if words and all(os.path.isfile(os.path.join(folder, os.path.expanduser(w))) for w in words):
            if any(q in field for q in _QUOTES):  # quotes stay in a field on a line with a tab only
                return (" (the line holds a tab, so it is split at tabs only and its spaces and quotes are part of "
                        "the paths: separate all of them by tabs, or by spaces with quotes around paths with spaces)")
            # Spaces: a line with a tab, or quotes around the words on a line without one.
            return (f" (its words are files each: {', '.join(repr(w) for w in words)}; a line with a tab is split "
                    "at tabs only, and quotes join words into one path: separate the paths by tabs, or by spaces "
                    "without quotes around them)")
    if not os.path.isabs(field) and os.path.isfile(os.path.expanduser(field)) and \
            os.path.abspath(folder) != os.path.abspath(os.curdir):
        return (f" (it is there relative to the current folder, but a list's paths are relative to the list's own "
                f"folder, {folder or '.'})")
    return ""


def comment_hint(fields: Sequence[str]) -> str:
    """` (a comment after the paths? ...)` when a field after a line's first starts with `#`,
    for errors about the line (a missing file '#', a column too many); "" otherwise."""
    if any(field.startswith("#") for field in fields[1:]):
        return " (a comment after the paths? comments go on lines of their own, starting with #)"
    return ""


def more_columns_hint(fields: Sequence[str], folder: str, paths: Optional[int] = None) -> str:
    """The hint for a line of more columns than expected: a path cut at its spaces (`SPACES_HINT`,
    or `spaces_hint`'s where the joined path is there), unless each of its first `paths` columns
    (all by default; a scene list's class id is no path) names a file: a pair mixed with a
    triplet is no path with spaces (before: hinted so; helpers 236 and 241)."""
    checked = list(fields if paths is None else fields[:paths])
    missing = [i for i, p in enumerate(checked) if not os.path.isfile(os.path.join(folder, os.path.expanduser(p)))]
    if not missing:
        return ""
    return spaces_hint(fields, missing[0], folder) or SPACES_HINT


def unicode_space_hint(field: str) -> str:
    """A hint for a path holding a space that is not ASCII (a no-break space pasted from a web
    page or a word processor, U+202F of macOS screenshot names): part of the path here, where
    the printed path shows it as a plain space; "" for a path without one."""
    import unicodedata

    for at, character in enumerate(field):
        if character.isspace() and character not in _BLANKS:
            name = unicodedata.name(character, "a space")
            return (f" (it holds U+{ord(character):04X} {name} at character {at + 1}, which is part of the path: "
                    "list files separate paths by ASCII spaces or tabs only)")
    return ""


def missing_path_detail(path: str, fields: Sequence[str], index: int, folder: str) -> str:
    """What is wrong with a list line's path `path` (field `index` of `fields`, relative to
    `folder`) that names no file: "is a folder" or "does not exist", with the hint of a path cut
    at its spaces, a Windows or misplaced path, or a comment after the paths."""
    what = "is a folder" if os.path.isdir(path) else "does not exist"
    hint = spaces_hint(fields, index, folder) or place_hint(fields[index], folder) or unicode_space_hint(fields[index])
    if hint:
        return what + hint
    return what + (comment_hint(fields) if fields[index].startswith("#") else "")


def split_line(line: str) -> List[str]:
    """The fields of one list line (see the module docstring); [] for a blank line.

    Raises:
        ValueError: a quote that is not closed.
    """
    if "\t" in line:
        return [field.strip() for field in line.split("\t") if field.strip()]
    if not any(quote in line for quote in _QUOTES):
        # Any space at a path's ends goes (a no-break space pasted after the last path; helper 241).
        return [field.strip() for field in _BLANK_RUN.split(line) if field.strip()]
    # A quote opens a quoted path only where a field starts: one inside a word is part of the path
    # (before, as in a shell, `it's/a.png it's/l.png` was one path "its/a.png its/l.png", while the
    # original tools split it at the space). Backslashes are kept (no escapes: Windows paths).
    fields, at, end = [], 0, len(line)
    while at < end:
        if line[at] in _BLANKS:
            at += 1
            continue
        field, quoted = "", line[at] in _QUOTES
        if quoted:
            close = line.find(line[at], at + 1)
            if close < 0:
                raise ValueError(f"no closing quote for the one at character {at + 1}")
            field, at = line[at + 1:close], close + 1
        start = at
        while at < end and line[at] not in _BLANKS:
            at += 1
        if quoted:
            fields.append(field + line[start:at])
        elif line[start:at].strip():  # as above: any space at an unquoted path's ends goes
            fields.append(line[start:at].strip())
    return fields


def format_line(fields: Sequence[str]) -> str:
    """One list line for `fields`: space separated, a field with spaces or quotes quoted.

    `split_line(format_line(fields)) == list(fields)` for every field that holds no newline and
    not both kinds of quote.

    Raises:
        ValueError: a field that cannot be written (a newline, both kinds of quote, empty).
    """
    parts = []
    for field in fields:
        field = os.fspath(field)
        if not field or "\n" in field or "\r" in field or "\t" in field:
            raise ValueError(f"cannot write {field!r} to a list file: empty, or a tab or line break in it")
        # A first field starting with "#" would read as a comment: quoted (before: the lines of
        # `ssma-prepare --list-file` for files named "#0001.png" were dropped by the converter).
        if any(c.isspace() for c in field) or any(q in field for q in _QUOTES) or (not parts and field[0] == "#"):
            if "\"" not in field:
                field = f"\"{field}\""
            elif "'" not in field:
                field = f"'{field}'"
            else:
                raise ValueError(f"cannot write {field!r} to a list file: it holds both kinds of quote")
        parts.append(field)
    return " ".join(parts)


def read_lines(path: PathLike) -> List[Tuple[int, List[str]]]:
    """Reads a list file into (line number, fields) for every line that is not blank or a comment.

    Args:
        path: the list file.

    Returns:
        The non-blank lines with their 1-based numbers and fields (paths as written).

    Raises:
        MissingFileError: the file does not exist.
        ListFileError: it is a folder, cannot be read, is not UTF-8 text, or a line has an
            unclosed quote; the message names the file (and the line).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise MissingFileError(f"list file {path} does not exist", path)
    if os.path.isdir(path):
        raise ListFileError(f"list file {path} is a folder; give the list file in it", path)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as error:
        raise ListFileError(f"cannot read list file {path}: {error.strerror or error}", path) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        # Counted as the lines are split below, a lone "\r" ending one too (helper 236).
        number = len(re.findall(rb"\r\n|\r|\n", data[: error.start])) + 1
        raise ListFileError(
            f"{path}, line {number}: not UTF-8 text (byte 0x{data[error.start]:02x}); list files must be "
            "UTF-8 (re-save it as UTF-8, or check that it is a list file at all)", path,
        ) from None
    lines = []
    # Lines end at "\r\n", "\n" or a lone "\r" (old Mac and some spreadsheet exports), as editors
    # count them: `splitlines` also broke at form feeds and Unicode separators, and the errors
    # named another line.
    for number, line in enumerate(re.split(r"\r\n|\r|\n", text), start=1):
        if line.lstrip().startswith("#"):
            continue  # a comment, whatever it holds (before: its quotes were parsed, "'19" refused)
        try:
            fields = split_line(line)
        except ValueError:
            raise ListFileError(
                f"{path}, line {number}: a quote is not closed: {line.strip()!r} (quote paths with "
                "spaces as \"a b.png\", or separate the paths by tabs)", path,
            ) from None
        if "" in fields:
            # Before: joined to the list's folder, and the error named a folder never written (helper 236).
            raise ListFileError(f"{path}, line {number}: an empty quoted path (\"\") in {line.strip()!r}", path)
        if fields:  # a quoted "#b.png" is a path (before: dropped as a comment)
            lines.append((number, fields))
    return lines


def refuse_listed_outputs(outputs: Sequence[PathLike], list_file: PathLike, inputs: Sequence[PathLike],
                          error: type = ListFileError) -> None:
    """Raises `error(message, list_file)` when one of `outputs` is the list file or one of its `inputs`.

    Paths are compared once symbolic links are resolved, so a list naming its images through a
    linked folder is caught as well as one naming them by their own path. `ssma-convert` and
    `ssma-scene convert` check their outputs with it before reading an image: with `--overwrite`,
    the list or an image would be replaced by the records.
    """
    listed = os.path.realpath(list_file)
    images = {os.path.realpath(path) for path in inputs}  # resolved once, whatever the shards
    for output in outputs:
        target = os.path.realpath(output)
        if target == listed:
            raise error(f"{os.fspath(list_file)}: the output {os.fspath(output)} is the list file itself", list_file)
        if target in images:
            raise error(f"{os.fspath(list_file)}: the output {os.fspath(output)} is one of the listed images",
                        list_file)
