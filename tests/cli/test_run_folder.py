"""A training run's folder describes itself: evaluate and predict it without model flags."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from ssma_tf.cli import evaluate, predict, train
from ssma_tf.config import ConfigError, load_config
from ssma_tf.config.runs import run_config, run_weights
from ssma_tf.constants import FINAL_MODEL, RUN_CONFIG
from ssma_tf.layers.initializers import overwritten_weights
from tests.training_helpers import make_sample, smoke_config, write_records


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory):
    """Two steps of the AdapNet++ smoke config (64x128, 5 classes), trained by `ssma-train`."""
    folder = tmp_path_factory.mktemp("run")
    write_records(folder / "records" / "train.tfrecords", 4)
    write_records(folder / "records" / "test.tfrecords", 3, seed=1)
    # Trained from drawn weights, whatever the tests' own fixtures (below) do.
    with pytest.MonkeyPatch.context() as patch, overwritten_weights(False):
        patch.chdir(folder)  # the smoke config's paths are relative, as in the original scripts
        status = train.main(["-c", str(smoke_config("adapnet_train.config")), "--set", "max_iteration=2",
                             "--set", "test_data=records/test.tfrecords", "--set", "skip_step=2"])
    assert status == 0
    return folder / "checkpoints" / "adapnet"


@pytest.fixture(autouse=True)
def _loaded_networks_are_not_drawn():
    """Every network the tests build (by evaluate, predict, setup_inference) has all its weights
    read from the run's files right after: drawing AdapNet++'s initial weights was half of each
    build. The module's training run (`run_folder`) starts from drawn weights; a weight a file
    lacks is an error, not a zero."""
    with overwritten_weights():
        yield


def test_training_writes_its_config_and_whole_model(run_folder):
    assert (run_folder / FINAL_MODEL).is_file() and (run_folder / "final.weights.h5").is_file()
    written = load_config(run_folder / RUN_CONFIG, "train")
    assert (written.model, written.num_classes, written.height, written.width) == ("AdapNet_pp", 5, 64, 128)
    assert written.max_iteration == 2 and written.checkpoint == str(run_folder)
    assert not [p for p in run_folder.iterdir() if p.name.startswith(".partial-")]


def test_evaluate_takes_the_run_folder_alone(run_folder, tmp_path, capsys):
    out = tmp_path / "folder.json"
    assert evaluate.main([str(run_folder), "--json", str(out)]) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("mIoU: ")
    by_folder = json.loads(out.read_text())
    # The network the run's config builds, with the run's weights file: the same numbers.
    out_h5 = tmp_path / "h5.json"
    assert evaluate.main([str(run_folder), "--checkpoint", str(run_folder / "final.weights.h5"),
                          "--json", str(out_h5)]) == 0
    by_h5 = json.loads(out_h5.read_text())
    assert by_folder["checkpoint"] == str(run_folder / FINAL_MODEL)
    # Its final.keras linked from elsewhere is the run's (before: "is not a training run of
    # ssma-tf (no config.yaml in its folder)"; helper 366).
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "model.keras").symlink_to(run_folder / FINAL_MODEL)
    out_link = tmp_path / "link.json"
    assert evaluate.main([str(tmp_path / "other" / "model.keras"), "--json", str(out_link)]) == 0
    assert json.loads(out_link.read_text())["mIoU"] == by_folder["mIoU"]
    for varying in ("seconds", "checkpoint"):
        del by_folder[varying], by_h5[varying]
    assert by_h5 == by_folder and by_folder["num_images"] == 3


def test_evaluate_of_a_run_names_a_bad_set(run_folder, capsys):
    assert evaluate.main([str(run_folder), "--set", "batch_size=0"]) == 2
    error = capsys.readouterr().err
    assert f"{run_folder / RUN_CONFIG} with --set batch_size=0: key 'batch_size'" in error
    # The flags as given (before: "with --set test_data=['missing.tfrecords']", never typed).
    assert evaluate.main([str(run_folder), "--test_data", "missing.tfrecords"]) == 2
    assert f"{run_folder / RUN_CONFIG} with --test_data missing.tfrecords: key 'test_data': no file matches" in \
        capsys.readouterr().err
    assert evaluate.main([str(run_folder), "--checkpoint", "missing.weights.h5"]) == 2
    assert f"{run_folder / RUN_CONFIG} with --checkpoint missing.weights.h5: key 'checkpoint': no weights file at" in \
        capsys.readouterr().err


def test_a_folder_without_a_run_config_is_an_error_naming_it(tmp_path):
    with pytest.raises(ConfigError, match=f"{tmp_path} is not a training run of ssma-tf"):
        run_config(tmp_path, "eval")
    with pytest.raises(ConfigError, match=f"{tmp_path / 'typo'} does not exist; give a training run's folder"):
        run_config(tmp_path / "typo", "eval")
    # An original TF1 checkpoint given as the run (before: "does not exist").
    (tmp_path / "model.ckpt.index").write_bytes(b"")
    for given in ("model.ckpt", "model.ckpt.index"):
        with pytest.raises(ConfigError, match=rf"^{tmp_path / given} is a checkpoint, not a training run's folder: give "
                                              rf"a config with -c \(its test data, size and classes\) and the "
                                              rf"checkpoint with --checkpoint {tmp_path / given}$"):
            run_config(tmp_path / given, "eval")


def test_a_run_without_test_data_asks_for_them(run_folder, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    text = (run_folder / RUN_CONFIG).read_text(encoding="utf-8")
    (folder / RUN_CONFIG).write_text(
        "\n".join(line for line in text.splitlines() if not line.startswith("test_data")), encoding="utf-8")
    with pytest.raises(ConfigError, match="key 'test_data': the run was trained without test_data: give"):
        run_config(folder, "eval")
    test_data = load_config(run_folder / RUN_CONFIG, "eval").test_data
    config = run_config(folder, "eval", {"test_data": list(test_data)}, check_paths=False)
    assert config.test_data == test_data and config.checkpoint == str(folder)


def test_predict_takes_the_run_folder_alone(run_folder, tmp_path):
    image, _, _ = make_sample(np.random.default_rng(3), 64, 128, 5, fusion=False)
    path = tmp_path / "scene.png"
    Image.fromarray(image[..., ::-1]).save(path)  # records hold BGR, files RGB
    ids = {}
    # The weights file with the flags it needs: the same pictures as the folder alone.
    weights = ["--checkpoint", str(run_folder / "final.weights.h5"), "--model", "AdapNet_pp", "--num_classes", "5",
               "--size", "64x128"]
    for name, model in (("folder", [str(run_folder)]), ("h5", weights)):
        output = tmp_path / name
        assert predict.main([*model, "--modality1", str(path), "-o", str(output), "--quiet",
                             "--precision", "float32"]) == 0
        ids[name] = np.asarray(Image.open(output / "class_ids" / "scene.png"))
    assert ids["folder"].shape == (64, 128) and ids["folder"].max() < 5
    np.testing.assert_array_equal(ids["folder"], ids["h5"])


def test_a_run_stands_for_its_final_model_unless_a_checkpoint_is_newer(tmp_path):
    final, weights, state = tmp_path / FINAL_MODEL, tmp_path / "final.weights.h5", tmp_path / "checkpoint"
    assert run_weights(tmp_path) == str(tmp_path)  # nothing final yet: the newest checkpoint
    final.write_bytes(b"")
    weights.write_bytes(b"")
    state.write_text("")
    os.utime(state, (1000, 1000))
    os.utime(final, (2000, 2000))
    os.utime(weights, (2000, 2000))
    assert run_weights(tmp_path) == str(final)
    os.utime(state, (3000, 3000))  # resumed to train longer: a checkpoint after the final model
    assert run_weights(tmp_path) == str(tmp_path)
    os.utime(weights, (4000, 4000))  # stopped during the export: the weights written, not the .keras file
    assert run_weights(tmp_path) == str(tmp_path)
    assert run_weights(final) == str(final)


def test_predict_names_an_unknown_dataset_in_one_line(run_folder, tmp_path, capsys):
    path = tmp_path / "scene.png"
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(path)
    status = predict.main([str(run_folder), "--dataset", "fieldz", "--modality1", str(path),
                           "-o", str(tmp_path / "out"), "--quiet", "--precision", "float32"])
    error = capsys.readouterr().err
    assert status == 2 and "Traceback" not in error
    assert len(error.strip().splitlines()) == 1
    assert error.startswith("error: --dataset: unknown dataset 'fieldz'; known datasets in ")
    assert "cityscapes" in error


def test_dataset_flag_finds_the_runs_own_palette_file_then_the_shipped_one(tmp_path):
    from ssma_tf.inference.settings import dataset_by_name

    palette = tmp_path / "my_datasets.yaml"
    palette.write_text("fields:\n  classes:\n    - {name: void, color: [0, 0, 0]}\n"
                       "    - {name: road, color: [128, 64, 128]}\n")
    assert dataset_by_name("fields", str(palette)).class_names == ("void", "road")
    assert dataset_by_name("cityscapes", str(palette)).num_classes == 12
    # Without a run's palette (weights alone), the way to one's own palette is named.
    with pytest.raises(ConfigError, match=r"^--dataset: unknown dataset 'fields'; known datasets in .*cityscapes.*; "
                                          r"a dataset of your own palette file: give -c with a config that names it"):
        dataset_by_name("fields")


def test_a_config_error_of_no_key_and_no_file_is_its_message_alone():
    assert str(ConfigError("give a config or a checkpoint")) == "give a config or a checkpoint"
    assert str(ConfigError("is missing", key="k")) == "key 'k': is missing"
    assert str(ConfigError("bad", source="a.config")) == "a.config: bad"


def test_a_run_whose_palette_file_has_moved_is_a_one_line_error_for_predict_and_export(run_folder, tmp_path, capsys):
    """A run folder copied to another machine keeps its palette file's absolute path."""
    import shutil

    from ssma_tf.cli import export

    folder = tmp_path / "copied_run"
    shutil.copytree(run_folder, folder)
    gone = tmp_path / "moved" / "my_datasets.yaml"
    text = (folder / RUN_CONFIG).read_text(encoding="utf-8")
    kept = [line for line in text.splitlines() if not line.startswith(("dataset:", "palette:"))]
    (folder / RUN_CONFIG).write_text("\n".join(kept + ["dataset: fields", f"palette: {gone}", ""]), encoding="utf-8")
    image = tmp_path / "scene.png"
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(image)
    for command, argv in ((predict, [str(folder), "--modality1", str(image), "-o", str(tmp_path / "out"), "--quiet",
                                     "--precision", "float32"]),
                          (export, [str(folder), "-o", str(tmp_path / "export")])):
        assert command.main(argv) == 2
        error = capsys.readouterr().err
        assert "Traceback" not in error and len(error.strip().splitlines()) == 1, error
        assert f"{folder / RUN_CONFIG}: key 'palette': {gone}: cannot read the datasets file: No such file" in error


