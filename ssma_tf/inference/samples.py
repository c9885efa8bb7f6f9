"""The samples to predict: one image (pair), a list file (any number of modalities), or two folders paired by name."""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

from ssma_tf.constants import MAX_MODALITIES, SSMA_FUSION
from ssma_tf.inference.predictor import PredictionError
from ssma_tf.modalities.batch import index_folder
from ssma_tf.errors import UserInputError
from ssma_tf.files import folder_holding, resolved_folders
from ssma_tf.lists import comment_hint, more_columns_hint, place_hint, read_lines, spaces_hint, unicode_space_hint
from ssma_tf.modalities.io import IMAGE_EXTENSIONS, InputFileError

PathLike = Union[str, "os.PathLike[str]"]


@dataclasses.dataclass(frozen=True)
class Sample:
    """One sample to predict.

    Attributes:
        name: output file name without extension; may hold sub-folders ("scene0/0").
        modality1: the modality-1 image (the image overlays are drawn on).
        modality2: the modality-2 image, or None.
        label: ground-truth class ids, or None.
        further: modality 3, 4, ... images, for SSMA over more than two modalities.
        source: the list file and line it comes from ("val.txt, line 4"), or None.
    """

    name: str
    modality1: Optional[str]
    modality2: Optional[str] = None
    label: Optional[str] = None
    further: Tuple[str, ...] = ()
    source: Optional[str] = None

    def where(self) -> str:
        """How messages name the sample: its list line where it has one."""
        return f"{self.source} (sample '{self.name}')" if self.source else f"sample '{self.name}'"

    @property
    def modalities(self) -> Tuple[Optional[str], ...]:
        """The images, modality 1 first (None where a modality is not given)."""
        return (self.modality1, self.modality2, *self.further)

    def describe(self) -> str:
        """The sample's files, for error messages."""
        return " + ".join(p for p in self.modalities if p)


def sample_from_files(modality1: Optional[PathLike], modality2: Optional[PathLike] = None) -> Sample:
    """One sample from one image (pair); named after the first file given."""
    paths = [None if p is None else os.fspath(p) for p in (modality1, modality2)]
    first = next((p for p in paths if p is not None), None)
    if first is None:
        raise PredictionError("give modality1, modality2 or both")
    return Sample(_stem(first), paths[0], paths[1])


