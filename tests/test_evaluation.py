"""Tests of `ssma_tf.evaluation`: the released mIoU, one trace, test-time augmentation."""

from __future__ import annotations


import re

import numpy as np
import pytest
import tensorflow as tf

from ssma_tf.config import config_from_dict
from ssma_tf.evaluation import Evaluator, make_eval_dataset, predict_probabilities, scaled_size
from ssma_tf.metrics import batch_confusion_matrix
from ssma_tf.models import AdapNetPP
from tests.inference.helpers import randomize_batch_norms
from tests.training_helpers import TinySegmenter, build_tiny_model, released_miou, write_records


def _eval_config(tmp_path, records, checkpoint, **overrides):
    values = {
        "model": "AdapNet_pp", "num_classes": 5, "checkpoint": str(checkpoint),
        "test_data": str(records), "batch_size": 2, "skip_step": 1, "height": 32, "width": 32,
    }
    values.update(overrides)
    return config_from_dict(values, source="eval.config", mode="eval", check_paths=False)


def test_scaled_sizes_are_multiples_of_16():
    assert scaled_size(384, 768, 1.0) == (384, 768)
    assert scaled_size(384, 768, 0.75) == (288, 576)
    assert scaled_size(384, 768, 1.25) == (480, 960)
    assert scaled_size(64, 128, 0.1) == (16, 16)


def test_evaluation_counts_on_device_and_is_traced_once(tmp_path):
    # 5 images in batches of 2: the last batch is smaller and must not cause a second trace.
    records = write_records(tmp_path / "test.tfrecords", 5, height=32, width=32, num_classes=5, seed=3)
    config = _eval_config(tmp_path, records, tmp_path)
    model = build_tiny_model(config)
    dataset = make_eval_dataset(config)
    evaluator = Evaluator(model, 5, dataset.element_spec)
    lines = []
    confusion = evaluator.run(dataset, skip_step=1, log=lines.append)
    assert evaluator.eval_function.experimental_get_tracing_count() == 1
    assert len(lines) == 3 and "5 images" in lines[-1]

    labels = np.concatenate([y.numpy() for _, y in dataset])
    predictions = np.concatenate([np.argmax(model(x).numpy(), -1) for x, _ in dataset])
    assert confusion.num_images == 5
    assert confusion.miou() == pytest.approx(released_miou(labels, predictions, 5), abs=1e-9)
    # A second pass over the same data adds up, still without tracing again.
    evaluator.run(dataset)
    assert evaluator.eval_function.experimental_get_tracing_count() == 1


def test_evaluating_many_models_in_one_process_does_not_warn_of_retracing(tmp_path):
    """The fusion table evaluates a dozen networks in one process: from the fifth on, TensorFlow
    logged "5 out of the last 5 calls to <function Evaluator.__init__.<locals>.eval_function>
    triggered tf.function retracing" (it counts traces per function body, over every Evaluator)."""
    import logging

    records = write_records(tmp_path / "test.tfrecords", 2, height=32, width=32, num_classes=4, seed=1)
    config = _eval_config(tmp_path, records, tmp_path, num_classes=4)
    dataset = make_eval_dataset(config)
    caught = []
    handler = logging.Handler()
    handler.emit = caught.append
    tf.get_logger().addHandler(handler)
    try:
        for _ in range(6):
            evaluator = Evaluator(build_tiny_model(config), 4, dataset.element_spec)
            evaluator.run(dataset)
            assert evaluator.eval_function.experimental_get_tracing_count() == 1
    finally:
        tf.get_logger().removeHandler(handler)
    assert [r.getMessage() for r in caught if "retracing" in r.getMessage()] == []


