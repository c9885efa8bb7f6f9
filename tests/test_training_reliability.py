"""What training does with damaged checkpoints, a full disk, a diverging loss and SIGKILL.

All on the tiny stand-in model (`tests.training_helpers.TinySegmenter`), in-process except the
kill test, which runs `ssma-train`'s `main` (`tests/tiny_train.py`) as a process and kills it.
A full disk is simulated with a real failing writer: `RLIMIT_FSIZE` makes the kernel refuse
(EFBIG) any write past a size while the save runs, as ENOSPC would on a full disk.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pathlib
import random
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import tensorflow as tf
import yaml

from ssma_tf import training
from ssma_tf.checkpoints import CheckpointError
from ssma_tf.cli import train as train_command
from ssma_tf.config import config_from_dict
from tests.conftest import ROOT, lock_held_elsewhere
from tests.training_helpers import build_tiny_model, write_records


def _values(tmp_path, **overrides) -> dict:
    records = tmp_path / "records" / "train.tfrecords"
    if not records.exists():
        write_records(records, 4, height=32, width=32, num_classes=5)
    values = {
        "model": "AdapNet_pp", "num_classes": 5, "checkpoint": str(tmp_path / "checkpoints"),
        "train_data": str(records), "batch_size": 2, "skip_step": 1, "height": 32, "width": 32,
        "max_iteration": 8, "learning_rate": 0.01, "save_step": 2, "seed": 0,
    }
    values.update(overrides)
    return values


def _config(tmp_path, **overrides):
    return config_from_dict(_values(tmp_path, **overrides), source="tiny.config", mode="train")


@pytest.fixture
def tiny_model(monkeypatch):
    monkeypatch.setattr(training.trainer, "build_model", build_tiny_model)


def _newest_recorded(directory) -> str:
    state = tf.train.get_checkpoint_state(str(directory))
    return "ckpt-0" if state is None else os.path.basename(state.model_checkpoint_path)


def _leftovers(directory) -> list[str]:
    return sorted(n for n in os.listdir(directory) if n.endswith("_temp") or n.startswith(".partial-"))


@contextlib.contextmanager
def _file_size_limit(size: int):
    """Every write past `size` bytes of a file fails (EFBIG) inside the block, like a full disk."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


# --- Unreadable checkpoints in a training folder -----------------------------------------------


