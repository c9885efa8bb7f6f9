"""Batch conversion of raw inputs into prepared images, and the list files for the TFRecord tool.

A run turns each raw input (a depth map, a disparity map, a NIR image) into one output file and,
optionally, writes a list file for `tools/convert_to_tfrecords.py`: one sample per line, space
separated `modality1 modality2 label` (or `modality1 label` for a unimodal expert), paths
relative to the list file's folder.

Inputs come either from folders (files paired with RGB images and labels by name) or from an
existing list file whose one column holds the raw inputs (the other columns are kept and the
raw column is replaced by the outputs).

Names and pairing: the *key* of a file is its path relative to the folder it was found in,
without extension and without an optional suffix (e.g. `_disparity`), so that
`aachen_000000_000019_disparity.png` and `aachen_000000_000019_leftImg8bit.png` both have the
key `aachen_000000_000019` once their suffixes are given. Outputs are written to
`output_dir/<key><output_suffix><extension>`, keeping sub-folders, so the same frame name in two
scenes (ScanNet's `scene0000_00/depth/0.png`) never collides.

Nothing is overwritten unless asked: existing outputs are an error before any work starts,
unless `overwrite` (replace them) or `skip_existing` (keep them, e.g. to resume a long run).
Each output's input is recorded in `output_dir/.ssma-prepare-sources` (`SOURCES_FILE`), with the
input's size, time and contents' digest as the output was made, so that an output made from
another input (two lists' files of the same name), or from an input that has changed since (a
depth folder filled again), is never kept or reported as this run's.
"""

import ast
import dataclasses
import json
import os
import pathlib
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
from PIL import ExifTags, Image, UnidentifiedImageError

from ssma_tf.errors import UserInputError
from ssma_tf.files import atomic_write, folder_holding, resolved_folders, sha256_of_file
from ssma_tf.lists import comment_hint, format_line, place_hint, read_lines, spaces_hint
from ssma_tf.progress import Progress
from ssma_tf.modalities.errors import ParameterError
from ssma_tf.modalities.io import InputFileError, OutputExistsError, OutputWriteError, PathLike


@dataclasses.dataclass
class Job:
    """One conversion: a raw input to one output file.

    Attributes:
        source: the raw input (depth, disparity or NIR).
        output: the file to write.
        companion: a second raw input the conversion needs (the RGB image for NDVI/EVI).
        row: the list-file row of this sample, the output in its place; None without a list.
    """

    source: pathlib.Path
    output: pathlib.Path
    companion: Optional[pathlib.Path] = None
    row: Optional[List[pathlib.Path]] = None