def test_evaluation_of_adapnet_runs_the_fast_copy_and_counts_what_the_model_predicts(tmp_path):
    records = write_records(tmp_path / "test.tfrecords", 3, height=32, width=64, num_classes=4, seed=5)
    config = _eval_config(tmp_path, records, tmp_path, num_classes=4, height=32, width=64)
    model = AdapNetPP(4)
    randomize_batch_norms(model, seed=3)
    dataset = make_eval_dataset(config)
    fast = Evaluator(model, 4, dataset.element_spec)
    plain = Evaluator(model, 4, dataset.element_spec, optimize=False)
    # The default path is the inference copy: folded batch norms, sub-pixel upsampling.
    assert fast.network is not model and plain.network is model
    assert fast.network.folded_batch_norms == 58 and fast.network.subpixel_layers == 3
    fast_counts = fast.run(dataset).matrix
    plain_counts = plain.run(dataset).matrix
    expected = np.zeros((4, 4), np.int64)
    for images, labels in dataset:
        expected += batch_confusion_matrix(labels, model(images, training=False), 4).numpy()
    np.testing.assert_array_equal(plain_counts, expected)
    # Float32 rounding may flip a near-tie pixel, never more than a handful.
    assert np.abs(fast_counts - expected).sum() <= 4
    assert fast.eval_function.experimental_get_tracing_count() == 1
    with pytest.raises(ValueError, match="precision"):
        Evaluator(TinySegmenter(4), 4, dataset.element_spec, precision="bfloat16")
    with pytest.raises(ValueError, match="the predictions have 4 classes .* counts 5"):  # helper 88
        Evaluator(model, 5, dataset.element_spec)


def test_evaluating_a_run_of_another_modality_says_so(tmp_path):
    from ssma_tf.evaluation import evaluate

    depth = tmp_path / "depth"
    depth.mkdir()
    (depth / "config.yaml").write_text("model: AdapNet_pp\ninput_modality: modality2\n")
    records = write_records(tmp_path / "test.tfrecords", 2, height=32, width=32, num_classes=5, seed=3)
    config = _eval_config(tmp_path, records, depth)
    lines = []
    evaluate(config, model=build_tiny_model(config), log=lines.append)
    assert [line for line in lines if line.startswith("warning:")] == [
        f"warning: eval.config: {depth} is from the run {depth}, trained on modality2 (input_modality in its "
        "config.yaml), but it is given modality1; pass --set input_modality=modality2 unless the records hold "
        "the modality2 images as modality1"]
    lines.clear()
    (depth / "config.yaml").write_text("model: AdapNet_pp\ninput_modality: modality1\n")  # the modality fed
    evaluate(config, model=build_tiny_model(config), log=lines.append)
    assert not [line for line in lines if line.startswith("warning:")]


def test_multiscale_and_flip_average_the_softmax_at_input_size():
    model = TinySegmenter(4)
    images = tf.random.stateless_uniform((2, 32, 64, 3), seed=(1, 2), maxval=255.0)
    probs = predict_probabilities(model, images, scales=(0.5, 1.0), flip=True).numpy()

    def view(x, size, mirrored):
        x = tf.image.resize(x, size) if size != (32, 64) else x
        x = tf.reverse(x, [2]) if mirrored else x
        p = model(x)
        p = tf.reverse(p, [2]) if mirrored else p
        return tf.image.resize(p, (32, 64)).numpy()

    expected = np.mean([view(images, s, m) for s in ((16, 32), (32, 64)) for m in (False, True)], axis=0)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    single = predict_probabilities(model, images).numpy()
    np.testing.assert_allclose(single, model(images).numpy(), rtol=1e-6)


def test_a_fusion_baseline_is_evaluated_on_its_inference_copy_in_bfloat16_too(tmp_path):
    """Helper 88: `ssma-evaluate --precision bfloat16` of a baseline was a traceback ("needs an
    AdapNetPP or SSMA model"), while `ssma-predict` ran it in bfloat16."""
    from ssma_tf.models import FusionBaseline

    records = write_records(tmp_path / "test.tfrecords", 2, height=32, width=64, num_classes=4, seed=5, fusion=True)
    config = _eval_config(tmp_path, records, tmp_path, model="SSMA", fusion="average", num_classes=4, height=32,
                          width=64)
    model = FusionBaseline(4, fusion="average")
    dataset = make_eval_dataset(config)
    plain = Evaluator(model, 4, dataset.element_spec, optimize=False).run(dataset).matrix
    fast = Evaluator(model, 4, dataset.element_spec, precision="bfloat16")
    assert fast.network is not model and fast.network.precision == "bfloat16"
    counts = fast.run(dataset).matrix
    assert counts.sum() == plain.sum() and np.abs(counts - plain).sum() <= 0.02 * plain.sum()


