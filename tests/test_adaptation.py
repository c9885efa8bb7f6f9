"""Domain adaptation: view geometry, pseudo-labels, importance sampling and the trainer."""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import re
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from ssma_tf import training
from ssma_tf.adaptation import importance, pseudo_labels, target, trainer as adaptation
from ssma_tf.adaptation.views import pool_views, render_views, sample_group, warp
from ssma_tf.config import ConfigError, ConfigWarning, config_from_dict
from ssma_tf.config.adaptation import AdaptationConfig
from ssma_tf.data import encode_example, write_examples
from ssma_tf.data.synthetic import generate_sample
from ssma_tf.errors import UserInputError
from tests.training_helpers import (
    TinySegmenter, build_tiny_model, one_eager_step, recording_model_builder, run_on_two_logical_cpus,
    short_fusion_record,
)

H, W = 32, 64


# --- Views and warping ---------------------------------------------------------------------


def _smooth_field(height, width, classes=3):
    rows, cols = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    logits = np.stack([np.sin(cols / 9.0 + c) + np.cos(rows / 7.0 - c) for c in range(classes)], -1)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return probs.astype(np.float32)


def test_each_view_is_a_crop_of_the_base_frame_and_view0_is_the_base():
    to_image, to_base = sample_group(tf.constant([1, 2]), 4, H, W)
    to_base = to_base.numpy()
    corners = np.array([[0, 0, 1], [W, 0, 1], [0, H, 1], [W, H, 1]], np.float64).T
    for v in range(4):
        mapped = to_base[v] @ corners
        assert mapped[0].min() >= -1e-4 and mapped[0].max() <= W + 1e-4
        assert mapped[1].min() >= -1e-4 and mapped[1].max() <= H + 1e-4
    # View 0 spans the whole base frame (up to its own flip).
    np.testing.assert_allclose(np.abs(to_base[0][:2, :2]), np.eye(2), atol=1e-6)
    # The base frame is a crop of the image scaled up by s in [1, 1.1].
    scale = 1.0 / abs(to_image.numpy()[0][0, 0])
    assert 1.0 <= scale <= 1.1 + 1e-6


def test_warping_round_trip_gives_each_pixel_its_probabilities_back():
    field = _smooth_field(H, W)
    to_image, to_base = sample_group(tf.constant([7, 3]), 4, H, W)
    # Each view's prediction is the base-frame field seen from that view.
    views = warp(tf.repeat(field[None], 4, 0), to_base, (H, W), "bilinear", "nearest")
    pooled, coverage = pool_views(views, to_base, 4)
    assert float(tf.reduce_min(coverage)) > 0.99  # view 0 covers the whole base frame
    np.testing.assert_allclose(pooled.numpy(), views.numpy(), atol=0.01)
    # Identical frames: the pool is the plain average of the views.
    noise = tf.random.stateless_uniform([4, H, W, 3], seed=[1, 1])
    noise = noise / tf.reduce_sum(noise, -1, keepdims=True)
    pooled, _ = pool_views(noise, tf.eye(3, batch_shape=[4]), 4)
    np.testing.assert_allclose(pooled.numpy(), np.repeat(noise.numpy().mean(0, keepdims=True), 4, 0), atol=1e-6)


def test_predictions_of_rendered_views_pool_back_to_their_own_pixels():
    # Views rendered from the image (to_image) and pooled through the base frame (to_base): a
    # teacher that saw each view perfectly gets its own prediction back at every pixel, which
    # holds only if the two matrices agree on each view's own flip and zoom (one flip too many
    # in one view's rendering gives errors of about 0.24).
    field = _smooth_field(H, W)
    for seed in range(4):
        to_image, to_base = sample_group(tf.constant([seed, 11]), 4, H, W)
        views = render_views(tf.constant(field), to_image, "bilinear")
        pooled, coverage = pool_views(views, to_base, 4)
        assert float(tf.reduce_min(coverage[:, 1:-1, 1:-1])) > 0.99
        np.testing.assert_allclose(pooled.numpy()[:, 2:-2, 2:-2], views.numpy()[:, 2:-2, 2:-2], atol=0.01)


def test_views_of_an_image_show_the_image_where_the_matrices_say():
    image = tf.constant(np.random.default_rng(0).uniform(0, 255, (H, W, 3)).astype(np.float32))
    to_image, _ = sample_group(tf.constant([5, 5]), 3, H, W)
    views = render_views(image, to_image, "nearest").numpy()
    matrix = to_image.numpy()[2]
    for i, j in [(3, 5), (20, 40), (31, 0)]:
        x, y, _ = matrix @ np.array([j + 0.5, i + 0.5, 1.0])
        src = image.numpy()[min(int(y), H - 1), min(int(x), W - 1)]
        np.testing.assert_allclose(views[2, i, j], src, atol=1e-3)
    # An image of a size known only when the graph runs renders the same views (before: a
    # TypeError from the branch written for it; helper 252).
    unknown = tf.function(lambda image, matrices: render_views(image, matrices, "nearest"),
                          input_signature=[tf.TensorSpec([None, None, 3]), tf.TensorSpec([None, 3, 3])])
    np.testing.assert_array_equal(unknown(image, to_image).numpy(), views)


# --- Pseudo-labels -------------------------------------------------------------------------


def test_threshold_formula_and_ignored_pixels():
    probs = np.zeros((1, 1, 4, 3), np.float32)
    probs[0, 0] = [[0.1, 0.9, 0.0], [0.1, 0.5, 0.4], [0.2, 0.1, 0.7], [0.1, 0.15, 0.75]]
    prior = tf.constant([0.3, 0.4, 0.0005])
    thresholds = pseudo_labels.class_thresholds(
        tf.reduce_max(probs, -1), tf.argmax(probs, -1), prior).numpy()[0]
    discount = 1 - np.exp(-np.array([0.3, 0.4, 0.0005]) / 1e-3)
    expected = np.maximum(0.2, 0.75 * np.array([0.0, 0.9, 0.75]) * discount)
    np.testing.assert_allclose(thresholds, expected, rtol=1e-5)
    labels, confidence = pseudo_labels.pseudo_labels(tf.constant(probs), prior)
    # 0.9 > 0.675 kept; 0.5 is not above 0.675; class 2 (rare: discounted to 0.295) keeps both.
    assert labels.numpy()[0, 0].tolist() == [1, -1, 2, 2]
    np.testing.assert_allclose(confidence.numpy()[0, 0], [0.9, 0.5, 0.7, 0.75])
    # Void is never a pseudo-label.
    void = np.array([[[[0.95, 0.05, 0.0]]]], np.float32)
    assert pseudo_labels.pseudo_labels(tf.constant(void), prior)[0].numpy().item() == -1


def test_thresholds_are_per_view_and_a_pixel_must_be_strictly_above_its_own():
    # Three views of three pixels; class 3 is rare (m = 1e-4: discount 1 - exp(-0.1) ≈ 0.095).
    probs = np.array([
        [[0.05, 0.9, 0.05, 0.0], [0.1, 0.3, 0.6, 0.0], [0.34, 0.36, 0.3, 0.0]],   # peaks: 1: 0.9, 2: 0.6
        [[0.2, 0.5, 0.3, 0.0], [0.3, 0.4, 0.3, 0.0], [0.15, 0.3, 0.55, 0.0]],     # peaks: 1: 0.5, 2: 0.55
        [[0.0, 0.05, 0.05, 0.2], [0.0, 0.1, 0.1, 0.8], [0.0, 0.5, 0.0, 0.5]],     # peak of 3: 0.8
    ], np.float32)[:, None]  # (3 views, 1, 3, 4)
    prior = tf.constant([0.3, 0.3, 0.4, 1e-4])
    thresholds = pseudo_labels.class_thresholds(
        tf.reduce_max(probs, -1), tf.argmax(probs, -1), prior).numpy()
    np.testing.assert_allclose(thresholds[:2, 1:3], [[0.675, 0.45], [0.375, 0.4125]], rtol=1e-5)
    assert thresholds[2, 3] == np.float32(0.2)  # 0.75 · 0.8 · 0.095 is below the floor
    labels, _ = pseudo_labels.pseudo_labels(tf.constant(probs), prior)
    # View 1 keeps its 0.5 and 0.4 of class 1 against its own peak (0.375), not view 0's (0.675);
    # in view 2 the rare class keeps 0.8, and 0.2 is not above the floor of 0.2.
    assert labels.numpy()[:, 0].tolist() == [[1, 2, -1], [1, 1, 2], [-1, 3, 1]]