def find_files(
    folder: PathLike, extensions: Sequence[str], recursive: bool = False, suffix: str = "",
    exclude: Optional[PathLike] = None,
) -> List[pathlib.Path]:
    """Lists the files of a folder with one of `extensions` (case-insensitive), sorted.

    Hidden files (starting with a dot) are skipped, and so are files whose name (without
    extension) does not end with `suffix`: a Cityscapes `gtFine` folder holds `*_labelIds.png`
    next to `*_color.png` and `*_instanceIds.png`.

    Args:
        exclude: the output folder: its files are left out when it lies inside `folder` (they are
            this tool's outputs, not raw inputs); when it is `folder`, the files its
            `SOURCES_FILE` records as outputs are.

    Raises:
        InputFileError: if the folder does not exist or holds no such file.
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise InputFileError(f"input folder '{folder}' does not exist")
    pattern = "**/*" if recursive else "*"
    wanted = {e.lower() for e in extensions}
    # The output folder's files when it lies inside this one (not when it is this one: refused as the input).
    inside = exclude is not None and folder_holding(exclude, resolved_folders([folder])) is not None and \
        os.path.realpath(exclude) != os.path.realpath(folder)
    skipped = resolved_folders([exclude]) if inside else []
    # The outputs an earlier run wrote beside their inputs (`-o` the input folder, an --output-suffix):
    # before, a rerun took them for raw inputs and refused to replace them.
    outputs = ({os.path.realpath(path) for path in recorded_sources(folder)}
               if exclude is not None and os.path.realpath(exclude) == os.path.realpath(folder) else set())
    files = sorted(
        p
        for p in folder.glob(pattern)
        if p.is_file()
        and p.suffix.lower() in wanted
        and p.stem.endswith(suffix)
        and p.stem != suffix
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and not (skipped and folder_holding(p.parent, skipped))
        and not (outputs and os.path.realpath(p) in outputs)
    )
    if not files:
        where = "under" if recursive else "in"
        named = f" whose name before the extension ends in '{suffix}'" if suffix else ""
        # `_rgb.png` for `_rgb`: the suffix is matched before the extension (helper 125: the
        # message said there were no files ending in '_rgb.png' in a folder of them).
        extension = pathlib.PurePath(suffix).suffix.lower()
        hint = (f"; give the suffix without the extension: '{suffix[: -len(extension)]}'"
                if suffix and extension in wanted and suffix[: -len(extension)] else "")
        raise InputFileError(
            f"no input files ({', '.join(sorted(wanted))}){named} {where} '{folder}'"
            + ("" if recursive or hint else " (use --recursive for sub-folders)") + hint
        )
    return files


def sample_key(path: PathLike, root: PathLike, suffix: str = "") -> str:
    """Returns the key of `path`: relative to `root`, without extension and `suffix`.

    Raises:
        InputFileError: if the file name does not end with `suffix`.
    """
    path = pathlib.Path(path)
    relative = path.relative_to(root)
    stem = relative.with_suffix("").name
    if suffix:
        if not stem.endswith(suffix) or stem == suffix:
            raise InputFileError(f"'{path}' does not end with the suffix '{suffix}' given for it")
        stem = stem[: -len(suffix)]
    return (relative.parent / stem).as_posix()


def index_folder(
    folder: PathLike, extensions: Sequence[str], suffix: str = "", recursive: bool = False,
    exclude: Optional[PathLike] = None,
) -> Dict[str, pathlib.Path]:
    """Maps the key of every file in `folder` (but those under `exclude`, see `find_files`) to its path.

    Raises:
        InputFileError: if the folder is empty, a file lacks the suffix, or two files share a key.
    """
    folder = pathlib.Path(folder)
    index: Dict[str, pathlib.Path] = {}
    for path in find_files(folder, extensions, recursive, suffix, exclude):
        key = sample_key(path, folder, suffix)
        if key in index:
            raise InputFileError(f"'{index[key]}' and '{path}' have the same name; keep only one")
        index[key] = path
    return index


def read_path_rows(path: PathLike) -> List[List[pathlib.Path]]:
    """Reads the list of a modality preparation: rows of paths, relative to the file's folder.

    Any number of columns, the same in every row; which column holds the raw inputs is the
    caller's choice. (A training list, read by `ssma_tf.data.convert.read_list_file`, has
    modality columns and a label.)

    Paths are separated by spaces, or by tabs, or quoted (`ssma_tf.lists`). Empty lines and
    lines starting with '#' are skipped.

    Raises:
        InputFileError: if the file cannot be read, is empty, or its rows differ in length
            (naming the line, with a hint when a path may have been cut at its spaces).
    """
    return [row for _, _, row in _read_numbered_rows(path)]


def _read_numbered_rows(path: PathLike) -> List[tuple]:
    """`read_path_rows`' rows as (line number, the line's fields as written, resolved paths)."""
    path = pathlib.Path(path)
    try:
        lines = read_lines(path)
    except UserInputError as exc:
        raise InputFileError(str(exc)) from None
    rows: List[tuple] = []
    width = None
    for number, fields in lines:
        if width is None:
            width = len(fields)
        elif len(fields) != width:
            missing = [i for i, field in enumerate(fields) if not _resolve(path.parent, field).exists()]
            hint = spaces_hint(fields, missing[0], str(path.parent)) if missing else ""
            raise InputFileError(
                f"{path}, line {number}: {len(fields)} paths, but the first row has {width}{hint or comment_hint(fields)}"
            )
        rows.append((number, fields, [_resolve(path.parent, field) for field in fields]))
    if not rows:
        raise InputFileError(f"list file '{path}' holds no samples")
    return rows


def _check_listed(list_path: pathlib.Path, number: int, fields: Sequence[str], index: int,
                  resolved: pathlib.Path, what: str) -> None:
    """Refuses a listed input that is not a file, naming the list's line (before: found at its
    turn, as "cannot read depth '01/color/0.jpg': no such file", without the line)."""
    if resolved.is_file():
        return
    state = "is a folder" if resolved.is_dir() else "does not exist"
    folder = str(list_path.parent)
    hint = (spaces_hint(fields, index, folder) or place_hint(fields[index], folder) or comment_hint(fields)
            if not resolved.is_dir() else "")
    raise InputFileError(f"{list_path}, line {number}: {what} '{resolved}' {state}{hint}")


def write_list_file(path: PathLike, rows: Sequence[Sequence[PathLike]], *, overwrite: bool = False) -> None:
    """Writes a list file, each path relative to the list file's folder with '/' separators.

    A path with spaces is written in quotes (`ssma_tf.lists.format_line`).

    Raises:
        OutputExistsError: if `path` exists and `overwrite` is false.
        ValueError: if a path holds a tab, a line break or both kinds of quote.
    """
    path = pathlib.Path(path)
    if path.exists() and not overwrite:
        raise OutputExistsError(f"list file '{path}' exists already (pass --overwrite to replace it)")
    # abspath, not resolve: following symbolic links (datasets are often linked in) would give
    # paths that leave the tree the user sees.
    base = os.path.abspath(path.parent)
    lines = []
    for row in rows:
        fields = []
        for item in row:
            fields.append(pathlib.Path(os.path.relpath(os.path.abspath(item), base)).as_posix())
        try:
            lines.append(format_line(fields))
        except ValueError as exc:
            raise InputFileError(f"cannot write list file '{path}': {exc}") from None
    with atomic_write(path) as stream:
        stream.write("\n".join(lines) + "\n")


def plan_folder_jobs(
    inputs: Sequence[PathLike],
    output_dir: PathLike,
    *,
    extensions: Sequence[str],
    output_extension: Callable[[pathlib.Path], str],
    recursive: bool = False,
    input_suffix: str = "",
    output_suffix: str = "",
    companion_dir: Optional[PathLike] = None,
    companion_suffix: str = "",
    companion_extensions: Sequence[str] = (),
    modality1_dir: Optional[PathLike] = None,
    modality1_suffix: str = "",
    label_dir: Optional[PathLike] = None,
    label_suffix: str = "",
    image_extensions: Sequence[str] = (),
) -> List[Job]:
    """Plans jobs for input files and folders, pairing them with other folders by key.

    Args:
        inputs: files, or folders whose files with `extensions` are taken.
        output_dir: where the outputs go.
        extensions: extensions of raw inputs inside folders.
        output_extension: the output extension (with dot) for a source path.
        recursive: also take files in sub-folders (keys then keep the sub-folder).
        input_suffix: suffix to strip from input names to get keys.
        output_suffix: suffix to add to keys to name the outputs.
        companion_dir: folder of second inputs (RGB for NDVI/EVI), paired by key.
        companion_suffix: suffix to strip from companion names.
        companion_extensions: extensions of companion files.
        modality1_dir: folder of modality-1 images (RGB) for a `modality1 modality2 label` list.
        modality1_suffix: suffix to strip from modality-1 names.
        label_dir: folder of labels; with it every job gets a list row.
        label_suffix: suffix to strip from label names.
        image_extensions: extensions of modality-1 and label files.

    Returns:
        The jobs, in key order. Rows are `[modality1, output, label]` with `modality1_dir`,
        `[output, label]` without it, and None without `label_dir`.

    Raises:
        InputFileError: for a missing input, a missing partner file or a name clash.
        ValueError: if `modality1_dir` is given without `label_dir`.
    """
    if modality1_dir is not None and label_dir is None:
        raise ParameterError("a modality-1 folder needs a label folder too: list rows end with the label")
    output_dir = pathlib.Path(output_dir)
    planned: Dict[pathlib.Path, Tuple[str, pathlib.Path]] = {}  # each output: (its key, its input)
    for item in inputs:
        item = pathlib.Path(item)
        if item.is_dir():
            # Before: an -o inside a --recursive input folder was walked too (helper 279): the
            # earlier outputs were converted again as samples, or a rerun with --skip-existing
            # was refused as writing over "the input".
            found = [
                (sample_key(p, item, input_suffix), p)
                for p in find_files(item, extensions, recursive, input_suffix, exclude=output_dir)
            ]
        elif item.is_file():
            found = [(sample_key(item, item.parent, input_suffix), item)]
        else:
            raise InputFileError(f"input '{item}' does not exist")
        for key, path in found:
            # Two inputs clash when their outputs do: '0.png' and '0.npy' filled keep their own
            # extensions (before: refused as both written to 'out/0', a path never written).
            output = output_dir / (key + output_suffix + output_extension(path))
            if output in planned and planned[output][1] != path:
                raise InputFileError(
                    f"inputs '{planned[output][1]}' and '{path}' would both be written to '{output}'; "
                    "convert them into separate --output-dir folders"
                )
            planned[output] = (key, path)
    # In key order, then by output name.
    ordered = sorted(planned.items(), key=lambda item: (item[1][0], item[0].name))
    companions = (
        index_folder(companion_dir, companion_extensions, companion_suffix, recursive, output_dir)
        if companion_dir is not None
        else None
    )
    modality1 = (
        index_folder(modality1_dir, image_extensions, modality1_suffix, recursive, output_dir)
        if modality1_dir is not None
        else None
    )
    labels = (
        index_folder(label_dir, image_extensions, label_suffix, recursive, output_dir)
        if label_dir is not None
        else None
    )
    if labels is not None:
        # One sample, one row: '0.png' and '0.npy' both paired with label 0 put sample 0 in the list
        # twice, with two depth maps (helper 146); without a list both are converted.
        seen: Dict[str, pathlib.Path] = {}
        for _, (key, source) in ordered:
            if key in seen:
                raise InputFileError(f"inputs '{seen[key]}' and '{source}' are both sample '{key}': the "
                                     "list file would hold it twice; leave one of them out (or convert them without "
                                     "--list-file)")
            seen[key] = source
    jobs = []
    for output, (key, source) in ordered:
        companion = _partner(companions, key, source, companion_dir)
        row = None
        if labels is not None:
            label = _partner(labels, key, source, label_dir)
            row = [output, label]
            if modality1 is not None:
                row.insert(0, _partner(modality1, key, source, modality1_dir))
        jobs.append(Job(source=source, output=output, companion=companion, row=row))
    return jobs


def plan_list_jobs(
    list_path: PathLike,
    output_dir: PathLike,
    *,
    column: int,
    output_extension: Callable[[pathlib.Path], str],
    output_suffix: str = "",
    companion_column: Optional[int] = None,
    warn: Optional[Callable[[str], None]] = None,
) -> List[Job]:
    """Plans jobs for the raw inputs in one column of a list file.

    Outputs keep the inputs' paths relative to their deepest common folder, so sub-folder
    structure (scenes, cities) is kept under `output_dir`.

    Args:
        list_path: list file, e.g. `rgb raw_depth label` per line.
        output_dir: where the outputs go.
        column: 0-based column of the raw inputs.
        output_extension: the output extension (with dot) for a source path.
        output_suffix: suffix to add to output names.
        companion_column: 0-based column of second inputs (RGB for NDVI/EVI), if any.
        warn: told (without `warning:`) of an input listed on two lines beside other files,
            whose samples then share its one output (one depth map for two exposures of a
            scene; or a copy-paste slip). None: that is an error. With another companion on
            each line it is an error anyway: the one output cannot be made from both.

    Returns:
        One job per row; each row is the input row with the output in place of the raw input.

    Raises:
        InputFileError: if the list cannot be read, a column does not exist, a listed input (or
            companion) is not a file (naming the line), or names clash.
    """
    numbered = _read_numbered_rows(list_path)
    rows = [row for _, _, row in numbered]
    width = len(rows[0])
    for name, value in (("column", column), ("companion column", companion_column)):
        if value is not None and not 0 <= value < width:
            raise InputFileError(
                f"list file '{list_path}' has {width} column(s) (0..{width - 1}); there is no "
                f"{name} {value}"
            )
    for number, fields, row in numbered:
        _check_listed(pathlib.Path(list_path), number, fields, column, row[column], f"column {column}'s input")
        if companion_column is not None:
            _check_listed(pathlib.Path(list_path), number, fields, companion_column, row[companion_column],
                          f"column {companion_column}'s companion")
    output_dir = pathlib.Path(output_dir)
    sources = [row[column] for row in rows]
    # Absolute: inputs given as '../data/0.png' beside 'extra/1.png' (or one absolute, one not) have
    # a common folder; before, '' was taken for it and '../data/0.png' was written outside
    # `output_dir`, or the mix of the two ended in a ValueError (helper 140).
    root = pathlib.Path(os.path.commonpath([os.path.abspath(s.parent) for s in sources]))
    jobs = []
    seen: Dict[pathlib.Path, pathlib.Path] = {}
    listed: Dict[pathlib.Path, tuple] = {}  # each input's first line: (its number, its row)
    for (number, _, row), source in zip(numbered, sources):
        first = listed.setdefault(source, (number, row))
        if first[1] != row:
            # One input beside other files on two lines (a copy-paste slip): both samples would read
            # one converted file, silently (with --overwrite; without, "exists already").
            others = [str(field) for field, was in zip(row, first[1]) if field != was]
            both = (f"{list_path}, lines {first[0]} and {number}: both list '{source}' as column {column}'s input, "
                    f"beside other files (line {number}: {', '.join(repr(o) for o in others)})")
            other_companion = companion_column is not None and row[companion_column] != first[1][companion_column]
            if warn is not None and not other_companion:
                warn(f"{both}: the two samples share its one output; if one of the lines is a copy-paste slip, "
                     "correct it")
            elif other_companion:
                # The output is made from the input and its companion: one file cannot be both.
                raise InputFileError(
                    f"{both}: its one output is made from it and column {companion_column}'s companion, but the "
                    f"lines give two companions ('{first[1][companion_column]}', '{row[companion_column]}'); "
                    "is one of the lines a copy-paste slip?")
            else:
                raise InputFileError(f"{both}: each sample needs its own input; is one of the lines a copy-paste "
                                     "slip?")
        output = output_dir / (sample_key(os.path.abspath(source), root) + output_suffix + output_extension(source))
        if output in seen and seen[output] != source:
            raise InputFileError(
                f"'{seen[output]}' and '{source}' in '{list_path}' would both be written to '{output}'"
            )
        seen[output] = source
        new_row = list(row)
        new_row[column] = output
        companion = row[companion_column] if companion_column is not None else None
        jobs.append(Job(source=source, output=output, companion=companion, row=new_row))
    return jobs


# In the output folder: one JSON line per output written, {"output": relative path, "source": input,
# "settings": the conversion and its options}.
SOURCES_FILE = ".ssma-prepare-sources"
# The settings recorded for an output whose writing began and did not end: before each output a
# `"writing": true` line is recorded, after it the finished one. A run stopped between the two
# left the output as it was or newly written, unknown which: `--skip-existing` makes it again.
# (Before: the record came after the file only, and a SIGTERM between the two left an output with
# no record, which `--skip-existing` then refused; helper 140.)
BEING_WRITTEN = "being written"


# What `run_jobs` records with each output: the conversion and its options, the same for every
# output (a dict) or a function of the job (a camera file beside each depth map).
Settings = Union[Dict[str, str], Callable[[Job], Dict[str, str]], None]


def settings_of(settings: Settings, job: Job) -> Optional[Dict[str, str]]:
    """The settings recorded with `job`'s output."""
    return settings(job) if callable(settings) else settings