def test_fusion_inputs_are_passed_as_a_pair():
    model = TinySegmenter(4, fusion=True)
    first = tf.random.stateless_uniform((1, 32, 32, 3), seed=(3, 4), maxval=255.0)
    probs = predict_probabilities(model, (first, first * 0.5), scales=(1.0, 0.5))
    assert probs.shape == (1, 32, 32, 4)


def test_an_own_dataset_is_named_from_the_configs_palette_file(tmp_path):
    # A dataset the shipped datasets.yaml does not know, described in the config's `palette`
    # file as docs/your_dataset.md shows: the table and the JSON must carry its class names.
    from ssma_tf.evaluation import _class_names

    palette = tmp_path / "my_datasets.yaml"
    palette.write_text(
        "fields:\n  classes:\n    - {name: void, color: [0, 0, 0]}\n"
        "    - {name: road, color: [128, 64, 128]}\n    - {name: grass, color: [107, 142, 35]}\n"
        "    - {name: obstacle, color: [220, 20, 60]}\n"
    )
    config = _eval_config(tmp_path, tmp_path / "t.tfrecords", tmp_path, num_classes=4,
                          dataset="fields", palette=str(palette))
    assert _class_names(config) == ["void", "road", "grass", "obstacle"]


@pytest.mark.parametrize("precision, compiled", [("bfloat16", False), ("float32", True)])
def test_xla_is_not_used_for_bfloat16_evaluation_on_a_cpu(tmp_path, monkeypatch, precision, compiled):
    """Helper 218: XLA compiles bfloat16 on a CPU without the AMX kernels: 0.263 s an image where
    bfloat16 alone took 0.119 and float32 0.206."""
    import dataclasses

    from ssma_tf import evaluation

    records = write_records(tmp_path / "test.tfrecords", 2, height=32, width=32, num_classes=5, seed=3)
    config = dataclasses.replace(_eval_config(tmp_path, records, tmp_path), xla=True)
    given = {}

    class Stop(Exception):
        pass

    def recording(*args, **kwargs):
        given.update(kwargs)
        raise Stop

    monkeypatch.setattr(evaluation, "Evaluator", recording)
    lines = []
    with pytest.raises(Stop):
        evaluation.evaluate(config, model=build_tiny_model(config), log=lines.append, precision=precision)
    assert given["jit_compile"] is compiled and given["precision"] == precision
    said = "xla is not used with bfloat16 on a CPU: XLA compiles it without the bfloat16 matrix units' kernels"
    assert any(line.startswith(said) for line in lines) is not compiled


def test_a_network_giving_nan_is_counted_and_warned_of(tmp_path):
    """Helper 308: a network giving NaN (a damaged checkpoint, float16 overflow) was evaluated as
    predicting void everywhere (the argmax of a NaN row is 0): mIoU 0.000 and FPR 0, no warning."""
    import json

    from ssma_tf.evaluation import evaluate

    records = write_records(tmp_path / "test.tfrecords", 2, height=32, width=32, num_classes=5, seed=3)
    config = _eval_config(tmp_path, records, tmp_path)
    model = build_tiny_model(config)
    lines = []
    healthy = evaluate(config, model=model, log=lines.append)
    assert healthy.metrics["non_finite_pixels"] == 0 and not [line for line in lines if line.startswith("warning:")]
    kernel = model.head.kernel
    kernel.assign(np.full(kernel.shape, np.nan, np.float32))
    lines.clear()
    result = evaluate(config, model=model, log=lines.append)
    assert [line for line in lines if line.startswith("warning:")] == [
        "warning: the network gave non-finite probabilities (NaN or inf) at 2048 of 2048 pixels (100.0 %): they "
        "count as predictions of void (class 0), or of an arbitrary class where only some classes are NaN; its "
        f"weights may be damaged or its precision overflowed (checkpoint {tmp_path})"]
    assert json.loads(json.dumps(result.metrics, allow_nan=False))["non_finite_pixels"] == 2048