def test_running_class_means_are_seeded_then_averaged():
    prior = pseudo_labels.ClassPrior(3, momentum=0.99, beta=1e-3)
    np.testing.assert_allclose(prior.means.numpy(), [1e-3] * 3)
    first = np.array([0.5, 0.5, 0.0], np.float32)
    np.testing.assert_allclose(prior.update_from_mean(first).numpy(), [0.5, 0.5, 0.99e-3], rtol=1e-5)
    second = np.array([0.2, 0.2, 0.6], np.float32)
    expected = [0.99 * 0.5 + 0.01 * 0.2, 0.99 * 0.5 + 0.01 * 0.2, 0.6]  # class 2 seeded now
    np.testing.assert_allclose(prior.update_from_mean(second).numpy(), expected, rtol=1e-5)
    # From probabilities (views, H, W, C): the batch mean is over every view and pixel.
    probs = np.array([[[[0.9, 0.1, 0.0], [0.5, 0.3, 0.2]]], [[[0.1, 0.1, 0.8], [0.3, 0.3, 0.4]]]], np.float32)
    fresh = pseudo_labels.ClassPrior(3, momentum=0.9)
    fresh.update_from_mean(np.array([0.2, 0.3, 0.5], np.float32))
    np.testing.assert_allclose(fresh.update(probs).numpy(),
                               0.9 * np.array([0.2, 0.3, 0.5]) + 0.1 * np.array([0.45, 0.2, 0.35]), rtol=1e-5)


def test_pseudo_labels_are_judged_on_class_pixels_of_labeled_images_only():
    """Ignore pixels (255) and ids beyond the classes were scored as pseudo-labels gone wrong."""
    pseudo = tf.constant([[[1, 2, 3, -1, 2]]])
    truth = tf.constant([[[1, 3, 255, 2, 0]]])
    judged, correct = pseudo_labels.judge_pseudo_labels(pseudo, truth, tf.constant([[[True]]]), num_classes=4)
    assert judged.numpy().tolist() == [[[True, True, False, False, False]]]
    assert correct.numpy().tolist() == [[[True, False, False, False, False]]]
    judged, _ = pseudo_labels.judge_pseudo_labels(pseudo, truth, tf.constant([[[False]]]), num_classes=4)
    assert not judged.numpy().any()


def test_focal_weighted_loss_uses_each_pixels_own_confidence():
    student = tf.constant([[[[0.2, 0.3, 0.5], [0.1, 0.8, 0.1]]], [[[0.3, 0.3, 0.4], [0.6, 0.2, 0.2]]]])
    labels = tf.constant([[[2, 1]], [[-1, 1]]])
    confidence = tf.constant([[[0.9, 0.6]], [[0.8, 0.3]]])
    prior = tf.constant([0.1, 0.5, 0.2])
    loss = pseudo_labels.consistency_loss(student, labels, confidence, prior, power=3).numpy()
    focal = (1 - np.array([0.1, 0.5, 0.2])) ** 3
    terms = [focal[2] * 0.9 * -np.log(0.5), focal[1] * 0.6 * -np.log(0.8), 0.0, focal[1] * 0.3 * -np.log(0.2)]
    np.testing.assert_allclose(loss, np.mean(terms), rtol=1e-5)


# --- Importance sampling -------------------------------------------------------------------


def test_importance_sampling_distribution():
    counts = np.array([[5, 10, 0, 0], [5, 30, 4, 0], [0, 60, 0, 0]])  # class 0 is void, 3 unseen
    p = importance.sampling_probabilities(counts)
    fractions = counts[:, 1:3] / counts[:, 1:3].sum(0)
    np.testing.assert_allclose(p, 0.25 / 3 + 0.75 * fractions.mean(1))
    assert abs(p.sum() - 1) < 1e-12 and p[1] > p[2] > p[0]
    np.testing.assert_allclose(importance.acceptance(p).max(), 1.0)


def test_the_target_stream_draws_records_in_proportion_to_their_acceptance(tmp_path):
    from ssma_tf.adaptation.target import build_target_dataset

    path = str(tmp_path / "three.tfrecords")
    shades = (10, 100, 200)  # each record one flat colour, so that a view tells its record
    with tf.io.TFRecordWriter(path) as writer:
        for shade in shades:
            writer.write(encode_example(np.full((8, 16, 3), shade, np.uint8), np.ones((8, 16), np.uint8)))
    acceptance = np.array([1.0, 0.25, 0.5])
    stream = build_target_dataset(
        path, modalities=1, height=8, width=16, groups=1, views=1, seed=3, scale_range=(1.0, 1.1),
        zoom_range=(0.5, 1.0), flip_probability=0.5, acceptance=acceptance)
    draws = 200
    seen = [int(np.argmin([abs(float(batch["modality1"][0, 0, 4, 8, 0]) - s) for s in shades]))
            for batch in stream.take(draws)]
    shares = np.bincount(seen, minlength=3) / draws
    # p_i ∝ acceptance_i: 0.571, 0.143, 0.286 (binomial standard deviation at most 0.035; the
    # stream is seeded, so the draw is the same every run).
    np.testing.assert_allclose(shares, acceptance / acceptance.sum(), atol=0.08)


def test_importance_weights_for_other_images_are_refused(tmp_path):
    a = _write_records(tmp_path / "a.tfrecords", 3)
    b = _write_records(tmp_path / "b.tfrecords", 4)
    path = str(tmp_path / "weights.json")
    importance.write_weights(path, [a], [3], np.ones((3, 7)), [f"c{i}" for i in range(7)])
    assert len(importance.read_weights(path, [a])) == 3
    with pytest.raises(importance.ImportanceWeightsError, match="weights.json.*other images.*b.tfrecords"):
        importance.read_weights(path, [b])
    # The same name and size, other images (before: accepted): the contents are compared too.
    (tmp_path / "other").mkdir()
    other = _write_records(tmp_path / "other" / "a.tfrecords", 3, style="target")
    assert os.path.getsize(other) == os.path.getsize(a)
    with pytest.raises(importance.ImportanceWeightsError, match="same names and sizes, but other contents"):
        importance.read_weights(path, [other])
    # The same files in another order are other records: said so (before: "same names and sizes
    # needed", which they had; helper 173).
    both = str(tmp_path / "both.json")
    importance.write_weights(both, [a, b], [3, 4], np.ones((7, 7)), [f"c{i}" for i in range(7)])
    with pytest.raises(importance.ImportanceWeightsError, match=r"\(the same files in another order\); list "
                                                                r"target_data in the weights' order, or run"):
        importance.read_weights(both, [b, a])
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(UserInputError, match="broken.json"):
        importance.read_weights(str(tmp_path / "broken.json"), [a])
    # Fields of the wrong type, edited by hand (before: ValueError, TypeError or AttributeError).
    content = json.loads(open(path).read())
    edits = {"four": (lambda c: c["files"][0].update(records="four"), "files entry 0 has 'records' 'four'"),
             "null": (lambda c: c["files"][0].update(records=None), "files entry 0 has 'records' None"),
             "names": (lambda c: c.update(files=["x"]), "its 'files' must be a list of objects"),
             "words": (lambda c: c.update(probabilities=["x"]), "its 'probabilities' must be a list of numbers"),
             # Weights for fewer records than the file holds, the counts agreeing (before: a 63-line
             # TensorFlow traceback at the first step; helper 139).
             "fewer": (lambda c: c.update(files=[dict(c["files"][0], records=2)], probabilities=[0.5, 0.5]),
                       f"holds weights for 2 records of {os.path.basename(a)}, which has 3; run ssma-importance-"
                       "weights again")}
    for name, (edit, message) in edits.items():
        changed = json.loads(json.dumps(content))
        edit(changed)
        (tmp_path / f"{name}.json").write_text(json.dumps(changed))
        with pytest.raises(importance.ImportanceWeightsError, match=re.escape(message)):
            importance.read_weights(str(tmp_path / f"{name}.json"), [a])


# --- Synthetic domain shift ----------------------------------------------------------------