def samples_from_list(path: PathLike, fusion: bool, modalities: int = 2,
                      num_classes: Optional[int] = None) -> List[Sample]:
    """Reads a list file of samples to predict (relative paths are from the list's folder).

    Lines are `modality1 modality2 [label]` for SSMA (`modality1 ... modalityN [label]` for SSMA
    over `modalities` = N); for AdapNet++ `image`, `image label` or a fusion line `modality1
    ... modalityN label` of any N. Lines whose last image cannot be a label (a colour image such
    as a depth colouring, or 8-bit grey of many values: `cannot_be_label`) are `modality1 ...
    modalityN` without a label (`num_classes`, the model's, raises "many values" above 64 for a
    model of more classes). Empty lines and lines starting with '#' are skipped.
    Outputs are named by the modality-1 path relative to the folder all of them share.

    Raises:
        PredictionError: the file is unreadable or empty, a line has a wrong column count or
            names a file that is not there (the message names the file and the line).
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    try:
        lines = read_lines(path)  # spaces, tabs or quotes: see ssma_tf.lists
    except UserInputError as error:
        raise PredictionError(str(error)) from None
    allowed = (modalities, modalities + 1) if fusion else tuple(range(1, MAX_MODALITIES + 2))
    rows = []
    for number, fields in lines:
        if len(fields) not in allowed:
            names = " ".join(f"modality{i}" for i in range(1, modalities + 1))
            expected = f"{names} [label]" if fusion else "image [label] or modality1 ... modalityN label"
            few = f", fewer than the model's {modalities} modalities" if fusion and len(fields) < modalities else ""
            hint = comment_hint(fields) or (more_columns_hint(fields, folder) if len(fields) > max(allowed) else "")
            raise PredictionError(f"{path}, line {number}: expected {expected}, got {len(fields)} columns{few}{hint}")
        row = [os.path.normpath(os.path.join(folder, os.path.expanduser(f))) for f in fields]
        # Before the model runs: a missing image found at its turn left the samples before it written.
        for index, image in enumerate(row):
            if not os.path.isfile(image):
                hint = (spaces_hint(fields, index, folder) or place_hint(fields[index], folder) or comment_hint(fields)
                        or unicode_space_hint(fields[index]))
                raise PredictionError(f"{path}, line {number}: {image} is not a file{hint}")
        rows.append((row, f"{path}, line {number}"))
    if not rows:
        raise PredictionError(f"{path} lists no samples")
    if fusion:
        entries = [(r[:modalities], r[modalities] if len(r) > modalities else None, line) for r, line in rows]
    else:
        # N columns are N - 1 images and a label, or the N images of an unlabelled fusion list,
        # from which an expert reads its own modality: told apart, for each column count, by the
        # last image of its first line (a colour image, or 8-bit grey of many values, cannot be
        # a label; every other single-channel image, 1- and 16-bit ones included, is one).
        from ssma_tf.data.convert import cannot_be_label  # reads headers, and a grey image

        unlabelled: dict = {}
        for r, _ in rows:
            if len(r) > 1 and len(r) not in unlabelled:
                unlabelled[len(r)] = cannot_be_label(r[-1], num_classes)
        entries = [
            ((r[0],), None, line) if len(r) == 1
            else (tuple(r), None, line) if unlabelled[len(r)]
            else (tuple(r[:-1]), r[-1], line)
            for r, line in rows
        ]
    return _named([(images[0], images[1] if len(images) > 1 else None, label, tuple(images[2:]), line)
                   for images, label, line in entries])


def samples_from_folders(
    modality1_dir: Optional[PathLike],
    modality2_dir: Optional[PathLike] = None,
    *,
    modality1_suffix: str = "",
    modality2_suffix: str = "",
    recursive: bool = False,
    exclude: Sequence[PathLike] = (),
) -> List[Sample]:
    """Pairs the images of two folders by name (the name without extension and suffix).

    `aachen_000000_000019_leftImg8bit.png` and `aachen_000000_000019_disparity.png` pair up with
    the suffixes `_leftImg8bit` and `_disparity`. One folder alone gives unimodal samples.
    Files under the folders `exclude` (the picture folders of the output, which may lie inside
    an input folder read with `recursive`) are not inputs: before, each run predicted the
    pictures of the one before.

    Raises:
        PredictionError: a folder is missing or empty, or a file has no partner.
    """
    folders = [(modality1_dir, modality1_suffix), (modality2_dir, modality2_suffix)]
    try:
        indexes = [
            None if d is None else index_folder(d, IMAGE_EXTENSIONS, suffix, recursive)
            for d, suffix in folders
        ]
    except InputFileError as error:
        raise PredictionError(str(error)) from None
    if exclude:
        # The output's own picture folders only: an output that holds the inputs (`--output .`)
        # is no reason to pass them over (helper 134).
        folders_out = resolved_folders(exclude)
        indexes = [None if index is None else
                   {key: path for key, path in index.items() if folder_holding(path, folders_out) is None}
                   for index in indexes]
        for index, (folder, _) in zip(indexes, folders):
            if index is not None and not index:
                raise PredictionError(f"{folder} holds no images but those in the output's picture folders "
                                      f"({', '.join(map(os.fspath, exclude))}): the pictures of an earlier "
                                      "prediction, or inputs its pictures would replace; give another --output")
    if indexes[0] is None and indexes[1] is None:
        raise PredictionError("give modality1_dir, modality2_dir or both")
    if indexes[0] is not None and indexes[1] is not None:
        for this, other, other_dir in ((0, 1, modality2_dir), (1, 0, modality1_dir)):
            unmatched = sorted(set(indexes[this]) - set(indexes[other]))
            if unmatched:
                key = unmatched[0]
                raise PredictionError(
                    f"{indexes[this][key]} has no partner named '{key}' in {other_dir}"
                    + (f" ({len(unmatched)} files without one)" if len(unmatched) > 1 else "")
                )
    keys = sorted(next(index for index in indexes if index is not None))
    return [
        Sample(
            key,
            None if indexes[0] is None else str(indexes[0][key]),
            None if indexes[1] is None else str(indexes[1][key]),
        )
        for key in keys
    ]


def _outside(samples: List[Sample], exclude: Sequence[PathLike]) -> List[Sample]:
    """`samples`, refused when a file of theirs lies in one of the folders `exclude` (the output's
    picture folders): before, a list naming `OUT/color/0.png` had that photo replaced by its
    prediction, exit 0 (helper 200)."""
    folders = resolved_folders(exclude)
    for sample in samples if folders else ():
        for path in (sample.modality1, sample.modality2, sample.label, *sample.further):
            inside = None if path is None else folder_holding(path, folders)
            if inside is not None:
                where = f"{sample.source}: " if sample.source else ""
                raise PredictionError(f"{where}{path} lies in {inside}, a folder the prediction writes its pictures "
                                      "to, where they would replace it; give another --output")
    return samples


def fusion_network(fusion_method: Optional[str]) -> str:
    """The fusion network a predictor runs, for messages: "an SSMA", or "a late fusion" for a
    baseline (`Predictor.fusion_method`; before: every fusion network was "an SSMA")."""
    if fusion_method in (None, SSMA_FUSION):
        return "an SSMA"
    return f"{'an' if fusion_method[0] in 'aeiou' else 'a'} {fusion_method} fusion"


def collect_samples(
    fusion: bool,
    *,
    list_file: Optional[PathLike] = None,
    modality1: Optional[PathLike] = None,
    modality2: Optional[PathLike] = None,
    modality1_suffix: str = "",
    modality2_suffix: str = "",
    recursive: bool = False,
    modalities: int = 2,
    exclude: Sequence[PathLike] = (),
    num_classes: Optional[int] = None,
    fusion_method: Optional[str] = None,
) -> List[Sample]:
    """The samples named by a list file, by one image (pair), or by folders paired by name.

    Args:
        fusion: the model takes two (or `modalities`) modalities (decides how list lines are
            read; SSMA over more than two reads list files only).
        list_file: a list file (then `modality1`/`modality2` must be None).
        modality1, modality2: image files, or folders (both folders when both are given).
        modality1_suffix, modality2_suffix, recursive: see `samples_from_folders`.
        modalities: the images a fusion model takes (N).
        exclude: folders whose files are never inputs: the output's picture folders (see
            `samples_from_folders`).
        num_classes: the model's classes, void included (how many ids a list's label may hold).
        fusion_method: the fusion network's name (`Predictor.fusion_method`), for messages; None:
            SSMA.

    Raises:
        PredictionError: a missing file or folder, a file beside a folder, a bad list.
        PredictionError: nothing or too much given.
    """
    if list_file is not None:
        if modality1 is not None or modality2 is not None:
            raise PredictionError("give a list file or images/folders, not both")
        if modality1_suffix or modality2_suffix or recursive:
            # Before: accepted and read by nothing.
            raise PredictionError("--modality1_suffix, --modality2_suffix and --recursive pair folders; a list file "
                                  "names its images itself")
        return _outside(check_readable(samples_from_list(list_file, fusion, modalities, num_classes)), exclude)
    if fusion and modalities > 2:
        raise PredictionError(f"{fusion_network(fusion_method)} over {modalities} modalities reads its inputs from a "
                              "list file")
    given = [(f"modality{i}", os.fspath(p)) for i, p in ((1, modality1), (2, modality2)) if p is not None]
    if not given:
        raise PredictionError("give a list file, modality1, modality2 or both")
    for what, path in given:
        # Before the folder check: a mistyped folder beside a real one "is not a folder".
        if not os.path.exists(path):
            raise PredictionError(f"{what} {path}: no such file or folder")
    folders = [os.path.isdir(path) for _, path in given]
    if not any(folders):
        if modality1_suffix or modality2_suffix or recursive:
            raise PredictionError("--modality1_suffix, --modality2_suffix and --recursive pair folders; "
                                  f"{given[0][1]} is a file")
        return _outside(check_readable([sample_from_files(modality1, modality2)]), exclude)
    if not all(folders):
        files = [f"{what} {path}" for (what, path), folder in zip(given, folders) if not folder]
        raise PredictionError(f"{files[0]} is not a folder, but the other input is one")
    for number, (suffix, folder) in enumerate(((modality1_suffix, modality1), (modality2_suffix, modality2)), 1):
        if suffix and folder is None:
            # Before: read by nothing, the outputs named with the suffix kept (helper 294).
            raise PredictionError(f"--modality{number}_suffix strips names in --modality{number}'s folder, which "
                                  "is not given")
    return check_readable(samples_from_folders(
        modality1, modality2, modality1_suffix=modality1_suffix, modality2_suffix=modality2_suffix,
        recursive=recursive, exclude=exclude,
    ))


# `check_inputs`' source for an export's metadata, which `--input_modality` does not override.
EXPORT_METADATA = "the export's metadata"


def _sixteen_bit_warnings(samples: Sequence[Any], sixteen_bit_warning: Callable[[str], Optional[str]]) -> list[str]:
    """One warning for the 16-bit images of every sample (headers only), naming a few of them.

    Before: only the first sample's images were looked at, so raw depth further down a list or a
    folder was predicted from its high byte (nearly black) without a word (helper 169)."""
    deep = [path for path in dict.fromkeys(path for sample in samples for path in sample.modalities if path)
            if sixteen_bit_warning(path)]
    if not deep:
        return []
    message = sixteen_bit_warning(deep[0])
    if len(deep) > 1:
        shown = ", ".join(deep[1:4]) + (f" and {len(deep) - 4} more" if len(deep) > 4 else "")
        message += f"; {len(deep) - 1} other input image{'s are' if len(deep) > 2 else ' is'} 16-bit too: {shown}"
    return [message]


def check_inputs(
    samples: Sequence[Sample],
    *,
    fusion: bool,
    modalities: int,
    input_modality: str,
    listed: bool,
    source: Optional[str] = "its config",
    num_classes: Optional[int] = None,
) -> List[str]:
    """Catches images given as a modality the network does not read, before it runs.

    - Images named by modality (`--modality1`/`--modality2`, files or folders) for an AdapNet++
      expert of another modality are an error: a depth expert given only `--modality1` would
      predict on the colour image without a word. Both given to an AdapNet++ is a warning that
      names the images it does not read.
    - A list's lines are not named by modality, so they only get warnings: an AdapNet++ expert
      of modality k > 1 reads the single image of `image [label]` lines as its input, and an SSMA
      list without a label column whose last image is single-channel (as labels are) may be a
      unimodal list of `image label` lines.
    - A 16-bit image (raw depth) is read as the converter reads it, keeping its high byte:
      a warning, as `ssma-convert` gives.

    Args:
        samples: as `collect_samples` gives them.
        fusion, modalities: the network's (SSMA over N, or AdapNet++ with 1).
        input_modality: the modality an AdapNet++ network reads ("modality1", "modality2", ...).
        listed: the samples come from a list file.
        source: where `input_modality` comes from, for the messages; None where nothing says it
            (a `.keras` file alone: modality 1 is assumed), which makes the error a warning.
        num_classes: the network's classes: a grey image of up to this many values (or 64) may
            be a label (`ssma_tf.data.convert.looks_like_label`).

    Returns:
        The warnings (without "warning:").

    Raises:
        PredictionError: an image named as another modality than the network's.
    """
    from ssma_tf.data.convert import looks_like_label, sixteen_bit_warning  # read the header only

    if not samples:
        return []
    first = samples[0]
    warnings = _sixteen_bit_warnings(samples, sixteen_bit_warning)
    if fusion and not listed:
        # Before the model runs (before: at the first sample's turn, the advice a list file where
        # --modality1 was missing; helper 369). More than two modalities come in a list.
        paths = [*first.modalities[:2], None, None][:2]
        missing = [f"--modality{i}" for i, path in enumerate(paths, start=1) if path is None]
        if missing:
            raise PredictionError(f"this network fuses two modalities, but {missing[0]} is not given: give it (an "
                                  "image or a folder)")
    if fusion:
        if listed and first.label is None and looks_like_label(first.modalities[-1], num_classes):
            warnings.append(
                f"{first.modalities[-1]} (the last image of the first sample) is single-channel, as labels "
                f"are, but this SSMA reads it as modality {modalities}: the list's lines are taken as "
                f"{modalities} images without a label. If the last column is a label, the lines hold "
                f"{modalities - 1} image(s): predict with a network of "
                f"{'one modality (AdapNet++)' if modalities == 2 else f'{modalities - 1} modalities'}")
        return warnings
    wanted = int(input_modality.removeprefix("modality"))
    given = [index for index, path in enumerate(first.modalities, start=1) if path is not None]
    if len(given) > 1 and not listed and wanted not in given:
        # Modality 3 or on, which no flag gives (before: both flags' images "not used", then an
        # error asking for a label; helper 294).
        raise PredictionError(f"the network reads {input_modality} ({source or 'assumed'}), which --modality1 and "
                              f"--modality2 do not give: pass the images in a --list of 'modality1 ... "
                              f"modality{wanted}' lines")
    if len(given) > 1 and not listed:
        # Before: the images of the other flag were passed over without a word.
        unused = ", ".join(f"--modality{index}" for index in given if index != wanted)
        reads = f"{input_modality} ({source})" if source else f"{input_modality} (assumed; --input_modality says)"
        return warnings + [f"AdapNet++ reads one modality, {reads}: the images of {unused} are not used"]
    if listed and len(given) > 1 and first.label is None:
        names = " ".join(f"modality{index}" for index in given)
        warnings.append(f"{first.modalities[-1]} (the last image of the first sample) cannot be a label (a colour "
                        f"image, or grey of more values than labels have): the list's {len(given)}-column lines are "
                        f"read as {names} without a label, and the network reads {input_modality} "
                        f"({source or 'assumed'})")
    if len(given) != 1 or given[0] == wanted:
        return warnings
    if listed:
        return warnings + [f"the network reads {input_modality} ({source}); the list gives one image per line, "
                           "and it reads that image as its input"]
    if source is None:
        return warnings + [f"only --modality{given[0]} is given and nothing says which modality the network "
                           f"was trained on ({input_modality} assumed): it reads the image given; pass "
                           "--input_modality to say"]
    # An export's metadata is not overridden by --input_modality (it is refused there): the advice
    # is to export again (helper 149: the flag it advised was then refused).
    other = (f"export again with --input_modality modality{given[0]}" if source == EXPORT_METADATA else
             f"pass --input_modality modality{given[0]}")
    # The flags take modality 1 and 2: a later one comes in a list (before: "pass the images as
    # --modality3", a flag that does not exist; helper 294).
    as_wanted = (f"as --modality{wanted}" if wanted <= 2 else
                 f"in a --list of 'modality1 ... modality{wanted}' lines")
    raise PredictionError(
        f"the network reads {input_modality} ({source}), but only --modality{given[0]} is given: pass the "
        f"images {as_wanted} (or {other} if they are what the network was trained on)"
    )


def _stem(path: str) -> str:
    name = os.path.basename(path)
    return name[: -len(os.path.splitext(name)[1]) or None]


# What a label error of `ssma-predict` advises for images without labels (the converter's
# --unlabeled is no flag of it; helper 369).
PREDICT_UNLABELED = "a list line without a label column predicts its images without one"


def check_readable(samples: List[Sample]) -> List[Sample]:
    """Returns `samples` once every image and label of them is found whole (PNG chunks and
    checksums, without decoding; other formats decoded), of a mode the pictures read, and a 16-bit
    label of ids 0..255, before the model runs: a damaged file found at its turn left the pictures
    of the samples before it written.

    Raises:
        PredictionError: naming the sample's list line, the file and the cause.
    """
    from PIL import Image, UnidentifiedImageError

    turned: List[Tuple[str, str, int]] = []
    for sample in samples:
        named = [*((f"modality{i}", path) for i, path in enumerate(sample.modalities, start=1)),
                 ("label", sample.label)]
        for what, path in named:
            if path is None:
                continue
            try:
                with Image.open(path) as image:
                    image.verify()
            except UnidentifiedImageError:
                raise PredictionError(f"{sample.where()}: cannot read {what} {path}: not an image format Pillow "
                                      "knows (PNG, JPEG, TIFF, ...)") from None
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as error:
                raise PredictionError(f"{sample.where()}: cannot read {what} {path}: {error}") from None
        turned.extend(_check_headers(sample, named))
    _warn_of_turned_images(turned)
    return samples


def _check_headers(sample: Sample, named: List[Tuple[str, Optional[str]]]) -> List[Tuple[str, str, int]]:
    """What the headers of a sample's files tell, checked before the model runs as the pictures
    check it at the sample's turn (which left the pictures of the samples before it written):
    the images and label of one size (the images as read, EXIF orientation applied), and a label
    stored losslessly in one channel. Returns the images their EXIF orientation turns where the
    sample's other files are not turned alike, as (sample, path, orientation)."""
    from PIL import Image

    from ssma_tf.data.convert import (EXIF_TURNS, ImageFileError, check_image_mode, check_label_image,
                                      exif_orientation, load_label)

    sizes, orientations = [], []
    for what, path in named:
        if path is None:
            continue
        with Image.open(path) as image:
            if image.format != "PNG":
                # Pillow's verify checks PNG data only: a JPEG or TIFF cut short was found at its
                # turn, the pictures before it written (helper 369).
                try:
                    image.load()
                except (OSError, ValueError, SyntaxError) as error:
                    raise PredictionError(f"{sample.where()}: cannot read {what} {path}: {error}") from None
            if what == "label":
                try:
                    if image.mode.startswith("I"):  # 16 or 32 bits: ids above 255 are found by reading them
                        load_label(path, f"label of {sample.where()}", PREDICT_UNLABELED)
                    else:
                        check_label_image(image, path, f"label of {sample.where()}", PREDICT_UNLABELED)
                except ImageFileError as error:
                    raise PredictionError(str(error)) from None
                sizes.append((path, (image.height, image.width), ""))  # labels are read as stored
                orientations.append((path, 1))
            else:
                try:
                    check_image_mode(image, path, f"{what} of {sample.where()}")
                except ImageFileError as error:
                    raise PredictionError(str(error)) from None
                orientation = exif_orientation(image)
                turned = (f" (stored {image.height}x{image.width}, {EXIF_TURNS[orientation]} by its EXIF "
                          "orientation as images are read)" if orientation in (5, 6, 7, 8) else "")
                oriented = (image.width, image.height) if turned else (image.height, image.width)
                sizes.append((path, oriented, turned))
                orientations.append((path, orientation))
    if len({size for _, size, _ in sizes}) > 1:
        # The EXIF turn said where it changed a size (helper 229: "rect.jpg is 72x40" of a file
        # stored 40x72, without a word of why).
        shown = ", ".join(f"{path} is {height}x{width}{turned}" for path, (height, width), turned in sizes)
        raise PredictionError(f"the images of {sample.where()} differ in size: {shown}")
    if len({orientation for _, orientation in orientations}) > 1:
        return [(sample.where(), path, orientation) for path, orientation in orientations if orientation != 1]
    return []