class Recorded(NamedTuple):
    """What `SOURCES_FILE` says of one output.

    Attributes:
        source: the absolute path of the input it was made from.
        settings: the conversion and its options (`BEING_WRITTEN` for an output whose writing
            began and did not end; None: a version that did not record them).
        inputs: each input's path mapped to its `fingerprint` as the output was made (None: a
            version that did not record them).
    """

    source: Optional[str] = None
    settings: Any = None
    inputs: Optional[Dict[str, dict]] = None


def recorded_sources(output_dir: PathLike) -> Dict[pathlib.Path, Recorded]:
    """What each output under `output_dir` was made from and with, as the runs recorded it (the
    last record of an output wins; outputs of versions that recorded nothing are absent)."""
    path = pathlib.Path(output_dir) / SOURCES_FILE
    sources: Dict[pathlib.Path, Recorded] = {}
    try:
        with open(path, "rb") as stream:
            lines = stream.read().splitlines()
    except FileNotFoundError:
        return sources
    except OSError as exc:
        # Every run appends to it, --overwrite too: only the user can mend it.
        raise InputFileError(
            f"cannot read '{path}', the record of the inputs earlier runs made its outputs from "
            f"({exc.strerror or exc}): make it readable, or remove or rename it and pass --overwrite to make "
            "every output again") from None
    for line in lines:
        try:
            # Bytes that are not UTF-8 (a damaged record) spoil only their line, as a line cut short does.
            entry = json.loads(line.decode("utf-8"))
            settings = BEING_WRITTEN if entry.get("writing") else entry.get("settings")
            inputs = entry.get("inputs")
            sources[pathlib.Path(output_dir) / entry["output"]] = Recorded(
                entry["source"], settings, dict(inputs) if isinstance(inputs, dict) else None)
        except (ValueError, KeyError, TypeError, AttributeError):
            continue  # a line cut short by a crash: that output is simply not vouched for
    return sources