def test_target_style_keeps_scene_labels_and_depth_and_changes_the_look():
    source = generate_sample(0, 3, H, W)
    target = generate_sample(0, 3, H, W, style="target")
    np.testing.assert_array_equal(source.label, target.label)
    np.testing.assert_array_equal(source.depth_jet, target.depth_jet)
    assert np.abs(source.rgb.astype(int) - target.rgb.astype(int)).mean() > 20
    assert target.rgb.mean() < source.rgb.mean()  # dusk
    with pytest.raises(ValueError, match="style"):
        generate_sample(0, 3, H, W, style="night")


# --- The trainer ---------------------------------------------------------------------------


def _write_records(path, count, style="source", with_labels=True, fusion=True, label_feature=True, extra=()):
    """`count` synthetic records (without a `label` feature if not `label_feature`), then `extra`."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        for index in range(count):
            sample = generate_sample(0, index, H, W, style=style)
            label = sample.label if with_labels else np.zeros((H, W), np.uint8)
            depth = sample.depth_jet[..., ::-1].copy() if fusion else None
            writer.write(encode_example(sample.rgb[..., ::-1].copy(), label if label_feature else None, depth))
        for record in extra:
            writer.write(record)
    return str(path)


def _config(tmp_path, *, model="AdapNet_pp", adaptation=None, **extra):
    source = tmp_path / "source.tfrecords"
    target = tmp_path / "target.tfrecords"
    if not source.exists():
        _write_records(source, 6)
        _write_records(target, 5, style="target")
    values = {
        "model": model, "num_classes": 7, "height": H, "width": W, "batch_size": 2,
        "max_iteration": 4, "learning_rate": 1e-3, "checkpoint": str(tmp_path / "run"),
        "train_data": str(source), "target_data": str(target), "target_val_data": str(target),
        # Low thresholds: a few steps of a tiny model are not confident, and the test wants labels.
        "adaptation": ({"target_groups": 1, "views": 3, "ema_every": 2, "threshold_lower": 0.0,
                        "threshold_upper": 0.1} if adaptation is None else adaptation),
        "dataset": "synthetic",
        "save_step": 2, "skip_step": 1, "seed": 0,
    }
    values.update(extra)
    return config_from_dict(values, source="adapt.config")


def test_config_section_defaults_and_errors(tmp_path):
    config = _config(tmp_path, adaptation={})
    defaults = config.adaptation
    assert defaults == AdaptationConfig()
    assert (defaults.target_weight, defaults.views, defaults.ema_decay, defaults.ema_every,
            defaults.threshold_upper, defaults.threshold_lower, defaults.learning_rate) == (
        5.0, 4, 0.99, 100, 0.75, 0.2, 2.5e-4)
    assert config_from_dict(config.to_dict(), source="adapt.config") == config
    with pytest.raises(ConfigError, match="target_data.*missing"):
        _config(tmp_path, target_data=None)
    with pytest.raises(ConfigError, match="adaptation.*'views'"):
        _config(tmp_path, adaptation={"views": 0})
    with pytest.raises(ConfigError, match="adaptation.*'mehtod'"):
        _config(tmp_path, adaptation={"mehtod": "abn"})
    with pytest.raises(ConfigError, match="recalibrate_batch_norm.*source images"):
        _config(tmp_path, adaptation={}, recalibrate_batch_norm=10)


@pytest.fixture
def tiny_model(monkeypatch):
    from ssma_tf.models import factory

    monkeypatch.setattr(training.trainer, "build_model", build_tiny_model)
    monkeypatch.setattr(factory, "build_model", build_tiny_model)  # ssma-importance-weights builds one


def _tags(log_dir):
    tags = set()
    for name in os.listdir(log_dir):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(log_dir, name)):
            tags.update(v.tag for v in event.summary.value)
    return tags


def test_sac_warns_that_it_reads_no_encoder_lr_multiplier_and_logs_one_rate(tmp_path, tiny_model):
    """SAC's optimizer has one rate (before: no warning, and the log said the encoders trained at 0.1x)."""
    with pytest.warns(ConfigWarning) as caught:
        config = _config(tmp_path, encoder_lr_multiplier=0.1, max_iteration=1)
    assert [str(w.message) for w in caught] == [
        "adapt.config: key 'encoder_lr_multiplier' not used by adaptation method sac, whose optimizer (sgd) trains "
        "every variable at adaptation.learning_rate (0.00025)"]
    lines = []
    adaptation.AdaptationTrainer(config, log=lines.append).train()
    assert not [line for line in lines if "encoders" in line], lines
    # ABN trains with the released optimizer, which reads it.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)
        _config(tmp_path, adaptation={"method": "abn"}, encoder_lr_multiplier=0.1)


def test_abn_on_an_ssma_with_frozen_experts_is_warned_of(tmp_path):
    """Frozen batch norms keep the source's statistics whatever ABN runs through them (helper 93:
    only the fusion's and the decoder's moved, without a word)."""
    with pytest.warns(ConfigWarning) as caught:
        _config(tmp_path, model="SSMA", adaptation={"method": "abn"})
    assert [str(w.message) for w in caught] == [
        "adapt.config: adaptation method abn runs target batches through the batch norms, but the experts are frozen "
        "(freeze_experts: true, SSMA's default): their encoders keep the source's statistics and only the fusion "
        "and decoder see the target; set freeze_experts: false to adapt them"]
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)
        _config(tmp_path, model="SSMA", adaptation={"method": "abn"}, freeze_experts=False)
        _config(tmp_path, model="SSMA", adaptation={"method": "abn"}, fusion="stacking")  # trains its encoder
        _config(tmp_path, model="SSMA", freeze_experts=False)  # SAC freezes the statistics itself
    # SAC trains every weight and scale: frozen experts do not adapt at all (helper 116: 0 of
    # 678 encoder variables trained, without a word).
    with pytest.warns(ConfigWarning) as caught:
        _config(tmp_path, model="SSMA", adaptation={})
    assert [str(w.message) for w in caught] == [
        "adapt.config: adaptation method sac trains every weight and batch-norm scale and offset, but the experts "
        "are frozen (freeze_experts: true, SSMA's default): their encoders do not adapt, only the fusion and "
        "decoder; set freeze_experts: false to adapt them"]


def test_the_student_views_preview_shows_the_modality_the_expert_reads(tmp_path, tiny_model, monkeypatch):
    """An AdapNet++ of modality 2 (helper 93: TensorBoard showed modality 1, which it does not read)."""
    flat = np.zeros((H, W, 3), np.uint8) + np.array([10, 200, 30], np.uint8)  # BGR, as records hold
    with tf.io.TFRecordWriter(str(tmp_path / "flat.tfrecords")) as writer:
        for index in range(3):
            sample = generate_sample(0, index, H, W, style="target")
            writer.write(encode_example(sample.rgb[..., ::-1].copy(), sample.label, flat))
    shown = {}
    monkeypatch.setattr(adaptation, "write_images", lambda tag, images, *a, **k: shown.setdefault(tag, images))
    config = _config(tmp_path, input_modality="modality2", target_data=str(tmp_path / "flat.tfrecords"),
                     adaptation={"target_groups": 1, "views": 2, "photometric": "none"}, max_iteration=1,
                     log_dir=str(tmp_path / "logs"))
    adaptation.AdaptationTrainer(config, log=lambda line: None).train()
    views = np.asarray(shown["adaptation/student_views"])
    assert views.shape[1:] == (H, W, 3) and (views == [30, 200, 10]).all()  # shown as RGB


def test_the_hue_jitter_is_at_most_the_colour_jitter_as_released(tmp_path, tiny_model, monkeypatch):
    """Helper 199: `jitter: 0` still turned the hue of half the student's views by up to 0.1 of a
    turn; the released code's hue strength is min(0.1, RND_JITTER)."""
    real, given = adaptation.colour_jitter, []
    monkeypatch.setattr(adaptation, "colour_jitter", lambda images, strength, probability, seed, hue: (
        given.append((strength, hue)) or real(images, strength, probability, seed, hue=hue)))
    for jitter, hue in ((0.0, 0.0), (0.05, 0.05), (0.4, 0.1)):
        config = _config(tmp_path, adaptation={"target_groups": 1, "views": 2, "jitter": jitter}, max_iteration=1,
                         checkpoint=str(tmp_path / f"run_{jitter}"))
        adaptation.AdaptationTrainer(config, log=lambda line: None).train()
        assert given[-1] == (jitter, hue)