def test_predict_refuses_an_image_named_as_another_modality_than_the_network_reads(run_folder, tmp_path, capsys):
    path = tmp_path / "scene.png"
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(path)
    status = predict.main([str(run_folder), "--modality2", str(path), "-o", str(tmp_path / "out"), "--quiet",
                           "--precision", "float32"])
    error = capsys.readouterr().err
    assert status == 2 and len(error.strip().splitlines()) == 1, error
    assert "the network reads modality1 (its config), but only --modality2 is given: pass the images as --modality1" \
        in error
    assert not (tmp_path / "out" / "class_ids").exists()


def test_a_copied_runs_config_file_does_not_read_the_other_folders_weights(run_folder, tmp_path, capsys):
    """`-c COPY/config.yaml` read the weights of the folder copied from (its absolute checkpoint),
    which may have trained on since (helper 131); the folder itself, or --checkpoint, reads its own."""
    import shutil

    from ssma_tf.cli import export, prune

    folder = tmp_path / "copied_run"
    shutil.copytree(run_folder, folder)
    config = str(folder / RUN_CONFIG)
    image = tmp_path / "scene.png"
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(image)
    said = (f"{config}: key 'checkpoint': this is the config of the run in {folder}, but its checkpoint "
            f"names {run_folder}: the run folder was moved or copied, and the weights would be read from {run_folder}; "
            "to read this folder's, ")
    for command, argv, how in (
            (evaluate, ["-c", config], f"give the folder itself (ssma-evaluate {folder}) or add --set "
                                       f"checkpoint={folder}"),
            (predict, ["-c", config, "--modality1", str(image), "-o", str(tmp_path / "out"), "--quiet"],
             f"give the folder itself as RUN, or --checkpoint {folder}"),
            (export, ["-c", config, "-o", str(tmp_path / "export")],
             f"give the folder itself as RUN, or --checkpoint {folder}"),
            (prune, ["-c", config, "-o", str(tmp_path / "pruned"), "--test-data", str(image)],
             f"give --checkpoint {folder}")):
        assert command.main(argv) == 2, command
        assert capsys.readouterr().err == f"error: {said}{how}\n", command
    # With the weights named, the copy is read as it is.
    assert evaluate.main(["-c", config, "--set", f"checkpoint={folder}"]) == 0