def _source_id(path: PathLike) -> str:
    return os.path.abspath(os.fspath(path))


def fingerprint(path: PathLike) -> Optional[dict]:
    """The size, modification time and sha256 of a file's contents (None if it cannot be read:
    the conversion that reads it names the fault)."""
    try:
        stat = os.stat(path)
        return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256_of_file(path)}
    except OSError:
        return None


def _has_changed(path: str, recorded: Any) -> bool:
    """Whether the file at `path` differs from its recorded `fingerprint`: another size, or
    another time and other contents (a copy with a new time and the same bytes is the same)."""
    if not isinstance(recorded, dict):
        return False  # nothing to compare with (a damaged entry)
    try:
        stat = os.stat(path)
    except OSError:
        return False  # gone: the planning named it already, or this output's input is not read again
    if stat.st_size != recorded.get("size"):
        return True
    if stat.st_mtime_ns == recorded.get("mtime_ns"):
        return False
    try:
        return sha256_of_file(path) != recorded.get("sha256")
    except OSError:
        return False


def _job_inputs(job: Job) -> List[pathlib.Path]:
    return [path for path in (job.source, job.companion) if path is not None]


def _other_files(job: Job) -> List[pathlib.Path]:
    """The files of a job's list row but its output (in its own place once; a partner of the same
    name is another file the row reads)."""
    others = list(job.row or [])
    if job.output in others:
        others.remove(job.output)
    return others