def test_the_target_stream_starts_afresh_where_a_resume_cannot_take_up_its_position(tmp_path, tiny_model):
    """As on several replicas, whose checkpoints hold no stream position: the target images are
    shuffled anew with the source's (helper 93: the run's first target views again)."""

    class NoPositions(adaptation.AdaptationTrainer):
        saves_data_position = property(lambda self: False, lambda self, value: None)

    config = _config(tmp_path, adaptation={"target_groups": 1, "views": 2, "ema_every": 1, "threshold_lower": 0.0,
                                           "threshold_upper": 0.1}, max_iteration=6, save_step=3)
    first = next(NoPositions(config, log=lambda line: None).target_iterator)
    NoPositions(config, log=lambda line: None).train(max_steps=3)
    resumed = NoPositions(config, log=lambda line: None)
    assert int(resumed.step.numpy()) == 3 and resumed.stream_seed_offset == 3
    again = next(resumed.target_iterator)
    assert not np.array_equal(first["to_base"].numpy(), again["to_base"].numpy())


def test_a_target_stream_restarted_on_resume_is_shuffled_anew(tmp_path, tiny_model):
    """Helper 261: a resume on target records converted again restarted the target stream with
    the run's first images and views (its seed offset was fixed before the restore)."""
    config = _config(tmp_path, max_iteration=6, save_step=3)
    adaptation.AdaptationTrainer(config, log=lambda line: None).train(max_steps=3)
    _write_records(tmp_path / "target.tfrecords", 6, style="target")
    lines = []
    resumed = adaptation.AdaptationTrainer(config, log=lines.append)
    assert any("at step 3 (input streams restarted: files rewritten since ckpt-3" in line for line in lines), lines
    fresh = adaptation.AdaptationTrainer(dataclasses.replace(config, checkpoint=str(tmp_path / "fresh")),
                                         log=lambda line: None)
    assert resumed.stream_seed_offset == 3
    again, first = (next(trainer.target_iterator) for trainer in (resumed, fresh))
    assert not np.array_equal(first["to_base"].numpy(), again["to_base"].numpy())
    assert resumed.train().final_step == 6


def test_a_sac_run_resumed_with_the_other_optimizer_is_refused_naming_it(tmp_path, tiny_model):
    """Before: every checkpoint was "unreadable" (the other optimizer's slots), and the advice was
    to move a good run away (helper 139)."""
    from ssma_tf.checkpoints import CheckpointError

    section = {"target_groups": 1, "views": 2, "ema_every": 1, "threshold_lower": 0.0, "threshold_upper": 0.1}
    adaptation.AdaptationTrainer(_config(tmp_path, adaptation=section, max_iteration=1),
                                 log=lambda line: None).train()
    with pytest.raises(CheckpointError, match=rf"^{tmp_path / 'run'} holds a run with adaptation.optimizer: sgd \(its "
                                              r"config.yaml\), but the config adapt.config trains with adaptation."
                                              r"optimizer: adam; give another checkpoint folder for a new run$"):
        adaptation.AdaptationTrainer(_config(tmp_path, adaptation={**section, "optimizer": "adam"}, max_iteration=2),
                                     log=lambda line: None)


@pytest.mark.parametrize("model", ["AdapNet_pp", "SSMA"])
def test_adaptation_trains_resumes_freezes_statistics_and_logs(tmp_path, tiny_model, model):
    extra = {"aux_heads": True} if model == "SSMA" else {}
    config = _config(tmp_path, model=model, **extra)
    trainer = adaptation.AdaptationTrainer(config, log=lambda line: None)
    statistics = [v for v in trainer.model.non_trainable_weights if "moving" in v.path]
    assert statistics
    before = [v.numpy().copy() for v in statistics]
    result = trainer.train(max_steps=2)
    assert result.final_step == 2 and all(np.isfinite(result.losses))
    for variable, value in zip(statistics, before):
        np.testing.assert_array_equal(variable.numpy(), value)  # frozen batch-norm statistics
    assert int(trainer.mean_teacher.updates.numpy()) == 1  # every 2 steps
    prior = trainer.prior.means.numpy().copy()
    assert not np.allclose(prior, 1e-3)

    resumed = adaptation.AdaptationTrainer(config, log=lambda line: None)
    assert int(resumed.step.numpy()) == 2
    np.testing.assert_array_equal(resumed.prior.means.numpy(), prior)
    final = resumed.train()
    assert final.final_step == 4 and final.weights is not None
    assert {"loss/source", "loss/target", "adaptation/pseudo_label_coverage",
            "adaptation/class_prior/car", "adaptation/class_coverage/road",
            "adaptation/pseudo_label_accuracy", "adaptation/target_val_mIoU",
            "adaptation/pseudo_labels", "adaptation/student_views"} <= _tags(config.log_dir)
    assert not {tag for tag in _tags(config.log_dir) if tag.endswith("/void")}  # never a pseudo-label


def test_a_sac_step_feeds_the_class_means_and_pooled_pseudo_labels_to_the_focal_loss(tmp_path, monkeypatch):
    """The step's wiring, run eagerly with recording tiny models: the running class means follow
    the teacher's mean probability, the pseudo-labels come from the pooled teacher probabilities
    with the updated means and the configured thresholds, and the loss uses the configured focal
    power and target weight."""
    calls, pooled = [], []

    class Recording(TinySegmenter):
        def call(self, inputs, training=None, return_all=False):
            out = super().call(inputs, training=training, return_all=return_all)
            if tf.executing_eagerly():  # not while Keras traces the model symbolically
                calls.append((self.name, np.array(out["softmax"] if return_all else out)))
            return out

    names = iter(["student", "teacher"])

    def build(config):
        model = Recording(config.num_classes, fusion=config.is_fusion, name=next(names))
        model(np.zeros((1, H, W, 3), np.float32))
        return model

    def recording_pool(probs, to_base, views):
        result = pool_views(probs, to_base, views)
        pooled.append((np.array(probs), result))
        return result

    monkeypatch.setattr(training.trainer, "build_model", build)
    monkeypatch.setattr(adaptation, "pool_views", recording_pool)
    settings = {"target_groups": 1, "views": 3, "photometric": "none", "threshold_lower": 0.0,
                "threshold_upper": 0.9, "focal_power": 2.0, "target_weight": 3.0}
    trainer = adaptation.AdaptationTrainer(_config(tmp_path, adaptation=settings), log=lambda line: None)
    # A teacher with opinions: varied classes, never void (the untrained head predicts one class).
    head = trainer.teacher.head
    head.kernel.assign(np.random.default_rng(0).normal(0, 3, head.kernel.shape).astype(np.float32))
    head.bias.assign(np.array([-10.0] + [0.0] * 6, np.float32))
    calls.clear()
    loss, terms, preview, _ = one_eager_step(trainer)
    assert [c[0] for c in calls] == ["teacher", "student", "student"]
    teacher_probs, student_probs = calls[0][1], calls[2][1]
    ((pool_input, (pooled_probs, _)),) = pooled
    np.testing.assert_array_equal(pool_input, teacher_probs)
    # A fresh prior is seeded with the first batch's mean: m = 0.99 · mean + 0.01 · mean.
    means = teacher_probs.mean(axis=(0, 1, 2))
    np.testing.assert_allclose(trainer.prior.means.numpy(), means, rtol=1e-5)
    labels, confidence = pseudo_labels.pseudo_labels(pooled_probs, means, upper=0.9, lower=0.0)
    labels = labels.numpy()
    assert (labels >= 0).any() and (labels < 0).any()
    np.testing.assert_array_equal(preview["ignored"].numpy(), (labels < 0).astype(np.uint8))
    np.testing.assert_array_equal(preview["pseudo"].numpy(), np.maximum(labels, 0))
    target = float(pseudo_labels.consistency_loss(student_probs, labels, confidence, means, power=2.0))
    assert float(terms["target"]) == pytest.approx(target, rel=1e-5)
    # The loss optimised: the weight decay is in it, as in the other trainers (it was logged as a
    # term beside a loss that left it out).
    assert float(loss) == pytest.approx(float(terms["source"]) + float(terms["weight_decay"]) + 3.0 * target, rel=1e-5)


