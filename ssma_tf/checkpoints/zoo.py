"""The released model zoo: the authors' trained AdapNet++ and SSMA models, by name.

`zoo.yaml` beside this module lists every model the original READMEs link (network, dataset,
modalities, classes, input size, archive URL, reported mIoU) and the ImageNet initialisation.
`load_model("ssma_cityscapes_rgb_depth")` downloads the archive into the Keras cache
(`~/.keras/models/ssma_tf/`, `fetch_archive`), unpacks it, finds the TF1 checkpoint inside and
loads it into the network the entry describes. A local folder, checkpoint prefix, `.keras` file or
archive (`.zip`, `.tar.gz`, `.tar.xz`, `.tar.bz2`) is loaded the same way, its network and class count read from the
checkpoint.

Importing this module also gives `AdapNetPP` and `SSMA` their KerasHub-style `from_preset`
(`ssma_tf.models` cannot import the zoo: it sits below `ssma_tf.checkpoints` in the import
contract, so the zoo registers the method on the classes; see docs/architecture.md).

Run `python -m ssma_tf.checkpoints` to print the zoo as the README's table (`__main__.py`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import hashlib
import http.client
import lzma
import os
import pathlib
import re
import shutil
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from typing import Iterator, Optional, Union

import keras
import yaml

from ssma_tf.checkpoints.loading import load_model as load_checkpoint
from ssma_tf.checkpoints.loading import check_matches, load_weights, model_for_checkpoint
from ssma_tf.checkpoints.reading import UnnamedNetworkError, keras_file_config
from ssma_tf.checkpoints.resolve import FORMAT_TF1, resolve_weights
from ssma_tf.checkpoints.tf1_import import (
    KIND_ADAPNET_PP, KIND_SSMA, CheckpointError, detect_kind, num_classes_of, read_checkpoint,
)
from ssma_tf.config.runs import exported_backend
from ssma_tf.constants import ADAPNET_PP, EASPP_RATES, FINAL_WEIGHTS, RUN_CONFIG
from ssma_tf.constants import SSMA as SSMA_NAME
from ssma_tf.errors import first_line
from ssma_tf.files import abandoned_temporaries, held_lock, sha256_of_file, temporary_name
from ssma_tf.models import SSMA, AdapNetPP, FusionBaseline
from ssma_tf.models.factory import model_name
from ssma_tf.progress import PIPED_LOG_SECONDS, Progress

ZOO_FILE = pathlib.Path(__file__).resolve().with_name("zoo.yaml")
# Where the archives and their unpacked copies are kept, below the Keras cache directory.
CACHE_SUBDIR = os.path.join("models", "ssma_tf")
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar.xz", ".txz", ".tar.bz2", ".tbz2", ".tar")
# What macOS' Finder puts into the zips it makes besides the files: a folder of AppleDouble files.
MACOS_FOLDER = "__MACOSX"
APPLE_DOUBLE_PREFIX = "._"
# How many folders above a checkpoint may name the release it is (its archive's folder; the
# cache's `<name>_extracted` around that).
RELEASE_DEPTH = 3
# What a failed download advises, after "download the archive elsewhere and pass its path (or its
# unpacked folder)"; `{file}` is the archive's file name. `load_model`'s, and ssma-convert-tf1's,
# which has no released_as: the file name tells it the release and its eASPP rates (`fitting_release`).
LOAD_ADVICE = "instead of the name, with released_as=NAME for a released model"
CONVERT_ADVICE = ("to -c, keeping its file name ({file}): a released model's eASPP rates are found by it "
                  "(or give --easpp-rates)")


@dataclasses.dataclass(frozen=True)
class Preset:
    """One released model (an entry of `zoo.yaml`).

    Attributes:
        name: the preset's name, `<network>_<dataset>_<modalities>`.
        model: "AdapNet_pp" or "SSMA".
        dataset: the dataset's name in `ssma_tf/data/datasets.yaml`.
        modalities: the input modalities, modality 1 first (one for AdapNet++, two for SSMA).
        num_classes: classes including void.
        input_size: (height, width) the model was trained and evaluated at.
        url: the archive the original README links.
        miou: the mIoU (%) the README reports (None: not reported).
        easpp_rates: the eASPP atrous rates it was trained with.
    """

    name: str
    model: str
    dataset: str
    modalities: tuple
    num_classes: int
    input_size: tuple
    url: str
    miou: Optional[float]
    easpp_rates: tuple = EASPP_RATES

    def build(self) -> keras.Model:
        """The network of this preset, with fresh weights."""
        if self.model == SSMA_NAME:
            # The released SSMA checkpoints have no auxiliary heads.
            return SSMA(self.num_classes, aux_heads=False, easpp_rates=self.easpp_rates)
        return AdapNetPP(self.num_classes, aux_heads=True, easpp_rates=self.easpp_rates)


@functools.lru_cache(maxsize=None)
def _read_zoo(path: str) -> tuple[dict, dict]:
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    models = {}
    for name, entry in data["models"].items():
        try:
            models[name] = Preset(
                name=name, model=entry["model"], dataset=entry["dataset"],
                modalities=tuple(entry["modalities"]), num_classes=int(entry["num_classes"]),
                input_size=tuple(entry["input_size"]), url=entry["url"], miou=entry["miou"],
                easpp_rates=tuple(entry.get("easpp_rates", EASPP_RATES)),
            )
        except KeyError as error:
            raise ValueError(f"{path}: model {name} lacks the key {error.args[0]}") from None
    return models, data["initialization"]


def presets() -> dict[str, Preset]:
    """Every released model, by preset name."""
    return dict(_read_zoo(str(ZOO_FILE))[0])


def initialization_checkpoints() -> dict[str, dict]:
    """The released initialisation checkpoints (the ImageNet encoder), as `zoo.yaml` lists them."""
    return dict(_read_zoo(str(ZOO_FILE))[1])


def get_preset(name: str) -> Preset:
    """The preset `name`.

    Raises:
        CheckpointError: an unknown name (a ValueError); the message lists the known ones.
    """
    known = presets()
    initialization = initialization_checkpoints().get(name)
    if initialization is not None:
        # Listed in zoo.yaml beside the models, but no model: an encoder without a decoder.
        raise CheckpointError(
            f"{name} is the initialisation of the encoder ({initialization['description']}), not a model to "
            f"load: download its files ({', '.join(initialization['files'])}) and give the prefix "
            f"{initialization['prefix']} as a training config's intialize")
    if name not in known:
        raise CheckpointError(
            f"unknown preset {name!r}; the released models are: {', '.join(sorted(known))} "
            "(or give a local folder, checkpoint or archive)"
        )
    return known[name]


def _is_archive(path: str) -> bool:
    return path.lower().endswith(ARCHIVE_SUFFIXES)


def _archive_stem(path: str) -> str:
    name = os.path.basename(urllib.parse.urlsplit(path).path)
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def cache_folder(cache_dir: Optional[str] = None) -> str:
    """The folder the zoo keeps its archives and their unpacked copies in:
    `<cache_dir>/models/ssma_tf`, by default under Keras' own cache (`$KERAS_HOME`, else `~/.keras`)."""
    base = cache_dir if cache_dir is not None else (
        os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras"))
    return os.path.join(os.path.expanduser(os.fspath(base)), CACHE_SUBDIR)


def fetch_archive(url: str, name: Optional[str] = None, cache_dir: Optional[str] = None,
                  local: Optional[str] = None, advice: str = LOAD_ADVICE) -> str:
    """Downloads (once) and unpacks (once) an archive into the cache; returns the unpacked folder.

    Both the download and the unpacking go to temporary names renamed when complete, so that an
    interrupted or damaged one leaves nothing a later call would trust. Processes that fetch the
    same archive at once take turns (a lock file in the cache): the second finds the first's
    copy. A cache that holds the unpacked folder already is read without writing to it (a
    shared, read-only cache). Without `cache_dir` and `$KERAS_HOME`, where `~/.keras` cannot be
    written, the cache is `<temp>/.keras`, as Keras' own; a copy there is used only then.

    Args:
        url: where the archive is (`http(s)://`, `file://`).
        name: the cache's name for it (default the archive's file name without suffix).
        cache_dir: the cache directory (default Keras' own, `$KERAS_HOME` or `~/.keras`).
        local: the path the user gave, for a `file://` URL of a local archive (named in errors).
        advice: what a failed download advises to do instead (`LOAD_ADVICE`, `CONVERT_ADVICE`).

    Raises:
        CheckpointError: the download failed or stopped short, the cache cannot be written, or
            the archive is damaged (its copy is removed from the cache).
    """
    # One folder per name: `model.v1_<sha>` and `model.v2_<sha>` must not share `model_extracted`.
    stem = (name or _archive_stem(url)).replace(".", "_")
    # From the URL's path: `.../model.tar.gz?dl=1` was taken for a zip (helper 143).
    suffix = next((s for s in ARCHIVE_SUFFIXES if urllib.parse.urlsplit(url).path.lower().endswith(s)), None)
    cache = cache_folder(cache_dir)
    folder = os.path.join(cache, stem + "_extracted")
    if os.path.isdir(folder):
        # Before anything is written: Keras moved to /tmp/.keras when the cache was read-only,
        # and downloaded again what the cache held (helper 187).
        return folder
    why = _unwritable(cache)
    if why is not None and cache_dir is None and "KERAS_HOME" not in os.environ:
        # Keras' own fallback where the home folder cannot be written (a container, a cluster
        # job): before, refused, and the archives cached there no longer found (helper 198).
        # Only then: the temp folder is shared, and before, a `<name>_extracted` that anyone had
        # put in /tmp/.keras was loaded though ~/.keras could be written (helper 280).
        home, cache = cache, os.path.join(tempfile.gettempdir(), ".keras", CACHE_SUBDIR)
        folder = os.path.join(cache, stem + "_extracted")
        if os.path.isdir(folder):
            return folder
        home_why, why = why, _unwritable(cache)
        if why is None:
            print(f"note: the model cache {home} cannot be written ({home_why}); using {cache}, as Keras does",
                  file=sys.stderr, flush=True)
    if why is not None:
        raise CheckpointError(f"cannot keep {url} in the cache folder {cache} ({why}): give cache_dir= a folder "
                              "you can write (or set KERAS_HOME)", path=cache)
    archive = os.path.join(cache, stem + (suffix or ".zip"))
    folder = os.path.join(cache, stem + "_extracted")
    with _cache_lock(os.path.join(cache, f".{stem}.lock"), url):
        if os.path.isdir(folder):  # another process fetched it while this one waited
            return folder
        if not os.path.isfile(archive):
            for leftover in abandoned_temporaries(archive):  # a download killed with its process
                os.remove(leftover)
            _download(url, archive, local, advice)
        _unpack_into(archive, folder, suffix, url, local)
        if local is not None:
            # The user's own file stays where it is: its copy here, read by nothing once unpacked, took
            # as much room again as the model (100-200 MB each; helper 344). A download is kept.
            os.remove(archive)
    return folder


def _unwritable(cache: str) -> Optional[str]:
    """Why the cache folder cannot be made or written, or None when it can."""
    try:
        os.makedirs(cache, exist_ok=True)
    except OSError as error:
        return error.strerror or str(error)
    return None if os.access(cache, os.W_OK | os.X_OK) else "not writable"


# Threads of one process fetching one archive take turns on its path's `RLock`; processes on the
# lock file (`ssma_tf.files.held_lock`, shared by the holders of one process).
_LOCKS: dict = {}


@contextlib.contextmanager
def _cache_lock(path: str, url: str) -> Iterator[None]:
    """Holds the lock file `path` while one archive is downloaded and unpacked. Before, a second
    process took the first's download in progress for a finished one, called it damaged and
    deleted it (helper 187)."""
    with _LOCKS.setdefault(path, threading.RLock()):
        with held_lock(path, waiting=f"waiting for another process that fetches {url} into the same cache"):
            yield


# Seconds without a byte before a download is given up.
DOWNLOAD_TIMEOUT = 60


def _download(url: str, archive: str, local: Optional[str], advice: str = LOAD_ADVICE) -> None:
    """Downloads `url` to `archive` under a temporary name, renamed once every byte the server
    announced is there: an interrupted download (SIGTERM, SIGKILL, a lost connection) leaves no
    file a later call takes for the archive (before, Keras' partial file did, and the next call
    called it damaged; helper 187)."""
    partial = temporary_name(archive)
    if local is None:
        print(f"downloading {url}", file=sys.stderr, flush=True)
    try:
        try:
            response = urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT)
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as error:
            raise _download_error(url, error, advice) from None
        with response, open(partial, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            received = 0
            said = time.monotonic()
            with Progress.bar_or_lines(sys.stderr, unit="kB", prefix="downloaded ") as progress:
                while True:
                    try:
                        chunk = response.read(1 << 20)
                    except (OSError, http.client.HTTPException) as error:
                        raise _download_error(url, error, advice) from None
                    if not chunk:
                        break
                    out.write(chunk)
                    received += len(chunk)
                    if local is not None:
                        continue
                    if total:  # kB rounded up: a small archive is 1/1, not 0/0
                        progress(-(-received // 1000), -(-total // 1000))
                    elif time.monotonic() - said >= PIPED_LOG_SECONDS:
                        # A server that says no size: how much so far (before: nothing until the end).
                        said = time.monotonic()
                        progress.log(f"downloaded {received / 1e6:.1f} MB so far (the server gives no size)")
            if not total and local is None:
                print(f"downloaded {received / 1e6:.1f} MB", file=sys.stderr, flush=True)
        if total and received != total:
            raise CheckpointError(f"the download of {url} stopped after {received} of its {total} bytes: try again",
                                  path=url)
        os.replace(partial, archive)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise


def _download_error(url: str, error: BaseException, advice: str = LOAD_ADVICE) -> CheckpointError:
    """`cannot download URL (why): ...` for a failed request or a connection lost mid-way, ending
    in `advice` (its `{file}`: the archive's file name)."""
    if isinstance(error, urllib.error.HTTPError):
        why = f"HTTP {error.code} {error.reason}"
    elif isinstance(error, urllib.error.URLError):
        why = str(error.reason)
    elif isinstance(error, OSError) and error.strerror:
        why = error.strerror  # "Connection reset by peer", without "[Errno 104]"
    else:
        why = first_line(error) or type(error).__name__
    # Before: released_as=NAME for ssma-convert-tf1 too, which takes no such flag (helper 280).
    file = urllib.parse.unquote(os.path.basename(urllib.parse.urlsplit(url).path))
    return CheckpointError(
        f"cannot download {url} ({why}): without a network, download the archive elsewhere and pass its path "
        f"(or its unpacked folder) {advice.format(file=file)}", path=url)


def _unpack_into(archive: str, folder: str, suffix: Optional[str], url: str, local: Optional[str]) -> None:
    """Unpacks `archive` into `folder` under a temporary name renamed when complete; a damaged
    archive is removed from the cache."""
    # A name of this process's own: two processes loading one model for the first time shared
    # `.partial-<stem>_extracted`, the second deleting what the first was unpacking (before: a
    # raw FileNotFoundError in one of them).
    _remove_dead_unpackings(folder)
    partial = temporary_name(folder)
    try:
        _unpack(archive, partial, suffix)
        try:
            os.replace(partial, folder)
        except OSError:
            if not os.path.isdir(folder):
                raise
            # Another process unpacked the same archive first: its folder is as good as this one.
            shutil.rmtree(partial, ignore_errors=True)
    except _UnreadableMember as error:
        # Whole, but not readable here (before: zipfile's NotImplementedError or RuntimeError, naming
        # no file, and the copy kept in the cache for the next call to fail on; helper 314).
        shutil.rmtree(partial, ignore_errors=True)
        os.remove(archive)
        raise CheckpointError(f"cannot unpack the archive {local or url}: its member {error.member} {error.why}, "
                              "which Python's zipfile cannot read; re-zip it with plain deflate",
                              path=local or url) from None
    except (EOFError, zlib.error, zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, lzma.LZMAError) as error:
        # (LZMAError: a damaged .tar.xz, a raw traceback and its copy kept in the cache; helper 346.)
        # Before: Keras only warned ("Could not extract archive.") of some, a bare EOFError named
        # no file for a cut .tar.gz, and the damaged copy stayed in the cache for every later call.
        shutil.rmtree(partial, ignore_errors=True)
        os.remove(archive)
        if local is not None:  # before: named by its file:// URL, and "download it again"
            raise CheckpointError(f"cannot unpack the archive {local}: it is damaged or incomplete "
                                  f"({first_line(error)})", path=local) from None
        raise CheckpointError(f"cannot unpack the archive {url}: it is damaged or incomplete ({first_line(error)}); "
                              "removed its copy from the cache: download it again", path=url) from None
    except BaseException:  # Ctrl-C, a full disk: nothing half-unpacked stays
        shutil.rmtree(partial, ignore_errors=True)
        raise


def _remove_dead_unpackings(folder: str) -> None:
    """Removes the temporaries of `folder` that killed processes left while unpacking it; a running
    one's is its work in progress (`abandoned_temporaries`)."""
    for leftover in abandoned_temporaries(folder):
        shutil.rmtree(leftover, ignore_errors=True)


def _unpack(archive: str, folder: str, suffix: Optional[str]) -> None:
    """Unpacks a zip or tar archive (`suffix` says which; None, for a URL whose path names no
    archive: a zip told by its content, else a tar) into `folder`. A named `.tar` is never sniffed:
    one ending in a `.keras` file reads as a zip (helper 146)."""
    if suffix == ".zip" or (suffix is None and zipfile.is_zipfile(archive)):
        with zipfile.ZipFile(archive) as opened:
            _check_readable(opened)
            bad = opened.testzip()
            if bad is not None:
                raise zipfile.BadZipFile(f"its member {bad} is damaged (checksum mismatch)")
            opened.extractall(folder)
    else:
        with tarfile.open(archive) as opened:
            members = opened.getmembers()
            _check_tar_end(opened)
            if hasattr(tarfile, "data_filter"):  # Python 3.10.12, 3.11.4 and on
                opened.extractall(folder, filter="data")  # no paths outside the folder, no devices
                return
            for member in members:
                if os.path.isabs(member.name) or ".." in pathlib.PurePath(member.name).parts or not (
                        member.isfile() or member.isdir()):
                    raise tarfile.TarError(f"its member {member.name!r} would be written outside the folder, or is "
                                           "not a file")
            opened.extractall(folder)


class _UnreadableMember(Exception):
    """A member of a whole zip that Python's `zipfile` cannot read (`_check_readable`)."""

    def __init__(self, member: str, why: str):
        super().__init__(f"its member {member} {why}")
        self.member, self.why = member, why


# Deflate64 (method 9): Windows' zipper can write it ("Send to > Compressed folder", for large files).
_COMPRESSION_NAMES = {9: "Deflate64"}


def _check_readable(opened: zipfile.ZipFile) -> None:
    """Raises `_UnreadableMember` for the first member that is encrypted or packed by a compression
    method `zipfile` lacks; `testzip` raises zipfile's own errors for them, naming no archive."""
    for info in opened.infolist():
        if info.is_dir():  # no data: extracted without being read
            continue
        if info.flag_bits & 0x1:
            raise _UnreadableMember(info.filename, "is encrypted")
        try:
            opened.open(info).close()  # reads the member's header only: its method is checked on opening
        except (NotImplementedError, RuntimeError):  # RuntimeError: this Python lacks the bz2 or lzma module
            method = info.compress_type
            named = f" ({_COMPRESSION_NAMES[method]})" if method in _COMPRESSION_NAMES else ""
            raise _UnreadableMember(info.filename, f"uses the compression method {method}{named}") from None


def _check_tar_end(opened: tarfile.TarFile) -> None:
    """Raises TarError unless the tar's end-of-archive marker (two zero blocks) follows its last
    member: `tarfile` reads a tar cut exactly between two members as a whole, shorter one (helper
    120: the first member alone was unpacked and cached, and every later load failed on it)."""
    opened.fileobj.seek(opened.offset)
    end = opened.fileobj.read(2 * tarfile.BLOCKSIZE)
    if len(end) < 2 * tarfile.BLOCKSIZE or end.strip(b"\0"):
        raise tarfile.TarError(f"it ends after {len(opened.getmembers())} member(s) without the end-of-archive marker")
    # To the end of the compressed stream, where gzip checks its CRC (xz and bz2 their own): tarfile
    # stops at the marker, and a .tar.gz with damaged bytes inside unpacked them as good (helper 346).
    while opened.fileobj.read(1 << 20):
        pass


def find_checkpoint(folder: str) -> str:
    """The one model checkpoint inside an unpacked archive: a TF1 prefix or a `.keras` file.

    Raises:
        CheckpointError: none, or several (the message lists them).
    """
    found = _model_files(folder)
    if not found:
        raise CheckpointError(f"{folder}: no TF1 checkpoint (*.index) or .keras file inside")
    if len(found) > 1:
        raise CheckpointError(f"{folder}: several checkpoints inside, give one of them: {', '.join(sorted(found))}")
    return found[0]


def _model_files(folder: str) -> list[str]:
    """The TF1 prefixes and `.keras` files in `folder` and its subfolders."""
    found = []
    for root, folders, files in os.walk(folder):
        # What macOS' Finder adds to a zip (`__MACOSX/<folder>/._model.ckpt.index`, its AppleDouble
        # files of resource forks) is no checkpoint (before: "several checkpoints inside"; helper 314).
        folders[:] = [name for name in folders if name != MACOS_FOLDER]
        for file in sorted(files):
            if file.startswith(APPLE_DOUBLE_PREFIX):
                continue
            if file.endswith(".index"):
                found.append(os.path.join(root, file[: -len(".index")]))
            elif file.endswith(".keras"):
                found.append(os.path.join(root, file))
    return found


def _looks_like_a_path(text: str) -> bool:
    return os.sep in text or "/" in text or text.lower().endswith(ARCHIVE_SUFFIXES + (".keras", ".h5"))


def released_entry(source: str) -> Optional[str]:
    """The zoo name of a local copy of a released archive, told by its file name (an archive or
    URL `adapnet++_cityscapes_19_rgb.zip`, the folder it unpacks into, or a checkpoint up to
    `RELEASE_DEPTH` folders inside it; also the cache's copies of a preset or archive); None for
    any other. Only a name: `fitting_release` checks that the checkpoint is the release's model."""
    if "://" in source or _is_archive(source):
        stems = [_archive_stem(source)]
    else:
        path = pathlib.Path(os.path.abspath(source))
        stems = [path.name] + [parent.name for parent in path.parents][:RELEASE_DEPTH]
    released = {_archive_stem(entry.url): name for name, entry in presets().items()}
    released.update({name: name for name in presets()})  # `fetch_archive`'s name of a preset
    for stem in stems:
        # The cache unpacks `<name>.zip` into `<name>_extracted`; a local archive's name ends in
        # 16 hexadecimal digits of its content (`preset_checkpoint`).
        stem = re.sub(r"(_[0-9a-f]{16})?_extracted$", "", stem)
        if stem in released:
            return released[stem]
    return None


def _fits(entry: Preset, resolved: str) -> Optional[str]:
    """None when the TF1 checkpoint `resolved` holds the network and class count of `entry`; else
    what it holds instead."""
    shapes = read_checkpoint(resolved)
    held = {KIND_SSMA: SSMA_NAME, KIND_ADAPNET_PP: ADAPNET_PP}.get(detect_kind(shapes, resolved))
    if held != entry.model:
        return f"holds {'the ImageNet initialisation' if held is None else held}"
    stored = num_classes_of(shapes, resolved)
    return None if stored == entry.num_classes else f"has {stored} classes"


def _keras_file_fits(entry: Preset, path: str) -> Optional[str]:
    """`_fits` for a `.keras` file, told by its config without building its network: None when it
    holds the network and class count of `entry` (or does not say), else what it holds instead."""
    try:
        config = keras_file_config(path)
    except (KeyError, ValueError):  # no readable config.json: the loader names what is wrong
        return None
    held = config.get("class_name")
    held = {AdapNetPP.__name__: ADAPNET_PP, SSMA.__name__: SSMA_NAME}.get(held, held)
    if held != entry.model:
        return f"holds {held}"
    stored = (config.get("config") or {}).get("num_classes")
    return None if stored is None or stored == entry.num_classes else f"has {stored} classes"


def fitting_release(source: Union[str, os.PathLike]) -> Optional[Preset]:
    """The released model a local TF1 checkpoint is, told by the names of its file and folders
    (`released_entry`) and checked against its network and class count; None for any other (the
    project's own files, which say their network themselves, or a checkpoint of another model
    that lies in a folder named like a release)."""
    name = released_entry(os.fspath(source))
    if name is None:
        return None
    fmt, resolved = resolve_weights(os.fspath(source))
    entry = presets()[name]
    return entry if fmt == FORMAT_TF1 and _fits(entry, resolved) is None else None


def preset_checkpoint(preset: Union[str, os.PathLike], cache_dir: Optional[str] = None,
                      advice: str = LOAD_ADVICE) -> str:
    """The local checkpoint of a preset name, URL, folder, archive or checkpoint, fetched if needed;
    `advice`: what a failed download advises (`fetch_archive`)."""
    text = _local_path(os.fspath(preset))
    known = presets()
    if text in known:
        return find_checkpoint(fetch_archive(known[text].url, text, cache_dir, advice=advice))
    if "://" in text:
        # Cached under its name and the URL's digest: `.../run1/model.zip` and `.../run2/model.zip`
        # shared one copy, and the second loaded the first's model (helper 143).
        name = f"{_archive_stem(text)}_{hashlib.sha256(text.encode()).hexdigest()[:16]}"
        return find_checkpoint(fetch_archive(text, name, cache_dir=cache_dir, advice=advice))
    if os.path.isfile(text) and _is_archive(text):
        url = pathlib.Path(text).resolve().as_uri()
        # Cached by content, not by name: another archive under the same name (a retrained
        # model) would otherwise load the first one's unpacked copy without a word.
        name = f"{_archive_stem(text)}_{sha256_of_file(text)[:16]}"
        return find_checkpoint(fetch_archive(url, name, cache_dir=cache_dir, local=text))
    if os.path.isdir(text) and not os.path.exists(os.path.join(text, "checkpoint")):
        if os.path.isfile(os.path.join(text, FINAL_WEIGHTS)):
            # A run's final weights without its checkpoints, read as `resolve_weights` reads them
            # (before: "no TF1 checkpoint (*.index) or .keras file inside"; helper 187).
            return text
        if exported_backend(text) is not None or (
                os.path.isfile(os.path.join(text, RUN_CONFIG)) and not _model_files(text)):
            # An export of ssma-export, or a training run without a checkpoint: `resolve_weights` says
            # what it is. Before: the export's `variables/variables` taken for a release's checkpoint
            # ("... does not say which network it holds: give model="), and the run "no TF1 checkpoint
            # (*.index) or .keras file inside" (helper 314). A run folder holding some (ssma-prune's
            # stage<k>.keras beside its config.yaml) is searched as before.
            resolve_weights(text)
            return text
        return find_checkpoint(text)
    if not (os.path.exists(text) or os.path.exists(text + ".index")):
        if _looks_like_a_path(text):
            raise CheckpointError(f"{text}: no such file or folder", path=text)
        get_preset(text)  # an unknown name: the error lists the known ones
    return text


def _local_path(text: str) -> str:
    """The path of a `file://` URL of this machine (`file:///x`, `file://localhost/x`); any other
    text as it is. Before, such a URL was cached by its text, and an archive replaced at that path
    loaded the old one's unpacked copy without a word; a path is cached by content (helper 280)."""
    parts = urllib.parse.urlsplit(text)
    if parts.scheme.lower() != "file" or parts.netloc.lower() not in ("", "localhost"):
        return text
    return urllib.request.url2pathname(parts.path)


def load_model(preset: Union[str, os.PathLike], *, cache_dir: Optional[str] = None,
               released_as: Optional[str] = None, model: Optional[str] = None,
               num_classes: Optional[int] = None) -> keras.Model:
    """A released model by preset name, or a local folder, checkpoint or archive, with its weights.

    A checkpoint does not say the eASPP rates its network was trained with (the Cityscapes-19
    models' differ from the default): a local copy of a released archive takes the zoo entry's
    network when its file name is the release's (`adapnet++_cityscapes_19_rgb.zip`, or the folder
    of that name), or when `released_as` names the entry.

    Args:
        preset: a name of `presets()` (e.g. "ssma_cityscapes_rgb_depth"), an archive URL, a local
            archive, an unpacked folder, a TF1 checkpoint prefix or a `.keras` file.
        cache_dir: where downloads go (default Keras' cache, `~/.keras`).
        released_as: the zoo name of the model a local `preset` holds.
        model, num_classes: the network ("AdapNet_pp" or "SSMA") and its classes, which a
            `.weights.h5` file or TF2 checkpoint outside a training run does not say (the others
            say them; given, they are checked against what is said).

    Returns:
        The `AdapNetPP` or `SSMA`, with the class count and eASPP rates it was trained with.

    Raises:
        ValueError: an unknown preset name (listing the known ones).
        CheckpointError: no such local file, a damaged archive, or a checkpoint that does not fit
            the preset's network or class count.
    """
    # A `file://` URL is its file (as for `_from_preset`), named and told a release by its path.
    text = _local_path(os.fspath(preset))
    name = _entry_name(text, released_as)
    said = released_as is not None or text in presets()
    if name is not None and said:  # before a download
        entry = presets()[name]
        for key, given, held in (("model", model, entry.model), ("num_classes", num_classes, entry.num_classes)):
            if given is not None and given != held:
                raise ValueError(f"{key}={given!r}, but {name} is an {entry.model} of {entry.num_classes} classes")
    checkpoint = preset_checkpoint(text, cache_dir)
    if name is None:
        return load_checkpoint(checkpoint, model, num_classes)
    entry = presets()[name]
    fmt, resolved = resolve_weights(checkpoint)
    if not said and (fmt != FORMAT_TF1 or _fits(entry, resolved) is not None):
        # A release told by a file or folder name only: the project's own files (a `.keras` file,
        # a run) say their network themselves, and another model may lie in a folder of that name.
        return load_checkpoint(checkpoint, model, num_classes)
    # A `.keras` file said by its config, before the entry's network is built (before: Keras' or the
    # loader's shapes, "variable ... has shape [12] ... but [20] in the model"; helper 280).
    wrong = _fits(entry, resolved) if fmt == FORMAT_TF1 else (
        _keras_file_fits(entry, resolved) if resolved.endswith(".keras") else None)
    if wrong is not None:
        # Before: the loader's word for training ("SSMA needs two of them, checkpoint1 ...").
        said_by = f"released_as={released_as!r}" if released_as is not None else "the preset"
        raise CheckpointError(f"{resolved} {wrong}, but {said_by} names {name}, an {entry.model} of "
                              f"{entry.num_classes} classes; give the preset of the model it holds", path=resolved)
    # A release told by its file name: the flags are checked as for any file that says its model
    # (before: ignored, and a 12-class AdapNet++ returned for num_classes=5 or model="SSMA").
    check_matches(resolved, (entry.model, entry.num_classes), model, num_classes)
    # At the release's eASPP rates, with the auxiliary heads the checkpoint holds: the original
    # code leaves them out with `has_aux_loss=False` (before: such an AdapNet++ in a folder named
    # like a release was refused as lacking 10 variables, though it loaded under any other name).
    built = model_for_checkpoint(resolved, entry.easpp_rates) if fmt == FORMAT_TF1 else entry.build()
    load_weights(built, resolved)
    return built


def _entry_name(text: str, released_as: Optional[str]) -> Optional[str]:
    """The zoo entry `load_model` builds the network of: `released_as` (checked), the preset
    name itself, or the release a local copy's file name says; None: the checkpoint's own."""
    if released_as is not None:
        get_preset(released_as)  # an unknown name lists the known ones
        return released_as
    return text if text in presets() else released_entry(text)


def _from_preset(cls: type, preset: Union[str, os.PathLike], *, cache_dir: Optional[str] = None,
                 released_as: Optional[str] = None, num_classes: Optional[int] = None) -> keras.Model:
    """Loads a released model (or a local one) that must be a `cls`; see `load_model`.
    `num_classes`: for weights that do not say it (a `.weights.h5` file or a TF2 checkpoint
    outside its training run), which are read as a `cls` of that many classes."""
    # A `file://` URL is its file: a local copy, which says its network itself. Before, refused as
    # the release its file name names, though the same file given by its path loaded (helper 314).
    text = _local_path(os.fspath(preset))
    name = _entry_name(text, released_as)
    # Said by the zoo file, or by a URL before its download; a local copy says it itself.
    said = released_as is not None or text in presets() or "://" in text
    entry = presets()[name] if name is not None and said else None
    # The zoo releases AdapNet++ and SSMA only: a baseline's from_preset of a release is refused
    # before its download (before: taken for SSMA, downloaded, then refused; helper 143).
    wanted = ADAPNET_PP if issubclass(cls, AdapNetPP) else SSMA_NAME if issubclass(cls, SSMA) else None
    if entry is not None and entry.model != wanted:
        # Said by the zoo file: refused before the archive is downloaded.
        raise CheckpointError(f"{text} holds {entry.model}, not {cls.__name__}")
    try:
        model = load_model(preset, cache_dir=cache_dir, released_as=released_as, num_classes=num_classes)
    except UnnamedNetworkError:
        # Before: "give model= and num_classes=", which from_preset did not take (helper 191).
        if wanted is None or num_classes is None:
            said = (f"how many classes the {cls.__name__} it holds has: give num_classes= "
                    f"({cls.__name__}.from_preset(path, num_classes=N))" if wanted is not None
                    else f"which {cls.__name__} it holds: give its .keras file")
            raise UnnamedNetworkError(f"{text} does not say {said}, or load it from its training run's folder, whose "
                                      "config.yaml says it", path=text) from None
        try:
            model = load_model(preset, cache_dir=cache_dir, released_as=released_as, model=wanted,
                               num_classes=num_classes)
        except CheckpointError as error:
            # Said as what it is (before: a layer's shapes alone, for an AdapNet++ checkpoint given to
            # SSMA.from_preset; helper 198).
            raise CheckpointError(f"{text} does not hold an {wanted} of {num_classes} classes (another network, "
                                  f"or another class count?): {error}", path=text) from None
    if not isinstance(model, cls):
        raise CheckpointError(f"{text} holds {model_name(model)}, not {cls.__name__}")
    return model


def register_from_preset() -> None:
    """Gives `AdapNetPP`, `SSMA` and `FusionBaseline` the class method `from_preset(preset,
    cache_dir=None, released_as=None, num_classes=None)` (the zoo releases no baseline: for a
    baseline, a local `.keras` file or run)."""
    for cls in (AdapNetPP, SSMA, FusionBaseline):
        cls.from_preset = classmethod(_from_preset)


register_from_preset()


def markdown_table() -> str:
    """The zoo as the README's Markdown table."""
    lines = [
        "| preset | network | dataset | modalities | classes | input (H×W) | mIoU (%) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in presets().values():
        network = "AdapNet++" if p.model == ADAPNET_PP else "SSMA"
        miou = "–" if p.miou is None else f"{p.miou:g}"
        lines.append(
            f"| [`{p.name}`]({p.url}) | {network} | {p.dataset} | {' + '.join(p.modalities)} | "
            f"{p.num_classes} | {p.input_size[0]}×{p.input_size[1]} | {miou} |"
        )
    return "\n".join(lines)