def check_outputs(jobs: Sequence[Job], *, overwrite: bool, skip_existing: bool,
                  output_dir: Optional[PathLike] = None, settings: Settings = None) -> List[Job]:
    """Returns the jobs to run (each output once), refusing existing outputs unless told what
    to do with them.

    Args:
        jobs: planned jobs.
        overwrite: existing outputs are replaced.
        skip_existing: existing outputs are kept and their jobs dropped.
        output_dir: the folder of the outputs, whose `SOURCES_FILE` says what each existing
            output was made from; an output made from another input than its job's is refused
            (unless `overwrite`), since keeping it would pair this run's samples with another
            input's data.
        settings: the conversion and its options (`run_jobs` records them): an existing output
            kept by `skip_existing` must have been made with the same (before: a `gray` run with
            --skip-existing kept the `jet` pictures of an earlier run, and its list mixed the two);
            a function of the job where they differ from one output to another (a camera file
            beside each depth map).

    Raises:
        ValueError: if both `overwrite` and `skip_existing` are set.
        OutputExistsError: if outputs exist and neither is set, or were made from other
            inputs; names the first few.
    """
    if overwrite and skip_existing:
        raise ParameterError("overwrite and skip_existing exclude each other")
    # A line repeated whole is one sample twice (ssma-convert warns of it): its output is written once.
    unique: Dict[pathlib.Path, Job] = {}
    for job in jobs:
        unique.setdefault(job.output, job)
    jobs = list(unique.values())
    # Before: `-o` the input folder with --overwrite replaced the raw depth by its pictures (and
    # without it, "pass --overwrite to replace them" pointed there).
    inputs = {os.path.realpath(path): path for job in jobs
              for path in [job.source, job.companion, *_other_files(job)] if path is not None}
    clashes = [job for job in jobs if os.path.realpath(job.output) in inputs]
    if clashes:
        job = clashes[0]
        more = f" ({len(clashes)} outputs in all)" if len(clashes) > 1 else ""
        raise OutputExistsError(
            f"the output '{job.output}' is the input '{inputs[os.path.realpath(job.output)]}'{more}: writing it would "
            "replace the raw data; give another --output-dir")
    existing = [job for job in jobs if job.output.exists()]
    # What the earlier runs recorded of the outputs that exist (read once, for both checks below).
    recorded = recorded_sources(output_dir) if existing and not overwrite and output_dir is not None else {}
    if recorded:
        other = [(job, recorded[job.output].source) for job in existing
                 if job.output in recorded and recorded[job.output].source != _source_id(job.source)]
        if other:
            job, source = other[0]
            more = f" ({len(other)} outputs in all)" if len(other) > 1 else ""
            raise OutputExistsError(
                f"'{job.output}' was made from '{source}' by an earlier run, not from '{job.source}'{more}: "
                f"inputs of another list or folder have the same names; give this run its own --output-dir "
                f"(e.g. one per split)")
    if existing and not (overwrite or skip_existing):
        names = ", ".join(f"'{job.output}'" for job in existing[:3])
        more = f" and {len(existing) - 3} more" if len(existing) > 3 else ""
        raise OutputExistsError(
            f"{len(existing)} output(s) exist already: {names}{more}; pass --overwrite to replace "
            "them or --skip-existing to keep them"
        )
    # Outputs a stopped run of the same input was writing: made again, neither kept nor refused.
    unfinished = {job.output for job in existing if recorded.get(job.output, Recorded())[:2] ==
                  (_source_id(job.source), BEING_WRITTEN)} if skip_existing else set()
    if skip_existing and existing and settings is not None and output_dir is not None:
        unvouched = [job for job in existing if job.output not in unfinished
                     and _canonical(recorded.get(job.output, Recorded()).settings)
                     != _canonical(settings_of(settings, job))]
        if unvouched:
            job = unvouched[0]
            more = f" ({len(unvouched)} outputs in all)" if len(unvouched) > 1 else ""
            made = recorded.get(job.output, Recorded()).settings
            how = (f"was made with other settings ({_differences(made, settings_of(settings, job))})"
                   if made is not None
                   else "has no record of the settings it was made with (another tool, an older version, or a "
                        "run killed as it wrote that file)")
            raise OutputExistsError(
                f"'{job.output}' {how}{more}: --skip-existing keeps only outputs of this conversion; pass "
                "--overwrite to make them all again, delete those outputs to make only them again, or give "
                "another --output-dir")
    if skip_existing and existing:
        # Before: kept whatever its input became since (a depth folder filled again with other
        # options, then encoded with --skip-existing: the old pictures listed with the new depth).
        changed = [(job, path) for job in existing if job.output not in unfinished
                   for path in _job_inputs(job)
                   if _has_changed(_source_id(path), (recorded.get(job.output, Recorded()).inputs or {})
                                   .get(_source_id(path)))]
        if changed:
            job, path = changed[0]
            outputs = len({job.output for job, _ in changed})
            more = f" ({outputs} outputs in all)" if outputs > 1 else ""
            raise OutputExistsError(
                f"'{job.output}' was made from '{path}' as it was before it changed (its size or contents are "
                f"not those recorded when the output was written){more}: --skip-existing keeps only outputs of the "
                "inputs as they are; pass --overwrite to make them all again, or delete those outputs to make only "
                "them again")
    if skip_existing:
        return [job for job in jobs if not job.output.exists() or job.output in unfinished]
    return jobs


