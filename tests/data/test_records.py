"""Damaged record files: `ssma-check-records` finds every kind, and training and evaluation name
the file (the shard) and the record index instead of TensorFlow's bare byte offset."""

from __future__ import annotations

import io
import os
import pathlib
import re

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from ssma_tf import training
from ssma_tf.cli import check_records as cli
from ssma_tf.config import config_from_dict
from ssma_tf.data import build_dataset
from ssma_tf.data.records import RecordError, check_record_file, count_records, find_damaged_record, records_per_file
from ssma_tf.evaluation import evaluate
from tests.training_helpers import build_tiny_model, write_records

SIZE = 32  # records of SIZE x SIZE pixels, 5 classes


def _example(**features) -> bytes:
    def feature(value):
        if isinstance(value, list):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=value))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    return tf.train.Example(features=tf.train.Features(
        feature={k: feature(v) for k, v in features.items()})).SerializeToString()


def _raw(height=SIZE, width=SIZE, label=None, **extra) -> bytes:
    label = np.zeros((height, width), np.uint8) if label is None else label
    return _example(height=[height], width=[width], modality1=bytes(height * width * 3),
                    label=label.tobytes(), **extra)


def _png(array) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _write(path, records) -> str:
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    return str(path)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> pathlib.Path:
    """A good file of 4 unimodal records, written once for the module."""
    return pathlib.Path(write_records(tmp_path_factory.mktemp("records") / "good.tfrecords", 4,
                                      height=SIZE, width=SIZE, num_classes=5))


