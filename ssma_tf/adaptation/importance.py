"""Importance sampling of target images by the classes a baseline predicts in them.

Araslanov and Roth (CVPR 2021, Section 3.3; released `tools/compute_IS_weights.py` and the
target loader): with n_{i,c} the pixels of target image i that the baseline predicts as class c,
f_{i,c} = n_{i,c} / Σ_j n_{j,c}. A training sample draws a class uniformly (among the classes
predicted anywhere), then image i with probability 0.25/N + 0.75·f_{i,c}. Over the class draw,
image i is drawn with probability p_i = 0.25/N + 0.75 · mean_c f_{i,c}, which is what the input
pipeline samples (by rejection: record i is kept with probability p_i / max_j p_j).

The weights file (`ssma-importance-weights`, JSON) names the record files it was computed on, their
sizes and record counts, so that weights for other images are refused.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any, Sequence

import numpy as np

from ssma_tf.errors import UserInputError
from ssma_tf.files import atomic_write

UNIFORM_SHARE = 0.25
FORMAT = "ssma-tf importance weights 1"


class ImportanceWeightsError(UserInputError):
    """A weights file that is unreadable or belongs to other records (names the file)."""


def class_fractions(counts: np.ndarray) -> np.ndarray:
    """f_{i,c} = n_{i,c} / Σ_j n_{j,c} for pixel counts (N, C); classes never predicted get 0."""
    counts = np.asarray(counts, dtype=np.float64)
    if counts.ndim != 2:
        raise ValueError(f"counts must be (images, classes), got shape {counts.shape}")
    totals = counts.sum(axis=0, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def sampling_probabilities(counts: np.ndarray, uniform_share: float = UNIFORM_SHARE,
                           ignore_classes: Sequence[int] = (0,)) -> np.ndarray:
    """p_i = u/N + (1 − u) · mean over predicted classes of f_{i,c}; sums to 1.

    Args:
        counts: (N, C) predicted pixels per image and class.
        uniform_share: u, the share drawn uniformly (0.25 as released).
        ignore_classes: classes never drawn (void, 0, by default).
    """
    fractions = class_fractions(counts)
    keep = np.ones(fractions.shape[1], bool)
    keep[list(ignore_classes)] = False
    keep &= np.asarray(counts).sum(axis=0) > 0
    n = fractions.shape[0]
    if n == 0:
        raise ValueError("no images to weight")
    if not keep.any():
        return np.full(n, 1.0 / n)
    return uniform_share / n + (1.0 - uniform_share) * fractions[:, keep].mean(axis=1)


def acceptance(probabilities: np.ndarray) -> np.ndarray:
    """Rejection-sampling acceptance p_i / max_j p_j, in (0, 1]."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    return probabilities / probabilities.max()


# Bytes read from each end of a record file for its fingerprint: the first and last records' pixels.
_FINGERPRINT_BYTES = 1 << 20


def fingerprint(path: str) -> str:
    """A SHA-256 of a record file's first and last MiB: other images of the same size differ there.

    Name and size alone do not tell two sets apart: raw records of images of one size have the
    same byte count whatever they show. Reading two MiB keeps it instant for sets of gigabytes.
    """
    digest = hashlib.sha256()
    size = os.path.getsize(path)
    with open(path, "rb") as stream:
        digest.update(stream.read(_FINGERPRINT_BYTES))
        if size > 2 * _FINGERPRINT_BYTES:
            stream.seek(size - _FINGERPRINT_BYTES)
        digest.update(stream.read(_FINGERPRINT_BYTES))
    return digest.hexdigest()


def describe_files(files: Sequence[str]) -> list[dict[str, Any]]:
    """The identity of record files that the weights refer to: name, size and `fingerprint`."""
    return [{"file": os.path.basename(f), "bytes": os.path.getsize(f), "fingerprint": fingerprint(f)}
            for f in files]


def write_weights(path: str, files: Sequence[str], records_per_file: Sequence[int],
                  counts: np.ndarray, class_names: Sequence[str], *, overwrite: bool = True) -> np.ndarray:
    """Writes the weights file atomically; returns the sampling probabilities. With `overwrite`
    False, a file that appears at `path` meanwhile is kept (`OutputPathError`; `atomic_write`)."""
    probabilities = sampling_probabilities(counts)
    content = {
        "format": FORMAT,
        "files": [dict(d, records=int(r)) for d, r in zip(describe_files(files), records_per_file)],
        "class_names": list(class_names),
        "uniform_share": UNIFORM_SHARE,
        "pixel_counts": np.asarray(counts, dtype=np.int64).tolist(),
        "probabilities": probabilities.tolist(),
    }
    with atomic_write(path, overwrite=overwrite) as stream:
        json.dump(content, stream)
        stream.write("\n")
    return probabilities


