"""Tests of DepthMix / ClassMix (`ssma_tf.semi_supervised.mixing`), the photometric noise, the mean
teacher and the semi-supervised trainer.

Masks are checked against hand-made depth maps coloured with the synthetic data's jet coding; the
trainer runs the tiny stand-in model (`tests.training_helpers`) on tiny synthetic RGB-D records.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import re
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from ssma_tf import training
from ssma_tf.config import ConfigError, ConfigWarning, config_from_dict
from ssma_tf.config.semi_supervised import SemiSupervisedConfig
from ssma_tf.data import encode_example
from ssma_tf.data.synthetic import depth_to_jet, generate_sample
from ssma_tf.data.unlabeled import UnlabeledDataError, decode_record, read_index_file, write_index_file
from ssma_tf.errors import UserInputError
from ssma_tf.keras_compat import walk_layers
from ssma_tf.losses import decayed_kernels, weighted_cross_entropy
from ssma_tf.mean_teacher import MeanTeacher, ema_decay_at
from ssma_tf.photometric import gaussian_blur, jitter_rgb, mix_colour_jitter
from ssma_tf.semi_supervised import trainer as semi_supervised
from ssma_tf.semi_supervised.mixing import (
    classmix_mask,
    confidence_weight,
    decode_nearness,
    depthmix_mask,
    mix,
)
from tests.training_helpers import (
    TinySegmenter, build_tiny_model, one_eager_step, recording_model_builder, run_on_two_logical_cpus,
    short_fusion_record, write_records,
)

H, W = 32, 64


def _bgr(depth_m, valid=None):
    """A depth map in metres as the pipeline's modality 2: jet colours, BGR float 0..255."""
    return depth_to_jet(np.asarray(depth_m, np.float64), valid)[..., ::-1].astype(np.float32)


# --- DepthMix mask --------------------------------------------------------------------------


def test_decoding_the_jet_colouring_gives_nearness_ordered_like_depth():
    depth = np.linspace(2.5, 50.0, H * W).reshape(H, W)
    near, valid, distance = decode_nearness(_bgr(depth)[None])
    near = near.numpy()[0]
    assert valid.numpy().all() and float(tf.reduce_max(distance)) < 1.0
    flat = near.ravel()
    assert np.all(np.diff(flat) <= 1e-6) and flat[0] > 0.9 and flat[-1] < 0.1  # nearer: larger