def _canonical(settings: Any) -> Any:
    """Settings as compared: a sequence recorded as a list (`[1, 2, 3]`, as the versions before
    2026-12-06 recorded a typed one) or as a tuple (`(1, 2, 3)`, a default, and every one since)
    alike (helper 230: a folder prepared with `--missing-color 1 2 3` did not resume)."""
    if not isinstance(settings, dict):
        return settings
    canonical = {}
    for name, text in settings.items():
        if isinstance(text, str) and text[:1] in ("(", "["):
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                value = None
            if isinstance(value, (list, tuple)):
                text = str(tuple(value))
        canonical[name] = text
    return canonical


def _differences(before: Any, now: dict) -> str:
    """The options two settings records differ in, as `name then -> now`."""
    if not isinstance(before, dict):
        return "unreadable record"
    before, now = _canonical(before), _canonical(now)
    return ", ".join(f"{name} {before.get(name)} -> {now.get(name)}"
                     for name in sorted(set(before) | set(now)) if before.get(name) != now.get(name))


def image_size(path: PathLike, oriented: bool = False) -> Optional[tuple]:
    """(height, width) of an image or a `.npy` array from its header alone; None when the file
    cannot be read (its conversion or `ssma-convert` names the problem). `oriented`: as shown
    after its EXIF orientation, which `ssma-convert` applies to the images (not to labels)."""
    path = pathlib.Path(path)
    try:
        if path.suffix.lower() == ".npy":
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
            return tuple(int(n) for n in shape[:2]) if len(shape) >= 2 else None
        with Image.open(path) as image:  # reads the header only
            width, height = image.size
            # Orientations 5 to 8 turn the image by a quarter.
            if oriented and image.getexif().get(ExifTags.Base.Orientation, 1) in (5, 6, 7, 8):
                width, height = height, width
            return height, width
    except (OSError, ValueError, SyntaxError, UnidentifiedImageError, Image.DecompressionBombError):
        return None