def read_weights(path: str, files: Sequence[str]) -> np.ndarray:
    """The per-record sampling probabilities of a weights file, checked against `files`.

    Raises:
        ImportanceWeightsError: unreadable file, another format, or weights computed on other
            record files (names, sizes or counts differ).
    """
    try:
        with open(path, encoding="utf-8") as stream:
            content = json.load(stream)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ImportanceWeightsError(f"cannot read the importance weights: {error}", path) from error
    if not isinstance(content, dict) or content.get("format") != FORMAT:
        raise ImportanceWeightsError(f"not an importance-weights file of this version ({FORMAT!r})", path)
    # The fields' types, before they are read (before: an edited file's "records": "four" or a
    # file entry that is not an object was a ValueError, TypeError or AttributeError traceback).
    entries = content.get("files", [])
    if not isinstance(entries, list) or not all(isinstance(d, dict) for d in entries):
        raise ImportanceWeightsError("its 'files' must be a list of objects", path)
    for position, entry in enumerate(entries):
        records = entry.get("records", 0)
        if isinstance(records, bool) or not isinstance(records, int) or records < 0:
            raise ImportanceWeightsError(f"its files entry {position} has 'records' {records!r}, not a count", path)
    given = content.get("probabilities", [])
    if not isinstance(given, list) or not all(isinstance(p, (int, float)) and not isinstance(p, bool)
                                              for p in given):
        raise ImportanceWeightsError("its 'probabilities' must be a list of numbers", path)
    expected = describe_files(files)
    stored = [{"file": d.get("file"), "bytes": d.get("bytes"), "fingerprint": d.get("fingerprint")}
              for d in entries]
    # A file written before fingerprints were kept is checked by names and sizes.
    same = len(stored) == len(expected) and all(
        (s["file"], s["bytes"]) == (e["file"], e["bytes"]) and s["fingerprint"] in (None, e["fingerprint"])
        for s, e in zip(stored, expected))
    if not same:
        pairs = [(s["file"], s["bytes"]) for s in stored]
        wanted = [(e["file"], e["bytes"]) for e in expected]
        # The weights are per record in file order: the same files in another order are other
        # records (before: called "same names and sizes needed", which they had).
        reordered = pairs != wanted and sorted(map(str, pairs)) == sorted(map(str, wanted))
        what = ("the same files in another order" if reordered else "same names and sizes, but other contents"
                if pairs == wanted else "same names and sizes needed")
        todo = ("list target_data in the weights' order, or run ssma-importance-weights again" if reordered
                else "run ssma-importance-weights again")
        raise ImportanceWeightsError(
            f"the weights were computed for other images: files {_names(stored)}, but target_data "
            f"has {_names(expected)} ({what}); {todo}",
            path,
        )
    # The records each file holds, from its framing (cheap: no data read). Before: only compared
    # with the number of probabilities, and an edited file's 3 weights for 5 records were a
    # 63-line TensorFlow traceback at the first step (helper 139).
    from ssma_tf.data.records import count_records

    for entry, path_of in zip(entries, files):
        held = count_records(path_of)[0]
        if entry.get("records", 0) != held:
            raise ImportanceWeightsError(
                f"holds weights for {entry.get('records', 0)} records of {entry.get('file')}, which has {held}; "
                "run ssma-importance-weights again", path)
    probabilities = np.asarray(given, dtype=np.float64)
    total = sum(d.get("records", 0) for d in entries)
    if probabilities.ndim != 1 or len(probabilities) != total or total == 0:
        raise ImportanceWeightsError(
            f"holds {probabilities.size} probabilities for {total} records", path)
    if not np.all(np.isfinite(probabilities)) or probabilities.min() < 0 or probabilities.max() <= 0:
        raise ImportanceWeightsError("probabilities must be finite, non-negative, not all 0", path)
    return probabilities


def _names(described: Sequence[dict]) -> str:
    return ", ".join(f"{d['file']} ({d['bytes']} bytes)" for d in described) or "none"