def test_abn_baseline_moves_statistics_toward_the_target(tmp_path, tiny_model):
    config = _config(tmp_path, adaptation={"method": "abn"}, max_iteration=2)
    trainer = adaptation.AdaptationTrainer(config, log=lambda line: None)
    plain = training.Trainer(_config(tmp_path, adaptation=False, target_data=None,
                                     target_val_data=None, checkpoint=str(tmp_path / "plain_run")),
                             log=lambda line: None)
    trainer.train()
    plain.train()
    # Same seed, same source batches: only the target passes differ.
    moved = [not np.allclose(a.numpy(), b.numpy())
             for a, b in zip(trainer.model.non_trainable_weights, plain.model.non_trainable_weights)
             if "moving_mean" in a.path]
    assert moved and any(moved)


def test_bad_target_data_is_a_one_line_error(tmp_path, tiny_model):
    unimodal = _write_records(tmp_path / "rgb_only.tfrecords", 2, style="target", fusion=False)
    config = _config(tmp_path, model="SSMA", target_data=unimodal, aux_heads=True)
    with pytest.raises(target.TargetDataError, match="rgb_only.tfrecords: target_data holds 1 modality but the "
                       "model reads its 2 modalities"):
        adaptation.AdaptationTrainer(config, log=lambda line: None)
    # Files without records (helper 116: TensorFlow's "End of sequence" at the first step, SAC and ABN).
    empty = tmp_path / "empty.tfrecords"
    with tf.io.TFRecordWriter(str(empty)):
        pass
    for method in ("sac", "abn"):
        with pytest.raises(target.TargetDataError,
                           match=r"empty\.tfrecords: key 'target_data': the records hold no image$"):
            adaptation.AdaptationTrainer(_config(tmp_path, target_data=str(empty), adaptation={"method": method}),
                                         log=lambda line: None)
    # A file cut inside a record's header (helper 259: trained without its last record, without a word).
    from ssma_tf.data.records import RecordError

    stray = tmp_path / "stray.tfrecords"
    stray.write_bytes(pathlib.Path(_write_records(tmp_path / "whole.tfrecords", 2, style="target")).read_bytes()
                      + b"\x05\x00\x00")
    with pytest.raises(RecordError, match=rf"^{stray}: ends with 3 stray bytes after record 1: the file was cut short"):
        adaptation.AdaptationTrainer(_config(tmp_path, target_data=str(stray)), log=lambda line: None)
    weights = tmp_path / "weights.json"
    importance.write_weights(str(weights), [unimodal], [2], np.ones((2, 7)), ["c"] * 7)
    with pytest.raises(importance.ImportanceWeightsError, match="other images"):
        adaptation.AdaptationTrainer(_config(tmp_path, importance_weights=str(weights)),
                                     log=lambda line: None)


def test_target_images_need_no_label_and_a_damaged_one_is_named(tmp_path, tiny_model, monkeypatch):
    from ssma_tf.data.records import RecordError

    short = short_fusion_record(H, W)  # frames well; found only when a step decodes it
    target = _write_records(tmp_path / "unlabeled_target.tfrecords", 2, style="target", label_feature=False,
                            extra=[short] * 6)
    config = _config(tmp_path, target_data=target, target_val_data=None)
    with pytest.raises(RecordError, match="modality1 holds 100 bytes") as error:
        adaptation.train(config, log=lambda line: None)
    # Not record 0, which has no label: target images need none.
    assert (error.value.path, error.value.index) == (target, 2)
    # Labels of target_val_data without a class pixel: warned of in the evaluation's words, as
    # nothing trains on them (helper 261: "training on these labels learns nothing").
    void = _write_records(tmp_path / "void_val.tfrecords", 2, style="target", with_labels=False)
    lines = []
    adaptation.AdaptationTrainer(_config(tmp_path, target_val_data=void, checkpoint=str(tmp_path / "void_run")),
                                 log=lines.append)
    assert [line for line in lines if "target_val_data: no label pixel has a class id" in line
            and "every metric leaves them out" in line], lines
    # target_val_data needs labels: named before the model is built (helper 199: after it, and after
    # `initialize` was loaded), with its key (helper 261: the file alone).
    unlabeled = _write_records(tmp_path / "unlabeled_val.tfrecords", 2, style="target", label_feature=False)
    monkeypatch.setattr(training.trainer, "build_model", lambda *a, **k: pytest.fail("the model was built"))
    with pytest.raises(RecordError, match=rf"^{unlabeled}, record 0: key 'target_val_data': has no label"):
        adaptation.AdaptationTrainer(_config(tmp_path, target_val_data=unlabeled), log=lambda line: None)
    # Cut inside a record's header: before, named by the evaluation's pipeline, after the model.
    stray = tmp_path / "stray_val.tfrecords"
    stray.write_bytes(pathlib.Path(_write_records(tmp_path / "whole_val.tfrecords", 2, style="target")).read_bytes()
                      + b"\x05\x00\x00")
    with pytest.raises(RecordError, match=rf"^{stray}: key 'target_val_data': ends with 3 stray bytes after record 1"):
        adaptation.AdaptationTrainer(_config(tmp_path, target_val_data=str(stray)), log=lambda line: None)


def test_importance_weights_check_the_target_files_as_training_does_before_the_model(tmp_path, monkeypatch):
    """A later file of fewer modalities is named before the baseline is built, with its key (helper
    272: after the load, by a check that also refused an empty file that training takes)."""
    from ssma_tf.models import factory

    config = _config(tmp_path, model="SSMA")
    unimodal = _write_records(tmp_path / "rgb_only.tfrecords", 2, style="target", fusion=False)
    monkeypatch.setattr(factory, "build_model", lambda *a, **k: pytest.fail("the model was built"))
    with pytest.raises(target.TargetDataError, match=rf"^{unimodal}: target_data holds 1 modality but the model "
                       "reads its 2 modalities"):
        target.importance_weights(config, str(tmp_path), [*config.target_data, unimodal], str(tmp_path / "w.json"))
    empty = tmp_path / "empty.tfrecords"
    with tf.io.TFRecordWriter(str(empty)):
        pass
    with pytest.raises(target.TargetDataError, match="key 'target_data': the records hold no image"):
        target.importance_weights(config, str(tmp_path), [str(empty)], str(tmp_path / "w.json"))
    assert not (tmp_path / "w.json").exists()


@pytest.mark.parametrize("model", ["AdapNet_pp", "SSMA"])
def test_importance_weights_command_writes_weights_the_trainer_reads(tmp_path, tiny_model, model):
    from ssma_tf.cli import importance_weights

    config = _config(tmp_path, model=model, max_iteration=1, adaptation={"method": "abn"},
                     **({"freeze_experts": False} if model == "SSMA" else {}))
    adaptation.AdaptationTrainer(config, log=lambda line: None).train()
    path = tmp_path / "weights.json"
    run = importance_weights.main(["-c", str(tmp_path / "run" / "config.yaml"), "-o", str(path),
                                   "--checkpoint", str(tmp_path / "run")])
    assert run == 0
    content = json.loads(path.read_text())
    assert len(content["probabilities"]) == 5 and abs(sum(content["probabilities"]) - 1) < 1e-9
    # An empty file among the target records: written with no records, as an adaptation run takes
    # the set (helper 272: refused as "holds no records", after the baseline was loaded).
    empty = tmp_path / "empty_target.tfrecords"
    with tf.io.TFRecordWriter(str(empty)):
        pass
    with_empty = tmp_path / "with_empty.json"
    target_files = list(config.target_data)
    assert importance_weights.main(["-c", str(tmp_path / "run" / "config.yaml"), "-o", str(with_empty),
                                    "--checkpoint", str(tmp_path / "run"),
                                    "--target_data", str(empty), *target_files]) == 0
    written = json.loads(with_empty.read_text())
    assert [entry["records"] for entry in written["files"]] == [0, 5]
    assert written["probabilities"] == content["probabilities"]
    sac = _config(tmp_path, model=model, importance_weights=str(path), max_iteration=1,
                  checkpoint=str(tmp_path / "sac"))
    trainer = adaptation.AdaptationTrainer(sac, log=lambda line: None)
    assert trainer._acceptance is not None and trainer._acceptance.max() == 1.0
    # The run's first line names the method and its data (it read as a supervised run's).
    assert trainer._method_text() == (f"; adaptation (sac) to target_data {', '.join(sac.target_data)}, drawn by "
                                      f"{path}, SGD at a constant 0.00025 (adaptation.optimizer, "
                                      "adaptation.learning_rate)")
    trainer.train()
    # The optimizer the section names (before: "SGD" whatever it said).
    trainer.adapt = dataclasses.replace(trainer.adapt, optimizer="adam")
    assert trainer._method_text().endswith(", Adam at a constant 0.00025 (adaptation.optimizer, "
                                           "adaptation.learning_rate)")


