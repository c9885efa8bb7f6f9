"""The TFRecord schema of SSMA / AdapNet++ samples: encode and decode one `tf.train.Example`.

The original conversion tools wrote one Example per sample with the features `height`, `width`
(int64), `modality1`, `label` and, for fusion data, `modality2` (bytes). Data for SSMA over N > 2
modalities (Section 4.2) adds `modality3`, ..., `modalityN` in the same form. Images are raw HxWx3
uint8 bytes in BGR order (as OpenCV reads them) and the label is raw HxW uint8 class ids.

This module also writes a compressed variant with the same keys: each bytes feature holds a PNG
file instead of raw pixels (images stored as ordinary RGB or grayscale PNGs so that they can be
looked at). Nothing in the record says which variant it is; the reader tells them apart per
feature by the PNG signature and the byte count, so raw and PNG records (even mixed in one
dataset) decode to the same BGR arrays.
"""

from __future__ import annotations

import io
from typing import Dict, Mapping, Optional, Sequence, Union

import numpy as np
import tensorflow as tf
from PIL import Image

from ssma_tf.constants import MAX_MODALITIES

HEIGHT = "height"
WIDTH = "width"
MODALITY1 = "modality1"
MODALITY2 = "modality2"
LABEL = "label"
# A scene classification record's class (`ssma_tf.data.scene`) in place of the label image.
CLASS_ID = "class_id"

ENCODINGS = ("raw", "png")


def modality_key(index: int) -> str:
    """The feature name of modality `index` (1-based): `modality1`, `modality2`, ..."""
    return f"modality{index}"


def is_modality_key(name: object) -> bool:
    """Whether `name` is `modality1` .. `modality<MAX_MODALITIES>`."""
    return isinstance(name, str) and any(name == modality_key(i) for i in range(1, MAX_MODALITIES + 1))


def _check_count(modalities) -> None:
    if isinstance(modalities, bool) or not isinstance(modalities, int) or not 1 <= modalities <= MAX_MODALITIES:
        raise ValueError(f"modalities must be an integer in 1..{MAX_MODALITIES}, got {modalities!r}")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_arrays(images: Sequence[np.ndarray], label: Optional[np.ndarray]) -> None:
    """Raises ValueError unless the arrays have the shapes and dtype of one sample."""
    arrays = {modality_key(i): image for i, image in enumerate(images, start=1)}
    if label is not None:
        arrays[LABEL] = label
    for name, array in arrays.items():
        if array.dtype != np.uint8:
            raise ValueError(f"{name} must be uint8, got {array.dtype}")
    for name in arrays:
        if name != LABEL and (arrays[name].ndim != 3 or arrays[name].shape[2] != 3):
            raise ValueError(f"{name} must be HxWx3 (BGR), got shape {arrays[name].shape}")
    if label is not None and label.ndim != 2:
        raise ValueError(f"label must be HxW class ids, got shape {label.shape}")
    # Every image has the size of the label, or of modality1 in a record without a label.
    reference, size = ("the label", label.shape) if label is not None else ("modality1", images[0].shape[:2])
    for name, array in arrays.items():
        if array.shape[:2] != size:
            raise ValueError(
                f"{name} is {array.shape[0]}x{array.shape[1]} but {reference} is {size[0]}x{size[1]}"
            )


def _png_bytes(array: np.ndarray, bgr: bool) -> bytes:
    """Encodes an HxW or HxWx3 (BGR) uint8 array as PNG bytes."""
    if bgr:
        rgb = array[..., ::-1]
        # A depth-like map converted to 3 equal channels compresses far better as one gray
        # channel; decode_png(channels=3) replicates it back into the same 3 channels.
        if np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2]):
            image = Image.fromarray(np.ascontiguousarray(rgb[..., 0]))
        else:
            image = Image.fromarray(np.ascontiguousarray(rgb))
    else:
        image = Image.fromarray(np.ascontiguousarray(array))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def encode_example(
    modality1: np.ndarray,
    label: Optional[np.ndarray],
    modality2: Optional[np.ndarray] = None,
    encoding: str = "raw",
    extra_modalities: Sequence[np.ndarray] = (),
) -> bytes:
    """Serializes one sample as a `tf.train.Example` in the original schema.

    Args:
        modality1: HxWx3 uint8 image in BGR order.
        label: HxW uint8 class ids; None writes a record without a `label` feature, for images
            used without labels (`unlabeled_data`, `target_data`).
        modality2: Optional HxWx3 uint8 BGR image (fusion data).
        encoding: "raw" for the original raw bytes, "png" for PNG-compressed features.
        extra_modalities: modality 3, 4, ... (HxWx3 uint8 BGR each) for fusion of more than two
            modalities; they need `modality2`.

    Returns:
        The serialized Example.

    Raises:
        ValueError: On an unknown encoding or arrays of the wrong shape, dtype or size.
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    if extra_modalities and modality2 is None:
        raise ValueError("modality 3 and on need modality2")
    images = [modality1] + ([] if modality2 is None else [modality2]) + list(extra_modalities)
    _check_count(len(images))
    _check_arrays(images, label)

    def to_bytes(array: np.ndarray, bgr: bool) -> bytes:
        if encoding == "png":
            png = _png_bytes(array, bgr)
            # A PNG exactly as long as the raw pixels would read back as raw pixels (`_is_png`
            # tells them apart by length): such a feature is stored raw (before: decoded as the
            # PNG file's bytes, silently). Readers take raw and PNG features mixed.
            if len(png) != array.size:
                return png
        return np.ascontiguousarray(array).tobytes()

    def bytes_feature(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def int_feature(value: int) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    height, width = images[0].shape[:2]
    feature = {
        HEIGHT: int_feature(int(height)),
        WIDTH: int_feature(int(width)),
    }
    for index, image in enumerate(images, start=1):
        feature[modality_key(index)] = bytes_feature(to_bytes(image, bgr=True))
    if label is not None:
        feature[LABEL] = bytes_feature(to_bytes(label, bgr=False))
    # The features in key order: the protobuf runtime otherwise writes its map in a hash order that
    # changes from process to process, and one list converted twice gave other bytes (helper 190).
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString(deterministic=True)


def feature_spec(modalities: int) -> Dict[str, tf.io.FixedLenFeature]:
    """Returns the `tf.io.parse_single_example` spec for records of 1 (unimodal), 2 or N images."""
    _check_count(modalities)
    spec = {
        HEIGHT: tf.io.FixedLenFeature([], tf.int64),
        WIDTH: tf.io.FixedLenFeature([], tf.int64),
        MODALITY1: tf.io.FixedLenFeature([], tf.string),
        LABEL: tf.io.FixedLenFeature([], tf.string),
    }
    for index in range(2, modalities + 1):
        spec[modality_key(index)] = tf.io.FixedLenFeature([], tf.string)
    return spec


def count_modalities(features) -> int:
    """How many images (`modality1`, `modality2`, ... without a gap) a record's features hold."""
    count = 0
    while modality_key(count + 1) in features:
        count += 1
    return count