def check_partner_sizes(jobs: Sequence[Job], what: str = "input") -> None:
    """Checks, before any conversion, that each job's input has the size of the other images of
    its list row (the RGB image, the label): `ssma-convert` refuses a row whose images differ,
    and found it only after every file had been converted.

    Raises:
        InputFileError: naming the first row whose sizes differ, both files and both sizes.
    """
    for job in jobs:
        if job.row is None:
            continue
        size = image_size(job.source)
        if size is None:
            continue
        for column, partner in enumerate(job.row):
            if pathlib.Path(partner) == job.output:
                continue
            # The list's last column is the label when the row has one (`rgb depth label`).
            other = image_size(partner, oriented=column < len(job.row) - 1)
            if other is not None and other != size:
                raise InputFileError(
                    f"the {what} '{job.source}' is {size[0]}x{size[1]} but its partner '{partner}' is "
                    f"{other[0]}x{other[1]} (height x width): ssma-convert takes rows of one size; resize "
                    "one of them (a depth map with nearest neighbour) or leave the pair out"
                )


def _append(record, entry: dict, path: pathlib.Path) -> None:
    """One line of `SOURCES_FILE`; a failed write names the file (before: "[Errno 28] No space
    left on device" alone; helper 230)."""
    try:
        record.write(json.dumps(entry) + "\n")
        record.flush()
    except OSError as exc:
        raise OutputWriteError.of(exc, path) from exc