@pytest.mark.parametrize("flags, message", [
    (["-o", "{tmp}/file/weights.json"], "--output {tmp}/file/weights.json: {tmp}/file is a file, not a folder"),
    (["-o", "{tmp}", ], "--output {tmp} is a folder; give a file name"),
    (["-o", "{tmp}/w.json", "--batch_size", "0"], "--batch_size must be >= 1, got 0"),
    # Before: replaced without a word, though a SAC config may point to it.
    (["-o", "{tmp}/file"], "--output {tmp}/file exists; pass --overwrite to replace it"),
    # Before: no --set, as every other command that reads a config has.
    (["-o", "{tmp}/w.json", "--set", "height=30"], "{tmp}/run.config with --set height=30: key 'height': must be a "
                                                  "multiple of 16, got 30"),
    # Before: taken and not read (helper 150).
    (["-o", "{tmp}/w.json", "--set", "batch_size=16"], "--set batch_size: the prediction batch here is --batch_size; "
                                                       "give --batch_size N"),
    # Before: the flag's records read, the --set's dropped without a word.
    (["-o", "{tmp}/w.json", "--target_data", "a.tfrecords", "--set", "target_data=b.tfrecords"],
     "--target_data and --set target_data=... both give the target records; give one"),
])
def test_importance_weights_checks_its_flags_before_predicting(tmp_path, monkeypatch, capsys, flags, message):
    from ssma_tf.cli import importance_weights

    from ssma_tf.models import factory

    monkeypatch.setattr(factory, "build_model", lambda config: pytest.fail("the model was built"))
    config = _config(tmp_path, max_iteration=1)
    path = tmp_path / "run.config"
    path.write_text(yaml.safe_dump(config.to_dict()))
    (tmp_path / "file").write_text("")
    flags = [flag.format(tmp=tmp_path) for flag in flags]
    assert importance_weights.main(["-c", str(path), "--checkpoint", str(tmp_path)] + flags) == 2
    assert capsys.readouterr().err == f"error: {message.format(tmp=tmp_path)}\n"


def test_importance_weights_reads_only_the_keys_it_needs(tmp_path, monkeypatch, capsys):
    """Before: a config without train_data or checkpoint was refused ("train needs it"), though
    the command trains nothing and --checkpoint names the weights (helper 139)."""
    from ssma_tf.cli import importance_weights
    from ssma_tf.models import factory

    class Built(Exception):
        pass

    def build(config):
        raise Built(config.checkpoint)

    monkeypatch.setattr(factory, "build_model", build)
    values = {key: value for key, value in _config(tmp_path, max_iteration=1).to_dict().items()
              if key not in ("train_data", "checkpoint", "max_iteration", "learning_rate", "batch_size")}
    path = tmp_path / "target_only.config"
    path.write_text(yaml.safe_dump(values))
    output = ["-o", str(tmp_path / "w.json")]
    assert importance_weights.main(["-c", str(path)] + output) == 2
    assert capsys.readouterr().err == (f"error: {path}: no weights to predict with; give --checkpoint (the baseline's "
                                       "run folder or weights file), or initialize or checkpoint in the config\n")
    with pytest.raises(Built):
        importance_weights.main(["-c", str(path), "--checkpoint", str(tmp_path)] + output)
    # `--set checkpoint=` comes before the config's initialize (helper 150: checked, then not read).
    def predicted_with(config, checkpoint, *args, **kwargs):
        raise Built(checkpoint)

    monkeypatch.setattr(target, "importance_weights", predicted_with)
    (tmp_path / "baseline").mkdir()
    path.write_text(yaml.safe_dump(dict(values, initialize=str(tmp_path))))
    with pytest.raises(Built, match="baseline"):
        importance_weights.main(["-c", str(path), "--set", f"checkpoint={tmp_path / 'baseline'}"] + output)
    with pytest.raises(Built) as built:
        importance_weights.main(["-c", str(path)] + output)
    assert str(built.value) == str(tmp_path)


_MIRRORED = """
from ssma_tf import training
from ssma_tf.adaptation import trainer as adaptation
from ssma_tf.config import load_config
from tests.training_helpers import build_tiny_model
training.trainer.build_model = build_tiny_model
trainer = adaptation.AdaptationTrainer(load_config(sys.argv[1], "train"), strategy=strategy)
result = trainer.train()
assert_replicas_agree(trainer.model, trainer.teacher)
print("OK", result.final_step, trainer.strategy.num_replicas_in_sync)
"""


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    import yaml

    config = _config(tmp_path, max_iteration=2, adaptation={"target_groups": 2, "views": 2})
    path = tmp_path / "mirrored.config"
    path.write_text(yaml.safe_dump(config.to_dict()))
    run = run_on_two_logical_cpus(_MIRRORED, str(path))
    assert run.returncode == 0, run.stderr[-3000:]
    assert "OK 2 2" in run.stdout


_ONE_SGD_STEP = """
from ssma_tf.adaptation import trainer as adaptation
from ssma_tf.config.adaptation import AdaptationConfig
with strategy.scope():
    optimizer = adaptation.make_adaptation_optimizer(AdaptationConfig(learning_rate=0.1))
    variable = tf.Variable([0.0])
    optimizer.build([variable])

@tf.function
def step():
    def replica_step():
        # Replica r's gradient of its share of the loss is (r + 1) / 2: the SAC step divides by
        # the replicas and sums, so the global gradient is the mean, 1.5.
        replica = tf.distribute.get_replica_context().replica_id_in_sync_group
        gradient = tf.cast(replica + 1, tf.float32)[None] / 2.0
        gradient = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, gradient)
        optimizer.apply([gradient], [variable])
    strategy.run(replica_step)

step()
print("VALUE", float(strategy.experimental_local_results(variable)[0].numpy()[0]))
"""


def test_adaptation_optimizer_applies_the_all_reduced_gradient_once(tmp_path):
    # The SAC step all-reduces its gradients itself; an optimizer that summed them again would
    # step `replicas` times too far (SGD) under MirroredStrategy.
    run = run_on_two_logical_cpus(_ONE_SGD_STEP)
    assert run.returncode == 0, run.stderr[-3000:]
    value = float(run.stdout.split("VALUE")[-1])
    np.testing.assert_allclose(value, -0.1 * 1.5, rtol=1e-6)


def test_adaptation_optimizer_is_sgd_or_adam_with_loss_scaling_under_float16():
    sgd = adaptation.make_adaptation_optimizer(AdaptationConfig())
    assert isinstance(sgd, keras.optimizers.SGD) and sgd.momentum == 0.9
    np.testing.assert_allclose(float(sgd.learning_rate), 2.5e-4)
    adam = adaptation.make_adaptation_optimizer(AdaptationConfig(optimizer="adam", learning_rate=1e-4))
    assert isinstance(adam, keras.optimizers.Adam) and not adam.aggregate_gradients
    mixed = adaptation.make_adaptation_optimizer(AdaptationConfig(), mixed_precision="mixed_float16")
    assert isinstance(mixed, keras.optimizers.LossScaleOptimizer)
    assert isinstance(mixed.inner_optimizer, keras.optimizers.SGD)
    assert not mixed.inner_optimizer.aggregate_gradients
    bfloat = adaptation.make_adaptation_optimizer(AdaptationConfig(), mixed_precision="mixed_bfloat16")
    assert isinstance(bfloat, keras.optimizers.SGD)