def test_an_export_giving_nan_is_counted_and_warned_of(tmp_path, monkeypatch):
    """Helper 308: as `evaluate`, an export giving NaN scored mIoU 0 without a word."""
    from ssma_tf.evaluation import evaluate_exported
    from ssma_tf.inference import backends

    records = write_records(tmp_path / "test.tfrecords", 2, height=32, width=32, num_classes=5, seed=3)
    config = _eval_config(tmp_path, records, tmp_path)

    class Export:  # the first image's probabilities are NaN, the second's uniform
        metadata = {"model": config.model, "input_modality": "modality1", "modality2_interpolation": "nearest"}
        precision, size, num_classes, num_modalities = "float32", (32, 32), 5, 1

        def __call__(self, views):
            probs = np.full((len(views[0]), 32, 32, 5), 0.2, np.float32)
            probs[0] = np.nan
            return probs

    monkeypatch.setattr(backends, "load_exported", lambda folder, backend, threads: Export())
    lines = []
    result = evaluate_exported(config, str(tmp_path / "ov"), "openvino", log=lines.append)
    assert [line for line in lines if line.startswith("warning:")] == [
        "warning: the network gave non-finite probabilities (NaN or inf) at 1024 of 2048 pixels (50.0 %): they "
        "count as predictions of void (class 0), or of an arbitrary class where only some classes are NaN; its "
        f"weights may be damaged or its precision overflowed (the export {tmp_path / 'ov'})"]
    assert result.metrics["non_finite_pixels"] == 1024


def test_an_export_of_another_fusion_is_refused_and_its_fusion_is_in_the_metrics(tmp_path, monkeypatch):
    """Found by a reviewer: the export's metadata says its fusion, but `-c CONFIG --exported` did
    not compare it, so a late-fusion export was scored under a `fusion: cmode` (or SSMA) config
    without a word, and the metrics JSON did not say which network it scored."""
    import json

    from ssma_tf.config.runs import export_config
    from ssma_tf.constants import EXPORT_METADATA
    from ssma_tf.evaluation import evaluate_exported
    from ssma_tf.inference import backends
    from ssma_tf.inference.backends import ExportedModelError

    records = write_records(tmp_path / "test.tfrecords", 1, height=32, width=32, num_classes=3, fusion=True)
    folder = tmp_path / "ov"
    meta = {"backend": "openvino", "model": "SSMA", "fusion": "late", "num_classes": 3, "size": [32, 32],
            "inputs": ["modality1", "modality2"], "input_modality": None, "modality2_interpolation": "nearest"}
    (folder / "assets.extra").mkdir(parents=True)
    (folder / EXPORT_METADATA).write_text(json.dumps(meta))

    class Export:  # what `load_exported` gives for the folder: uniform probabilities
        metadata = meta
        precision, size, num_classes, num_modalities = "float32", (32, 32), 3, 2

        def __call__(self, views):
            return np.full((len(views[0]), 32, 32, 3), 1 / 3, np.float32)

    monkeypatch.setattr(backends, "load_exported", lambda folder, backend, threads: Export())
    common = dict(model="SSMA", num_classes=3, height=32, width=32, batch_size=1, test_data=records,
                  checkpoint=str(tmp_path / "unused"))

    def evaluated(**values):
        config = config_from_dict(dict(common, **values), source="f.config", mode="eval", check_paths=False)
        return evaluate_exported(config, str(folder), "openvino", log=lambda line: None)

    for values, ours in (({"fusion": "cmode"}, "cmode"), ({}, "ssma")):
        with pytest.raises(ExportedModelError, match=rf"^{re.escape(str(folder))} does not fit f.config: it has "
                                                     rf"fusion late \(the config has {ours}\)$"):
            evaluated(**values)
    assert evaluated(fusion="late").metrics["fusion"] == "late"
    # The export alone: its config is its metadata's, fusion and all.
    alone = export_config(folder, {"test_data": records})
    assert alone.fusion == "late"
    assert evaluate_exported(alone, str(folder), "openvino", log=lambda line: None).metrics["fusion"] == "late"
    # Metadata without `fusion` (an SSMA's, from before it was written) is SSMA's.
    del meta["fusion"]
    assert evaluated().metrics["fusion"] == "ssma"
    with pytest.raises(ExportedModelError, match=r"it has fusion ssma \(the config has late\)$"):
        evaluated(fusion="late")