def run_jobs(
    jobs: Sequence[Job],
    convert: Callable[[Job], None],
    *,
    progress: Optional[Progress] = None,
    output_dir: Optional[PathLike] = None,
    settings: Settings = None,
) -> int:
    """Runs `convert` on every job in order, stopping at the first error.

    Errors that do not already name the input are re-raised as `InputFileError` naming it, so
    a failure in the middle of thousands of files says which one.

    Args:
        jobs: jobs from `check_outputs`.
        convert: reads `job.source` (and `job.companion`) and writes `job.output`.
        progress: reporter, or None for silence.
        output_dir: the folder of the outputs: each output's input is appended to its
            `SOURCES_FILE` as its writing begins and again, with `settings`, once it is written
            (a run stopped half-way has them; `check_outputs` makes an output begun and not
            recorded as finished again).
        settings: the conversion and its options, recorded with each output (`check_outputs`);
            a function of the job where they differ from one output to another.

    Returns:
        The number of jobs run.

    A run that fails before its first output leaves no trace: the folders it made for the
    outputs are removed again (before: an empty output folder with an empty `SOURCES_FILE`).
    """
    record = job = None
    finished = False
    record_path = pathlib.Path(output_dir) / SOURCES_FILE if output_dir is not None else None
    record_made = False  # this run created the record file
    written = False  # an output was written
    made = _missing_folders(output_dir) if output_dir is not None else []
    try:
        for done, job in enumerate(jobs, start=1):
            if done == 1:
                made.extend(folder for folder in _missing_folders(job.output.parent) if folder not in made)
            if record_path is not None:
                entry = {"output": os.path.relpath(job.output, output_dir), "source": _source_id(job.source)}
                if record is None:
                    os.makedirs(output_dir, exist_ok=True)
                    record_made = not record_path.exists()
                    try:
                        record = open(record_path, "a", encoding="utf-8")
                    except OSError as exc:
                        raise OutputWriteError.of(exc, record_path) from exc
                # The output's writing begins (`BEING_WRITTEN`); the finished record follows it.
                _append(record, {**entry, "writing": True}, record_path)
                # Taken before the conversion reads them: an input changed later is found changed.
                entry["inputs"] = {_source_id(path): fingerprint(path) for path in _job_inputs(job)}
            try:
                convert(job)
            except (InputFileError, OutputExistsError, OutputWriteError):
                raise
            except (ValueError, OSError) as exc:
                raise InputFileError(f"converting '{job.source}' failed: {exc}") from exc
            if record is not None:
                if settings is not None:
                    entry["settings"] = settings_of(settings, job)
                _append(record, entry, record_path)
            made = []  # an output is written: its folders stay
            written = True
            if progress is not None:
                progress.update(done)
        finished = True
    finally:
        closing = None
        if record is not None:
            try:
                record.close()
            except OSError as exc:  # its last lines, flushed (an error on its way out goes on as it is)
                closing = None if not finished else OutputWriteError.of(exc, record_path)
            if record_made and not written and not job.output.exists():
                # Stopped before its first output: the record of its beginning goes too.
                record_path.unlink(missing_ok=True)
        for folder in sorted(made, key=lambda f: len(f.parts), reverse=True):
            try:
                folder.rmdir()  # only if empty: nothing but what this run made
            except OSError:
                pass
    if closing is not None:
        raise closing
    return len(jobs)


def _missing_folders(folder: PathLike) -> List[pathlib.Path]:
    """`folder` and those of its parents that do not exist yet."""
    missing = []
    folder = pathlib.Path(os.path.abspath(folder))
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _partner(
    index: Optional[Dict[str, pathlib.Path]], key: str, source: pathlib.Path, folder
) -> Optional[pathlib.Path]:
    if index is None:
        return None
    if key not in index:
        raise InputFileError(f"no file for '{source}' (name '{key}') in '{folder}'")
    return index[key]


def _resolve(base: pathlib.Path, field: str) -> pathlib.Path:
    path = pathlib.Path(field)
    # normpath so that messages show 'data/x.png', not 'lists/../data/x.png'.
    return pathlib.Path(os.path.normpath(path if path.is_absolute() else base / path))


def default_output_extension(_: pathlib.Path) -> str:
    """Output extension for image outputs: always PNG."""
    return ".png"


def depth_output_extension(source: pathlib.Path, format: str = "auto") -> str:
    """Output extension for filled depth: 16-bit PNG for PNG/PGM inputs, `.npy` otherwise.

    Args:
        source: the raw depth file.
        format: "auto", "png" or "npy".
    """
    if format == "png":
        return ".png"
    if format == "npy":
        return ".npy"
    if format != "auto":
        raise ParameterError(f"format must be 'auto', 'png' or 'npy', got {format!r}")
    return ".png" if source.suffix.lower() in (".png", ".pgm") else ".npy"