def test_importance_counts_feed_the_model_the_modality_it_was_trained_on(tmp_path):
    from ssma_tf.adaptation.target import predicted_class_counts

    path = str(tmp_path / "two.tfrecords")
    with tf.io.TFRecordWriter(path) as writer:
        for _ in range(2):
            dark, bright = np.zeros((H, W, 3), np.uint8), np.full((H, W, 3), 255, np.uint8)
            writer.write(encode_example(dark, np.zeros((H, W), np.uint8), bright))

    def model(inputs, training=False):
        # Class 1 where the image is bright, class 2 where it is dark.
        bright = tf.cast(inputs[..., 0] > 127.0, tf.int32)
        return tf.one_hot(2 - bright, 3)

    common = dict(height=H, width=W, num_classes=3, batch_size=2)
    depth = predicted_class_counts(model, [path], modalities=2, input_modality="modality2", **common)
    np.testing.assert_array_equal(depth, [[0, H * W, 0]] * 2)
    rgb = predicted_class_counts(model, [path], modalities=2, **common)
    np.testing.assert_array_equal(rgb, [[0, 0, H * W]] * 2)
    with pytest.raises(ValueError, match="modality2"):
        predicted_class_counts(model, [path], modalities=1, input_modality="modality2", **common)
    # A damaged record after good ones (ssma-importance-weights): its file and index, not
    # TensorFlow's reshape traceback (helper 256).
    from ssma_tf.data.records import RecordError

    damaged = str(tmp_path / "damaged.tfrecords")
    example = tf.train.Example.FromString(encode_example(np.zeros((H, W, 3), np.uint8), None,
                                                         np.zeros((H, W, 3), np.uint8)))
    example.features.feature["modality1"].bytes_list.value[:] = [bytes(100)]
    with tf.io.TFRecordWriter(damaged) as writer:
        for record in [*tf.data.TFRecordDataset(path).as_numpy_iterator(), example.SerializeToString()]:
            writer.write(record)
    with pytest.raises(RecordError, match=rf"^{damaged}, record 2: modality1 holds 100 bytes"):
        predicted_class_counts(model, [damaged], modalities=2, **common)
    # An expert of modality 3 gets modality 3; SSMA over three modalities gets all three.
    three = str(tmp_path / "three.tfrecords")
    dark, bright = np.zeros((H, W, 3), np.uint8), np.full((H, W, 3), 255, np.uint8)
    write_examples(three, [{"modality1": dark, "modality2": dark, "modality3": bright}] * 2)
    third = predicted_class_counts(model, [three], modalities=3, input_modality="modality3", **common)
    np.testing.assert_array_equal(third, [[0, H * W, 0]] * 2)
    fused = predicted_class_counts(lambda inputs, training=False: model(inputs[2]), [three], modalities=3,
                                   fusion=True, **common)
    np.testing.assert_array_equal(fused, [[0, H * W, 0]] * 2)
    # Target records of fewer modalities than SSMA reads: one line naming the file (was ParseExample's traceback).
    from ssma_tf.data.records import RecordError

    with pytest.raises(RecordError, match=r"two.tfrecords, record 0: records lack feature\(s\) \['modality3'\] "
                                          r"\(they hold 2 modalities, the model reads 3\)"):
        predicted_class_counts(model, [path], modalities=3, fusion=True, **common)


def test_target_views_carry_every_modality_with_one_geometry(tmp_path):
    from ssma_tf.adaptation.target import build_target_dataset

    path = str(tmp_path / "three.tfrecords")
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(2):
        second = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        samples.append({"modality1": rng.integers(0, 256, (H, W, 3), dtype=np.uint8), "modality2": second,
                        "modality3": second})  # images without labels
    write_examples(path, samples)
    stream = build_target_dataset(
        path, modalities=3, height=H, width=W, groups=2, views=3, seed=1, scale_range=(1.0, 1.1),
        zoom_range=(0.5, 1.0), flip_probability=0.5, modality2_interpolation=["nearest", "nearest"])
    batch = next(iter(stream))
    assert batch["modality3"].shape == (2, 3, H, W, 3) and not batch["has_label"].numpy().any()
    # The same image with the same interpolation: every view shows it with the same geometry.
    np.testing.assert_array_equal(batch["modality3"].numpy(), batch["modality2"].numpy())
    assert not np.array_equal(batch["modality3"].numpy()[:, 0], batch["modality3"].numpy()[:, 1])


@pytest.mark.parametrize("model", ["SSMA", "AdapNet_pp"])
def test_adaptation_feeds_every_modality_the_model_reads(tmp_path, monkeypatch, model):
    """SSMA over three modalities sees all three views; an expert of modality 3 sees modality 3."""
    calls = []
    monkeypatch.setattr(training.trainer, "build_model", recording_model_builder(calls, H, W))
    samples = []
    for index in range(4):
        scene = generate_sample(0, index, H, W)
        samples.append({"modality1": scene.rgb[..., ::-1], "modality2": scene.depth_jet[..., ::-1],
                        "modality3": np.full((H, W, 3), 40, np.uint8), "label": scene.label})
    source, target = str(tmp_path / "source3.tfrecords"), str(tmp_path / "target3.tfrecords")
    write_examples(source, samples)
    write_examples(target, [{k: v for k, v in s.items() if k != "label"} for s in samples])
    # The expert's student without noise, said (the views' values are checked below).
    extra = ({"modalities": ["rgb", "depth", "thermal"], "aux_heads": True} if model == "SSMA"
             else {"input_modality": "modality3", "adaptation": {
                 "target_groups": 1, "views": 3, "ema_every": 2, "threshold_lower": 0.0, "threshold_upper": 0.1,
                 "photometric": "none"}})
    config = _config(tmp_path, model=model, train_data=source, target_data=target, target_val_data=source,
                     augmentation={"probability": 0.0}, **extra)
    trainer = adaptation.AdaptationTrainer(config, log=lambda line: None)
    calls.clear()
    one_eager_step(trainer)
    teacher = calls[0]  # the teacher on the clean views comes first
    if model == "AdapNet_pp":
        assert all(len(seen) == 1 and set(np.unique(seen[0])) <= {0, 40} for seen in calls)
    else:
        assert len(teacher) == 3 and set(np.unique(teacher[2])) <= {0, 40}
    result = trainer.train(max_steps=2)  # compiled, and with the target validation of 3 modalities
    assert all(np.isfinite(result.losses))


def test_demo_table_reads_sac_and_abn_from_where_sac_starts():
    from ssma_tf.cli.adaptation_demo import _table

    scores = {0: {"source_only": 30.0, "abn_start": 40.0, "abn": 50.0, "sac": 44.0, "target_labels": 80.0},
              1: {"source_only": 32.0, "abn_start": 42.0, "abn": 52.0, "sac": 48.0, "target_labels": 82.0}}
    table = " ".join(_table({"adapnet_pp": scores}, steps=200, adapt_steps=100).split())
    assert "ABN at SAC's start (200) 41.0 [40.0, 42.0] ABN 51.0" in table
    assert "from step 200, 100 more steps: SAC +5.0, ABN +10.0" in table
    # (46 - 31) / (81 - 31) of the gap
    assert "SAC closes 30% of the gap" in table