def test_a_run_with_set_checkpoint_reads_the_weights_the_set_names(run_folder, tmp_path, capsys):
    """Before: `ssma-predict RUN --set checkpoint=X` (and `ssma-export`) read the run's final model
    without a word, even for an X that does not exist; ssma-evaluate RUN read X (helper 326)."""
    from ssma_tf.cli import export

    from ssma_tf.inference.settings import setup_inference

    image = tmp_path / "scene.png"
    Image.fromarray(np.random.default_rng(5).integers(0, 255, (64, 128, 3), np.uint8)).save(image)
    network = setup_inference(checkpoint=run_folder).model
    last = network.trainable_weights[-1]
    last.assign(last.numpy() + np.random.default_rng(6).normal(0, 1, last.shape))  # another network's output
    other = tmp_path / "other.weights.h5"
    network.save_weights(other)
    ids = {}
    for name, model in (("final", [str(run_folder)]),
                        ("given", ["-c", str(run_folder / RUN_CONFIG), "--checkpoint", str(other)]),
                        ("set", [str(run_folder), "--set", f"checkpoint={other}"])):
        assert predict.main([*model, "--modality1", str(image), "-o", str(tmp_path / name), "--quiet",
                             "--precision", "float32"]) == 0, capsys.readouterr().err
        ids[name] = np.asarray(Image.open(tmp_path / name / "class_ids" / "scene.png"))
    np.testing.assert_array_equal(ids["set"], ids["given"])
    assert not np.array_equal(ids["set"], ids["final"])
    missing = tmp_path / "does" / "not" / "exist"
    for command, argv in ((predict, ["--modality1", str(image), "-o", str(tmp_path / "none"), "--quiet"]),
                          (export, ["-o", str(tmp_path / "export")])):
        assert command.main([str(run_folder), "--set", f"checkpoint={missing}", *argv]) == 2, command
        error = capsys.readouterr().err
        assert error.startswith(f"error: {run_folder / RUN_CONFIG} with --set checkpoint=") and str(missing) in error
        assert len(error.strip().splitlines()) == 1, error
    assert not (tmp_path / "none").exists() and not (tmp_path / "export").exists()