def test_depthmix_pastes_the_nearer_surface_and_never_missing_depth():
    depth_i = np.full((H, W), 20.0)
    depth_i[:, : W // 2] = 5.0          # i is nearer on the left half, farther on the right
    valid_i = np.ones((H, W), bool)
    valid_i[:4, :4] = False             # a hole in i's depth (black) on its near side
    depth_j = np.full((H, W), 10.0)
    near_i, ok_i, _ = decode_nearness(_bgr(depth_i, valid_i)[None])
    near_j, _, _ = decode_nearness(_bgr(depth_j)[None])
    mask = depthmix_mask(near_i, ok_i, near_j, margin=0.0).numpy()[0]
    expected = (depth_i < depth_j) & valid_i
    np.testing.assert_array_equal(mask.astype(bool), expected)
    assert not mask[:4, :4].any()  # missing depth is never pasted


def test_missing_depth_is_never_pasted_even_where_j_is_as_far_or_missing():
    # Missing depth decodes to nearness 0, the far end: only the validity keeps it from winning
    # where j is missing too (0 >= 0) or farther than the margin's reach (0 >= near_j - 0.03).
    depth_i = np.full((H, W), 5.0)
    valid_i = np.zeros((H, W), bool)
    valid_i[:, W // 2:] = True                 # i has depth on its right half only
    depth_j = np.full((H, W), 10.0)
    depth_j[:, : W // 4] = 1000.0              # beyond the colour map's far end: nearness 0
    valid_j = np.ones((H, W), bool)
    valid_j[:, W // 4: W // 2] = False         # j is missing there
    near_i, ok_i, _ = decode_nearness(_bgr(depth_i, valid_i)[None])
    near_j, _, _ = decode_nearness(_bgr(depth_j, valid_j)[None])
    assert float(tf.reduce_max(near_j[0, :, : W // 2])) < 0.03
    for margin in (0.0, 0.03):
        mask = depthmix_mask(near_i, ok_i, near_j, margin=margin).numpy()[0]
        np.testing.assert_array_equal(mask.astype(bool), valid_i)


def test_depthmix_margin_lets_i_win_slightly_farther_surfaces():
    # 10 m against 10.5 m: nearness differs by log(10.5/10)/log(30) ≈ 0.014 < 0.03.
    near_i, ok_i, _ = decode_nearness(_bgr(np.full((H, W), 10.5))[None])
    near_j, _, _ = decode_nearness(_bgr(np.full((H, W), 10.0))[None])
    assert not depthmix_mask(near_i, ok_i, near_j, margin=0.0).numpy().any()
    assert depthmix_mask(near_i, ok_i, near_j, margin=0.03).numpy().all()
    # 20 m against 10 m is far beyond the margin.
    far_i, ok_far, _ = decode_nearness(_bgr(np.full((H, W), 20.0))[None])
    assert not depthmix_mask(far_i, ok_far, near_j, margin=0.03).numpy().any()


def test_one_mask_mixes_every_modality_and_the_labels_alike():
    rng = np.random.default_rng(0)
    depth = rng.uniform(3, 40, size=(2, H, W))
    m2 = np.stack([_bgr(d) for d in depth])
    m1 = rng.uniform(0, 255, size=(2, H, W, 3)).astype(np.float32)
    probs = tf.one_hot(rng.integers(0, 5, size=(2, H, W)), 5)
    near, valid, _ = decode_nearness(m2)
    mask = depthmix_mask(near, valid, tf.roll(near, 1, 0), 0.03)
    mixed1 = mix(mask, m1, tf.roll(m1, 1, 0)).numpy()
    mixed2 = mix(mask, m2, tf.roll(m2, 1, 0)).numpy()
    mixed_labels = tf.argmax(mix(mask, probs, tf.roll(probs, 1, 0)), -1).numpy()
    labels = tf.argmax(probs, -1).numpy()
    m = mask.numpy().astype(bool)
    for k in range(2):
        j = (k - 1) % 2
        for mixed, source in ((mixed1, m1), (mixed2, m2), (mixed_labels, labels)):
            np.testing.assert_array_equal(mixed[k][m[k]], source[k][m[k]])
            np.testing.assert_array_equal(mixed[k][~m[k]], source[j][~m[k]])
    # The mixed depth is the nearest-surface composite: i's nearness where pasted, j's elsewhere,
    # and never farther than j's by more than the margin.
    mixed_near = decode_nearness(mixed2)[0].numpy()
    near_j = tf.roll(near, 1, 0).numpy()
    np.testing.assert_allclose(mixed_near, np.where(m, near.numpy(), near_j))
    assert np.all(mixed_near >= near_j - 0.03 - 1e-6)


def test_a_modality2_that_is_not_a_depth_colouring_cannot_be_decoded():
    rng = np.random.default_rng(1)
    photo = rng.uniform(0, 255, size=(1, H, W, 3)).astype(np.float32)
    _, valid, distance = decode_nearness(photo)
    off = float(tf.reduce_mean(tf.cast(tf.boolean_mask(distance, valid) > 24.0, tf.float32)))
    assert off > 0.5


def test_classmix_pastes_half_the_classes_present():
    classes = np.full((3, H, W), 2, np.int32)
    classes[:, :, 16:32], classes[:, :, 32:48], classes[:, :, 48:] = 1, 3, 4  # 4 classes present
    classes[:, :4, :4] = 0  # void is never chosen
    classes[2, :, 40:] = 5  # a fifth class: ⌊5/2⌋ = 2 are pasted
    mask = classmix_mask(tf.constant(classes), 6, tf.constant([1, 2])).numpy()
    for k in range(3):
        pasted = {int(c) for c in np.unique(classes[k][mask[k] > 0])}
        kept = {int(c) for c in np.unique(classes[k][mask[k] == 0])}
        assert len(pasted) == 2 and not pasted & kept and 0 not in pasted  # whole classes, half


def test_confidence_weight_is_the_share_of_confident_pixels():
    probs = np.zeros((1, 2, 2, 3), np.float32)
    probs[0, 0, 0] = [0.97, 0.02, 0.01]
    probs[0, 0, 1] = [0.968, 0.032, 0.0]
    probs[0, 1, 0] = [0.5, 0.5, 0.0]
    probs[0, 1, 1] = [0.2, 0.35, 0.45]
    assert float(confidence_weight(probs, 0.968)) == pytest.approx(0.5)
    assert float(confidence_weight(probs, 0.48)) == pytest.approx(0.75)


def test_mix_jitter_follows_kornia_04_in_the_drawn_order():
    """Released DepthMix jitter: additive brightness, contrast without a pull to the mean."""
    grey = np.full((1, 2, 2, 3), 0.5, np.float32)
    one = lambda v: tf.constant([v], tf.float32)  # noqa: E731

    def run(image, brightness=0.0, contrast=1.0, saturation=1.0, hue=0.0, order=(0, 1, 2, 3)):
        return jitter_rgb(image, one(brightness), one(contrast), one(saturation), one(hue),
                          tf.constant([order]), style="kornia").numpy()[0, 0, 0]

    np.testing.assert_allclose(run(grey, 0.1, 1.2), [0.72] * 3, atol=1e-6)  # (0.5 + 0.1) · 1.2
    np.testing.assert_allclose(run(grey, 0.1, 1.2, order=(1, 0, 2, 3)), [0.7] * 3, atol=1e-6)
    # One order for the whole batch (computing only the named adjustment) gives the same.
    shared = jitter_rgb(grey, one(0.1), one(1.2), one(1.0), one(0.0), tf.constant((1, 0, 2, 3)),
                        style="kornia").numpy()[0, 0, 0]
    np.testing.assert_allclose(shared, [0.7] * 3, atol=1e-6)
    np.testing.assert_allclose(run(grey, 0.7), [1.0] * 3)  # clipped to [0, 1]
    red = np.tile(np.array([0.8, 0.4, 0.4], np.float32), (1, 2, 2, 1))
    np.testing.assert_allclose(run(red, saturation=0.5), [0.8, 0.6, 0.6], atol=1e-5)
    np.testing.assert_allclose(run(red, hue=1 / 3), [0.4, 0.8, 0.4], atol=1e-5)
    np.testing.assert_allclose(run(red, hue=-2 / 3), [0.4, 0.8, 0.4], atol=1e-5)


def test_adaptation_jitter_follows_torchvision_in_each_images_order():
    """da-sac's jitter: multiplicative brightness, contrast and saturation pulled to grey."""
    image = np.zeros((2, 1, 2, 3), np.float32)
    image[:, 0, 0] = [0.8, 0.4, 0.4]
    image[:, 0, 1] = [0.2, 0.2, 0.2]
    pair = lambda v: tf.constant([v, v], tf.float32)  # noqa: E731
    luma = np.array([0.299, 0.587, 0.114], np.float32)  # TensorFlow's grey: 0.2989 for red

    def run(brightness=1.0, contrast=1.0, saturation=1.0, hue=0.0, orders=((0, 1, 2, 3),) * 2):
        return jitter_rgb(image, pair(brightness), pair(contrast), pair(saturation), pair(hue),
                          tf.constant(orders), style="torchvision").numpy()

    np.testing.assert_allclose(run(brightness=1.2)[0], np.clip(image[0] * 1.2, 0, 1), atol=1e-6)
    mean = (image[0] @ luma).mean()
    np.testing.assert_allclose(run(contrast=0.5)[0], mean + 0.5 * (image[0] - mean), atol=2e-4)
    grey = (image[0] @ luma)[..., None]
    np.testing.assert_allclose(run(saturation=0.5)[0], grey + 0.5 * (image[0] - grey), atol=2e-4)
    # Each image its own order: brightness then contrast, or contrast then brightness.
    both = run(brightness=1.5, contrast=0.5, orders=((0, 1, 2, 3), (1, 0, 2, 3)))
    first = np.clip(image[0] * 1.5, 0, 1)
    first_mean = (first @ luma).mean()
    np.testing.assert_allclose(both[0], first_mean + 0.5 * (first - first_mean), atol=2e-4)
    np.testing.assert_allclose(both[1], np.clip((mean + 0.5 * (image[0] - mean)) * 1.5, 0, 1),
                               atol=2e-4)


def test_mix_jitter_decides_once_per_batch():
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, size=(4, H, W, 3)).astype(np.float32)
    np.testing.assert_array_equal(mix_colour_jitter(images, 0.25, 0.0, tf.constant([0, 1])), images)
    outcomes = set()
    for seed in range(12):
        out = mix_colour_jitter(images, 0.25, 0.5, tf.constant([seed, 3])).numpy()
        changed = [not np.allclose(o, i) for o, i in zip(out, images)]
        assert len(set(changed)) == 1, changed  # the whole batch or none of it
        outcomes.add(changed[0])
        if changed[0]:  # each image its own factors
            assert not np.allclose(out[0] - images[0], out[1] - images[1])
    assert outcomes == {True, False}


def test_blur_per_batch_blurs_all_or_none_with_one_sigma():
    rng = np.random.default_rng(1)
    noise = np.repeat(rng.uniform(0, 255, size=(1, H, W, 3)).astype(np.float32), 3, axis=0)
    seen = set()
    for seed in range(10):
        out = gaussian_blur(noise, (0.3, 1.2), 0.5, tf.constant([seed, 5]), per_batch=True).numpy()
        np.testing.assert_allclose(out[1], out[0], atol=1e-4)  # same image, same sigma
        np.testing.assert_allclose(out[2], out[0], atol=1e-4)
        seen.add(bool(np.allclose(out[0], noise[0])))
    assert seen == {True, False}


def test_the_mixed_batchs_blur_mirrors_the_border_as_the_released_code_does():
    """kornia's GaussianBlur2d, which the released DepthMix code calls, pads by mirroring without
    repeating the edge pixel ("reflect"); the port repeated it, 62 grey levels apart at the edge
    pixel of a one-column line at sigma 1 (helper 185)."""
    line = np.zeros((1, 32, 32, 1), np.float32)
    line[:, :, 0] = 255.0
    sigma = 1.0
    radius = int(np.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    row = np.pad(line[0, 0, :, 0], radius, mode="reflect")  # NumPy's reflect: the edge once
    expected = np.convolve(row, taps, mode="valid")
    out = gaussian_blur(line, (sigma, sigma), 1.0, tf.constant([0, 1]), per_batch=True).numpy()
    np.testing.assert_allclose(out[0, 16, :, 0], expected, atol=1e-3)
    assert out[0, 16, 0, 0] == pytest.approx(101.8, abs=0.1)


def test_blur_keeps_a_flat_image_and_leaves_unselected_images_alone():
    flat = np.full((2, H, W, 3), 100.0, np.float32)
    np.testing.assert_allclose(gaussian_blur(flat, (0.5, 1.0), 1.0, tf.constant([0, 1])), flat, atol=1e-3)
    rng = np.random.default_rng(0)
    noise = rng.uniform(0, 255, size=(2, H, W, 3)).astype(np.float32)
    np.testing.assert_allclose(gaussian_blur(noise, (0.5, 1.0), 0.0, tf.constant([0, 1])), noise)
    assert float(tf.math.reduce_std(gaussian_blur(noise, (1.0, 1.0), 1.0, tf.constant([0, 1])))) < noise.std() / 2


# --- Mean teacher -------------------------------------------------------------------------


def _pair():
    def make():
        model = keras.Sequential([keras.layers.Dense(3), keras.layers.BatchNormalization()])
        model.build((None, 2))
        return model
    return make(), make()


def test_ema_schedule_and_update_formula():
    assert ema_decay_at(1, 0.99) == 0.5 and ema_decay_at(3, 0.99) == 0.75
    assert ema_decay_at(1000, 0.99) == 0.99
    student, teacher = _pair()
    mt = MeanTeacher(student, teacher, decay=0.99, include_statistics=False)
    # As released (the training loop's step starts at 1): the first update averages half and half.
    assert float(mt.current_decay()) == 0.5
    for decay in (0.5, 2.0 / 3.0):
        before_t = [t.numpy() for t in teacher.weights]
        for s in student.weights:
            s.assign(s.numpy() + 1.0)
        assert float(mt.update()) == pytest.approx(decay)
        for t, s, b in zip(teacher.weights, student.weights, before_t):
            if any(t is x for x in teacher.trainable_weights):
                np.testing.assert_allclose(t.numpy(), decay * b + (1 - decay) * s.numpy(), rtol=1e-5, atol=1e-7)
            else:
                np.testing.assert_array_equal(t.numpy(), b)  # statistics left alone
    assert int(mt.updates.numpy()) == 2


def test_ema_update_in_a_graph_matches_the_formula():
    # Compiled, the weights are updated one after the other (control dependencies); the
    # values must be those of the formula all the same.
    student, teacher = _pair()
    mt = MeanTeacher(student, teacher, decay=0.99, include_statistics=True)
    for s in student.weights:
        s.assign(s.numpy() + 2.0)
    before_t = [t.numpy() for t in teacher.weights]
    student_values = [s.numpy() for s in student.weights]
    tf.function(mt.update)()
    for t, b, s in zip(teacher.weights, before_t, student_values):
        np.testing.assert_allclose(t.numpy(), 0.5 * b + 0.5 * s, rtol=1e-5, atol=1e-7)
    assert int(mt.updates.numpy()) == 1


def test_ema_with_statistics_and_every_k_steps():
    student, teacher = _pair()
    mt = MeanTeacher(student, teacher, decay=0.9, every=2, include_statistics=True, warmup=False)
    moving_mean = [i for i, w in enumerate(student.weights) if "moving_mean" in w.path][0]
    start = teacher.weights[moving_mean].numpy()
    student.weights[moving_mean].assign(np.full(3, 10.0, np.float32))
    assert not bool(mt.maybe_update())  # step 1 of 2: no update
    np.testing.assert_array_equal(teacher.weights[moving_mean].numpy(), start)
    assert bool(mt.maybe_update())
    np.testing.assert_allclose(teacher.weights[moving_mean].numpy(), 0.9 * start + 0.1 * 10.0, rtol=1e-6)


def test_teacher_of_another_architecture_is_refused():
    student, _ = _pair()
    other = keras.Sequential([keras.layers.Dense(4)])
    other.build((None, 2))
    with pytest.raises(ValueError, match="teacher"):
        MeanTeacher(student, other)


# --- Config and bad input -----------------------------------------------------------------


def _write_rgbd_records(path, count, seed=0, with_labels=True, photo_depth=False, label_feature=True, extra=()):
    """`count` synthetic RGB-D records (without a `label` feature if not `label_feature`), then `extra`."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for index in range(count):
            sample = generate_sample(seed, index, H, W)
            depth = sample.depth_jet
            if photo_depth:
                depth = sample.rgb  # a colour image where depth should be
            label = sample.label if with_labels else np.zeros((H, W), np.uint8)
            writer.write(encode_example(sample.rgb[..., ::-1].copy(), label if label_feature else None,
                                        depth[..., ::-1].copy()))
        for record in extra:
            writer.write(record)
    return str(path)


def _config(tmp_path, *, model="AdapNet_pp", semi=None, **extra):
    train = tmp_path / "train.tfrecords"
    if not train.exists():
        _write_rgbd_records(train, 8)
    subset = tmp_path / "subset.txt"
    subset.write_text("0\n3  # a comment\n5\n")
    values = {
        "model": model, "num_classes": 7, "height": H, "width": W, "batch_size": 2,
        "max_iteration": 4, "learning_rate": 1e-3, "checkpoint": str(tmp_path / "run"),
        "train_data": str(train), "unlabeled_data": str(train), "labeled_subset": str(subset),
        "semi_supervised": {} if semi is None else semi, "save_step": 2, "skip_step": 1,
        "seed": 0,
    }
    values.update(extra)
    return config_from_dict(values, source="semi.config")


def test_config_section_defaults_and_errors(tmp_path):
    config = _config(tmp_path)
    assert config.semi_supervised == SemiSupervisedConfig()
    defaults = config.semi_supervised
    assert (defaults.method, defaults.ema_decay, defaults.confidence, defaults.depth_margin,
            defaults.consistency_weight, defaults.blur_sigma) == ("depthmix", 0.99, 0.968, 0.03, 1.0, (0.15, 1.15))
    assert config_from_dict(config.to_dict(), source="semi.config") == config
    with pytest.raises(ConfigError, match="unlabeled_data.*missing"):
        _config(tmp_path, unlabeled_data=None)
    with pytest.raises(ConfigError, match="semi_supervised.*'confidence'"):
        _config(tmp_path, semi={"confidence": 1.5})
    with pytest.raises(ConfigError, match=r"semi_supervised.*'mehtod'; did you mean 'method'\?"):
        _config(tmp_path, semi={"mehtod": "classmix"})
    # Helper 117: a near jet red half blended with missing (black) depth decodes as the nearest
    # surface, which DepthMix then pasted over everything.
    bilinear = r"key '{}': resamples modality 2 bilinearly, but {} reads depth from its colouring"
    with pytest.raises(ConfigError, match=bilinear.format("modality2_interpolation", "DepthMix")):
        _config(tmp_path, modality2_interpolation="bilinear")
    with pytest.raises(ConfigError, match=bilinear.format("modality_interpolations", "DepthMix")):
        _config(tmp_path, model="SSMA", modality_interpolations=["bilinear"])
    assert _config(tmp_path, semi={"method": "classmix"}, modality2_interpolation="bilinear").semi_supervised
    from ssma_tf.semi_supervised.depth_pretraining import depth_config

    with pytest.warns(ConfigWarning, match="is not used"):  # read as a run of an AdapNet++ on RGB
        rgb = _config(tmp_path, semi=False, unlabeled_data=None, modality2_interpolation="bilinear")
    with pytest.raises(ConfigError, match=bilinear.format("modality2_interpolation", "depth pretraining")):
        depth_config(rgb)


def test_bad_unlabeled_data_and_subsets_are_one_line_errors(tmp_path):
    empty = tmp_path / "empty.tfrecords"
    with tf.io.TFRecordWriter(str(empty)):
        pass
    with pytest.raises(UserInputError, match="unlabeled_data.*no image"):
        semi_supervised.SemiSupervisedTrainer(_config(tmp_path, unlabeled_data=str(empty)))
    # Depth pretraining reads train_data without labels when unlabeled_data is not set: the
    # message named unlabeled_data, a key the config did not have (helper 256).
    from ssma_tf.data.unlabeled import build_mix_dataset

    with pytest.raises(UserInputError, match=r"key 'train_data': the records hold no image"):
        build_mix_dataset(str(empty), str(empty), labeled=None, height=H, width=W, batch_size=1, num_classes=3,
                          unlabeled_key="train_data")
    rgb_only = tmp_path / "rgb_only.tfrecords"
    with tf.io.TFRecordWriter(str(rgb_only)) as writer:  # before: ParseExample's traceback
        writer.write(encode_example(np.zeros((H, W, 3), np.uint8), None))
    with pytest.raises(UnlabeledDataError, match=r"rgb_only.tfrecords: record 0 has no modality2 .*unlabeled_data "
                                                 r"\(DepthMix\) needs depth as modality 2; convert 'modality1 modality2"):
        semi_supervised.SemiSupervisedTrainer(_config(tmp_path, unlabeled_data=str(rgb_only)))
    photos = _write_rgbd_records(tmp_path / "photos.tfrecords", 2, photo_depth=True)
    with pytest.raises(UnlabeledDataError, match="photos.tfrecords.*not a decodable depth colouring") as raised:
        semi_supervised.SemiSupervisedTrainer(_config(tmp_path, unlabeled_data=photos))
    assert "most of them RGB" not in str(raised.value)  # a photo's colours are many
    # Holes of white, ssma-prepare --missing-color 255 255 255: the colour is named (helper 265:
    # the error blamed the encoding or the data alone).
    from ssma_tf.modalities.colorize import jet_colormap

    depth = np.round(255 * jet_colormap(np.linspace(0.0, 1.0, H * W).reshape(H, W))).astype(np.uint8)
    depth[: H // 4] = 255  # a quarter of the image
    white = tmp_path / "white_holes.tfrecords"
    with tf.io.TFRecordWriter(str(white)) as writer:
        writer.write(encode_example(np.zeros((H, W, 3), np.uint8), None, depth[..., ::-1].copy()))
    with pytest.raises(UnlabeledDataError, match=(
            r"white_holes.tfrecords: modality2 is not a decodable depth colouring 'jet_near_red' \(2[0-9]% of its "
            r"pixels are off the colour map, most of them RGB 255 255 255: holes of a missing colour other than "
            r"black\? depth decoding reads only black as missing\)")):
        semi_supervised.SemiSupervisedTrainer(_config(tmp_path, unlabeled_data=str(white)))
    # The labeled records are mixed too, and depth pretraining learns modality 2 (before: both
    # trained on a photo as depth without a word).
    from ssma_tf.semi_supervised.depth_pretraining import DepthPretrainer

    photo_labels = _write_rgbd_records(tmp_path / "photo_labels.tfrecords", 8, photo_depth=True)
    with pytest.raises(UnlabeledDataError, match=r"photo_labels.tfrecords: modality2 is not a decodable depth colouring "
                                                 r"'jet_near_red' .*train_data \(DepthMix\) needs depth"):
        semi_supervised.SemiSupervisedTrainer(_config(tmp_path, train_data=photo_labels))
    with pytest.raises(UnlabeledDataError, match=r"photo_labels.tfrecords: .*train_data \(depth pretraining\) needs "
                                                 r"depth: give --depth-encoding \(or the config's semi_supervised.depth_encoding\)"):
        DepthPretrainer(_config(tmp_path, semi=False, unlabeled_data=None, train_data=photo_labels))
    # The one writer of index files (ssma-select-labels, the experiment's random subsets) and the reader agree.
    written = tmp_path / "subset.txt"
    write_index_file(str(written), [np.int64(5), 0, 3])
    assert read_index_file(str(written), count=8) == [5, 0, 3]
    bad = tmp_path / "bad.txt"
    bad.write_text("1\nseven\n")
    with pytest.raises(UnlabeledDataError, match="bad.txt: line 2"):
        read_index_file(str(bad))
    bad.write_text("1\n9\n")
    with pytest.raises(UnlabeledDataError, match="line 2: index 9 is beyond the 8 records"):
        read_index_file(str(bad), count=8)
    # As a run's labeled_subset: before, index 9 was dropped without a word (or, alone, ended the
    # run in "End of sequence"), for supervised and semi-supervised runs alike.
    from ssma_tf.training import make_train_dataset

    beyond = r"bad.txt: line 2: index 9 is beyond the 8 records of train_data"
    with pytest.raises(UnlabeledDataError, match=beyond):
        make_train_dataset(_config(tmp_path, semi=False, unlabeled_data=None, labeled_subset=str(bad)))
    with pytest.raises(UnlabeledDataError, match=beyond):
        semi_supervised.SemiSupervisedTrainer(_config(tmp_path, labeled_subset=str(bad)))
    # A record listed twice (a mistyped other index: one labeled image fewer than the lines say)
    # and a line of two numbers were taken without a word.
    bad.write_text("1\n# a comment\n4\n1  # again\n")
    with pytest.raises(UnlabeledDataError, match=r"line 4: index 1 is listed again \(first on line 1\)"):
        read_index_file(str(bad), count=8)
    bad.write_text("1\n2 3\n")
    with pytest.raises(UnlabeledDataError, match="line 2: expected one record index, got '2 3'"):
        read_index_file(str(bad), count=8)
    # Saved as UTF-16 (Notepad's "Unicode"), or another file given by mistake: a UnicodeDecodeError
    # traceback naming neither the file nor the key, and exit 1 (helper 310).
    bad.write_text("0\n3\n", encoding="utf-16")
    with pytest.raises(UnlabeledDataError, match=r"bad.txt: not UTF-8 text \(byte 0\).*save it as UTF-8"):
        read_index_file(str(bad), count=8)
    with pytest.raises(UnlabeledDataError, match="bad.txt: not UTF-8 text"):
        make_train_dataset(_config(tmp_path, semi=False, unlabeled_data=None, labeled_subset=str(bad)))


def test_a_labeled_subset_listing_a_record_without_label_is_refused_naming_line_file_and_record(tmp_path, tiny_model):
    """A labeled_subset listing a record written without labels stopped the run in TensorFlow's
    "Feature: label (data type: string) is required" traceback (helper 172)."""
    from ssma_tf.training import make_train_dataset

    labeled, unlabeled = tmp_path / "labeled.tfrecords", tmp_path / "unlabeled.tfrecords"
    _write_rgbd_records(labeled, 3)
    _write_rgbd_records(unlabeled, 3, seed=1, label_feature=False)
    subset = tmp_path / "listed.txt"  # _config writes subset.txt
    subset.write_text("0\n# the second file starts at 3\n4\n")
    data = [str(labeled), str(unlabeled)]
    refusal = r"listed.txt: line 3: record 4 \(.*unlabeled.tfrecords, its record 1\) has no label image"
    with pytest.raises(UnlabeledDataError, match=refusal):
        make_train_dataset(_config(tmp_path, semi=False, unlabeled_data=None, train_data=data,
                                   labeled_subset=str(subset)))
    with pytest.raises(UnlabeledDataError, match=refusal):
        semi_supervised.SemiSupervisedTrainer(_config(tmp_path, semi={"method": "classmix"}, train_data=data,
                                                      unlabeled_data=data, labeled_subset=str(subset)))
    # Records of the first file only: the other file's need no label, in supervised runs as in
    # semi-supervised ones (before: the supervised run refused the file of images).
    subset.write_text("0\n2\n")
    supervised = _config(tmp_path, semi=False, unlabeled_data=None, train_data=data, labeled_subset=str(subset),
                         checkpoint=str(tmp_path / "supervised"))
    assert training.Trainer(supervised, log=lambda line: None).train(max_steps=1).final_step == 1


# --- The trainer --------------------------------------------------------------------------


@pytest.fixture
def tiny_model(monkeypatch):
    monkeypatch.setattr(training.trainer, "build_model", build_tiny_model)


def test_the_logged_teacher_decay_is_that_of_the_teachers_newest_update(tmp_path, tiny_model):
    """With ema_every 2 the log said the next update's decay, also on the steps where the teacher
    did not move: 0.5 at steps 1 and 2, 0.667 at 3 and 4 (helper 156)."""
    config = _config(tmp_path, semi={"ema_every": 2})  # skip_step 1: a line per step
    lines = []
    semi_supervised.SemiSupervisedTrainer(config, log=lines.append).train(max_steps=4)
    decays = [re.search(r"teacher_decay ([0-9.]+)", line).group(1) for line in lines if line.startswith("step ")]
    assert decays == ["0.0000", "0.5000", "0.5000", "0.6667"], lines
    # One line for four steps: the newest update's α (0.8), not the window's mean (helper 237:
    # 0.6792). And xla, which this step does not use, is said not to be (before: taken silently).
    window = tmp_path / "window"
    window.mkdir()
    lines.clear()
    config = _config(window, skip_step=4, save_step=4, xla=True)
    semi_supervised.SemiSupervisedTrainer(config, log=lines.append).train(max_steps=4)
    decays = [re.search(r"teacher_decay ([0-9.]+)", line).group(1) for line in lines if line.startswith("step ")]
    assert decays == ["0.8000"], lines
    assert ("note: xla is not used by semi-supervised training: only the supervised training step and the "
            "evaluation are compiled with it") in lines


def test_an_unseeded_run_draws_its_own_seed_and_keeps_it_in_its_checkpoints(tmp_path, tiny_model):
    """Helper 284: two unseeded runs, taken for independent ones, drew the same mix batches,
    jitter and masks (seed 0), and then a note said so. Each draws its own seed now, and a resume
    goes on with it."""
    from ssma_tf.semi_supervised.depth_pretraining import DepthPretrainer

    def notes(lines):
        return [line for line in lines if line.startswith("note: seed unset")]

    def mix_images(trainer):
        return np.concatenate([tf.nest.flatten(next(trainer.mix_iterator))[0].numpy() for _ in range(3)])

    lines = []
    first = semi_supervised.SemiSupervisedTrainer(_config(tmp_path, seed=None), log=lines.append)
    assert notes(lines) == [
        f"note: seed unset: drew seed {first.run_seed} for the weights' initialisation, dropout, the labeled and mix "
        "streams' order and augmentation and each step's jitter, blur and masks, kept in the run's checkpoints for a "
        f"resume; --set seed={first.run_seed} repeats the run"]
    other = semi_supervised.SemiSupervisedTrainer(_config(tmp_path, seed=None, checkpoint=str(tmp_path / "other")),
                                                  log=lambda line: None)
    assert other.run_seed != first.run_seed
    assert not np.array_equal(mix_images(first), mix_images(other))
    first.train(max_steps=2)
    lines.clear()
    resumed = semi_supervised.SemiSupervisedTrainer(_config(tmp_path, seed=None), log=lines.append)
    assert resumed.run_seed == first.run_seed and notes(lines) == [
        "note: seed unset: the labeled and mix streams' order and augmentation and each step's jitter, blur and masks "
        f"go on with seed {first.run_seed}, drawn when the run started and kept in its checkpoints"], lines
    lines.clear()
    DepthPretrainer(_config(tmp_path, semi=False, unlabeled_data=None, seed=None, checkpoint=str(tmp_path / "depth")),
                    log=lines.append)
    assert [line for line in notes(lines) if line.startswith("note: seed unset: drew seed ") and line.endswith(
        "dropout, the training stream's order and augmentation, kept in the run's checkpoints for a resume; --set "
        f"seed={line.split()[5]} repeats the run")], lines
    lines.clear()
    seeded = semi_supervised.SemiSupervisedTrainer(_config(tmp_path, checkpoint=str(tmp_path / "seeded")),
                                                   log=lines.append)
    assert seeded.run_seed == 0 and not notes(lines)


@pytest.mark.parametrize("model, method", [("AdapNet_pp", "depthmix"), ("SSMA", "classmix")])
def test_semi_supervised_training_runs_resumes_and_logs(tmp_path, tiny_model, model, method):
    extra = {"aux_heads": True} if model == "SSMA" else {}
    config = _config(tmp_path, model=model, semi={"method": method}, **extra)
    trainer = semi_supervised.SemiSupervisedTrainer(config, log=lambda line: None)
    # DepthMix names the depth colouring it reads (a reversed one is not caught).
    assert ("depth read as jet_near_red" in trainer._method_text()) == (method == "depthmix")
    # Fresh start: the teacher is the student.
    for t, s in zip(trainer.teacher.weights, trainer.model.weights):
        np.testing.assert_array_equal(t.numpy(), s.numpy())
    result = trainer.train(max_steps=2)
    assert result.final_step == 2 and all(np.isfinite(result.losses))
    assert int(trainer.mean_teacher.updates.numpy()) == 2
    teacher_after = [w.numpy() for w in trainer.teacher.weights]
    assert any(not np.array_equal(t, s.numpy()) for t, s in zip(teacher_after, trainer.model.weights))

    resumed = semi_supervised.SemiSupervisedTrainer(config, log=lambda line: None)
    assert int(resumed.step.numpy()) == 2 and int(resumed.mean_teacher.updates.numpy()) == 2
    for t, saved in zip(resumed.teacher.weights, teacher_after):
        np.testing.assert_array_equal(t.numpy(), saved)  # the teacher is checkpointed
    final = resumed.train()
    assert final.final_step == 4 and final.weights is not None
    events = "".join(os.listdir(config.log_dir))
    assert events
    tags = set()
    for name in os.listdir(config.log_dir):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(config.log_dir, name)):
            tags.update(v.tag for v in event.summary.value)
    assert {"loss/supervised", "loss/consistency", "semi_supervised/confident_fraction",
            "semi_supervised/mixed_images", "semi_supervised/pseudo_labels"} <= tags


def test_a_mix_stream_whose_pipeline_changed_restarts_on_resume(tmp_path, tiny_model, monkeypatch):
    """As the training stream's (tests/test_training.py): the run resumes on a new mix stream."""
    config = _config(tmp_path)
    semi_supervised.SemiSupervisedTrainer(config, log=lambda line: None).train(max_steps=2)
    module = sys.modules[semi_supervised.SemiSupervisedTrainer.__module__]
    build = module.build_mix_dataset
    monkeypatch.setattr(module, "build_mix_dataset", lambda *a, **k: build(*a, **k).map(lambda *x: x).prefetch(1))
    lines = []
    resumed = semi_supervised.SemiSupervisedTrainer(config, log=lines.append)
    assert any("at step 2 (input streams restarted: the position of mix_data saved in ckpt-2 does not fit" in line
               for line in lines), lines
    assert resumed.train().final_step == 4


def test_a_mix_stream_restarted_on_resume_is_shuffled_anew(tmp_path, tiny_model):
    """Helper 261: a resume on records converted again restarted the mix stream with the run's
    first mix batches (its seed offset was fixed before the restore found the records changed)."""
    config = _config(tmp_path)
    semi_supervised.SemiSupervisedTrainer(config, log=lambda line: None).train(max_steps=2)
    _write_rgbd_records(tmp_path / "train.tfrecords", 9)
    lines = []
    resumed = semi_supervised.SemiSupervisedTrainer(config, log=lines.append)
    assert any("at step 2 (input streams restarted: files rewritten since ckpt-2" in line for line in lines), lines
    fresh = semi_supervised.SemiSupervisedTrainer(dataclasses.replace(config, checkpoint=str(tmp_path / "fresh")),
                                                  log=lambda line: None)
    assert resumed.stream_seed_offset == 2
    again, first = (tf.nest.flatten(next(trainer.mix_iterator)) for trainer in (resumed, fresh))
    assert not all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(first, again))


def test_the_mixed_images_preview_shows_the_modality_the_expert_reads(tmp_path, tiny_model, monkeypatch):
    """An AdapNet++ of modality 2 (before: TensorBoard showed mixed modality-1 images it does not read)."""
    flat = np.zeros((H, W, 3), np.uint8) + np.array([10, 200, 30], np.uint8)  # BGR, as records hold
    with tf.io.TFRecordWriter(str(tmp_path / "flat.tfrecords")) as writer:
        for index in range(4):
            sample = generate_sample(0, index, H, W)
            writer.write(encode_example(sample.rgb[..., ::-1].copy(), sample.label, flat))
    shown = {}
    module = sys.modules[semi_supervised.SemiSupervisedTrainer.__module__]
    monkeypatch.setattr(module, "write_images", lambda tag, images, *a, **k: shown.setdefault(tag, images))
    data = str(tmp_path / "flat.tfrecords")
    config = _config(tmp_path, input_modality="modality2", train_data=data, unlabeled_data=data,
                     labeled_subset=None, semi={"method": "classmix", "jitter": 0, "blur_probability": 0},
                     max_iteration=1,
                     log_dir=str(tmp_path / "logs"))
    semi_supervised.SemiSupervisedTrainer(config, log=lambda line: None).train()
    mixed = np.asarray(shown["semi_supervised/mixed_images"])
    assert mixed.shape[1:] == (H, W, 3) and (mixed == [30, 200, 10]).all()  # shown as RGB


def test_the_mix_stream_starts_afresh_where_a_resume_cannot_take_up_its_position(tmp_path, tiny_model):
    """As on several replicas, whose checkpoints hold no stream position: the mix batches are
    shuffled anew with the labeled stream's (before: the run's first mix batches again)."""

    class NoPositions(semi_supervised.SemiSupervisedTrainer):
        saves_data_position = property(lambda self: False, lambda self, value: None)

    config = _config(tmp_path, max_iteration=4)
    first = tf.nest.flatten(next(NoPositions(config, log=lambda line: None).mix_iterator))
    NoPositions(config, log=lambda line: None).train(max_steps=2)
    resumed = NoPositions(config, log=lambda line: None)
    assert int(resumed.step.numpy()) == 2 and resumed.stream_seed_offset == 2
    again = tf.nest.flatten(next(resumed.mix_iterator))
    assert not all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(first, again))


def test_unlabeled_records_need_no_label_and_a_damaged_one_is_named(tmp_path, tiny_model):
    from ssma_tf.data.records import RecordError

    good = _write_rgbd_records(tmp_path / "good.tfrecords", 3, seed=1, label_feature=False)
    with open(good, "rb") as stream:
        data = stream.read()
    truncated = tmp_path / "truncated.tfrecords"
    truncated.write_bytes(data[: len(data) - 50])
    with pytest.raises(RecordError) as error:  # counted when the trainer is built
        semi_supervised.train(_config(tmp_path, unlabeled_data=str(truncated)), log=lambda line: None)
    assert (error.value.path, error.value.index) == (str(truncated), 2)

    short = short_fusion_record(H, W)  # frames well; found only when a step decodes it
    damaged = _write_rgbd_records(tmp_path / "damaged.tfrecords", 2, seed=2, label_feature=False,
                                  extra=[short] * 6)
    config = _config(tmp_path, unlabeled_data=[good, damaged], max_iteration=8)
    with pytest.raises(RecordError, match="modality1 holds 100 bytes") as error:
        semi_supervised.train(config, log=lambda line: None)
    # Not record 0 of the good file, which has no label: unlabeled records need none.
    assert (error.value.path, error.value.index) == (damaged, 2)


@pytest.mark.parametrize("mode", ["batch", "moving"])
def test_teacher_has_no_dropout_and_normalises_as_teacher_batch_norm_says(tmp_path, monkeypatch, mode):
    configs, trainings = [], {}

    class Recording(TinySegmenter):
        def call(self, inputs, training=None, return_all=False):
            trainings.setdefault(self.name, set()).add(training)
            return super().call(inputs, training=training, return_all=return_all)

    def build(config):
        configs.append(config)
        model = Recording(config.num_classes, fusion=config.is_fusion, name=f"built_{len(configs)}")
        model(np.zeros((1, config.height, config.width, 3), np.float32))
        return model

    monkeypatch.setattr(training.trainer, "build_model", build)
    trainer = semi_supervised.SemiSupervisedTrainer(
        _config(tmp_path, semi={"teacher_batch_norm": mode}), log=lambda line: None)
    trainer.train(max_steps=1)
    student, teacher = configs  # built in this order
    assert student.dropout_keep_prob == 0.3 and teacher.dropout_keep_prob == 1.0
    # Released: the teacher in training mode (batch statistics), parameters averaged only.
    assert trainings["built_2"] - {None} == ({True} if mode == "batch" else {False})
    assert True in trainings["built_1"]
    assert trainer.mean_teacher.include_statistics == (mode == "moving")


def test_a_step_mixes_every_modality_and_the_teacher_probabilities_with_one_depth_mask(tmp_path, monkeypatch):
    """The trainer's wiring: image k pasted over image k - 1 where k is nearer, the same mask for
    both modalities and for the teacher's probabilities, and the loss weighted by the confident
    share. Run eagerly, the tiny models record what they see."""
    calls = []

    class Recording(TinySegmenter):
        def call(self, inputs, training=None, return_all=False):
            out = super().call(inputs, training=training, return_all=return_all)
            if tf.executing_eagerly():  # not while Keras traces the model symbolically
                seen = [np.array(x) for x in (inputs if isinstance(inputs, (list, tuple)) else [inputs])]
                calls.append((self.name, seen, np.array(out["softmax"] if return_all else out)))
            return out

    names = iter(["student", "teacher"])

    def build(config):
        model = Recording(config.num_classes, fusion=config.is_fusion, name=next(names))
        model([np.zeros((1, H, W, 3), np.float32)] * 2)
        return model

    monkeypatch.setattr(training.trainer, "build_model", build)
    semi = {"use_ground_truth": False, "jitter_probability": 0.0, "blur_probability": 0.0,
            "consistency_weight": 2.0, "confidence": 0.2, "depth_margin": 0.03}
    # Three images, so that pasting k over k - 1 and over k + 1 differ.
    trainer = semi_supervised.SemiSupervisedTrainer(
        _config(tmp_path, model="SSMA", aux_heads=True, batch_size=3, semi=semi), log=lambda line: None)
    calls.clear()
    loss, terms, preview, _ = one_eager_step(trainer)
    assert [c[0] for c in calls] == ["student", "teacher", "student"]
    (_, (m1, m2), probs), (_, (mixed1, mixed2), student) = calls[1:]
    near, valid, _ = (t.numpy() for t in decode_nearness(m2))
    before = lambda x: np.roll(x, 1, axis=0)  # noqa: E731  image k - 1
    mask = valid & (near >= before(near) - 0.03)
    assert mask.any() and not mask.all()
    m = mask[..., None]
    np.testing.assert_allclose(mixed1, np.where(m, m1, before(m1)), atol=1e-4)
    np.testing.assert_allclose(mixed2, np.where(m, m2, before(m2)), atol=1e-4)
    mixed_probs = np.where(m, probs, before(probs))
    count = training.PREVIEW_IMAGES
    np.testing.assert_array_equal(preview["mask"].numpy(), mask[:count] * 255)
    np.testing.assert_array_equal(preview["pseudo"].numpy(), mixed_probs.argmax(-1)[:count])
    confident = float(np.mean(mixed_probs.max(-1) >= 0.2))
    assert 0.0 < confident < 1.0
    assert float(terms["confident_fraction"]) == pytest.approx(confident)
    consistency = float(weighted_cross_entropy(mixed_probs.argmax(-1), student, 7))
    assert float(terms["consistency"]) == pytest.approx(consistency, rel=1e-5)
    assert float(loss) == pytest.approx(float(terms["supervised"]) + 2.0 * confident * consistency, rel=1e-5)


def test_a_depthmix_step_with_the_real_adapnet_pp(tmp_path):
    # The real network's calling convention (outputs by training mode, auxiliary heads, dropout),
    # which the tiny stand-in of the other trainer tests does not have.
    config = _config(tmp_path, max_iteration=1, batch_size=2)
    trainer = semi_supervised.SemiSupervisedTrainer(config, log=lambda line: None)

    def dropout_rates(model):
        return [layer.rate for layer in walk_layers(model) if isinstance(layer, keras.layers.Dropout)]

    assert dropout_rates(trainer.model) == [pytest.approx(0.7)] and not any(dropout_rates(trainer.teacher))
    # The compiled step alone: saving and exporting the 30 M weights (what `train()` adds) is
    # tested on the tiny model and took most of this test's three minutes.
    loss, terms, _, _ = trainer.train_function(trainer.iterator)
    assert int(trainer.step.numpy()) == 1 and np.isfinite(float(loss))
    assert {"supervised", "consistency", "confident_fraction"} <= set(terms)


def test_weight_decay_reaches_the_semi_supervised_loss(tmp_path, tiny_model):
    config = _config(tmp_path, weight_decay=0.5)
    trainer = semi_supervised.SemiSupervisedTrainer(config, log=lambda line: None)
    trainer.train(max_steps=1)
    values = {}
    for name in os.listdir(config.log_dir):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(config.log_dir, name)):
            values.update((v.tag, v) for v in event.summary.value)
    assert "loss/weight_decay" in values
    assert decayed_kernels(trainer.model)
    assert float(tf.make_ndarray(values["loss/weight_decay"].tensor)) > 0


def test_void_pixels_of_a_labeled_mix_image_are_never_confident():
    from ssma_tf.semi_supervised.mixing import confidence_weight, label_probabilities

    probs = label_probabilities(tf.constant([[[0, 2], [3, 0]]]), 4)  # two void pixels
    np.testing.assert_array_equal(probs.numpy()[0, 0], [[0, 0, 0, 0], [0, 0, 1, 0]])
    np.testing.assert_array_equal(probs.numpy()[0, 1], [[0, 0, 0, 1], [0, 0, 0, 0]])
    assert float(confidence_weight(probs, 0.968)) == pytest.approx(0.5)


def test_labeled_subset_restricts_the_supervised_stream(tmp_path):
    config = _config(tmp_path, semi=None)
    dataset = training.make_train_dataset(config)
    seen = set()
    train = generate_sample  # the labels identify the records
    references = {i: train(0, i, H, W).label for i in range(8)}
    for _, labels in dataset.take(6):
        for label in labels.numpy():
            matches = [i for i, ref in references.items() if np.array_equal(ref, label)]
            seen.update(matches)
    assert seen == {0, 3, 5}


def test_labeled_records_listed_again_as_unlabeled_are_drawn_once_as_labeled(tmp_path):
    """`unlabeled_data: [train, extra]`, "the rest of train and more": the labeled images were
    drawn twice as often as the others, half the time as unlabeled (the teacher's prediction in
    place of their labels); only an unlabeled list equal to train_data was recognised."""
    from ssma_tf.data.unlabeled import _labeled_among, build_mix_dataset

    train = _write_rgbd_records(tmp_path / "train.tfrecords", 8)
    extra = _write_rgbd_records(tmp_path / "extra.tfrecords", 4, seed=1)
    assert _labeled_among([train, extra], [8, 4], [train], [8], [0, 3, 5]) == [0, 3, 5]
    assert _labeled_among([extra, train], [4, 8], [train], [8], [0, 3, 5]) == [4, 7, 9]
    assert _labeled_among([extra], [4], [train], [8], [0, 3, 5]) == []
    assert _labeled_among([extra, train], [4, 8], [train], [8], None) == list(range(4, 12))  # all of train is labeled
    references = {i: generate_sample(0, i, H, W).label for i in range(8)}
    dataset = build_mix_dataset(train, [train, extra], labeled=[0, 3, 5], height=H, width=W, batch_size=4,
                                num_classes=7)
    drawn = {True: set(), False: set()}
    for _, labels, has_label, _ in dataset.take(12):
        for label, flag in zip(labels.numpy(), has_label.numpy()):
            drawn[bool(flag)].update(i for i, ref in references.items() if np.array_equal(ref, label))
    assert drawn[True] == {0, 3, 5} and not drawn[False] & {0, 3, 5} and drawn[False]


def test_classmix_mixes_rgb_only_records(tmp_path):
    """ClassMix needs no depth (before: "records lack modality2: DepthMix and the depth tools need
    the depth image" for an RGB-only AdapNet++)."""
    from ssma_tf.data.unlabeled import build_mix_dataset

    rgb = write_records(tmp_path / "rgb.tfrecords", 4, height=H, width=W)
    (images, labels, _, _), = build_mix_dataset(rgb, rgb, labeled=[0, 1], height=H, width=W, batch_size=2,
                                              num_classes=5, modalities=1, depth=False).take(1)
    assert len(images) == 1 and images[0].shape == (2, H, W, 3)
    with pytest.raises(UnlabeledDataError, match="records lack modality2: DepthMix"):
        build_mix_dataset(rgb, rgb, labeled=[0, 1], height=H, width=W, batch_size=2, num_classes=5)
    config = _config(tmp_path, semi={"method": "classmix"}, train_data=rgb, unlabeled_data=rgb, num_classes=5,
                     labeled_subset=None)
    trainer = semi_supervised.SemiSupervisedTrainer(config, log=lambda line: None)
    assert trainer.mix_modalities == 1
    # The run's first line names the method and its data (it read as a supervised run's).
    assert trainer._method_text() == (f"; semi-supervised (classmix, mean teacher): labels of train_data, "
                                      f"images of unlabeled_data {rgb}")


def test_every_file_of_the_mix_stream_is_checked_for_its_modalities(tmp_path):
    """A later file of fewer images is refused before any training, naming it and its key (helper
    272: only the first file was checked; the run stopped when the shuffle reached the second,
    after checkpoints were written). An empty file passes, as in training."""
    from ssma_tf.data.unlabeled import build_mix_dataset

    fusion = write_records(tmp_path / "fusion.tfrecords", 3, height=H, width=W, fusion=True)
    rgb = write_records(tmp_path / "rgb.tfrecords", 3, height=H, width=W)
    empty = tmp_path / "empty.tfrecords"
    empty.write_bytes(b"")
    settings = dict(labeled=None, height=H, width=W, batch_size=2, num_classes=5, unlabeled_key="unlabeled_data")
    with pytest.raises(UnlabeledDataError, match=rf"^{rgb}: key 'unlabeled_data': records lack modality2"):
        build_mix_dataset(fusion, [str(empty), fusion, rgb], **settings)
    with pytest.raises(UnlabeledDataError, match=rf"^{rgb}: key 'train_data': records hold 1 modalities but the "
                       "model reads 2"):
        build_mix_dataset([fusion, rgb], fusion, depth=False, **settings)
    (images, _, _, _), = build_mix_dataset(fusion, [str(empty), fusion], **settings).take(1)
    assert len(images) == 2


_MIRRORED = """
from ssma_tf import training
from ssma_tf.semi_supervised import trainer as semi_supervised
from ssma_tf.config import load_config
from tests.training_helpers import build_tiny_model
training.trainer.build_model = build_tiny_model
import dataclasses
from ssma_tf.config import ConfigError
config = load_config(sys.argv[1], "train")
try:  # one image per replica: pasted onto itself (before: trained with no mixing, without a word)
    semi_supervised.SemiSupervisedTrainer(dataclasses.replace(config, batch_size=2), strategy=strategy)
except ConfigError as error:
    print("REFUSED", error)
trainer = semi_supervised.SemiSupervisedTrainer(config, strategy=strategy)
result = trainer.train()
assert_replicas_agree(trainer.model, trainer.teacher)
print("OK", result.final_step, trainer.strategy.num_replicas_in_sync, int(trainer.mean_teacher.updates.numpy()))
"""


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    config = _config(tmp_path, max_iteration=2, batch_size=4)
    path = tmp_path / "mirrored.config"
    path.write_text(yaml.safe_dump(config.to_dict()))
    run = run_on_two_logical_cpus(_MIRRORED, str(path))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "OK 2 2 2" in run.stdout
    assert (f"REFUSED {path}, line 38: key 'batch_size': 2 gives each of the 2 replicas 1 image to mix; semi_supervised "
            "mixes each image with another of its replica's batch: give 2 or more per replica") in run.stdout, run.stdout


def test_a_mix_batch_of_one_image_is_refused(tmp_path):
    """Image k is pasted onto image k - 1 of its batch: alone, onto itself (helper 94: the
    "mixed" batch was the input, without a word)."""
    with pytest.raises(ConfigError, match=r"key 'batch_size': is 1, but semi_supervised mixes each image with "
                                          r"another of its batch: give 2 or more"):
        _config(tmp_path, batch_size=1)


# --- Label selection and depth pretraining ------------------------------------------------


def test_farthest_point_order_on_a_hand_made_feature_set():
    from ssma_tf.semi_supervised.selection import farthest_point_selection

    # Points on a line, no ties. From each start, worked out by hand: the next pick is the point
    # whose nearest picked point is farthest away.
    features = np.array([[0.0], [1.1], [2.5], [4.2], [6.0], [15.0]])
    by_hand = {
        5: ([5, 0, 4, 2], [15.0, 6.0, 2.5]),   # 15 -> 0 (15) -> 6 (6) -> 2.5 (2.5)
        2: ([2, 5, 4, 0], [12.5, 3.5, 2.5]),   # 2.5 -> 15 (12.5) -> 6 (3.5) -> 0 (2.5)
        4: ([4, 5, 0, 2], [9.0, 6.0, 2.5]),    # 6 -> 15 (9) -> 0 (6) -> 2.5 (2.5)
        0: ([0, 5, 4, 2], [15.0, 6.0, 2.5]),
    }
    starts = set()
    for seed in range(12):
        selection = farthest_point_selection(features, [2, 4], seed=seed)
        order, distances = by_hand[selection.order[0]]
        assert selection.order == order and selection.subset(2) == sorted(order[:2])
        np.testing.assert_allclose(selection.distance[1:], distances)
        assert selection.order == farthest_point_selection(features, [2, 4], seed=seed).order
        starts.add(selection.order[0])
    assert len(starts) > 1  # the seed picks the start


def test_farthest_point_with_a_difficulty_bias_and_a_budget_larger_than_the_pool():
    from ssma_tf.semi_supervised.selection import SelectionError, farthest_point_selection

    features = np.array([[0.0], [2.0], [4.0], [6.0]])
    calls = []
    errors = np.full(4, 0.01)
    errors[2] = 10.0  # image 2 is what the depth student gets most wrong

    def difficulty(selected):
        calls.append(list(selected))
        return errors

    # Seed 0 starts at image 3, then 0; without a bias images 1 and 2 tie at distance 2 and the
    # lower index, 1, is taken.
    assert farthest_point_selection(features, [2, 3], seed=0).order == [3, 0, 1]
    selection = farthest_point_selection(features, [2, 3], seed=0, difficulty=difficulty)
    assert calls == [[3, 0]] and selection.order == [3, 0, 2]
    # The bias: the error scaled to unit mean, times the typical distance to the selection (the
    # mean nonzero one: 2), times the weight.
    assert selection.bias[2] == pytest.approx(2.0 * 10.0 / errors.mean())
    halved = farthest_point_selection(features, [2, 3], seed=0, difficulty=difficulty, difficulty_weight=0.5)
    assert halved.bias[2] == pytest.approx(0.5 * 2.0 * 10.0 / errors.mean())
    with pytest.raises(SelectionError, match="budget 5 is larger than the pool of 4"):
        farthest_point_selection(features, [5])
    # A NaN weight made every biased distance NaN and the picks followed the array's order.
    with pytest.raises(SelectionError, match="the difficulty weight must be a finite number >= 0, got nan"):
        farthest_point_selection(features, [2, 3], seed=0, difficulty=difficulty, difficulty_weight=float("nan"))


def test_the_difficulty_bias_leaves_copies_of_a_pick_for_when_the_distinct_images_run_out():
    """Helper 267: a copy of a chosen image (distance 0) got the student's error as its bias and was
    picked before distinct images, though the docs say copies come once those run out."""
    from ssma_tf.semi_supervised.selection import farthest_point_selection

    features = np.array([[0.0], [2.0], [4.0], [6.0], [6.0]])  # image 3 is a copy of image 4
    errors = np.array([0.1, 0.1, 0.1, 10.0, 0.1])
    selection = farthest_point_selection(features, [2, 5], seed=0, difficulty=lambda selected: errors)
    assert selection.order[:2] == [4, 0] and selection.order[-1] == 3, selection.order  # seed 0 starts at 4
    assert selection.bias[-1] == 0.0


def test_classes_covered_leave_out_void_the_ignore_id_and_ids_beyond_the_classes():
    """The ignore id 255 was counted as a class ("6 classes present" for 5)."""
    from ssma_tf.semi_supervised.selection import classes_covered

    labels = [np.array([[0, 1, 255]]), np.array([[2, 2, 7]]), np.array([[3, 0, 0]])]
    assert classes_covered(labels, [0, 1]) == [1, 2, 7]
    assert classes_covered(labels, [0, 1], num_classes=5) == [1, 2]
    assert classes_covered(labels, [0, 1, 2], min_pixels=2) == [2]


def test_the_label_histograms_cover_the_classes_the_label_maps_do(tmp_path):
    """ssma-select-labels held every label map of the pool, and decoded its images a second time,
    to count the classes of a selection (helper 227: 6 GB for Cityscapes at full size)."""
    from ssma_tf.semi_supervised.selection import classes_covered, record_label_histograms, record_labels

    path = _write_rgbd_records(tmp_path / "pool.tfrecords", 4, seed=3)
    histograms, maps = record_label_histograms(path), record_labels(path)
    assert histograms.shape == (4, 256) and histograms.sum() == sum(label.size for label in maps)
    for chosen in ([0], [1, 3], [0, 1, 2, 3]):
        for kwargs in ({}, {"num_classes": 4}, {"min_pixels": 50}):
            assert classes_covered(histograms, chosen, **kwargs) == classes_covered(maps, chosen, **kwargs)
    assert classes_covered(histograms, [0, 1, 2, 3])  # the pool's labels hold classes
    unlabeled = _write_rgbd_records(tmp_path / "unlabeled.tfrecords", 2, label_feature=False)
    assert not record_label_histograms(unlabeled)[:, 1:].any()


def test_images_of_the_wrong_byte_count_are_named_by_the_depth_colouring_check(tmp_path):
    """Helper 256: the check that ssma-select-labels, ssma-pretrain-depth and DepthMix training run
    first decoded its records unguarded: TensorFlow's reshape traceback, exit 1."""
    from ssma_tf.data.records import RecordError
    from ssma_tf.semi_supervised.mixing import check_depth_colouring

    example = tf.train.Example.FromString(encode_example(np.zeros((H, W, 3), np.uint8), None,
                                                         np.zeros((H, W, 3), np.uint8)))
    example.features.feature["modality2"].bytes_list.value[:] = [bytes(100)]
    short = _write_rgbd_records(tmp_path / "short.tfrecords", 0, extra=[example.SerializeToString()])
    with pytest.raises(RecordError, match=rf"^{short}, record 0: modality2 holds 100 bytes"):
        check_depth_colouring([short], "jet_near_red", key="train_data", fix="-")


def test_a_damaged_record_of_an_unlabeled_pool_is_named(tmp_path):
    """The pool is read without labels: a damaged record was reported as "record 0: no 'label'
    bytes feature" (helper 257), the file's first, whole record, as if the pool needed labels."""
    from ssma_tf.data.records import RecordError
    from ssma_tf.semi_supervised.selection import pooled_depth_features, record_label_histograms

    pool = pathlib.Path(_write_rgbd_records(tmp_path / "pool.tfrecords", 3, label_feature=False))
    whole = pool.read_bytes()
    pool.write_bytes(whole[: len(whole) - 100])
    for read in (pooled_depth_features, record_label_histograms):
        with pytest.raises(RecordError, match=rf"^{pool}, record 2: damaged"):
            read(str(pool))


def test_every_record_the_selection_reads_must_hold_depth(tmp_path):
    """The start checks a file's first records only: photos after two depth records were read as
    depth, and the picks rested on noise."""
    from ssma_tf.semi_supervised.mixing import check_depth_colouring
    from ssma_tf.semi_supervised.selection import SelectionError, pooled_depth_features

    depth = _write_rgbd_records(tmp_path / "depth.tfrecords", 2)
    photos = _write_rgbd_records(tmp_path / "photos.tfrecords", 2, photo_depth=True)
    mixed = tmp_path / "mixed.tfrecords"
    mixed.write_bytes(pathlib.Path(depth).read_bytes() + pathlib.Path(photos).read_bytes())
    check_depth_colouring([str(mixed)], "jet_near_red", key="train_data", fix="-")  # passes: records 0, 1
    assert pooled_depth_features(depth).shape[0] == 2
    with pytest.raises(SelectionError, match=r"mixed.tfrecords, record 2: modality2 is not a decodable depth "
                                             r"colouring 'jet_near_red' \(\d+% of its pixels are off the colour map\)"):
        pooled_depth_features(str(mixed))
    # A record whose depth is all missing (black) pooled to 0 in every cell, and the farthest-point
    # selection picked it as the pool's outlier (helper 172).
    sample = generate_sample(0, 0, H, W)
    black = encode_example(sample.rgb[..., ::-1].copy(), sample.label, np.zeros((H, W, 3), np.uint8))
    _write_rgbd_records(mixed, 2, extra=[black])
    with pytest.raises(SelectionError, match=r"mixed.tfrecords, record 2: modality2 is all black \(missing\): "
                                             r"no depth to pool"):
        pooled_depth_features(str(mixed))


def test_depth_is_decoded_in_bounded_memory_and_alike_in_every_chunking(monkeypatch):
    """One 1024 x 2048 image took a (pixels x 256) score matrix: over 4 GiB of memory, in the
    label selection (at the records' size) and in the training steps (helper 172)."""
    from ssma_tf.semi_supervised import mixing

    depth = np.random.default_rng(0).uniform(1.0, 80.0, (2, 37, 29))
    images = tf.constant(np.stack([_bgr(d) for d in depth]), tf.float32)
    whole = [t.numpy() for t in decode_nearness(images)]
    monkeypatch.setattr(mixing, "DECODE_CHUNK", 100)  # 2146 pixels: 22 blocks, the last one part full
    for decode in (decode_nearness, tf.function(decode_nearness, input_signature=[tf.TensorSpec(None, tf.float32)])):
        for expected, chunked in zip(whole, decode(images)):
            np.testing.assert_array_equal(chunked.numpy(), expected)
    script = ("import resource, tensorflow as tf\n"
              "from ssma_tf.semi_supervised.mixing import decode_nearness\n"
              "image = tf.fill([1, 1024, 2048, 3], 200.0)\n"
              "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
              "decode_nearness(image)\n"
              "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n")
    import subprocess

    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, PYTHONPATH=str(pathlib.Path(__file__).resolve().parents[1])))
    assert done.returncode == 0, done.stderr[-2000:]
    grown = int(done.stdout.split()[-1])  # MiB the decoding added to the process's peak
    assert grown < 1024, grown  # 4260 before, 235 now (2-core Xeon)


@pytest.mark.parametrize("method", ["depthmix", "depth_pretraining"])
def test_training_warns_of_images_read_as_depth_that_are_not_a_depth_colouring(tmp_path, tiny_model, method):
    """The start checks a file's first two records: photos after them were mixed by their "depth"
    (and learnt as depth) without a word. The steps count such images and the log says so."""
    from ssma_tf.semi_supervised.depth_pretraining import DepthPretrainer
    from ssma_tf.semi_supervised.mixing import off_map_images

    depth = _write_rgbd_records(tmp_path / "depth.tfrecords", 2)
    photos = _write_rgbd_records(tmp_path / "photos.tfrecords", 6, photo_depth=True)
    mixed = tmp_path / "mixed.tfrecords"
    mixed.write_bytes(pathlib.Path(depth).read_bytes() + pathlib.Path(photos).read_bytes())
    batch = []
    for record in tf.data.TFRecordDataset(str(mixed)).take(4):
        batch.append(decode_record(record)["modality2"])
    _, valid, distance = decode_nearness(tf.cast(tf.stack(batch), tf.float32))
    assert float(off_map_images(distance, valid)) == 0.5  # records 2 and 3 of 4

    def run(records, name):
        lines = []
        if method == "depthmix":
            config = _config(tmp_path, semi={"method": "depthmix"}, unlabeled_data=records, labeled_subset=None,
                             checkpoint=str(tmp_path / name), max_iteration=6, skip_step=3)
            semi_supervised.SemiSupervisedTrainer(config, log=lines.append).train()
        else:
            config = _config(tmp_path, semi=False, train_data=records, unlabeled_data=None, labeled_subset=None,
                             checkpoint=str(tmp_path / name), max_iteration=6, skip_step=3)
            DepthPretrainer(config, log=lines.append).train()
        return lines

    clean = run(str(tmp_path / "train.tfrecords"), "clean")
    assert not [line for line in clean if "warning" in line or "off_map" in line], clean
    lines = run(str(mixed), "mixed")
    warnings = [line for line in lines if "are not a depth colouring 'jet_near_red'" in line]
    assert warnings and warnings[0].startswith(
        "warning: DepthMix: " if method == "depthmix" else "warning: depth pretraining: "), lines
    assert re.search(r"\d+% of the images read as depth in steps [1-4]-[3-6] are not", warnings[0]), warnings
    assert "first 2 records only" in warnings[0]
    assert not [line for line in lines if "off_map_images" in line], lines  # not a loss term


def test_features_are_standardised_per_channel_as_released():
    """Helper 117: each grid cell had its own deviation, so cells where every scene has about the
    same depth weighed as much as those that tell layouts apart; the released code takes one
    mean and deviation per channel over images and cells."""
    from ssma_tf.semi_supervised.selection import farthest_point_selection, standardise

    # One channel (the pooled depth): one mean and deviation for the whole grid.
    features = np.array([[0.0, 100.0, 7.0], [2.0, 300.0, 7.0], [4.0, 800.0, 7.0]])
    out = standardise(features)
    np.testing.assert_allclose(out.mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(out.std(), 1.0)
    np.testing.assert_allclose(out, (features - features.mean()) / features.std())
    # A uniform rescaling keeps the picks; a cell of almost constant depth is not blown up.
    rng = np.random.default_rng(0)
    pool = rng.uniform(0, 1, (40, 6))
    pool[:, 5] = 0.5 + 1e-3 * rng.uniform(0, 1, 40)
    raw = farthest_point_selection(pool, [10], seed=1).order
    assert farthest_point_selection(standardise(pool), [10], seed=1).order == raw
    assert farthest_point_selection(standardise(3.0 * pool + 2.0), [10], seed=1).order == raw
    # Two channels: each its own mean and deviation over images and cells.
    two = np.stack([rng.uniform(0, 1, (5, 4)), rng.uniform(0, 100, (5, 4))], axis=-1).reshape(5, 8)
    grid = standardise(two, channels=2).reshape(5, 4, 2)
    np.testing.assert_allclose(grid.mean(axis=(0, 1)), 0.0, atol=1e-12)
    np.testing.assert_allclose(grid.std(axis=(0, 1)), 1.0)
    np.testing.assert_array_equal(standardise(np.full((3, 4), 7.0)), 0.0)  # a constant channel: no distance
    with pytest.raises(ValueError, match=r"features must be \(N, cells x 3 channels\), got shape \(5, 8\)"):
        standardise(two, channels=3)


def test_the_depth_students_errors_are_measured_with_batch_norm_statistics_of_its_weights(tmp_path):
    """After the short run of a depth student the moving statistics were mostly their initial
    values (mean 0, variance 1 for inputs of 0..255), and the errors, measured in inference mode,
    were 2 to 3 on the 0..1 nearness scale after 12 steps: worse than a constant, noise that chose
    the picks (helper 156). Recomputed over the selection, they are of the scale's size."""
    import dataclasses

    from ssma_tf.semi_supervised.depth_pretraining import depth_student_errors

    config = dataclasses.replace(_config(tmp_path), semi_supervised=None, unlabeled_data=None, labeled_subset=None)
    errors = depth_student_errors(config, [0, 1, 2, 3], 12, seed=0)
    assert errors.shape == (8,) and np.all(np.isfinite(errors))
    assert errors.max() < 1.0, errors  # before: 2.1 to 3.1


def test_a_depth_students_errors_are_of_its_prediction_within_the_nearness_range(tmp_path):
    """Helper 267: the unbounded output of a briefly trained student gave one image 23.6 where the
    others had 0.7 to 2.9 on the 0..1 nearness scale, and the difficulty bias went to it alone."""
    import dataclasses

    from ssma_tf.semi_supervised.depth_pretraining import depth_errors

    config = dataclasses.replace(_config(tmp_path), semi_supervised=None, unlabeled_data=None, labeled_subset=None)

    def far_off(images, training, return_all):
        return {"logits": tf.fill(tf.concat([tf.shape(images)[:-1], [2]], 0), 40.0)}

    def nearest(images, training, return_all):
        return {"logits": tf.fill(tf.concat([tf.shape(images)[:-1], [2]], 0), 1.0)}

    # 40 is read as the nearest there is (1): the error of a prediction of 1.
    np.testing.assert_allclose(depth_errors(far_off, config), depth_errors(nearest, config), rtol=1e-6)
    assert np.all(depth_errors(far_off, config) <= 1.0)


def test_select_labels_command_is_deterministic_and_refuses_too_large_budgets(tmp_path, capsys):
    from ssma_tf.cli import select_labels

    _config(tmp_path)  # writes the records and the subset file
    config = _config(tmp_path)
    path = tmp_path / "select.config"
    path.write_text(yaml.safe_dump(config.to_dict()))
    for out in ("a", "b"):
        assert select_labels.main(["-c", str(path), "--budget", "4", "--budgets", "2",
                                   "-o", str(tmp_path / out), "--seed", "3"]) == 0
    first = (tmp_path / "a" / "labeled_4.txt").read_text()
    assert first == (tmp_path / "b" / "labeled_4.txt").read_text() and len(first.split()) == 4
    assert set((tmp_path / "a" / "labeled_2.txt").read_text().split()) <= set(first.split())
    assert read_index_file(str(tmp_path / "a" / "labeled_4.txt"), count=8)
    printed = capsys.readouterr().out
    assert "labeled_4.txt (" in printed and "classes present in the chosen labels)\n" in printed
    # A pool without labels (before: "0 classes present in the chosen labels, if the records have labels").
    pool = _write_rgbd_records(tmp_path / "pool.tfrecords", 4, label_feature=False)
    assert select_labels.main(["-c", str(path), "--budget", "2", "-o", str(tmp_path / "pool"), "--set",
                               f"train_data={pool}"]) == 0
    assert "labeled_2.txt (the records hold no label: no class count)" in capsys.readouterr().out
    # Keys the selection never reads, naming what is not there (yet): refused before (helper 343).
    unread = [f"checkpoint={pool}/run", f"log_dir={pool}/logs", f"palette={tmp_path}/missing.yaml",
              f"importance_weights={tmp_path}/missing.json"]
    assert select_labels.main(["-c", str(path), "--budget", "2", "-o", str(tmp_path / "unread"),
                               *[item for value in unread for item in ("--set", value)]]) == 0, capsys.readouterr().err
    assert select_labels.main(["-c", str(path), "--budget", "9", "-o", str(tmp_path / "c")]) == 2
    assert "--budget 9 is larger than the pool of 8 images" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # before: wrote labeled_8.txt beside labeled_4.txt
        select_labels.main(["-c", str(path), "--budget", "4", "--budgets", "8", "-o", str(tmp_path / "c")])
    assert "--budgets are the smaller budgets on the way to --budget 4, got 8" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # before: "budgets must be increasing positive numbers, got [0]"
        select_labels.main(["-c", str(path), "--budget", "0", "-o", str(tmp_path / "c")])
    assert "--budget must be >= 1, got 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # before: NumPy's "expected non-negative integer" traceback
        select_labels.main(["-c", str(path), "--budget", "2", "--seed", "-1", "-o", str(tmp_path / "c")])
    assert "argument --seed: must be in 0..4294967295, got -1" in capsys.readouterr().err
    # A second run into the same folder: refused, as a training run may read its lists (before:
    # replaced without a word, and a resumed run trained on other labeled images).
    # One line, without argparse's usage block (it is not a flag's error).
    assert select_labels.main(["-c", str(path), "--budget", "4", "-o", str(tmp_path / "a"), "--seed", "5"]) == 2
    assert capsys.readouterr().err.startswith(
        f"error: {tmp_path / 'a'} holds a selection already (labeled_4.txt, scores.csv), which a training config "
        "may read as its labeled_subset: pass --overwrite")
    assert (tmp_path / "a" / "labeled_4.txt").read_text() == first
    # With --overwrite: the first run's other lists are named.
    assert select_labels.main(["-c", str(path), "--budget", "3", "-o", str(tmp_path / "a"), "--overwrite"]) == 0
    assert "also holds labeled_2.txt, labeled_4.txt from an earlier run" in capsys.readouterr().err
    # The config's labeled_subset is this command's output: it need not exist yet.
    missing = dict(config.to_dict(), labeled_subset=str(tmp_path / "not_yet" / "labeled_4.txt"))
    path.write_text(yaml.safe_dump(missing))
    # Nor the weights a training run starts from, nor its batch size and steps (helper 186: a config
    # whose ImageNet checkpoint was not downloaded yet was refused).
    unstarted = {key: value for key, value in missing.items() if key not in ("batch_size", "max_iteration")}
    (tmp_path / "unstarted.config").write_text(yaml.safe_dump(dict(unstarted, intialize=str(tmp_path / "init.ckpt"))))
    assert select_labels.main(["-c", str(tmp_path / "unstarted.config"), "--budget", "2", "-o",
                               str(tmp_path / "h")]) == 0, capsys.readouterr().err
    assert (tmp_path / "h" / "labeled_2.txt").exists()
    # A depth student without a second budget would bias nothing (before: ignored without a word).
    assert select_labels.main(["-c", str(path), "--budget", "2", "-o", str(tmp_path / "d"),
                               "--depth-student-steps", "1"]) == 0
    assert "warning: --depth-student-steps has no effect with one budget" in capsys.readouterr().err
    # A difficulty weight without a depth student weighs nothing (helper 94: read by nothing, without a word).
    assert select_labels.main(["-c", str(path), "--budget", "2", "-o", str(tmp_path / "g"),
                               "--difficulty-weight", "7"]) == 0
    assert "warning: --difficulty-weight has no effect without --depth-student-steps" in capsys.readouterr().err
    # A weight of 0 trains no student (helper 267: one trained at every budget, its errors weighed by 0).
    assert select_labels.main(["-c", str(path), "--budget", "3", "--budgets", "2", "-o", str(tmp_path / "z"),
                               "--depth-student-steps", "5", "--difficulty-weight", "0"]) == 0
    out, err = capsys.readouterr()
    assert "warning: --difficulty-weight 0 gives the depth student's errors no weight: no student is trained" in err
    assert "training a depth student" not in out + err
    # Jet-coloured depth read as grey: refused (before: selected on noise).
    assert select_labels.main(["-c", str(path), "--budget", "2", "-o", str(tmp_path / "e"),
                               "--depth-encoding", "gray_near_bright"]) == 2
    assert "is not a decodable depth colouring 'gray_near_bright'" in capsys.readouterr().err
    # The depth student is AdapNet++ on modality 1: a config on modality 2 is named with the flag
    # that needs it (before: an error about depth pretraining, after the records were read).
    assert select_labels.main(["-c", str(path), "--budget", "2", "-o", str(tmp_path / "f"),
                               "--depth-student-steps", "1", "--set", "input_modality=modality2"]) == 2
    assert capsys.readouterr().err.splitlines()[-1].startswith(  # after the config's warning of the noise
        f"error: --depth-student-steps trains a depth student from the config: {path} with --set "
        "input_modality=modality2: key 'input_modality': is modality2, but depth pretraining learns")
    assert not (tmp_path / "f").exists()


def test_the_depth_student_needs_no_steps_or_folder_in_the_config_and_a_stop_is_one_line(tmp_path, tiny_model, capsys):
    """Helper 227: --depth-student-steps required max_iteration and checkpoint ("train needs it"),
    which the student never reads, and a student that stopped (NaN, divergence, a full disk) ended
    in a traceback whose advice named labels and a checkpoint it has not."""
    from ssma_tf.cli import select_labels

    _config(tmp_path)  # writes the records and the subset file
    values = {key: value for key, value in _config(tmp_path).to_dict().items()
              if key not in ("max_iteration", "checkpoint")}
    path = tmp_path / "student.config"
    path.write_text(yaml.safe_dump(values))
    assert select_labels.main(["-c", str(path), "--budget", "2", "--budgets", "1", "-o", str(tmp_path / "a"),
                               "--depth-student-steps", "1"]) == 0, capsys.readouterr().err
    assert len((tmp_path / "a" / "labeled_2.txt").read_text().split()) == 2
    capsys.readouterr()
    assert select_labels.main(["-c", str(path), "--budget", "2", "--budgets", "1", "-o", str(tmp_path / "b"),
                               "--depth-student-steps", "2", "--set", "learning_rate=1e20"]) == 1
    captured = capsys.readouterr()
    error = captured.err.splitlines()[-1]
    assert error.startswith("error: the depth student stopped (loss is ") and error.endswith(
        "); labeled_1.txt written, no scores.csv: lower the config's learning_rate (--set learning_rate=...) or "
        "change --depth-student-steps, and run again with --overwrite"), error
    # Each list is written as its budget is reached, and the student's training is said (before:
    # nothing until every budget was done, and a failure lost the lists already decided; helper 227).
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["labeled_1.txt"]
    assert captured.out.splitlines()[:2] == [
        f"budget 1: {tmp_path / 'b' / 'labeled_1.txt'} (6 classes present in the chosen labels)",
        "training a depth student on the 1 image(s) selected (2 steps), to bias the next picks"], captured.out
    # A failed save is the temporary folder's, not the rate's (helper 231); --debug shows the traceback.
    import tempfile

    from ssma_tf.semi_supervised import depth_pretraining
    from ssma_tf.training import CheckpointWriteError

    def full_disk(*args, **kwargs):
        raise CheckpointWriteError("cannot write the checkpoint /tmp/s/ckpt-1 at step 1: [Errno 28] No space left on "
                                   "device. Its partial files are removed; the last good checkpoint is none")

    student = depth_pretraining.depth_student_errors
    depth_pretraining.depth_student_errors = full_disk
    try:
        assert select_labels.main(["-c", str(path), "--budget", "2", "--budgets", "1", "-o", str(tmp_path / "c"),
                                   "--depth-student-steps", "2", "--debug"]) == 1
    finally:
        depth_pretraining.depth_student_errors = student
    error = capsys.readouterr().err
    assert "Traceback (most recent call last)" in error
    assert error.splitlines()[-1] == (
        "error: the depth student stopped (cannot write the checkpoint /tmp/s/ckpt-1 at step 1: [Errno 28] No space "
        f"left on device); labeled_1.txt written, no scores.csv: the student saves into a temporary folder under "
        f"{tempfile.gettempdir()}: free some space there, or set TMPDIR to a folder on a disk with room, and run "
        "again with --overwrite")
    # ssma-pretrain-depth ends a divergence or a failed save as ssma-train does (before: a NaN only;
    # the others were a traceback).
    from ssma_tf.cli import pretrain_depth
    from ssma_tf.training import DivergenceError

    def diverge(config, encoding=None):
        raise DivergenceError("the loss diverged at step 5: mean loss 9 over the last 5 steps")

    pretraining = _config(tmp_path, semi=False, unlabeled_data=None, labeled_subset=None, max_iteration=2,
                          checkpoint=str(tmp_path / "depth"))
    (tmp_path / "depth.config").write_text(yaml.safe_dump(pretraining.to_dict()))
    original = depth_pretraining.pretrain_depth
    depth_pretraining.pretrain_depth = diverge
    try:
        assert pretrain_depth.main(["-c", str(tmp_path / "depth.config")]) == 1
    finally:
        depth_pretraining.pretrain_depth = original
    assert capsys.readouterr().err.splitlines()[-1] == ("error: the loss diverged at step 5: mean loss 9 over the "
                                                        "last 5 steps")


def test_depth_encoding_flags_reach_the_depth_student_and_depth_pretraining(tmp_path, tiny_model, capsys):
    """Grey-coded depth (helper 94: the selection's student, and ssma-pretrain-depth, read it as
    jet, and the config could not say otherwise without unlabeled_data)."""
    from ssma_tf.cli import pretrain_depth, select_labels
    from ssma_tf.config import load_config
    from ssma_tf.semi_supervised.depth_pretraining import DepthPretrainer

    jet = _write_rgbd_records(tmp_path / "jet.tfrecords", 6)
    grey = tmp_path / "grey.tfrecords"
    with tf.io.TFRecordWriter(str(grey)) as writer:
        for record in tf.data.TFRecordDataset(jet):
            sample = decode_record(record)
            near, valid, _ = decode_nearness(tf.cast(sample["modality2"], tf.float32)[None], "jet_near_red")
            level = np.where(valid[0].numpy(), np.clip(np.round(near[0].numpy() * 254) + 1, 1, 255), 0)
            writer.write(encode_example(sample["modality1"].numpy(), sample["label"].numpy(),
                                        np.repeat(level.astype(np.uint8)[..., None], 3, -1)))
    config = _config(tmp_path, semi=False, unlabeled_data=None, labeled_subset=None, train_data=str(grey),
                     max_iteration=2, checkpoint=str(tmp_path / "depth"))
    path = tmp_path / "depth.config"
    path.write_text(yaml.safe_dump(config.to_dict()))
    assert select_labels.main(["-c", str(path), "--budget", "4", "--budgets", "2", "-o", str(tmp_path / "picked"),
                               "--depth-encoding", "gray_near_bright", "--depth-student-steps", "1"]) == 0, \
        capsys.readouterr().err
    assert len((tmp_path / "picked" / "labeled_4.txt").read_text().split()) == 4
    # Without the flag, the default colouring is refused, naming the flag.
    assert pretrain_depth.main(["-c", str(path)]) == 2
    assert "give --depth-encoding" in capsys.readouterr().err
    assert pretrain_depth.main(["-c", str(path), "--depth-encoding", "gray_near_bright"]) == 0
    saved = load_config(str(tmp_path / "depth" / "config.yaml"), "train")
    assert saved.semi_supervised.depth_encoding == "gray_near_bright"  # what a resume reads
    assert DepthPretrainer(saved, log=lambda line: None).encoding == "gray_near_bright"
    with pytest.raises(SystemExit):
        pretrain_depth.main(["-c", str(path), "--depth-encoding", "grey"])
    assert "--depth-encoding must be one of jet_near_red" in capsys.readouterr().err


def _backbone_weights_builder(seen):
    """`build_model` for tests that records each config's `backbone_weights` and builds the tiny model."""
    def build(config):
        seen.append(config.backbone_weights)
        return build_tiny_model(config)

    return build


def test_the_depth_student_starts_from_random_weights_not_the_imagenet_backbone(tmp_path, monkeypatch):
    """Helper 289: a MobileNet v2 depth student started from the config's ImageNet backbone_weights,
    where the docs say that it starts from random weights, as Hoyer et al.'s does."""
    from ssma_tf.semi_supervised.depth_pretraining import depth_student_errors

    weights = tmp_path / "imagenet.h5"
    weights.write_bytes(b"")
    config = dataclasses.replace(_config(tmp_path), semi_supervised=None, unlabeled_data=None, labeled_subset=None,
                                 backbone="mobilenet_v2", backbone_weights=str(weights))
    seen = []
    monkeypatch.setattr(training.trainer, "build_model", _backbone_weights_builder(seen))
    assert depth_student_errors(config, [0, 1], 1).shape == (8,)
    assert seen and all(given is None for given in seen), seen  # before: [.../imagenet.h5]


def test_select_labels_checks_no_backbone_weights_or_unlabeled_data(tmp_path, monkeypatch, capsys):
    """Helper 289: a backbone_weights or unlabeled_data not there was "no file at ..." (exit 2),
    though neither the selection nor its depth student reads them."""
    from ssma_tf.cli import select_labels

    _config(tmp_path)  # writes the records and the subset file
    path = tmp_path / "select.config"
    path.write_text(yaml.safe_dump(_config(tmp_path).to_dict()))  # with a semi_supervised section
    seen = []
    monkeypatch.setattr(training.trainer, "build_model", _backbone_weights_builder(seen))
    missing = ["--set", "backbone=mobilenet_v2", "--set", f"backbone_weights={tmp_path / 'missing.h5'}",
               "--set", f"unlabeled_data={tmp_path / 'missing.tfrecords'}"]
    assert select_labels.main(["-c", str(path), "--budget", "2", "--budgets", "1", "-o", str(tmp_path / "a"),
                               "--depth-student-steps", "1"] + missing) == 0, capsys.readouterr().err
    assert len((tmp_path / "a" / "labeled_2.txt").read_text().split()) == 2
    assert seen and all(given is None for given in seen), seen


def test_select_labels_says_that_a_stopped_depth_student_exits_with_1():
    """Helper 289: the docstring said "0 done, 2 bad config or flags"; a stopped student returns 1."""
    from ssma_tf.cli import select_labels

    assert "0 done, 1 the depth student stopped" in " ".join(select_labels.__doc__.split())


def test_pretrain_depth_reads_no_labeled_subset_or_class_count(tmp_path, tiny_model, capsys):
    """Helper 289: ssma-pretrain-depth refused a labeled_subset not written yet (Hoyer et al. pretrain,
    then select) and a config without num_classes ("train needs it"), neither of which it reads."""
    from ssma_tf.cli import pretrain_depth
    from ssma_tf.config import load_config

    values = _config(tmp_path, semi=False, unlabeled_data=None, max_iteration=1,
                     checkpoint=str(tmp_path / "depth")).to_dict()
    values["labeled_subset"] = str(tmp_path / "selected" / "labeled_4.txt")
    path = tmp_path / "pretrain.config"
    path.write_text(yaml.safe_dump(values))
    assert pretrain_depth.main(["-c", str(path)]) == 0, capsys.readouterr().err  # before: "no file at"
    values.pop("num_classes")
    # A semi_supervised section (its depth_encoding) without the unlabeled_data that only its training reads.
    path.write_text(yaml.safe_dump(dict(values, checkpoint=str(tmp_path / "classless"), semi_supervised={})))
    assert pretrain_depth.main(["-c", str(path)]) == 0, capsys.readouterr().err  # before: "is missing"
    for run in ("depth", "classless"):
        saved = load_config(str(tmp_path / run / "config.yaml"), "train")
        assert saved.pretraining == "depth" and saved.num_classes == 2 and saved.labeled_subset is None


def test_depth_pretraining_does_not_call_modality_2_unread_before_refusing_its_bilinear_resampling(tmp_path, capsys):
    """Helper 289: "modality2_interpolation bilinear is not used: this AdapNet_pp reads modality1 only",
    then the error that depth pretraining reads depth from modality 2's colouring."""
    from ssma_tf.cli import pretrain_depth

    config = _config(tmp_path, semi=False, unlabeled_data=None, labeled_subset=None, max_iteration=1,
                     checkpoint=str(tmp_path / "depth"))
    path = tmp_path / "sel.config"
    path.write_text(yaml.safe_dump(config.to_dict()))
    assert pretrain_depth.main(["-c", str(path), "--set", "modality2_interpolation=bilinear"]) == 2
    err = capsys.readouterr().err
    assert "is not used" not in err, err  # before: the warning, then the error
    assert err.splitlines()[-1].startswith(
        f"error: {path} with --set modality2_interpolation=bilinear: key 'modality2_interpolation': resamples "
        "modality 2 bilinearly, but depth pretraining reads depth from its colouring"), err
    assert not (tmp_path / "depth").exists()
    # So does the depth student of ssma-select-labels.
    from ssma_tf.cli import select_labels

    assert select_labels.main(["-c", str(path), "--budget", "2", "--budgets", "1", "-o", str(tmp_path / "picked"),
                               "--depth-student-steps", "1", "--set", "modality2_interpolation=bilinear"]) == 2
    err = capsys.readouterr().err
    assert "is not used" not in err, err
    assert "error: --depth-student-steps trains a depth student from the config: " in err.splitlines()[-1], err


def test_select_labels_names_unimodal_records_and_a_bad_output_before_reading(tmp_path, capsys):
    from ssma_tf.cli import select_labels

    unimodal = tmp_path / "rgb_only.tfrecords"
    with tf.io.TFRecordWriter(str(unimodal)) as writer:
        writer.write(encode_example(np.zeros((H, W, 3), np.uint8), np.zeros((H, W), np.uint8)))
    config = _config(tmp_path, semi=False, train_data=str(unimodal), unlabeled_data=None, labeled_subset=None)
    path = tmp_path / "select.config"
    path.write_text(yaml.safe_dump(config.to_dict()))
    assert select_labels.main(["-c", str(path), "--budget", "1", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{unimodal}: record 0 has no modality2" in err and err.count("\n") == 1
    (tmp_path / "file").write_text("")
    assert select_labels.main(["-c", str(path), "--budget", "1", "-o", str(tmp_path / "file" / "out")]) == 2
    assert "--output" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        select_labels.main(["-c", str(path), "--budget", "1", "-o", "x", "--depth-student-steps", "-1"])
    assert "--depth-student-steps must be >= 0, got -1" in capsys.readouterr().err
    for weight, told in (("nan", "argument --difficulty-weight: must be a finite number, got 'nan'"),
                         ("-1", "--difficulty-weight must be a finite number >= 0, got -1"),
                         ("inf", "argument --difficulty-weight: must be a finite number, got 'inf'")):
        with pytest.raises(SystemExit):
            select_labels.main(["-c", str(path), "--budget", "1", "-o", "x", f"--difficulty-weight={weight}"])
        assert told in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_berhu_loss_is_l1_below_the_threshold_and_quadratic_above():
    from ssma_tf.semi_supervised.depth_pretraining import berhu_loss

    target = np.zeros((1, 1, 4), np.float32)
    prediction = np.array([[[0.1, 0.2, 1.0, 5.0]]], np.float32)
    valid = np.array([[[True, True, True, False]]])
    c = 0.2 * 1.0  # the largest valid error is 1.0
    expected = (0.1 + 0.2 + (1.0 + c * c) / (2 * c)) / 3
    assert float(berhu_loss(prediction, target, valid)) == pytest.approx(expected, rel=1e-5)


_REPLICA_STATISTICS = """
import sys

import numpy as np
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from ssma_tf.semi_supervised.depth_pretraining import berhu_loss
from ssma_tf.semi_supervised.mixing import confidence_weight

rng = np.random.default_rng(0)
prediction = rng.uniform(0, 1, (4, 3, 5)).astype(np.float32)
target = np.zeros((4, 3, 5), np.float32)
valid = np.ones((4, 3, 5), bool)
valid[2:] = False
valid[3, 0, 0] = True
prediction[3, 0, 0] = 3.0  # one valid pixel of a large error, on the second replica
probs = np.zeros((4, 3, 5, 2), np.float32)
probs[:2, ..., 0] = 1.0  # the first replica's images confident, the second's not
probs[2:] = 0.5
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
halves = strategy.experimental_distribute_values_from_function(
    lambda context: tuple(a[2 * context.replica_id_in_sync_group:][:2] for a in (prediction, target, valid, probs)))
per_replica = strategy.run(lambda p, t, v, q: (berhu_loss(p, t, v), confidence_weight(q, 0.9)), args=halves)
mean = float(strategy.reduce("MEAN", per_replica[0], axis=None))
fractions = [float(value) for value in strategy.experimental_local_results(per_replica[1])]
print(float(berhu_loss(prediction, target, valid)), mean, float(confidence_weight(probs, 0.9)), *fractions)
"""


def test_the_berhu_threshold_and_the_confidence_weight_are_the_whole_batchs_on_several_replicas():
    """Helper 215: on two replicas each had its own BerHu threshold and average (4.13 where one
    device gives 0.36) and weighed its mixed loss by its own confident fraction (1 and 0 for 0.5)."""
    import subprocess

    from tests.conftest import ROOT

    run = subprocess.run([sys.executable, "-c", _REPLICA_STATISTICS], capture_output=True, text=True, cwd=ROOT,
                         env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(ROOT)), timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    one_device, replicas, fraction, *each_replicas = (float(v) for v in run.stdout.split()[-5:])
    assert replicas == pytest.approx(one_device, rel=1e-5) and fraction == 0.5 and each_replicas == [0.5, 0.5]


def test_depth_pretraining_lowers_the_depth_error(tmp_path, tiny_model, capsys):
    from ssma_tf.semi_supervised.depth_pretraining import DepthPretrainer

    from ssma_tf.semi_supervised.depth_pretraining import depth_config

    # The segmentation config's labeled subset and 7 classes: no label is read, so no label warning
    # (before: "label ids >= num_classes 2 ... num_classes is too small").
    config = _config(tmp_path, semi=False, unlabeled_data=None, max_iteration=30, learning_rate=0.01)
    lines = []
    trainer = DepthPretrainer(config, log=lines.append)
    assert trainer.config.num_classes == 2 and not [line for line in lines if "label ids" in line], lines
    with pytest.raises(ConfigError, match="key 'input_modality': is modality2, but depth pretraining learns the depth"):
        depth_config(_config(tmp_path, semi=False, unlabeled_data=None, input_modality="modality2"))
    result = trainer.train()
    assert np.mean(result.losses[-5:]) < np.mean(result.losses[:5])
    assert result.weights is not None
    # The run's config.yaml says depth: every command but ssma-pretrain-depth refuses it (before:
    # ssma-train resumed it as 2-class segmentation, ssma-evaluate printed an mIoU of depth).
    from ssma_tf import training
    from ssma_tf.cli import evaluate as evaluate_cli
    from ssma_tf.config import load_config
    from ssma_tf.inference.settings import setup_inference

    run = trainer.config.checkpoint
    saved = os.path.join(run, "config.yaml")
    assert "pretraining: depth" in open(saved).read()
    refused = r"key 'pretraining': is 'depth': this is the config of a depth-pretraining run \(ssma-pretrain-depth\)"
    with pytest.raises(ConfigError, match=refused):
        training.Trainer(load_config(saved, "train", check_paths=False))
    with pytest.raises(ConfigError, match=refused):
        setup_inference(checkpoint=run)
    assert evaluate_cli.main([run, "--test_data", config.train_data[0]]) == 2
    # ssma-select-labels counted the labels' classes against the depth network's 2 outputs:
    # "1 classes present" for 6 (helper 343).
    from ssma_tf.cli import select_labels

    assert select_labels.main(["-c", saved, "--budget", "2", "-o", os.path.join(run, "..", "sel")]) == 2
    assert re.search(refused, capsys.readouterr().err)
    assert DepthPretrainer(load_config(saved, "train"), log=lines.append).config.pretraining == "depth"  # resumes
    # A segmentation config pointed at the depth run's folder (before: "the checkpoint has 2 classes, the model 7").
    from ssma_tf.checkpoints import CheckpointError

    with pytest.raises(CheckpointError, match=r"run holds a depth pretraining run \(its config.yaml\), but this is a "
                                              r"segmentation run of semi.config; give another checkpoint folder"):
        training.Trainer(_config(tmp_path, semi=False, unlabeled_data=None), log=lines.append)
    # A two-class segmentation run without a dataset is not taken for a depth run (before: a depth
    # run of a version without the key was recognised so, and ssma-pretrain-depth resumed it).
    import shutil

    binary = tmp_path / "binary_run"
    shutil.copytree(run, binary)
    written = yaml.safe_load((binary / "config.yaml").read_text())
    del written["pretraining"]
    (binary / "config.yaml").write_text(yaml.safe_dump(written))
    with pytest.raises(CheckpointError, match=r"binary_run holds a segmentation run \(its config.yaml\), but this "
                                              r"is a depth pretraining run"):
        DepthPretrainer(dataclasses.replace(config, checkpoint=str(binary)), log=lines.append)
    # A segmentation run started from the depth run with intialize (helper 266: a 2-class one took the
    # depth outputs for its classes without a word, a 7-class one was told of "2 classes").
    for classes in (2, 7):
        with pytest.raises(CheckpointError, match=r"key 'intialize': .*final\.weights\.h5 is of a depth-pretraining "
                                                  r"run \(ssma-pretrain-depth\).*starts from its weights with "
                                                  r"finetune_from"):
            training.Trainer(_config(tmp_path, semi=False, unlabeled_data=None, num_classes=classes,
                                     checkpoint=str(tmp_path / f"from_depth_{classes}"),
                                     intialize=os.path.join(run, "final.weights.h5")), log=lines.append)
    # Depth pretraining started from a trained segmentation run: named as such (before: "the file
    # has 7 classes, the model 2", a count the config does not say).
    segmenter = tmp_path / "segmenter_run"
    shutil.copytree(run, segmenter)
    written = yaml.safe_load((segmenter / "config.yaml").read_text())
    del written["pretraining"]
    (segmenter / "config.yaml").write_text(yaml.safe_dump(dict(written, num_classes=7)))
    with pytest.raises(CheckpointError, match=r"key 'intialize': .*segmenter_run.* is a segmentation run of 7 "
                                              r"classes, and depth pretraining's network has 2 outputs.*finetune_from "
                                              "instead of intialize"):
        DepthPretrainer(dataclasses.replace(config, checkpoint=str(tmp_path / "depth_from_segmenter"),
                                            initialize=str(segmenter / "final.weights.h5")), log=lines.append)
    # A segmentation config with the depth run's weights, ssma-prune and ssma-importance-weights.
    from ssma_tf.cli import importance_weights
    from ssma_tf.pruning import staged

    segmentation = tmp_path / "segmentation.config"
    segmentation.write_text(yaml.safe_dump(_config(tmp_path, semi=False, unlabeled_data=None).to_dict()))
    with pytest.raises(ConfigError, match=rf"--checkpoint {run}: this is a depth-pretraining run"):
        setup_inference(segmentation, run)
    with pytest.raises(ConfigError, match=refused):
        staged.run(load_config(saved, "train"), "taylor", [], tmp_path / "pruned", test_data=[])
    assert importance_weights.main(["-c", saved, "-o", str(tmp_path / "weights.json")]) == 2
    # The depth encoding stays in the run's config (resuming from it fell back to jet_near_red).
    encoded = _config(tmp_path, semi={"depth_encoding": "jet_near_blue"})
    assert depth_config(encoded).semi_supervised.depth_encoding == "jet_near_blue"


def test_depth_pretraining_from_a_trained_tf1_segmenter_is_told_to_fine_tune(tmp_path, tiny_model, tf1_fixture_dir):
    """Helper 266: the error quoted the config's num_classes line as saying 2, the depth network's
    count, where the user's line said 12."""
    from ssma_tf.checkpoints import CheckpointError
    from ssma_tf.semi_supervised.depth_pretraining import DepthPretrainer

    config = _config(tmp_path, semi=False, unlabeled_data=None, num_classes=12,
                     intialize=str(tf1_fixture_dir / "model.ckpt"))
    with pytest.raises(CheckpointError, match=r"key 'intialize': .*model\.ckpt has 12 classes \(void included\), and "
                                              r"depth pretraining's network has 2 outputs, for the depth"):
        DepthPretrainer(config, log=lambda line: None)


@pytest.mark.parametrize("flags, message", [
    (["--height", "30"], "--height must be a positive multiple of 16, got 30"),
    (["--steps", "0"], "--steps must be >= 1, got 0"),
    (["--arms", "supervised", "depth_x"], "--arms: unknown arm 'depth_x'"),
    # Before: NumPy's tracebacks after the data were generated.
    (["--seeds", "0", "-1"], "argument --seeds: must be in 0..4294967295, got -1"),
    (["--seeds", "4294967296"], "argument --seeds: must be in 0..4294967295, got 4294967296"),
    (["--labeled", "300"], "--labeled 300 is more than the 200 training scenes"),
    (["--arms", "random_201"], "--arms random_201: 201 labeled scenes is more than the 200 training scenes"),
    # Before: one run reported as two seeds; arms no given model runs skipped, an empty table, exit 0.
    (["--seeds", "0", "0"], "--seeds names 0 more than once"),
    (["--arms", "supervised", "supervised"], "--arms names supervised more than once"),
    (["--models", "ssma", "--arms", "pretrained", "random_8"],
     "--arms pretrained random_8: run for adapnet_pp_rgb only, which --models leaves out"),
    (["--arms", "supervised", "--pretrain-steps", "5"], "--pretrain-steps is for the pretrained arm"),
])
def test_the_experiment_checks_its_flags_before_writing_data(tmp_path, capsys, monkeypatch, flags, message):
    from ssma_tf.cli import semi_supervised_experiment

    # A flag let through must not start the experiment's minutes of data and training.
    monkeypatch.setattr(semi_supervised_experiment, "make_data", lambda *a, **k: pytest.fail("the data were made"))
    with pytest.raises(SystemExit) as exit_info:
        semi_supervised_experiment.main(["--output", str(tmp_path / "out"), *flags])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_experiments_help_gives_the_arms_it_runs_by_default(capsys):
    """Helper 360: the usage line in --help gave three default arms, the code ran five (the
    label-selection and depth-pretraining steps unannounced)."""
    from ssma_tf.cli import semi_supervised_experiment

    with pytest.raises(SystemExit):
        semi_supervised_experiment.main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "[--arms supervised classmix depthmix depth_12 pretrained]" in text
    assert "default: supervised classmix depthmix depth_12 pretrained)" in text


def test_an_arm_read_back_from_an_earlier_run_is_marked(tmp_path, monkeypatch):
    """A reused arm printed "mIoU 8.0 (22 s training)", as one just trained."""
    from ssma_tf.cli import semi_supervised_experiment as experiment

    earlier = {"model": "ssma", "arm": "classmix", "seed": 0, "mIoU": 8.0, "train_seconds": 22.0}
    monkeypatch.setattr(experiment, "cached_result", lambda path, config: dict(earlier))
    monkeypatch.setattr(experiment, "train_run", lambda *args, **kwargs: pytest.fail("trained again"))
    (tmp_path / "subset.txt").write_text("0\n")
    result = experiment.run_arm(tmp_path, tmp_path / "data", "ssma", "classmix", 0, 150, tmp_path / "subset.txt")
    assert result == dict(earlier, reused=True)


def test_an_arm_is_trained_again_when_its_pretrained_weights_or_subset_changed(tmp_path, monkeypatch, capsys):
    """The depth pretraining (another --pretrain-steps) and the subsets are made again under the
    same paths: the arm's config, naming the paths, did not change, so its result on the old
    weights was reused, and a finished run on them was taken for this one."""
    from ssma_tf.cli import semi_supervised_experiment as experiment

    trained = []

    def fake_train(config, config_path, step, log):
        trained.append(config["finetune_from"])
        run = pathlib.Path(config["checkpoint"])
        assert not (run / "final.weights.h5").exists(), "a run on the old inputs was kept"
        run.mkdir(parents=True)
        (run / "final.weights.h5").write_text("trained")
        return 1.0

    monkeypatch.setattr(experiment, "train_run", fake_train)
    monkeypatch.setattr(experiment, "evaluate_run", lambda *args, **kwargs: {"mIoU": 40.0, "per_class": []})
    subset, weights = tmp_path / "subset.txt", tmp_path / "pretrained.weights.h5"
    subset.write_text("0\n1\n")
    weights.write_text("pretrained for 10 steps")

    def arm():
        return experiment.run_arm(tmp_path, tmp_path / "data", "ssma", "supervised", 0, 150, subset, str(weights))

    assert "reused" not in arm() and arm()["reused"] and len(trained) == 1
    weights.write_text("pretrained for 20 steps")
    assert "reused" not in arm() and len(trained) == 2
    assert "was made with other settings than these" in capsys.readouterr().out
    subset.write_text("0\n2\n")
    # Stopped after its training, before its result was written: the finished run is not taken.
    (tmp_path / "results" / "ssma_supervised_seed0.json").unlink()
    assert "reused" not in arm() and len(trained) == 3


def test_the_experiment_summary_gives_mean_range_and_the_known_training_times(tmp_path):
    from ssma_tf.cli.semi_supervised_experiment import summary

    subset = tmp_path / "random_12_seed0.txt"
    subset.write_text("".join(f"{i}\n" for i in range(12)))
    settings = {"height": 48, "width": 96, "batch_size": 8, "labeled_subset": str(subset)}
    rows = [{"model": "ssma", "arm": "classmix", "seed": 0, "steps": 150, "mIoU": 40.0, "train_seconds": 100.0,
             "settings": settings},
            {"model": "ssma", "arm": "classmix", "seed": 1, "steps": 150, "mIoU": 44.0, "train_seconds": None,
             "settings": settings},
            {"model": "ssma", "arm": "supervised", "seed": 0, "steps": 150, "mIoU": 30.0, "train_seconds": None,
             "settings": settings},
            {"model": "ssma", "arm": "supervised", "seed": 1, "steps": 150, "mIoU": 50.0, "train_seconds": 9.0,
             "settings": dict(settings, batch_size=4)}]
    rows[0]["machine"] = {"cpu": "AMD EPYC", "cores": 2}
    table = summary(rows)
    # A run trained before the experiment last stopped has no time of its own: the row has no mean
    # (helper 235: before, seed 0's 100 s was shown as the mean of both seeds). Each figure is
    # given with its seed.
    same = "150 steps, 12 labeled, 48x96, batch 8"
    assert f"| ssma | classmix | {same} | 2 | 42.0 | 40.0–44.0 | 0: 40.0, 1: 44.0 | – |" in table
    assert f"| ssma | supervised | {same} | 1 | 30.0 | 30.0–30.0 | 0: 30.0 | – |" in table
    # Another call's result of other settings: a row of its own, not averaged in.
    assert "| ssma | supervised | 150 steps, 12 labeled, 48x96, batch 4 | 1 | 50.0 | 50.0–50.0 | 1: 50.0 | 9 |" \
        in table
    assert table.endswith("Training seconds measured on: AMD EPYC, 2 cores (not recorded for 3 result(s) of an "
                          "earlier version).\n")
    rows[1]["train_seconds"] = 60.0
    assert "| 0: 40.0, 1: 44.0 | 80 |" in summary(rows)


def test_pretrained_arms_of_other_pretraining_steps_are_rows_of_their_own(tmp_path):
    """Helper 94: seeds pretrained 100 and 200 steps were averaged into one row."""
    from ssma_tf.cli.semi_supervised_experiment import summary

    subset = tmp_path / "random_12_seed0.txt"
    subset.write_text("".join(f"{i}\n" for i in range(12)))
    settings = {"height": 32, "width": 64, "batch_size": 4, "labeled_subset": str(subset),
                "inputs": {"labeled_subset_sha256": "a", "finetune_from_sha256": "b"}}
    rows = [{"model": "adapnet_pp_rgb", "arm": "pretrained", "seed": seed, "steps": 150, "mIoU": miou,
             "train_seconds": 1.0, "settings": settings, "pretrain_steps": pretrain}
            for seed, miou, pretrain in ((0, 50.0, 100), (1, 60.0, 200))]
    table = summary(rows)
    assert "| adapnet_pp_rgb | pretrained | 150 steps, 12 labeled, 32x64, batch 4, pretrained 100 steps | 1 | 50.0 |" \
        in table
    assert "| 150 steps, 12 labeled, 32x64, batch 4, pretrained 200 steps | 1 | 60.0 |" in table


def test_the_coverage_table_describes_the_depth_arms_sizes(tmp_path):
    """Helper 94: it looked up --labeled's lists, whatever N the depth_N arms chose."""
    from ssma_tf.cli import semi_supervised_experiment as experiment

    data = tmp_path / "data"
    data.mkdir()
    _write_rgbd_records(data / "train.tfrecords", 8)
    for seed in (0, 1):
        experiment.random_subset(tmp_path, 3, seed, pool=8)
        picked = tmp_path / "subsets" / f"depth_seed{seed}" / "labeled_3.txt"
        picked.parent.mkdir(parents=True)
        write_index_file(str(picked), [0, 1, 2])
    table = experiment.coverage_table(tmp_path, data, [0, 1], [3])
    rows = [line.split(" | ")[:3] for line in table.splitlines()[2:]]
    assert rows == [["| random", "3", "0"], ["| depth-guided", "3", "0"], ["| random", "3", "1"],
                    ["| depth-guided", "3", "1"]], table


def test_the_experiment_summary_file_holds_the_arms_of_every_call(tmp_path):
    """Arms run in separate calls (as docs/semi_supervised.md runs them): summary.md held the
    last call's arms only."""
    from ssma_tf.cli import semi_supervised_experiment as experiment
    from ssma_tf.cli.experiment import save_result

    for arm, seed, miou in (("supervised", 0, 30.0), ("depthmix", 0, 35.0), ("depthmix", 1, 37.0)):
        save_result(tmp_path / "results" / f"ssma_{arm}_seed{seed}.json",
                    {"model": "ssma", "arm": arm, "seed": seed, "steps": 150, "mIoU": miou, "train_seconds": None})
    save_result(tmp_path / "results" / "adapnet_pp_rgb_supervised_seed0.json",
                {"model": "adapnet_pp_rgb", "arm": "supervised", "seed": 0, "steps": 150, "mIoU": 20.0,
                 "train_seconds": None})
    rows = experiment.summary(experiment.folder_results(tmp_path)).splitlines()[2:]
    assert [row.split(" | ")[:4] for row in rows] == [
        ["| adapnet_pp_rgb", "supervised", "150 steps, ? labeled, ?x?, batch ?", "1"],
        ["| ssma", "depthmix", "150 steps, ? labeled, ?x?, batch ?", "2"],
        ["| ssma", "supervised", "150 steps, ? labeled, ?x?, batch ?", "1"]]


@pytest.mark.parametrize("model", ["SSMA", "AdapNet_pp"])
def test_the_mix_stream_carries_every_modality_the_model_reads(tmp_path, monkeypatch, model):
    """SSMA over three modalities mixes modality 3 with the same depth mask; an AdapNet++ expert of
    modality 3 (SSMA's stage 1) gets modality 3 of the mix stream, not modality 1."""
    calls = []
    monkeypatch.setattr(training.trainer, "build_model", recording_model_builder(calls, H, W))
    from ssma_tf.data import write_examples

    samples = []
    for index in range(6):
        scene = generate_sample(0, index, H, W)
        samples.append({"modality1": scene.rgb[..., ::-1], "modality2": scene.depth_jet[..., ::-1],
                        "modality3": np.full((H, W, 3), 20 * (index + 1), np.uint8), "label": scene.label})
    records = str(tmp_path / "three.tfrecords")
    write_examples(records, samples)
    extra = ({"modalities": ["rgb", "depth", "thermal"], "aux_heads": True} if model == "SSMA"
             else {"input_modality": "modality3"})
    semi = {"use_ground_truth": False, "jitter_probability": 0.0, "blur_probability": 0.0}
    config = _config(tmp_path, model=model, batch_size=3, semi=semi, train_data=records, unlabeled_data=records,
                     labeled_subset=None, augmentation={"probability": 0.0}, **extra)
    trainer = semi_supervised.SemiSupervisedTrainer(config, log=lambda line: None)
    calls.clear()
    one_eager_step(trainer)
    supervised, teacher, student = calls
    shades = {20 * (i + 1) for i in range(6)}
    if model == "AdapNet_pp":
        for seen in (supervised, teacher, student):
            assert len(seen) == 1 and set(np.unique(seen[0])) <= shades  # modality 3's flat shades
        return
    assert len(teacher) == 3 and len(student) == 3
    m1, m2, m3 = teacher
    near, valid, _ = (t.numpy() for t in decode_nearness(m2))
    before = lambda x: np.roll(x, 1, axis=0)  # noqa: E731  image k - 1
    mask = (valid & (near >= before(near) - 0.03))[..., None]
    assert mask.any() and not mask.all()
    np.testing.assert_allclose(student[2], np.where(mask, m3, before(m3)), atol=1e-4)
    np.testing.assert_allclose(student[1], np.where(mask, m2, before(m2)), atol=1e-4)


def test_the_supervised_trainer_refuses_a_training_mode_section(tmp_path):
    """Before: `training.train` of a config with a `semi_supervised` section trained with the
    supervised loss alone, wrote the section into config.yaml, and ssma-train could not resume the
    run (helper 138). The trainer of the section is named."""
    from ssma_tf import training

    with pytest.raises(ConfigError, match=r"key 'semi_supervised': is set, but Trainer trains without it: train "
                                          r"with ssma_tf\.semi_supervised\.trainer\.train \(as ssma-train does\)"):
        training.Trainer(_config(tmp_path))
    assert not (tmp_path / "run").exists()


def test_depth_pretraining_adds_the_configs_weight_decay(tmp_path):
    """Before: `weight_decay` was read by nothing in depth pretraining: 0 and 10 trained alike, and
    config.yaml said 10 (helper 138)."""
    from ssma_tf.semi_supervised.depth_pretraining import DepthPretrainer, depth_config

    weights = {}
    for decay in (0.0, 10.0):
        lines = []
        config = _config(tmp_path, semi=False, unlabeled_data=None, max_iteration=1, weight_decay=decay,
                         checkpoint=str(tmp_path / f"run{decay}"))
        trainer = DepthPretrainer(config, log=lines.append,
                                  model_fn=lambda config=config: build_tiny_model(depth_config(config)))
        trainer.train()
        weights[decay] = [np.array(v) for v in trainer.model.trainable_variables]
        logged = next(line for line in lines if line.startswith("step 1/1"))
        assert ("weight_decay" in logged) == (decay > 0), logged
    assert max(float(np.max(np.abs(a - b))) for a, b in zip(weights[0.0], weights[10.0])) > 0


def test_a_resumed_depth_pretraining_keeps_its_colouring(tmp_path):
    """Before: started with --depth-encoding jet_near_blue and resumed from the original config, it
    went on reading jet_near_red (the depth reversed halfway), with the note "semi_supervised
    changed" (helper 138)."""
    from ssma_tf.semi_supervised.depth_pretraining import DepthPretrainer, depth_config

    from ssma_tf.config import ConfigWarning

    def run(max_iteration, semi=False, unlabeled_data=None, **kwargs):
        lines = []
        config = _config(tmp_path, semi=semi, unlabeled_data=unlabeled_data, max_iteration=max_iteration)
        trainer = DepthPretrainer(config, log=lines.append, model_fn=lambda: build_tiny_model(depth_config(config)),
                                  **kwargs)
        trainer.train()
        return trainer, lines

    run(1, encoding="jet_near_blue")
    resumed, lines = run(2)
    assert resumed.encoding == "jet_near_blue" and not [line for line in lines if "changed" in line], lines
    assert "jet_near_blue" in open(tmp_path / "run" / "config.yaml").read()
    # Nor with a semi_supervised section that leaves the colouring at its default (helper 249: a
    # DepthMix config reused went on reading jet_near_red); the warning says how to change it.
    with pytest.warns(ConfigWarning, match=rf"^{re.escape(str(tmp_path / 'run'))} started reading modality 2 as "
                                           r"jet_near_blue, and goes on so: the config's semi_supervised section "
                                           r"leaves depth_encoding at its default, jet_near_red; give "
                                           r"--depth-encoding jet_near_red to change it$"):
        resumed, lines = run(3, semi={"method": "depthmix"}, unlabeled_data=str(tmp_path / "train.tfrecords"))
    assert resumed.encoding == "jet_near_blue" and not [line for line in lines if "depth_encoding" in line], lines
    assert "jet_near_blue" in open(tmp_path / "run" / "config.yaml").read()
    # Given otherwise, the change is named.
    _, lines = run(4, encoding="jet_near_red")
    assert any("semi_supervised.depth_encoding jet_near_blue -> jet_near_red" in line for line in lines), lines


def test_select_labels_replaces_an_earlier_selection_whole_and_names_folders_and_copies(tmp_path, capsys,
                                                                                        monkeypatch):
    """Helper 250: a failed --overwrite run left the earlier run's later lists and scores.csv beside
    its own; a folder named like a list was "pass --overwrite", then exit 1 after the work; copies
    in the pool were picked without a word."""
    import ssma_tf.semi_supervised.depth_pretraining as depth_pretraining
    from ssma_tf.cli import select_labels
    from ssma_tf.training import NonFiniteLossError

    _config(tmp_path)  # writes the records and the subset file
    path = tmp_path / "select.config"
    path.write_text(yaml.safe_dump(_config(tmp_path).to_dict()))
    out = tmp_path / "out"
    assert select_labels.main(["-c", str(path), "--budget", "4", "--budgets", "2", "-o", str(out), "--seed", "3"]) == 0
    capsys.readouterr()

    def stopped(*args, **kwargs):
        raise NonFiniteLossError("loss is nan at step 2; lower the learning rate")

    monkeypatch.setattr(depth_pretraining, "depth_student_errors", stopped)
    assert select_labels.main(["-c", str(path), "--budget", "4", "--budgets", "2", "-o", str(out), "--seed", "5",
                               "--overwrite", "--depth-student-steps", "1"]) == 1
    captured = capsys.readouterr()
    assert "removed the earlier selection's labeled_2.txt, labeled_4.txt, scores.csv (--overwrite)" in captured.out
    assert "the depth student stopped (loss is nan at step 2); labeled_2.txt written, no scores.csv" in captured.err
    assert sorted(p.name for p in out.iterdir()) == ["labeled_2.txt"]  # this run's list alone
    # A folder where a list or the scores go: refused before the records are read, --overwrite or not.
    for name in ("labeled_4.txt", "scores.csv"):
        (tmp_path / name / name).mkdir(parents=True)
        for extra in ([], ["--overwrite"]):
            assert select_labels.main(["-c", str(path), "--budget", "4", "-o", str(tmp_path / name), *extra]) == 2
            assert capsys.readouterr().err == (
                f"error: {tmp_path / name / name} is a folder, where the selection writes its "
                f"{'scores' if name == 'scores.csv' else 'list'}: remove it, or give another --output\n")
    # Four records, two of them copies of the others: the third pick is a copy, and is named.
    one = _write_rgbd_records(tmp_path / "two.tfrecords", 2)
    (tmp_path / "copies.tfrecords").write_bytes(pathlib.Path(one).read_bytes() * 2)
    assert select_labels.main(["-c", str(path), "--budget", "3", "-o", str(tmp_path / "copies"), "--set",
                               f"train_data={tmp_path / 'copies.tfrecords'}"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"warning: record\(s\) [0-3] of the selection have the same pooled depth as an image picked "
                     r"before them \(copies in train_data\?\): the pool holds 2 distinct images", err), err


def test_the_border_augmentation_brings_into_a_mix_image_gets_no_pseudo_label(tmp_path):
    """Helper 251: scaled down, an unlabeled image's border (black in every modality) took the
    teacher's prediction, and the student learnt the teacher's class on black padding; a labeled
    image's border was void. The released code crops inside its images: it has none."""
    from ssma_tf.data import AugmentationConfig
    from ssma_tf.data.unlabeled import build_mix_dataset
    from ssma_tf.semi_supervised.mixing import confidence_weight, teacher_targets

    records = _write_rgbd_records(tmp_path / "train.tfrecords", 4)
    halved = dataclasses.replace(AugmentationConfig.disabled(), scale=True, scale_range=(0.5, 0.5), probability=1.0)
    (images, labels, has_label, valid), = build_mix_dataset(
        records, records, labeled=[0], height=H, width=W, batch_size=4, num_classes=7, augmentation=halved,
        seed=1).take(1)
    assert valid.shape == (4, H, W) and valid.dtype == tf.bool
    # Halved about the centre: the middle half of each side is the image, the rest its border.
    share = tf.reduce_mean(tf.cast(valid, tf.float32), axis=[1, 2]).numpy()
    np.testing.assert_allclose(share, 0.25, atol=0.03)
    border = ~valid.numpy()
    assert not images[0].numpy()[border].any() and not images[1].numpy()[border].any()
    assert not labels.numpy()[border].any() and not has_label.numpy().all()
    # A teacher sure of class 3 everywhere: nothing of the border is a pseudo-label, labeled or not.
    sure = tf.one_hot(tf.fill(labels.shape, 3), 7) * 0.99
    for truth in (False, True):
        probs = teacher_targets(sure, labels, has_label, valid, use_ground_truth=truth).numpy()
        assert not probs[border].any() and (probs[~border].max(axis=-1) > 0).any()
        # The confident share counts the image's pixels only, as where the released code has no border.
        assert float(confidence_weight(probs, 0.968)) <= 0.25 + 0.03
    labeled = has_label.numpy()
    with_truth = teacher_targets(sure, labels, has_label, valid, use_ground_truth=True).numpy()
    np.testing.assert_array_equal(with_truth[labeled].argmax(-1)[valid.numpy()[labeled]],
                                  labels.numpy()[labeled][valid.numpy()[labeled]])


def test_the_depth_colouring_check_names_a_damaged_file(tmp_path):
    """Helper 249: a file cut short within its first records, or not a record file, was TensorFlow's
    DataLossError traceback (exit 1) from the check that runs before training and selection."""
    from ssma_tf.data.records import RecordError
    from ssma_tf.semi_supervised.mixing import check_depth_colouring

    whole = pathlib.Path(_write_rgbd_records(tmp_path / "train.tfrecords", 3)).read_bytes()
    cut, text = tmp_path / "cut.tfrecords", tmp_path / "text.tfrecords"
    cut.write_bytes(whole[:len(whole) // 3 + 100])  # the first record whole, the second cut
    text.write_text("hello world\n")
    for path, index in ((cut, 1), (text, 0)):
        with pytest.raises(RecordError, match=rf"^{re.escape(str(path))}, record {index}: damaged \(.*\); the file is "
                                              r"cut short, overwritten or not a TFRecord file: convert it again$"):
            check_depth_colouring([str(path)], "jet_near_red", key="train_data", fix="")
    check_depth_colouring([str(tmp_path / "train.tfrecords")], "jet_near_red", key="train_data", fix="")