def test_the_newest_readable_checkpoint_is_resumed_and_the_others_reported(tmp_path, tiny_model):
    config = _config(tmp_path)
    training.Trainer(config, log=lambda line: None).train(max_steps=6)  # ckpt-2, ckpt-4, ckpt-6
    directory = tmp_path / "checkpoints"
    data = directory / "ckpt-6.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # truncated by a full disk
    (directory / "ckpt-4.index").write_bytes(np.random.default_rng(0).bytes(200))  # random bytes
    # What a save killed halfway and an export killed halfway leave behind.
    (directory / "ckpt-8_temp").mkdir()
    (directory / "ckpt-8_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"\0" * 64)
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (directory / f".partial-{int(ended.stdout)}-abcd-final.weights.h5").write_bytes(b"\0" * 64)
    # A process that runs (an export into the run folder) is writing this one: it stays (before:
    # removed as "left by an interrupted save", the export failing with a traceback; helper 366).
    running = directory / f".partial-{os.getpid()}-0123abcd-saved_model"
    running.mkdir()
    lines = []
    trainer = training.Trainer(config, log=lines.append)
    assert trainer.resumed_from.endswith("ckpt-2") and int(trainer.step.numpy()) == 2
    text = "\n".join(lines)
    assert "shorter than it should be" in text and "not a checkpoint index" in text
    assert f"skipped 2 newer checkpoint(s) that cannot be read: {directory}/ckpt-6, {directory}/ckpt-4" in text
    assert _leftovers(directory) == [running.name] and text.count("left by an interrupted save") == 2
    assert f"left {running} alone: the process that is writing it still runs" in text
    running.rmdir()
    result = trainer.train()
    assert (result.start_step, result.final_step) == (2, 8) and _newest_recorded(directory) == "ckpt-8"


def test_a_folder_another_process_trains_is_refused_before_anything_is_touched(tmp_path, tiny_model):
    """Helper 200: two ssma-train runs into one folder both saved ckpt-4, ckpt-8, ... and both
    wrote final.*, exit 0; the second's restore would also remove the first's save in progress."""
    from ssma_tf.config import ConfigError
    from ssma_tf.files import folder_lock_path

    config = _config(tmp_path)
    directory = tmp_path / "checkpoints"
    directory.mkdir()
    (directory / "ckpt-8_temp").mkdir()  # the other run's save in progress
    lock = folder_lock_path(directory, "train")
    with lock_held_elsewhere(lock) as holder:
        with pytest.raises(ConfigError, match=(rf"key 'checkpoint': {directory} is being trained by another process "
                                               rf"\(process {holder.pid}\): wait for it to end, or give another "
                                               "checkpoint folder")):
            training.Trainer(config, log=lambda line: None)
        assert (directory / "ckpt-8_temp").is_dir()
    # Once it has ended, the folder trains; two trainers of one process share the folder.
    first = training.Trainer(config, log=lambda line: None)
    first.train(max_steps=2)
    second = training.Trainer(config, log=lambda line: None)
    assert int(second.step.numpy()) == 2
    second.train(max_steps=1)
    # Given back when `train` returns: a trainer kept after its run (a notebook) keeps no other
    # process out (the multi-worker test's workers were refused by the test's own finished trainer).
    taken = subprocess.run([sys.executable, "-c", f"from ssma_tf.files import take_lock; take_lock({lock!r}, "
                            "wait=False)"], capture_output=True, text=True, cwd=ROOT,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert taken.returncode == 0 and first.step is not None, taken.stderr[-2000:]


def test_no_readable_checkpoint_is_one_error_naming_each(tmp_path, tiny_model):
    config = _config(tmp_path)
    training.Trainer(config, log=lambda line: None).train(max_steps=4)
    directory = tmp_path / "checkpoints"
    for number in (2, 4):
        (directory / f"ckpt-{number}.index").write_bytes(b"")
    with pytest.raises(CheckpointError, match="none of the checkpoints") as caught:
        training.Trainer(config, log=lambda line: None)
    assert "ckpt-4" in str(caught.value) and "ckpt-2" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_checkpoint_of_another_class_count_is_one_line_naming_the_variable(tmp_path, tiny_model):
    training.Trainer(_config(tmp_path, num_classes=7), log=lambda line: None).train(max_steps=2)
    # The run's config.yaml (which `train` writes too) names the key.
    with pytest.raises(CheckpointError, match="holds a run with num_classes: 7 .* trains with num_classes: 5"):
        training.Trainer(_config(tmp_path), log=lambda line: None)
    # A folder without one (an older version's run): the variable and its shapes.
    os.remove(tmp_path / "checkpoints" / "config.yaml")
    with pytest.raises(CheckpointError, match="none of the checkpoints") as caught:
        training.Trainer(_config(tmp_path), log=lambda line: None)
    assert "head/kernel" in str(caught.value) and "[1, 1, 4, 7]" in str(caught.value)


def test_a_damaged_state_file_is_moved_aside_and_the_checkpoints_found(tmp_path, tiny_model):
    config = _config(tmp_path)
    training.Trainer(config, log=lambda line: None).train(max_steps=4)
    directory = tmp_path / "checkpoints"
    (directory / "checkpoint").write_bytes(b"\x00\x01{{ not a state file")
    lines = []
    trainer = training.Trainer(config, log=lines.append)
    assert trainer.resumed_from.endswith("ckpt-4") and int(trainer.step.numpy()) == 4
    assert any("state file" in line and "damaged" in line for line in lines)
    assert (directory / "checkpoint.damaged").exists()
    trainer.train(max_steps=2)
    assert _newest_recorded(directory) == "ckpt-6"
    # The checkpoints found are in the new state file too (before: only ckpt-6, so a damaged
    # ckpt-6 left "none of the checkpoints can be read" beside a good ckpt-4, and the found
    # ones were never rotated away).
    state = tf.train.get_checkpoint_state(str(directory))
    assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == ["ckpt-2", "ckpt-4", "ckpt-6"]
    (directory / "ckpt-6.index").write_bytes(b"not an index")
    assert training.Trainer(config, log=lambda line: None).resumed_from.endswith("ckpt-4")


# --- A full disk -------------------------------------------------------------------------------


def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint(tmp_path, tiny_model):
    config = _config(tmp_path)
    trainer = training.Trainer(config, log=lambda line: None)
    real_save = trainer.manager.save
    calls = []
    size = None

    def save_on_a_full_disk(**kwargs):
        nonlocal size
        calls.append(kwargs)
        if len(calls) == 1:
            path = real_save(**kwargs)
            size = os.path.getsize(path + ".data-00000-of-00001")
            return path
        with _file_size_limit(size // 2):
            return real_save(**kwargs)

    trainer.manager.save = save_on_a_full_disk
    with pytest.raises(training.CheckpointWriteError, match=r"cannot write the checkpoint .*ckpt-4 at step 4") as caught:
        trainer.train()
    message = str(caught.value)
    assert "\n" not in message and "the last good checkpoint is" in message and message.count("ckpt-2") == 1
    assert "File too large" in message and "function_node" not in message and "[Op:" not in message
    directory = tmp_path / "checkpoints"
    assert _newest_recorded(directory) == "ckpt-2"
    assert sorted(n for n in os.listdir(directory) if n.startswith("ckpt-")) == [
        "ckpt-2.data-00000-of-00001", "ckpt-2.index"]
    assert not (directory / "final.weights.h5").exists()
    resumed = training.Trainer(config, log=lambda line: None)
    assert resumed.resumed_from.endswith("ckpt-2")


def test_a_full_disk_while_exporting_leaves_no_partial_file(tmp_path, tiny_model):
    config = _config(tmp_path, max_iteration=2)
    trainer = training.Trainer(config, log=lambda line: None)

    # A failing writer: h5py, once its writes fail halfway, may crash when the file is closed,
    # so the failure is simulated in Python, after part of the file is written.
    def save_weights_on_a_full_disk(path, *args, **kwargs):
        with open(path, "wb") as partial:
            partial.write(b"\x89HDF\r\n" + b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device", path)

    trainer.model.save_weights = save_weights_on_a_full_disk
    with pytest.raises(training.CheckpointWriteError, match=r"final\.weights\.h5.*No space.*ckpt-2") as caught:
        trainer.train()
    assert "\n" not in str(caught.value) and "partial file is removed" in str(caught.value)
    directory = tmp_path / "checkpoints"
    assert not (directory / "final.weights.h5").exists() and _leftovers(directory) == []
    lines = []
    result = training.Trainer(config, log=lines.append).train()  # run again: exports
    assert "training already complete: the run is at step 2, max_iteration 2; exporting its final weights" in lines
    assert os.path.isfile(result.weights)
    # Said when done, as at the end of a run (before: no line after "exporting its final weights").
    assert lines[-1] == f"exported {result.weights} and {directory / 'final.keras'}"
    # Run again with other test records: a finished run's folder is left as it was (before, its
    # config.yaml took them, and `ssma-evaluate RUN` then read them without a word).
    written = {name: (directory / name).stat().st_mtime_ns for name in ("config.yaml", "final.weights.h5")}
    (tmp_path / "other.tfrecords").write_bytes((tmp_path / "records" / "train.tfrecords").read_bytes())
    lines = []
    other = config_from_dict(_values(tmp_path, max_iteration=2, test_data=str(tmp_path / "other.tfrecords")),
                             source="tiny.config", mode="train")
    assert training.Trainer(other, log=lines.append).run().weights == result.weights
    assert lines[-2:] == [
        "training already complete: the run is at step 2, max_iteration 2; its folder is left as it was",
        "note: test_data differs from the run's config.yaml, which keeps the values it was trained with "
        "(ssma-evaluate takes others as flags, e.g. --test_data)"]
    assert {name: (directory / name).stat().st_mtime_ns for name in written} == written


def test_a_run_stopped_while_exporting_exports_again_and_a_training_key_of_a_finished_run_is_said_unused(
        tmp_path, tiny_model):
    """A finished run resumed to train longer and stopped after `final.weights.h5` was written
    kept the `final.keras` of its first finish, which the next run took for current ("its folder
    is left as it was"): `ssma-predict RUN/final.keras` read the old weights without a word."""
    directory = tmp_path / "checkpoints"
    training.Trainer(_config(tmp_path, max_iteration=2), log=lambda line: None).train()
    first_keras = (directory / "final.keras").read_bytes()
    longer = _config(tmp_path, max_iteration=3)
    trainer = training.Trainer(longer, log=lambda line: None)

    def stopped_while_saving(path, *args, **kwargs):
        raise KeyboardInterrupt()

    trainer.model.save = stopped_while_saving  # after save_weights: final.weights.h5 is new
    with pytest.raises(KeyboardInterrupt):
        trainer.train()
    assert (directory / "final.keras").read_bytes() == first_keras and _leftovers(directory) == []
    lines = []
    result = training.Trainer(longer, log=lines.append).train()
    assert lines[-2:] == ["training already complete: the run is at step 3, max_iteration 3; exporting its final weights",
                          f"exported {result.weights} and {directory / 'final.keras'}"]
    assert (directory / "final.keras").read_bytes() != first_keras
    from ssma_tf.config.runs import final_files_current

    assert final_files_current(directory)
    # A key only training reads, given to the finished run: said to have done nothing (before:
    # "ssma-evaluate takes others as flags", and the batch norms were taken for recalibrated).
    lines = []
    values = _values(tmp_path, max_iteration=3, recalibrate_batch_norm=2)
    training.Trainer(config_from_dict(values, source="tiny.config", mode="train"), log=lines.append).run()
    assert lines[-1] == (
        "note: recalibrate_batch_norm differs from the run's config.yaml, which keeps the values it was trained "
        "with; recalibrate_batch_norm acts only while training, and this run has finished: nothing was done with "
        "it (raise max_iteration to train on); to recalibrate the finished weights' batch norms, see "
        "docs/training.md")
    # The same with the export cut short: exported again, but config.yaml keeps the run's values
    # (before: rewritten from the config given, claiming a recalibration never done; helper 129).
    (directory / "final.keras").unlink()
    saved = (directory / "config.yaml").read_text()
    lines = []
    training.Trainer(config_from_dict(values, source="tiny.config", mode="train"), log=lines.append).run()
    at = lines.index("training already complete: the run is at step 3, max_iteration 3; exporting its final weights")
    assert lines[at + 1].startswith("note: recalibrate_batch_norm differs from the run's config.yaml")
    assert lines[-1].startswith("exported ") and final_files_current(directory)
    assert (directory / "config.yaml").read_text() == saved


def _copied(run, to):
    """`cp -r run to` as a copy that keeps no modification times does it: here the final files
    come out older than the `checkpoint` state file (a download may give any order)."""
    shutil.copytree(run, to, copy_function=shutil.copyfile)
    state = os.path.getmtime(to / "checkpoint")
    for name in ("final.weights.h5", "final.keras"):
        os.utime(to / name, (state - 60, state - 60))
    return to


def test_a_copied_run_is_read_at_its_final_files_and_a_recalibration_cut_short_is_exported_again(
        tmp_path, tiny_model):
    """Helper 314: whether a run's final files held its last checkpoint was told by modification
    times, which `cp -r` and downloads do not keep: a copy of a run recalibrated and exported again
    (docs/training.md) was evaluated at its last checkpoint (the old batch norms) without a word,
    and `ssma-train` on it exported that checkpoint over the recalibrated final files."""
    from ssma_tf.config import load_config
    from ssma_tf.config.runs import final_files_current, run_weights

    directory = tmp_path / "checkpoints"
    training.Trainer(_config(tmp_path, max_iteration=2), log=lambda line: None).train()
    copy = _copied(directory, tmp_path / "copy")
    assert final_files_current(copy) and run_weights(copy) == str(copy / "final.keras")
    shutil.rmtree(copy)
    trainer = training.Trainer(load_config(str(directory / "config.yaml"), "train"), log=lambda line: None)
    trainer.recalibrate_batch_norm(2)
    trainer.export_weights()
    copy = _copied(directory, tmp_path / "copy")
    recalibrated = (copy / "final.keras").read_bytes()
    assert final_files_current(copy) and run_weights(copy) == str(copy / "final.keras")
    lines = []
    training.Trainer(_config(tmp_path, max_iteration=2, checkpoint=str(copy)), log=lines.append).run()
    assert any("its folder is left as it was" in line for line in lines)
    assert (copy / "final.keras").read_bytes() == recalibrated
    # Recalibrated again and stopped after final.weights.h5: no checkpoint since, and both files
    # newer than the state file, but they disagree (before: taken for current).
    trainer = training.Trainer(load_config(str(directory / "config.yaml"), "train"), log=lambda line: None)
    trainer.recalibrate_batch_norm(3)

    def stopped_while_saving(path, *args, **kwargs):
        raise KeyboardInterrupt()

    trainer.model.save = stopped_while_saving
    with pytest.raises(KeyboardInterrupt):
        trainer.export_weights()
    assert not final_files_current(directory) and run_weights(directory) == str(directory)
    lines = []
    training.Trainer(_config(tmp_path, max_iteration=2), log=lines.append).run()
    assert lines[-1].startswith("exported ") and final_files_current(directory)
    # Done again with the recalibration its final.json names (helper 320: exported from the
    # checkpoint's statistics over the recalibrated files, while config.yaml said the recalibration).
    assert any(line.startswith("the export cut short was of weights recalibrated on 3 batches after the last "
                               "checkpoint: recalibrating them again") for line in lines), lines
    model = training.Trainer(load_config(str(directory / "config.yaml"), "train"), log=lambda line: None).model
    at_checkpoint = [w.numpy() for w in model.non_trainable_weights]
    model.load_weights(str(directory / "final.weights.h5"))
    assert any(not np.array_equal(a, w.numpy()) for a, w in zip(at_checkpoint, model.non_trainable_weights))
    # And config.yaml says it, the rest as the run wrote it (helper 324: it kept the 2 of the export before).
    import yaml

    saved = yaml.safe_load((directory / "config.yaml").read_text())
    assert saved["recalibrate_batch_norm"] == 3 and saved["max_iteration"] == 2
    assert (directory / "config.yaml").read_text().startswith("# The resolved config of this training run")


def test_final_files_are_current_at_the_checkpoint_their_record_names_whatever_the_times(tmp_path):
    """`final.json` against the state file, modification times aside: a newer checkpoint (a run
    resumed to train longer), or one of the same name written later, makes the files stale; a run
    exported without a record (an earlier version) or with a damaged one is judged by the times."""
    from ssma_tf.config.runs import final_files_current, newest_checkpoint, write_final_record

    state, record = tmp_path / "checkpoint", tmp_path / "final.json"

    def checkpoints(*steps, at=1000.5):
        names = [f"ckpt-{step}" for step in steps]
        state.write_text("".join([f'model_checkpoint_path: "{names[-1]}"\n']
                                 + [f'all_model_checkpoint_paths: "{name}"\n' for name in names]
                                 + [f"all_model_checkpoint_timestamps: {at + i}\n" for i in range(len(names))]))

    def times(state_time, final_time):
        os.utime(state, (state_time, state_time))
        for name in ("final.weights.h5", "final.keras"):
            os.utime(tmp_path / name, (final_time, final_time))

    checkpoints(2, 4)
    assert newest_checkpoint(tmp_path) == {"name": "ckpt-4", "time": "1001.5"}
    (tmp_path / "final.weights.h5").write_bytes(b"w" * 10)
    (tmp_path / "final.keras").write_bytes(b"k" * 20)
    write_final_record(tmp_path, newest_checkpoint(tmp_path), written=True)
    times(2000, 1000)  # copied: the final files older than the state file
    assert final_files_current(tmp_path)
    checkpoints(2, 4, 6)  # resumed to train longer
    times(1000, 2000)
    assert not final_files_current(tmp_path)
    checkpoints(2, 4, at=5000.5)  # started again from step 0 after its checkpoints were removed
    times(1000, 2000)
    assert not final_files_current(tmp_path)
    checkpoints(2, 4)
    (tmp_path / "final.keras").write_bytes(b"k" * 21)  # written by another hand
    assert not final_files_current(tmp_path)
    write_final_record(tmp_path, newest_checkpoint(tmp_path), written=False)  # an export cut short
    times(1000, 2000)
    assert not final_files_current(tmp_path)
    for damaged in (b"", b"{not json", b"[]"):
        record.write_bytes(damaged)
        times(1000, 2000)
        assert final_files_current(tmp_path)
        times(2000, 1000)
        assert not final_files_current(tmp_path)
    record.unlink()
    times(1000, 2000)
    assert final_files_current(tmp_path)
    times(2000, 1000)
    assert not final_files_current(tmp_path)


def test_too_little_space_to_export_is_said_before_writing(tmp_path, tiny_model, monkeypatch):
    config = _config(tmp_path, max_iteration=2)
    monkeypatch.setattr(training.trainer, "free_bytes", lambda directory: 100)
    with pytest.raises(training.CheckpointWriteError, match=r"0\.0 MB free, about .* MB needed.*ckpt-2"):
        training.Trainer(config, log=lambda line: None).train()
    directory = tmp_path / "checkpoints"
    assert not (directory / "final.weights.h5").exists() and _leftovers(directory) == []


def test_a_set_mixing_scene_records_is_refused_before_the_run_folder_is_written(tmp_path, tiny_model, capsys):
    """Only the first file's first record was checked: a scene record file after a segmentation
    one was a TensorFlow traceback after step 1, with config.yaml and the logs left behind."""
    scene = tmp_path / "records" / "scenes.tfrecords"
    values = _values(tmp_path)
    feature = {"height": tf.train.Feature(int64_list=tf.train.Int64List(value=[32])),
               "width": tf.train.Feature(int64_list=tf.train.Int64List(value=[32])),
               "modality1": tf.train.Feature(bytes_list=tf.train.BytesList(value=[bytes(32 * 32 * 3)])),
               "class_id": tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))}
    with tf.io.TFRecordWriter(str(scene)) as writer:
        writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    config_file = tmp_path / "mixed.config"
    config_file.write_text(yaml.safe_dump(dict(values, train_data=[values["train_data"], str(scene)])))
    assert train_command.main(["-c", str(config_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"error: {scene}, record 0: these are scene classification records (a class_id per record, no "
                   "label image): segmentation reads records written by ssma-convert; ssma-scene train reads these")
    assert not (tmp_path / "checkpoints").exists()


# --- A diverging loss --------------------------------------------------------------------------


def test_a_diverging_loss_stops_the_run_with_exit_1_and_one_line(tmp_path, tiny_model, capsys):
    config_file = tmp_path / "diverge.config"
    config_file.write_text(yaml.safe_dump(_values(tmp_path, max_iteration=30)))
    training.Trainer(_config(tmp_path, max_iteration=30), log=lambda line: None).train(max_steps=4)
    # Resumed with a learning rate that makes the loss climb tenfold within a few steps.
    status = train_command.main(["-c", str(config_file), "--set", "learning_rate=1e6"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1 and len(err) == 1, err
    assert err[0].startswith("error: the loss diverged at step") and "divergence_factor 5" in err[0]
    assert "learning_rate (now 1e+06)" in err[0]
    step = int(err[0].split("at step ")[1].split(":")[0])
    assert step < 30
    directory = tmp_path / "checkpoints"
    assert not (directory / "final.weights.h5").exists()
    # The checkpoints written while the loss grew are gone: ckpt-4, from before, is the newest.
    assert "written while the loss grew" in err[0] and "the last good checkpoint is" in err[0]
    assert _newest_recorded(directory) == "ckpt-4" and "ckpt-4" in err[0]
    left = [n for n in os.listdir(directory) if n.endswith(".index")]
    assert "ckpt-4.index" in left and all(int(n[5:-6]) <= 4 for n in left), left
    assert training.Trainer(_config(tmp_path, max_iteration=30), log=lambda line: None).resumed_from.endswith("ckpt-4")
    # The same command again diverges again: the same good checkpoint is found and kept (before:
    # the state file lacked the checkpoints' times, so the next run's manager left ckpt-4 out of
    # its list, "every checkpoint kept was written while the loss grew" kept ckpt-6 and on, and a
    # rerun at a sane rate resumed from them and finished without a word).
    assert train_command.main(["-c", str(config_file), "--set", "learning_rate=1e6"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert "the last good checkpoint is" in err[0] and "ckpt-4" in err[0], err
    assert _newest_recorded(directory) == "ckpt-4"
    left = [n for n in os.listdir(directory) if n.endswith(".index")]
    assert "ckpt-4.index" in left and all(int(n[5:-6]) <= 4 for n in left), left
    trainer = training.Trainer(_config(tmp_path, max_iteration=30), log=lambda line: None)
    # In the manager's list, so rotated away in time as the run goes on (before: kept forever).
    assert trainer.resumed_from.endswith("ckpt-4") and [os.path.basename(p) for p in trainer.manager.checkpoints] == [
        "ckpt-4"]
    # The same run with the check switched off trains to the end; a sane rate never trips it.
    off = training.Trainer(_config(tmp_path / "off", learning_rate=1e6, max_iteration=30,
                                   divergence_factor=0), log=lambda line: None).train()
    assert off.final_step == 30 and max(off.losses) > 5 * off.losses[0]
    sane = training.Trainer(_config(tmp_path / "sane", max_iteration=30), log=lambda line: None).train()
    assert sane.final_step == 30


def test_a_divergence_after_its_good_checkpoint_rotated_away_leaves_no_diverged_checkpoint(tmp_path, tiny_model):
    """Every checkpoint kept was written while the loss grew: they are removed (before: kept, and a
    rerun at a sane rate resumed from the diverged weights and finished without a word)."""
    training.Trainer(_config(tmp_path, save_step=1, max_iteration=30), log=lambda line: None).train(max_steps=2)
    config = _config(tmp_path, learning_rate=1e6, divergence_factor=5, keep_checkpoints=1, save_step=1,
                     max_iteration=30)
    with pytest.raises(training.DivergenceError, match=r"removed ckpt-\d+.*the last good one was no longer kept, so "
                                                       r"a rerun starts from step 0; no good checkpoint is kept"):
        training.Trainer(config, log=lambda line: None).train()
    directory = tmp_path / "checkpoints"
    assert not [n for n in os.listdir(directory) if n.endswith(".index")] and _newest_recorded(directory) == "ckpt-0"
    assert training.Trainer(_config(tmp_path, max_iteration=30), log=lambda line: None).resumed_from is None


def test_a_good_checkpoint_the_manager_does_not_list_is_kept_and_named(tmp_path, tiny_model):
    """A state file without times (older versions) gives the manager an empty list: the good
    checkpoint on disk was taken for rotated away, the state file deleted, and the rerun started
    from step 0 beside it."""
    training.Trainer(_config(tmp_path, max_iteration=30), log=lambda line: None).train(max_steps=4)
    directory = tmp_path / "checkpoints"
    (directory / "checkpoint").write_text('model_checkpoint_path: "ckpt-4"\nall_model_checkpoint_paths: "ckpt-4"\n')
    with pytest.raises(training.DivergenceError, match=r"the last good checkpoint is .*ckpt-4"):
        training.Trainer(_config(tmp_path, max_iteration=30, learning_rate=1e6), log=lambda line: None).train()
    assert _newest_recorded(directory) == "ckpt-4"
    assert training.Trainer(_config(tmp_path, max_iteration=30), log=lambda line: None).resumed_from.endswith("ckpt-4")


def test_a_nan_right_after_a_save_removes_that_checkpoint_and_the_rerun_trains(tmp_path, tiny_model):
    """The loss of step N+1 is that of checkpoint N's weights: a NaN there refutes it (before:
    "the last good checkpoint is ckpt-1", and the advised rerun at a lower rate resumed from it
    into the same NaN, forever)."""
    config = _config(tmp_path, learning_rate=1e37, divergence_factor=0, save_step=1, max_iteration=6)
    with pytest.raises(training.NonFiniteLossError, match=r"loss is nan at step 2; training stopped without saving "
                                                          r"\(removed ckpt-1, the weights that gave it; no good "
                                                          r"checkpoint is kept\)\. .*, or start again with another "
                                                          r"seed\.$"):
        training.Trainer(config, log=lambda line: None).train()
    directory = tmp_path / "checkpoints"
    assert not [n for n in os.listdir(directory) if n.endswith(".index")]
    assert training.Trainer(_config(tmp_path, save_step=1, max_iteration=6), log=lambda line: None).train(
    ).final_step == 6
    # Weights that are no longer finite after the last step are not saved nor exported (that step's
    # loss, computed before its update, is finite; no next step shows them).
    trainer = training.Trainer(_config(tmp_path / "last", max_iteration=2), log=lambda line: None)
    compiled, calls = trainer.train_function, []

    def overflowing(iterator):
        out = compiled(iterator)
        calls.append(1)
        if len(calls) == 2:
            trainer.model.trainable_variables[0].assign(tf.fill(trainer.model.trainable_variables[0].shape, np.inf))
        return out

    trainer.train_function = overflowing
    with pytest.raises(training.NonFiniteLossError, match=r"the weights are not finite after step 2"):
        trainer.train()
    assert not (tmp_path / "last" / "checkpoints" / "final.weights.h5").exists()
    assert _newest_recorded(tmp_path / "last" / "checkpoints") == "ckpt-0"


def test_the_divergence_check_compares_a_window_mean_with_the_starting_level():
    check = training.trainer._DivergenceCheck(5.0, num_classes=5)  # floor ln 5 = 1.609
    assert [check.update(loss) for loss in (0.2, 9.0, 0.3, 0.3, 0.3)] == [""] * 5  # one spike
    assert check.reference == pytest.approx(np.log(5))  # a low start (resumed) uses the floor
    assert not check.within_limit(8.1) and check.within_limit(8.0)
    messages = [check.update(loss) for loss in (9.0,) * 5]
    assert messages[:4] == [""] * 4  # the window still holds a sane loss
    message = messages[4]
    assert "mean loss 9 over the last 5 steps" in message and "starting level 1.609" in message
    high = training.trainer._DivergenceCheck(5.0, num_classes=5)
    assert all(high.update(loss) == "" for loss in (4.0, 19.0, 19.0, 19.0, 19.0))  # 5 x 4 = 20
    off = training.trainer._DivergenceCheck(0.0, num_classes=5)
    assert all(off.update(loss) == "" and off.within_limit(loss) for loss in (1.0, 1e9, 1e9, 1e9, 1e9, 1e9))


# --- SIGKILL at random moments -----------------------------------------------------------------


def test_killed_at_random_moments_resumes_at_the_last_saved_step_and_finishes(tmp_path):
    """`ssma-train` killed with SIGKILL 4 times at random moments, then run to the end.

    Costs 5 process starts of TensorFlow (~30 s on two idle cores).
    """
    total = 40
    config_file = tmp_path / "kill.config"
    config_file.write_text(yaml.safe_dump(_values(tmp_path, max_iteration=total, save_step=1, skip_step=10)))
    directory = tmp_path / "checkpoints"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               TF_CPP_MIN_LOG_LEVEL="2")
    rng = random.Random(20)
    expected_start, interrupted_saves = 0, 0
    for attempt in range(5):
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.tiny_train", "-c", str(config_file)], cwd=ROOT, env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        watchdog = threading.Timer(120, process.kill)
        watchdog.start()
        lines = []
        # Saves are every step and take milliseconds, like the steps: a random delay after the
        # k-th save lands the kill in a later step or in the middle of a save.
        kill_after = rng.randint(1, 6) if attempt < 4 else None
        try:
            for line in process.stdout:
                lines.append(line.rstrip())
                if line.startswith("saved checkpoint") and kill_after is not None:
                    kill_after -= 1
                    if kill_after == 0:
                        time.sleep(rng.uniform(0.0, 0.05))
                        process.send_signal(signal.SIGKILL)
        finally:
            watchdog.cancel()
            process.wait()
        output = "\n".join(lines)
        interrupted_saves += sum("left by an interrupted save" in line for line in lines)
        resumed = [l for l in lines if l.startswith("resumed from")]
        if expected_start:
            assert resumed and resumed[0].endswith(f"ckpt-{expected_start} at step {expected_start}"), output
        else:
            assert not resumed, output
        if process.returncode == 0:
            break
        assert process.returncode == -signal.SIGKILL, output
        saved = [int(l.split("(step ")[1].rstrip(")")) for l in lines if l.startswith("saved checkpoint")]
        expected_start = int(_newest_recorded(directory).split("-")[1])
        # The state file names a complete checkpoint at or after the last one the log announced.
        assert expected_start >= (saved[-1] if saved else 0)
    assert process.returncode == 0 and attempt == 4, output
    print(f"kills that interrupted a save: {interrupted_saves} of 4")
    assert f"exported {directory}/final.weights.h5 and {directory}/final.keras" in output
    reader = tf.train.load_checkpoint(str(directory / f"ckpt-{total}"))
    assert int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE")) == total
    assert int(reader.get_tensor("optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE")) == total
    assert _leftovers(directory) == []


def test_a_summary_write_that_fails_is_one_warning_and_the_run_goes_on(tmp_path, tiny_model):
    """A full disk met first by the TensorBoard writer (its flush: OutOfRangeError, "File too
    large") ended the run with a traceback, the steps since the last checkpoint lost (helper 133)."""
    config = _config(tmp_path, max_iteration=3)
    lines = []
    trainer = training.Trainer(config, log=lines.append)
    calls = []

    def full_disk(*args, **kwargs):
        calls.append(args[0])
        raise tf.errors.OutOfRangeError(None, None, "Failed to flush 3 events: File too large")

    trainer._write_summaries = full_disk
    result = trainer.train()
    assert result.final_step == 3 and os.path.isfile(result.weights)
    warned = [line for line in lines if line.startswith("warning: cannot write TensorBoard summaries")]
    assert warned == [f"warning: cannot write TensorBoard summaries to {config.log_dir}: Failed to flush 3 events: "
                      "File too large; training goes on without them"]
    # A finished run given again writes nothing into its folder, no new events file either.
    before = sorted(p.name for p in pathlib.Path(config.log_dir).iterdir()) if os.path.isdir(config.log_dir) else []
    training.Trainer(config, log=lambda line: None).train()
    after = sorted(p.name for p in pathlib.Path(config.log_dir).iterdir()) if os.path.isdir(config.log_dir) else []
    assert after == before