def _damaged(good: pathlib.Path, folder: pathlib.Path):
    """(name, file, expected record index or None for the whole file, message pattern) per kind."""
    data = good.read_bytes()
    record = len(data) // 4  # the 4 records have the same size
    flipped = bytearray(data)
    flipped[2 * record + record // 2] ^= 0xFF
    big = np.zeros((SIZE, SIZE), np.uint8)
    big[0, 0] = 9
    big[1, :] = 255  # the ignore id: never reported, never counted
    cases = [
        ("truncated", data[: 3 * record - 100], 2, r"truncated record at"),
        ("corrupted", bytes(flipped), 2, r"corrupted record at"),
        ("foreign (a PNG)", _png(np.zeros((8, 8), np.uint8)), 0, r"Is this even a TFRecord file"),
        ("cut inside a header", data + b"\x05\x00\x00", None, r"3 stray bytes after record 3"),
        ("empty", b"", None, r"holds no records"),
        ("cut inside the first header", b"\x05\x00\x00\x00\x00", None, r"ends with 5 stray bytes before any whole "
                                                                          r"record: the file was cut short"),
    ]
    records = {
        "not an Example": [_raw(), b"\x01\x02 not a protobuf \xff"],
        "no label": [_example(height=[SIZE], width=[SIZE], modality1=bytes(SIZE * SIZE * 3))],
        "bad byte count": [_raw(), _raw(), _example(height=[SIZE], width=[SIZE], modality1=bytes(100),
                                                    label=bytes(SIZE * SIZE))],
        "PNG of another size": [_example(height=[SIZE], width=[SIZE], modality1=bytes(SIZE * SIZE * 3),
                                         label=_png(np.zeros((8, 8), np.uint8)))],
        "colour PNG label": [_example(height=[SIZE], width=[SIZE], modality1=bytes(SIZE * SIZE * 3),
                                      label=_png(np.zeros((SIZE, SIZE, 3), np.uint8)))],
        "zero height": [_example(height=[0], width=[SIZE], modality1=b"", label=b"")],
        "id >= num_classes": [_raw(), _raw(label=big)],
    }
    expected = {
        "not an Example": (1, r"not a tf.train.Example"),
        "no label": (0, r"no 'label' bytes feature"),
        "bad byte count": (2, r"modality1 holds 100 bytes: neither raw 32x32x3 = 3072 bytes nor a PNG"),
        "PNG of another size": (0, r"label is a 8x8 PNG but the record says 32x32"),
        "colour PNG label": (0, r"label is a PNG of mode RGB"),
        "zero height": (0, r"'height' must be one positive integer"),
        "id >= num_classes": (1, r"label id 9 >= num_classes 5 \(1 pixels; training would count them as void; "
                                 r"255 marks ignored pixels and is not reported\)"),
    }
    paths = []
    for name, content, index, pattern in cases:
        path = folder / (name.replace(" ", "_") + ".tfrecords")
        path.write_bytes(content)
        paths.append((name, str(path), index, pattern))
    for name, content in records.items():
        path = _write(folder / (name.replace(" ", "_") + ".tfrecords"), content)
        paths.append((name, path) + expected[name])
    return paths


def test_every_kind_of_damage_is_found_with_file_and_record(good, tmp_path):
    assert check_record_file(str(good), num_classes=5).problems == []
    for name, path, index, pattern in _damaged(good, tmp_path):
        problems = check_record_file(path, num_classes=5).problems
        assert len(problems) == 1, (name, problems)
        problem = problems[0]
        assert isinstance(problem, RecordError) and problem.path == path and problem.index == index, name
        assert str(problem).startswith(path + (f", record {index}: " if index is not None else ": ")), name
        assert re.search(pattern, str(problem)), (name, str(problem))


def test_fusion_requirements_and_mixed_files(good, tmp_path):
    unimodal = str(good)
    problems = check_record_file(unimodal, modalities=2).problems
    assert [p.index for p in problems] == [0, 1, 2, 3] and "no 'modality2'" in str(problems[0])
    fusion = _raw(modality2=bytes(SIZE * SIZE * 3))
    mixed = _write(tmp_path / "mixed.tfrecords", [fusion, _raw()])
    assert check_record_file(mixed, modalities=1).problems == []
    (problem,) = check_record_file(mixed).problems
    assert "mixes 1 fusion and 1 unimodal records" in str(problem)


def test_scene_classification_records_are_checked_as_such(good, tmp_path):
    """Before, every scene record was a problem ("no 'label' bytes feature: a scene classification
    record"): the tool did not check them at all."""
    image = bytes(SIZE * SIZE * 3)

    def scene(class_id, **extra):
        return _example(height=[SIZE], width=[SIZE], modality1=image, modality2=image, class_id=[class_id], **extra)

    scenes = _write(tmp_path / "scenes.tfrecords", [scene(0), scene(2), scene(1)])
    report = check_record_file(scenes, scenes=True)
    assert report.problems == [] and report.scene_classes == {0: 1, 1: 1, 2: 1}
    assert report.describe().endswith("3 records (3 fusion; all scene classification), 32x32 (3), "
                                      "scene class ids 0..2: ok")
    # Checked as such with --unlabeled too (before this: counted as records without a label).
    assert check_record_file(scenes, scenes=True, labeled=False, num_classes=2).scene_classes == {0: 1, 1: 1, 2: 1}
    # Where labels are read (the segmentation pipelines' search for a damaged record), a scene
    # record stays a problem that says what it is.
    (problem,) = check_record_file(scenes, max_problems=1).problems
    assert "no 'label' bytes feature: a scene classification record" in str(problem)
    assert check_record_file(scenes, labeled=False).problems == []  # its images serve as unlabeled ones
    # A scene record without its class id is named for that (helper 277: "no 'label' bytes feature").
    no_class = _write(tmp_path / "no_class.tfrecords",
                      [scene(0), _example(height=[SIZE], width=[SIZE], modality1=image, modality2=image)])
    (problem,) = check_record_file(no_class, scenes=True).problems
    assert str(problem) == (f"{no_class}, record 1: no 'class_id' feature: a scene classification record holds one "
                            "integer class id")
    (problem,) = check_record_file(scenes, num_classes=2, scenes=True).problems
    assert str(problem) == (f"{scenes}, record 1: scene class id 2 >= num_classes 2 (the scene classes have ids "
                            "0..num_classes-1, no void class)")
    # Their images are checked as every record's.
    short = _write(tmp_path / "short.tfrecords", [scene(0, modality3=image[:-1])])
    (problem,) = check_record_file(short, scenes=True).problems
    assert problem.index == 0 and "modality3 holds 3071 bytes" in str(problem)
    (problem,) = check_record_file(_write(tmp_path / "negative.tfrecords", [scene(-1)]), scenes=True).problems
    assert "a scene classification record's 'class_id' must be one integer >= 0, got [-1]" in str(problem)
    mixed = _write(tmp_path / "mixed.tfrecords", [scene(0), _raw(modality2=image)])
    (problem,) = check_record_file(mixed, scenes=True).problems
    assert problem.index is None and "mixes 1 scene classification records (a class_id) and 1 segmentation " \
        "records (a label image)" in str(problem)


def test_records_of_three_modalities_are_checked_to_the_third_image(tmp_path, capsys):
    image = bytes(SIZE * SIZE * 3)
    three = _write(tmp_path / "three.tfrecords", [_raw(modality2=image, modality3=image)] * 2)
    report = check_record_file(three, modalities=3)
    assert report.problems == [] and report.modalities == {3: 2}
    assert "2 records (2 3-modality)" in report.describe()
    # The third image is checked, not only counted.
    short = _write(tmp_path / "short.tfrecords", [_raw(modality2=image, modality3=image[:-1])])
    (problem,) = check_record_file(short).problems
    assert problem.index == 0 and "modality3 holds 3071 bytes" in str(problem)
    (problem,) = check_record_file(_write(tmp_path / "two.tfrecords", [_raw(modality2=image)]), modalities=3).problems
    assert "no 'modality3' feature: a fusion record where 3-modality records are needed" in str(problem)
    assert check_record_file(three, modalities=2).problems == []  # images after the second are ignored
    mixed = _write(tmp_path / "mixed3.tfrecords", [_raw(modality2=image, modality3=image), _raw()])
    (problem,) = check_record_file(mixed).problems
    assert "mixes 1 3-modality and 1 unimodal records" in str(problem)
    from ssma_tf.cli.check_records import main

    assert main([three, "--modalities", "3"]) == 0
    with pytest.raises(SystemExit):
        main([three, "--modalities", "9"])
    assert "--modalities must be in 1..8, got 9" in capsys.readouterr().err


def test_records_past_max_problems_are_said_to_be_unchecked(tmp_path, capsys):
    """The capped count read as the file's whole (helpers 147, 154: 4 bad records, "2 problem(s)")."""
    image = bytes(SIZE * SIZE * 3)
    short = _write(tmp_path / "short.tfrecords", [_raw(modality2=image[:-1])] * 4)
    report = check_record_file(short, max_problems=2)
    assert len(report.problems) == 2 and report.records == 4 and report.unchecked == 2
    assert report.describe().endswith("2 problem(s), then checking stopped: the last 2 record(s) were not checked "
                                      "(the kinds, sizes and ids are of the others)")
    assert cli.main([short, "--max_problems", "2"]) == 2
    assert capsys.readouterr().out.endswith("checked 4 records in 1 file(s): at least 2 problem(s); 2 record(s) not "
                                            "checked past --max_problems\n")
    assert check_record_file(short).unchecked == 0 and len(check_record_file(short).problems) == 4


def test_framing_count_and_the_first_damaged_record(good, tmp_path):
    assert count_records(str(good)) == (4, 0)
    cases = {name: (path, index) for name, path, index, _ in _damaged(good, tmp_path)}
    path, index = cases["corrupted"]
    found = find_damaged_record([str(good), path])
    assert found.path == path and found.index == index
    assert find_damaged_record([str(good)]) is None


def test_the_first_record_is_read_without_tensorflow_and_damage_still_named(good, tmp_path):
    """Each file's first record is checked before training (a TensorFlow reader cost 10-100 ms a
    file): read with Python, it is the record TensorFlow reads; what Python cannot read goes to
    TensorFlow's reader, which names it."""
    from ssma_tf.data import records

    first = next(iter(tf.data.TFRecordDataset(str(good)).take(1))).numpy()
    assert records._first_record_quickly(str(good)) == tf.train.Example.FromString(first)
    cut = tmp_path / "cut_first.tfrecords"
    cut.write_bytes(good.read_bytes()[:100])  # inside the first record
    cases = {name: (path, message) for name, path, _, message in _damaged(good, tmp_path)}
    cases["cut in the first record"] = (str(cut), r"truncated record at")
    for name in ("foreign (a PNG)", "empty", "cut in the first record"):
        path, message = cases[name]
        assert records._first_record_quickly(path) is None, name
        if name == "empty":
            assert records.first_example(path) is None
        else:
            with pytest.raises(RecordError, match=message):
                records.first_example(path)
    # A flipped byte inside the first record's data: read (CRCs are the data pass's), and the
    # pass over the data names it.
    data = bytearray(good.read_bytes())
    data[len(data) // 8] ^= 0xFF
    flipped = tmp_path / "flipped_first.tfrecords"
    flipped.write_bytes(bytes(data))
    found = find_damaged_record([str(flipped)])
    assert found is not None and found.index == 0


def test_records_per_file_reads_each_file_and_fails_on_a_damaged_one(good, tmp_path):
    other = write_records(tmp_path / "other.tfrecords", 2, height=SIZE, width=SIZE, num_classes=5)
    assert records_per_file([str(good), other]) == [4, 2]
    path = next(path for name, path, *_ in _damaged(good, tmp_path) if name == "truncated")
    with pytest.raises(RecordError) as error:
        records_per_file([str(good), path])
    assert (error.value.path, error.value.index) == (path, 2) and "truncated record at" in str(error.value)


def test_cli_checks_files_with_a_summary_and_exit_status(good, tmp_path, capsys):
    assert cli.main([str(good), "--num_classes", "5"]) == 0
    out = capsys.readouterr().out
    assert f"{good}: 4 records (4 unimodal), 32x32 (4), label ids 0..4: ok" in out
    assert "checked 4 records in 1 file(s): all good" in out
    damaged = {name: path for name, path, *_ in _damaged(good, tmp_path)}
    assert cli.main([str(good), damaged["truncated"], damaged["id >= num_classes"], "--num_classes", "5"]) == 2
    out = capsys.readouterr().out
    assert f"error: {damaged['truncated']}, record 2: damaged (truncated record at" in out
    assert f"error: {damaged['id >= num_classes']}, record 1: label id 9 >= num_classes 5" in out
    assert out.rstrip().endswith("2 problem(s)")
    assert cli.main([str(tmp_path / "nothing-*.tfrecords")]) == 2
    assert capsys.readouterr().err.strip() == f"error: no TFRecord file matches '{tmp_path / 'nothing-*.tfrecords'}'"
    assert cli.main([str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (f"error: '{tmp_path}' is a folder; give its record files, e.g. "
                                               f"'{tmp_path / '*.tfrecords'}'")


def test_the_pipeline_names_a_damaged_first_record_and_missing_modality2(good, tmp_path):
    damaged = {name: path for name, path, *_ in _damaged(good, tmp_path)}
    common = dict(height=SIZE, width=SIZE, batch_size=2, num_classes=5, training=False)
    with pytest.raises(RecordError, match=r"foreign_\(a_PNG\)\.tfrecords, record 0: damaged \(corrupted record at 0"):
        build_dataset(damaged["foreign (a PNG)"], modalities=1, **common)
    with pytest.raises(RecordError, match=r"record 0: no modality2: .* use an AdapNet\+\+ on the records. one modality"):
        build_dataset(str(good), modalities=2, **common)
    # Cut inside the last record's header: 3 records read without a word, in both modes (helper 147).
    data = good.read_bytes()
    cut = tmp_path / "cut_header.tfrecords"
    cut.write_bytes(data[: len(data) // 4 * 3 + 5])
    for mode in (False, True):
        with pytest.raises(RecordError, match=rf"^{re.escape(str(cut))}: ends with 5 stray bytes after record 2: the "
                                              "file was cut short, its last record lost"):
            build_dataset(str(cut), modalities=1, **dict(common, training=mode))


def _config(tmp_path, mode, data, **overrides):
    values = {"model": "AdapNet_pp", "num_classes": 5, "checkpoint": str(tmp_path / "run"), "batch_size": 2,
              "height": SIZE, "width": SIZE, "skip_step": 1}
    if mode == "train":
        values.update(train_data=data, max_iteration=4, learning_rate=0.01, save_step=2, seed=0)
    else:
        values.update(test_data=data)
    values.update(overrides)
    return config_from_dict(values, source=f"{mode}.config", mode=mode, check_paths=False)


def test_training_and_evaluation_name_the_damaged_shard_and_record(good, tmp_path, monkeypatch):
    damaged = {name: path for name, path, *_ in _damaged(good, tmp_path)}
    # Two shards, the second cut short: TensorFlow's own error gives only a byte offset.
    shards = [str(good), damaged["truncated"]]
    monkeypatch.setattr(training.trainer, "build_model", build_tiny_model)
    config = _config(tmp_path, "train", shards)
    with pytest.raises(RecordError) as error:
        training.train(config, log=lambda line: None)
    assert (error.value.path, error.value.index) == (damaged["truncated"], 2)
    assert "truncated record at" in str(error.value) and isinstance(error.value.__cause__, tf.errors.DataLossError)

    config = _config(tmp_path, "eval", [str(good), damaged["corrupted"]])
    with pytest.raises(RecordError) as error:
        evaluate(config, model=build_tiny_model(config), log=lambda line: None)
    assert (error.value.path, error.value.index) == (damaged["corrupted"], 2)
    # A record that frames well but decodes to the wrong size fails inside the graph (a reshape).
    config = _config(tmp_path, "eval", [str(good), damaged["bad byte count"]])
    with pytest.raises(RecordError, match=r"bad_byte_count\.tfrecords, record 2: modality1 holds 100 bytes") as error:
        evaluate(config, model=build_tiny_model(config), log=lambda line: None)
    assert isinstance(error.value.__cause__, tf.errors.InvalidArgumentError)
    assert os.path.isfile(good)  # nothing touched the good shard


def test_records_without_labels_are_counted_not_reported_when_read_unlabeled(good, tmp_path, capsys):
    unlabeled = _write(tmp_path / "unlabeled.tfrecords",
                       [_example(height=[SIZE], width=[SIZE], modality1=bytes(SIZE * SIZE * 3))] * 2 + [_raw()])
    report = check_record_file(unlabeled)
    assert [str(p) for p in report.problems] == [f"{unlabeled}, record 0: no 'label' bytes feature",
                                                 f"{unlabeled}, record 1: no 'label' bytes feature"]
    report = check_record_file(unlabeled, labeled=False)
    assert not report.problems and (report.records, report.unlabeled) == (3, 2)
    assert find_damaged_record([unlabeled]) is not None
    assert find_damaged_record([unlabeled], labeled=False) is None
    # A label that is there is still checked.
    bad = _write(tmp_path / "bad_label.tfrecords", [_raw(), _example(height=[SIZE], width=[SIZE],
                                                                     modality1=bytes(SIZE * SIZE * 3), label=b"x")])
    found = find_damaged_record([unlabeled, bad], labeled=False)
    assert (found.path, found.index) == (bad, 1) and "label holds 1 bytes" in str(found)
    assert cli.main([unlabeled, "--unlabeled"]) == 0
    assert f"{unlabeled}: 3 records (3 unimodal), 32x32 (3), label ids 0..0, 2 without a label: ok" in \
        capsys.readouterr().out


def test_a_config_has_every_record_file_it_reads_checked_as_its_model_reads_it(good, tmp_path, capsys):
    """`ssma-check-records -c CONFIG`: before, each key's files and the class count and modalities
    had to be typed again (and `-c` was an unknown flag)."""
    damaged = {name: path for name, path, *_ in _damaged(good, tmp_path)}
    unlabeled = _write(tmp_path / "unlabeled.tfrecords", [_example(height=[SIZE], width=[SIZE],
                                                                   modality1=bytes(SIZE * SIZE * 3))] * 2)
    config = tmp_path / "run.config"
    config.write_text(f"model: AdapNet_pp\nnum_classes: 5\ntrain_data: {good}\ntest_data: "
                      f"{damaged['id >= num_classes']}\nunlabeled_data: {unlabeled}\nbatch_size: 1\n")
    assert cli.main(["-c", str(config)]) == 2
    out = capsys.readouterr().out
    assert f"train_data ({config}, line 3): with labels, 5 classes, the model reads modality1\n" in out
    assert f"{good}: 4 records (4 unimodal), 32x32 (4), label ids 0..4: ok" in out
    # The config's class count; the unlabeled records need no label.
    assert f"error: {damaged['id >= num_classes']}, record 1: label id 9 >= num_classes 5" in out
    assert f"unlabeled_data ({config}, line 5): labels not needed" in out and "2 without a label: ok" in out
    # The last line speaks of every key (before: the last key's "all good", after test_data's problem; helper 186).
    assert out.splitlines()[-1] == "3 keys checked: problems in test_data"
    # The modalities the model reads: an SSMA needs modality2 in every record.
    assert cli.main(["-c", str(config), "--set", "model=SSMA", "--set", "test_data=", "--set", "unlabeled_data="]) == 2
    out = capsys.readouterr().out
    assert f"train_data ({config}, line 3): with labels, 5 classes, the model reads modality1 .. modality2" in out
    assert "record 0: no 'modality2' feature: a unimodal record where fusion records are needed" in out
    # A key matching no file is named with the config, and the other keys are still checked.
    assert cli.main(["-c", str(config), "--set", "test_data=nothing.tfrecords"]) == 2
    out = capsys.readouterr().out
    assert f"error: {config} with --set test_data=nothing.tfrecords: key 'test_data': no TFRecord file matches" in out
    assert "unlabeled_data (" in out and out.splitlines()[-1] == "3 keys checked: problems in test_data"
    # A config that neither mode reads: the error of the training config it is (before: the
    # evaluation's, which called a depth-pretraining run's config what it is, not its slip).
    pretraining = tmp_path / "pretraining.config"
    pretraining.write_text(f"model: AdapNet_pp\nnum_classes: 5\ntrain_data: {good}\npretraining: depth\n"
                           "max_iteration: 0\n")
    assert cli.main(["-c", str(pretraining)]) == 2
    assert f"error: {pretraining}, line 5: key 'max_iteration': must be >= 1, got 0" in capsys.readouterr().err
    # Scene classification records where a segmentation config reads them: refused there, so here
    # too (helper 236: "all good", exit 0). Given alone, they are checked as such.
    from ssma_tf.data.scene import encode_scene

    scenes = _write(tmp_path / "scenes.tfrecords", [encode_scene([np.zeros((8, 16, 3), np.uint8)], 3)] * 2)
    assert cli.main(["-c", str(config), "--set", f"test_data={scenes}", "--set", "unlabeled_data="]) == 2
    out = capsys.readouterr().out
    assert f"error: {scenes}, record 0: no 'label' bytes feature: a scene classification record" in out
    assert cli.main([scenes]) == 0
    assert "scene class ids 3..3: ok" in capsys.readouterr().out
    for wrong in (["-c", str(config), str(good)], ["-c", str(config), "--num_classes", "5"], []):
        with pytest.raises(SystemExit):
            cli.main(wrong)
    assert "give record files or glob patterns, or -c CONFIG" in capsys.readouterr().err


def test_label_ids_beyond_the_class_count_or_no_class_pixel_are_warned_of_by_training_and_evaluation(good, tmp_path, monkeypatch):
    from ssma_tf.data.records import label_ids_warning

    damaged = {name: path for name, path, *_ in _damaged(good, tmp_path)}
    beyond = damaged["id >= num_classes"]  # record 1 holds one pixel of id 9
    assert label_ids_warning([str(good)], 5) is None
    assert label_ids_warning([beyond], 10) is None
    warning = label_ids_warning([str(good), beyond], 5, what="train_data")
    assert warning.startswith("1 of the first 6 labelled records of train_data have label ids >= num_classes 5 "
                              "other than 255 (up to 9; 0.0% of the pixels read): they count as void")
    ignored = np.zeros((SIZE, SIZE), np.uint8)
    ignored[:8] = 255  # the ignore id is no id beyond the classes
    ignored[8:10] = 4
    assert label_ids_warning([_write(tmp_path / "ignored.tfrecords", [_raw(label=ignored)])], 5) is None
    # Labels without a class pixel: a binary mask saved as 0 and 255 (before: trained with a loss of 0
    # and no word), or ids all beyond a class count of 2.
    ignored[8:10] = 0
    void = _write(tmp_path / "void.tfrecords", [_raw(label=ignored)] * 2)
    assert label_ids_warning([void], 5, what="train_data") == (
        "the first 2 labelled records of train_data: no label pixel has a class id (1..4): 0 is void, 255 ignored and "
        "ids >= num_classes void, so training on these labels learns nothing (a loss of 0). A mask of background and "
        "object (e.g. saved as 0 and 255) needs the ids 1 and 2, and num_classes 3")
    # Of test labels, which nothing trains on (helper 232: "training on these labels learns nothing").
    assert label_ids_warning([void], 5, what="test_data", evaluating=True) == (
        "the first 2 labelled records of test_data: no label pixel has a class id (1..4): 0 is void, 255 ignored and "
        "ids >= num_classes void, so every metric leaves them out (0 or undefined). A mask of background and "
        "object (e.g. saved as 0 and 255) needs the ids 1 and 2, and num_classes 3")
    assert label_ids_warning([beyond], 2).startswith("the first 2 labelled records of the records: no label pixel has a "
                                                     "class id (1)")
    assert check_record_file(void).describe().endswith(
        "label ids 0..255 (none a class 1..254: training learns nothing from these labels): ok")
    assert label_ids_warning([str(good), beyond], 5, records=4) is None  # only the first 4 are read
    # A damaged file or a record without a label is passed over (a run reports the damage).
    # The truncated file gives its 2 records before the damage.
    assert label_ids_warning([damaged["truncated"], damaged["no label"], beyond], 5).startswith("1 of the first 4")

    monkeypatch.setattr(training.trainer, "build_model", build_tiny_model)
    lines = []
    training.Trainer(_config(tmp_path, "train", [str(good), beyond]), log=lines.append)
    assert [line for line in lines if line.startswith("warning: 1 of the first 6 labelled records of train_data")]
    lines = []
    training.Trainer(_config(tmp_path, "train", [str(good)], checkpoint=str(tmp_path / "good_run")), log=lines.append)
    assert not [line for line in lines if "num_classes" in line]
    config = _config(tmp_path, "eval", [str(good), beyond])
    lines = []
    evaluate(config, model=build_tiny_model(config), log=lines.append)
    assert [line for line in lines if line.startswith("warning: 1 of the first 6 labelled records of test_data")]
    config = _config(tmp_path, "eval", [beyond])  # no class pixel in its two labels
    lines = []
    evaluate(config, model=build_tiny_model(config), log=lines.append)
    assert [line for line in lines if line.startswith("warning: the first 2 labelled records of test_data: no label "
                                                      "pixel has a class id (1..4)")]


def test_nested_record_checks_name_a_bad_record_of_any_set_and_pass_other_errors_on(good, tmp_path):
    from ssma_tf.data.pipeline import naming_damaged_records

    damaged = {name: path for name, path, *_ in _damaged(good, tmp_path)}
    reader_error = tf.errors.DataLossError(None, None, "corrupted record at 12")
    # A bad record of the outer set: the inner set is checked first and has none.
    with pytest.raises(RecordError) as error:
        with naming_damaged_records([damaged["corrupted"]]), naming_damaged_records([str(good)], labeled=False):
            raise reader_error
    assert (error.value.path, error.value.index, error.value.__cause__) == (damaged["corrupted"], 2, reader_error)
    with pytest.raises(tf.errors.DataLossError) as error:  # no bad record anywhere: the reader's own error
        with naming_damaged_records([str(good)]), naming_damaged_records([str(good)], labeled=False):
            raise reader_error
    assert error.value is reader_error
    with pytest.raises(RuntimeError, match="not about records"):
        with naming_damaged_records([damaged["corrupted"]]):
            raise RuntimeError("not about records")


def test_a_damaged_png_header_is_a_problem_not_a_crash(good, tmp_path):
    import struct
    import zlib

    from ssma_tf.data.records import label_ids_warning

    # A label PNG whose header was changed to claim 30000 x 30000 pixels (beyond Pillow's
    # decompression-bomb limit), its checksum fixed so that only the size is wrong.
    png = bytearray(_png(np.zeros((SIZE, SIZE), np.uint8)))
    png[16:24] = struct.pack(">II", 30000, 30000)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])))
    png = bytes(png)
    path = _write(tmp_path / "bomb.tfrecords", [_raw(label=np.ones((SIZE, SIZE), np.uint8)), _example(height=[SIZE], width=[SIZE],
                                                                 modality1=bytes(SIZE * SIZE * 3), label=png)])
    report = check_record_file(path)
    assert len(report.problems) == 1 and str(report.problems[0]).startswith(
        f"{path}, record 1: label is a damaged PNG (Image size (900000000 pixels) exceeds limit")
    assert label_ids_warning([path], 5) is None  # the bad record is passed over


def test_an_index_file_with_a_byte_order_mark_is_read(tmp_path):
    """Editors on Windows write one; list files accept it (before: "expected one record index, got '\\ufeff0'")."""
    from ssma_tf.data.unlabeled import read_index_file

    path = tmp_path / "subset.txt"
    path.write_bytes("\ufeff0\r\n3\r\n".encode("utf-8"))
    assert read_index_file(str(path)) == [0, 3]


@pytest.mark.parametrize("digit", ["\u00b2", "\uff13"])
def test_an_index_file_with_a_digit_that_is_not_ascii_names_its_line(tmp_path, digit):
    """'²' passed isdigit() and failed int() with a bare ValueError; full-width '３' was read as 3 (helper 130)."""
    from ssma_tf.data.unlabeled import UnlabeledDataError, read_index_file

    path = tmp_path / "subset.txt"
    path.write_text(f"0\n{digit}\n", encoding="utf-8")
    with pytest.raises(UnlabeledDataError, match=rf"line 2: expected one record index, got '{digit}'"):
        read_index_file(str(path), 10)


def test_a_record_of_bytes_that_are_not_utf8_and_stray_bytes_are_named_by_every_reader(good, tmp_path):
    """Helper 256: a record that is not an Example and holds bytes that are not UTF-8 failed as a
    UnicodeDecodeError traceback (TensorFlow's message quotes it); a file cut inside a record's
    header was read without a word by the readers that count with `records_per_file` (unlabeled,
    target and depth-pretraining records)."""
    from ssma_tf.data.pipeline import naming_damaged_records

    whole = [r.numpy() for r in tf.data.TFRecordDataset(str(good))]
    binary = _write(tmp_path / "binary.tfrecords", [whole[0], b"\xff\xfe not an Example", whole[1]])
    with pytest.raises(RecordError, match=rf"^{re.escape(binary)}, record 1: not a tf.train.Example"):
        with naming_damaged_records([binary]):
            for _ in build_dataset(binary, modalities=1, height=SIZE, width=SIZE, batch_size=1, num_classes=5,
                                   training=False, check_records=False):
                pass
    stray = tmp_path / "stray.tfrecords"
    stray.write_bytes(good.read_bytes() + b"\x05\x00\x00")
    with pytest.raises(RecordError, match=rf"^{re.escape(str(stray))}: ends with 3 stray bytes after record 3: the "
                                          "file was cut short, its last record lost"):
        records_per_file([str(good), str(stray)])
    assert records_per_file([str(good)]) == [4]


def test_records_without_labels_checked_with_labels_are_named_for_the_label(tmp_path, capsys):
    """Helper 291: records without labels checked without --unlabeled were blamed for a missing
    scene class id."""
    image = bytes(SIZE * SIZE * 3)
    unlabeled = _write(tmp_path / "unl.tfrecords", [_example(height=[SIZE], width=[SIZE], modality1=image)] * 2)
    assert cli.main([unlabeled]) == 2
    out = capsys.readouterr().out
    assert f"error: {unlabeled}, record 0: no 'label' bytes feature (records used without labels: --unlabeled)" \
        in out and "class_id" not in out


def test_label_ids_of_records_read_without_labels_are_noted_not_problems(tmp_path, capsys):
    """Helper 291: with --unlabeled (or under a config's unlabeled_data), label ids >= num_classes,
    never read, were problems."""
    beyond = _write(tmp_path / "beyond.tfrecords", [_raw(label=np.full((SIZE, SIZE), 9, np.uint8))])
    assert cli.main([beyond, "--unlabeled", "--num_classes", "5"]) == 0
    assert f"{beyond}: 1 records (1 unimodal), 32x32 (1), label ids 9..9 (ids >= num_classes 5 not a problem: " \
        "these labels are not read): ok" in capsys.readouterr().out
    assert cli.main([beyond, "--num_classes", "5"]) == 2  # where they are read, still a problem
    assert "label id 9 >= num_classes 5" in capsys.readouterr().out
    config = tmp_path / "run.config"
    config.write_text(f"model: AdapNet_pp\nnum_classes: 5\ntrain_data: {_write(tmp_path / 'ok.tfrecords', [_raw()])}\n"
                      f"unlabeled_data: {beyond}\nbatch_size: 1\n")
    assert cli.main(["-c", str(config)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "2 keys checked: all good"


def test_a_record_without_modality1_is_named_for_it_where_n_modalities_are_needed(tmp_path):
    """Helper 291: "no 'modality2' feature: a unimodal record" for a record lacking modality1."""
    image = bytes(SIZE * SIZE * 3)
    label = bytes(SIZE * SIZE)
    path = _write(tmp_path / "gap.tfrecords", [_example(height=[SIZE], width=[SIZE], modality2=image, label=label),
                                               _example(height=[SIZE], width=[SIZE], modality1=image, label=label)])
    problems = [str(p) for p in check_record_file(path, modalities=2).problems]
    assert problems == [f"{path}, record 0: no 'modality1' bytes feature",
                        f"{path}, record 1: no 'modality2' feature: a unimodal record where fusion records are needed"]