def _is_png(data: tf.Tensor, raw_size: tf.Tensor) -> tf.Tensor:
    """True when a bytes feature holds a PNG file rather than raw pixels."""
    # The byte count guards against raw pixels that happen to begin with the PNG signature.
    return tf.logical_and(
        tf.equal(tf.strings.substr(data, 0, len(PNG_SIGNATURE)), PNG_SIGNATURE),
        tf.not_equal(tf.strings.length(data), raw_size),
    )


def decode_image(data: tf.Tensor, height: tf.Tensor, width: tf.Tensor, channels: int) -> tf.Tensor:
    """Decodes one raw or PNG bytes feature into a uint8 tensor.

    Args:
        data: Scalar string tensor, raw pixels or a PNG file.
        height: Scalar int tensor, the record's `height`.
        width: Scalar int tensor, the record's `width`.
        channels: 3 for a BGR image (returns HxWx3), 1 for a label (returns HxW).

    Returns:
        A uint8 tensor; images come out in BGR order whatever the encoding.
    """
    height = tf.cast(height, tf.int32)
    width = tf.cast(width, tf.int32)
    shape = tf.stack([height, width, channels])

    def from_png() -> tf.Tensor:
        image = tf.io.decode_png(data, channels=channels, dtype=tf.uint8)
        if channels == 3:
            image = tf.reverse(image, axis=[-1])  # PNG holds RGB, the schema is BGR.
        # A PNG of another size than the record's height/width fails here. Before, only one of another
        # area did: a transposed size (height and width swapped by a writer) reshaped the pixels into a
        # scrambled image and label without a word (helper 165).
        size = tf.shape(image)[:2]
        check = tf.debugging.assert_equal(
            size, shape[:2],
            message="a PNG image's size (height, width) differs from the record's height and width")
        with tf.control_dependencies([check]):
            return tf.reshape(image, shape)

    def from_raw() -> tf.Tensor:
        return tf.reshape(tf.io.decode_raw(data, tf.uint8), shape)

    image = tf.cond(_is_png(data, height * width * channels), from_png, from_raw)
    image = tf.ensure_shape(image, [None, None, channels])
    return image[..., 0] if channels == 1 else image


def decode_parsed(features: Mapping[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    """Decodes the bytes features of an already parsed record (see `feature_spec`)."""
    height, width = features[HEIGHT], features[WIDTH]
    decoded = {LABEL: decode_image(features[LABEL], height, width, 1)} if LABEL in features else {}
    for index in range(1, count_modalities(features) + 1):
        name = modality_key(index)
        decoded[name] = decode_image(features[name], height, width, 3)
    return decoded


def decode_example(
    serialized: Union[bytes, tf.Tensor], modalities: Optional[int] = None
) -> Dict[str, tf.Tensor]:
    """Parses and decodes one serialized Example, raw or PNG.

    Args:
        serialized: A scalar string tensor or Python bytes.
        modalities: how many images to decode (1, 2, ... N). When None the record decides
            (eager only): every `modalityK` it has is decoded, and a record without a label
            (`write_examples` or `ssma-convert --unlabeled`) gives no `label`.

    Returns:
        A dict of uint8 tensors: `modality1` (HxWx3 BGR), `label` (HxW) and, for fusion
        records, `modality2` ... (HxWx3 BGR).

    Raises:
        ValueError: When `modalities` is None inside a `tf.function`, where the record cannot
            decide the structure of the result.
    """
    if modalities is None:
        if not tf.executing_eagerly():
            raise ValueError("decode_example needs modalities=1, 2, ... inside a tf.function")
        data = serialized.numpy() if isinstance(serialized, tf.Tensor) else serialized
        present = tf.train.Example.FromString(data).features.feature
        spec = feature_spec(max(count_modalities(present), 1))
        if LABEL not in present:
            del spec[LABEL]
        features = tf.io.parse_single_example(serialized, spec)
    else:
        features = tf.io.parse_single_example(serialized, feature_spec(modalities))
    return decode_parsed(features)