def test_demo_writes_everything_under_its_output_folder(tmp_path, monkeypatch, capsys):
    """`--output` holds the scenes, every run, config and result (nothing lands in the working
    folder); the children are recorded here instead of run."""
    from ssma_tf.cli import adaptation_demo

    paths = []

    def record(*values):
        for value in values:
            if isinstance(value, (str, pathlib.Path)) and ("/" in str(value) or "\\" in str(value)):
                paths.append(pathlib.Path(value))
            elif isinstance(value, dict):
                record(*value.values())
            elif isinstance(value, (list, tuple)):
                record(*value)

    def train_run(values, config_path, *, step):
        record(values, config_path)

    def evaluate_run(run, result, overrides, *, config_path, step):
        record(run, result, overrides, config_path)
        return {"mIoU": 50.0}

    def run_command(command, args, *, step):
        record(args)

    for name, fake in (("train_run", train_run), ("evaluate_run", evaluate_run), ("run_command", run_command)):
        monkeypatch.setattr(adaptation_demo, name, fake)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "elsewhere" / "demo"
    assert adaptation_demo.main(["--output", str(out), "--seeds", "3", "--models", "adapnet_pp", "ssma"]) == 0
    # Runs, configs and results of both models, the scenes, the importance weights.
    assert {"runs", "configs", "results", "data"} <= {p.relative_to(out).parts[0] for p in paths}
    outside = [p for p in paths if not p.resolve().is_relative_to(out.resolve())]
    assert outside == []
    written = json.loads((out / "results" / "summary.json").read_text())
    assert written["settings"]["seeds"] == [3] and written["settings"]["steps"] == 200
    assert written["command"].endswith("--seeds 3 --models adapnet_pp ssma")
    assert written["results"]["ssma"]["3"]["source_only"] == 50.0
    assert written["machine"]["cores"] == os.cpu_count()  # helper 235: the machine was not recorded
    assert sorted(os.listdir(tmp_path)) == ["elsewhere"]
    assert f"results: {out / 'results' / 'summary.json'}" in capsys.readouterr().out
    # ABN's run keeps its checkpoint at --steps, where SAC starts (helper 91: with --adapt_steps
    # >= 3 x --steps the trainer's newest 3 left it out, and the demo failed after all the training).
    trained = []
    monkeypatch.setattr(adaptation_demo, "train_run", lambda values, config_path, *, step: trained.append(values))
    assert adaptation_demo.main(["--output", str(out), "--seeds", "3", "--models", "adapnet_pp", "--steps", "1",
                                 "--adapt_steps", "3"]) == 0
    abn = next(values for values in trained if values.get("adaptation") == {"method": "abn"})
    assert abn["save_step"] == 1 and abn["keep_checkpoints"] >= 4 + 1  # saves at 1, 2, 3, 4 and an interrupt's
    from ssma_tf.config import config_from_dict

    assert config_from_dict(abn, check_paths=False).keep_checkpoints == abn["keep_checkpoints"]
    # Bad counts are usage errors before any scene or run (before: minutes of training, then a
    # config error).
    for flags, message in ((["--steps", "0"], "--steps must be >= 1, got 0"),
                           (["--adapt_steps", "-1"], "--adapt_steps must be >= 1, got -1"),
                           (["--seeds", "1", "1"], "--seeds names 1 more than once"),
                           (["--seeds", "-1"], "argument --seeds: must be in 0..4294967295, got -1")):
        trained.clear()
        with pytest.raises(SystemExit):
            adaptation_demo.main(["--output", str(out), *flags])
        assert message in capsys.readouterr().err and trained == []


def test_the_supervised_trainer_refuses_an_adaptation_section(tmp_path):
    """Before: `training.train` of an adaptation config trained on the source alone (helper 138)."""
    from ssma_tf import training

    with pytest.raises(ConfigError, match=r"key 'adaptation': is set, but Trainer trains without it: train with "
                                          r"ssma_tf\.adaptation\.trainer\.train"):
        training.Trainer(_config(tmp_path))


def _sac_rate(trainer):
    optimizer = getattr(trainer.optimizer, "inner_optimizer", trainer.optimizer)
    return float(optimizer.learning_rate.numpy())


def test_a_sac_run_resumed_with_another_rate_trains_at_it(tmp_path, tiny_model):
    """Helper 345: the checkpoint's optimizer variable put the old adaptation.learning_rate back,
    while the log, the summaries and the note on resuming gave the new one."""
    section = {"target_groups": 1, "views": 2, "ema_every": 1, "threshold_lower": 0.0, "threshold_upper": 0.1}
    adaptation.AdaptationTrainer(_config(tmp_path, adaptation={**section, "learning_rate": 1e-4}),
                                 log=lambda line: None).train(max_steps=2)
    lines = []
    resumed = adaptation.AdaptationTrainer(_config(tmp_path, adaptation={**section, "learning_rate": 0.05}),
                                           log=lines.append)
    assert any("adaptation.learning_rate 0.0001 -> 0.05" in line for line in lines), lines
    assert _sac_rate(resumed) == pytest.approx(0.05) and resumed.learning_rate() == pytest.approx(0.05)
    assert resumed.train().final_step == 4
    assert _sac_rate(resumed) == pytest.approx(0.05)
    # Resumed with the same rate: the same rate.
    again = adaptation.AdaptationTrainer(_config(tmp_path, adaptation={**section, "learning_rate": 0.05},
                                                 max_iteration=5), log=lambda line: None)
    assert int(again.step.numpy()) == 4 and _sac_rate(again) == pytest.approx(0.05)


def test_a_resumed_sac_run_notes_no_schedule_change(tmp_path, tiny_model):
    """Helper 345: SAC trains at the constant adaptation.learning_rate, yet a resume with another
    max_iteration or learning_rate said the rate followed the (unread) poly schedule."""
    section = {"target_groups": 1, "views": 2, "ema_every": 1, "threshold_lower": 0.0, "threshold_upper": 0.1}
    adaptation.AdaptationTrainer(_config(tmp_path, adaptation=section), log=lambda line: None).train(max_steps=2)
    lines = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        config = _config(tmp_path, adaptation=section, max_iteration=6, learning_rate=0.01, power=0.5)
    adaptation.AdaptationTrainer(config, log=lines.append)
    assert any(line.startswith("resumed from") for line in lines), lines
    assert not [line for line in lines if "schedule" in line], lines
    # ABN trains on the schedule: its notes stay.
    abn_config = _config(tmp_path, adaptation={"method": "abn"}, checkpoint=str(tmp_path / "abn"))
    adaptation.AdaptationTrainer(abn_config, log=lambda line: None).train(max_steps=2)
    lines.clear()
    adaptation.AdaptationTrainer(dataclasses.replace(abn_config, max_iteration=6, learning_rate=0.01),
                                 log=lines.append)
    assert any(line.startswith("note: max_iteration 4 -> 6") for line in lines), lines
    assert any(line.startswith("note: learning_rate 0.001 -> 0.01") for line in lines), lines


def test_importance_weights_read_an_abn_configs_checkpoint_and_a_sac_configs_initialize(tmp_path, monkeypatch,
                                                                                      capsys):
    """Before: the config's initialize whatever the method, so an ABN run's config.yaml predicted with
    the weights ABN started from, with only the "loaded" line telling (helper 348)."""
    from ssma_tf.cli import importance_weights

    class Predicted(Exception):
        pass

    def predicted_with(config, checkpoint, *args, **kwargs):
        raise Predicted(checkpoint)

    monkeypatch.setattr(target, "importance_weights", predicted_with)
    start, run = tmp_path / "start", tmp_path / "abn"
    for method, expected, line in (
            ("abn", run, "weights: the config's checkpoint (the ABN run's weights); --checkpoint gives others"),
            ("sac", start, "weights: the config's initialize (the baseline SAC adapts); --checkpoint gives others")):
        values = _config(tmp_path, max_iteration=1, adaptation={"method": method}).to_dict()
        path = tmp_path / f"{method}.config"
        path.write_text(yaml.safe_dump(dict(values, initialize=str(start), checkpoint=str(run))))
        with pytest.raises(Predicted) as predicted:
            importance_weights.main(["-c", str(path), "-o", str(tmp_path / f"{method}.json")])
        assert str(predicted.value) == str(expected)
        assert line in capsys.readouterr().err.splitlines()
    # Where ABN has no checkpoint, its initialize is not taken instead.
    values.update(adaptation={"method": "abn"}, initialize=str(start))
    del values["checkpoint"]
    path.write_text(yaml.safe_dump(values))
    assert importance_weights.main(["-c", str(path), "-o", str(tmp_path / "w.json")]) == 2
    assert capsys.readouterr().err == (f"error: {path}: no weights to predict with; give --checkpoint (the "
                                       "baseline's run folder or weights file), or checkpoint in the config\n")


def test_importance_weights_take_target_data_for_an_adaptation_config_without_it(tmp_path, tiny_model, capsys):
    """Before: "key 'target_data': is missing; adaptation needs records" before --target_data was
    read, though --help offers it "instead of the config's" (helper 348)."""
    from ssma_tf.cli import importance_weights

    config = _config(tmp_path, max_iteration=1, adaptation={"method": "abn"})
    adaptation.AdaptationTrainer(config, log=lambda line: None).train()
    values = {key: value for key, value in config.to_dict().items() if key not in ("target_data", "target_val_data")}
    path = tmp_path / "no_target.config"
    path.write_text(yaml.safe_dump(values))
    output = tmp_path / "w.json"
    assert importance_weights.main(["-c", str(path), "-o", str(output)]) == 2
    assert capsys.readouterr().err == (f"error: {path}: key 'target_data': is missing; adaptation needs records of "
                                       "the target domain's images\n")
    assert importance_weights.main(["-c", str(path), "-o", str(output), "--target_data", *config.target_data]) == 0
    assert len(json.loads(output.read_text())["probabilities"]) == 5