def _warn_of_turned_images(turned: List[Tuple[str, str, int]]) -> None:
    """One warning for the images turned by their EXIF orientation beside files of their sample
    that are not: the fused modalities no longer line up, also when the size stays (before:
    predicted without a word, where ssma-convert warns of the same files; helper 229)."""
    if not turned:
        return
    from ssma_tf.config import ConfigWarning
    from ssma_tf.data.convert import EXIF_TURNS

    shown = ", ".join(f"{where}: {path} ({EXIF_TURNS[orientation]})" for where, path, orientation in turned[:3])
    more = f" and {len(turned) - 3} more" if len(turned) > 3 else ""
    warnings.warn(f"{len(turned)} image(s) are turned by their EXIF orientation as they are read, but the other "
                  f"files of their sample are not ({shown}{more}): if they were taken as stored, their pixels do not "
                  "line up. If they do not, save the images turned (PIL's ImageOps.exif_transpose)", ConfigWarning,
                  stacklevel=3)


def _named(entries: Sequence[Tuple]) -> List[Sample]:
    """Names samples by their first image relative to the folder all first images share.

    Each entry is (modality1, modality2, label), optionally followed by further and source.
    """
    firsts = [e[0] for e in entries]
    root = os.path.commonpath([os.path.dirname(p) for p in firsts])
    samples, seen = [], {}
    for modality1, modality2, label, *rest in entries:
        name = os.path.splitext(os.path.relpath(modality1, root))[0].replace(os.sep, "/")
        if name in seen:
            first, where = seen[name]
            here = rest[1] if len(rest) > 1 else None
            if first == modality1:
                raise PredictionError(f"{first} is listed twice"
                                      + (f" ({where} and {here})" if where and here else "")
                                      + "; its outputs would overwrite each other")
            # Before: "a.png is listed twice" for a.png and a.jpg, each listed once.
            raise PredictionError(f"{first}{f' ({where})' if where else ''} and {modality1}"
                                  f"{f' ({here})' if here else ''} give the same output name {name!r}; rename one")
        seen[name] = (modality1, rest[1] if len(rest) > 1 else None)
        further, source = (tuple(rest[0]) if rest else ()), (rest[1] if len(rest) > 1 else None)
        samples.append(Sample(name, modality1, modality2, label, further, source))
    return samples