def test_a_copy_of_a_runs_final_files_alone_does_not_read_the_other_folders_weights(run_folder, tmp_path, capsys):
    """Before: `-c SHARED/config.yaml` of a folder holding only the run's final files (the way a
    trained model is shared) read the weights of the folder it came from, exit 0 (helper 326)."""
    import shutil

    from ssma_tf.cli import export

    folder = tmp_path / "shared_model"
    folder.mkdir()
    for name in (RUN_CONFIG, FINAL_MODEL, "final.weights.h5", "final.json"):
        shutil.copy2(run_folder / name, folder / name)
    config = str(folder / RUN_CONFIG)
    image = tmp_path / "scene.png"
    Image.fromarray(np.zeros((64, 128, 3), np.uint8)).save(image)
    said = f"{config}: key 'checkpoint': this is the config of the run in {folder}, but its checkpoint names {run_folder}"
    for command, argv in ((evaluate, ["-c", config]),
                          (predict, ["-c", config, "--modality1", str(image), "-o", str(tmp_path / "out"), "--quiet"]),
                          (export, ["-c", config, "-o", str(tmp_path / "export")])):
        assert command.main(argv) == 2, command
        assert capsys.readouterr().err.startswith(f"error: {said}"), command
    assert not (tmp_path / "out").exists() and not (tmp_path / "export").exists()
    # The ways the message gives read the copy's own weights.
    assert evaluate.main([str(folder)]) == 0
    assert evaluate.main(["-c", config, "--set", f"checkpoint={folder}"]) == 0
    assert predict.main([str(folder), "--modality1", str(image), "-o", str(tmp_path / "out"), "--quiet"]) == 0
    assert predict.main(["-c", config, "--checkpoint", str(folder), "--modality1", str(image), "-o",
                         str(tmp_path / "out2"), "--quiet"]) == 0, capsys.readouterr().err


def test_a_run_with_set_checkpoint_is_checked_as_with_checkpoint(run_folder, tmp_path):
    """Before: `RUN --set checkpoint=X` read X without the checks `-c RUN/config.yaml --checkpoint X`
    makes: a network trained on modality 2 was fed modality 1 without a word (an export recording
    modality1), and a depth-pretraining run failed on its class count (helper 337)."""
    import shutil

    from ssma_tf.config import ConfigWarning
    from ssma_tf.inference.settings import setup_inference

    depth = tmp_path / "depth"
    depth.mkdir()
    shutil.copy2(run_folder / "final.weights.h5", depth / "final.weights.h5")
    saved = (run_folder / RUN_CONFIG).read_text()
    (depth / RUN_CONFIG).write_text(saved + "\ninput_modality: modality2\n" if "input_modality" not in saved else
                                    saved.replace("input_modality: modality1", "input_modality: modality2"))
    weights = str(depth / "final.weights.h5")
    with pytest.warns(ConfigWarning, match=f"{run_folder / RUN_CONFIG}.* is from the run {depth}, trained on "
                                           "modality2"):
        setup_inference(checkpoint=run_folder, overrides={"checkpoint": weights})
    (depth / RUN_CONFIG).write_text(saved + "\npretraining: depth\n")
    with pytest.raises(ConfigError, match=rf"--set checkpoint={weights}: this is .*depth"):
        setup_inference(checkpoint=run_folder, overrides={"checkpoint": weights})
