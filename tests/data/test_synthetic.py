import pytest


def test_command_reports_a_bad_size_as_one_error_line(tmp_path, capsys):
    from ssma_tf.cli.synthetic import main

    assert main(["--output_dir", str(tmp_path / "d"), "--height", "8", "--num_train", "1", "--num_val", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: height must be an integer >= 16, got 8"
    assert not (tmp_path / "d").exists()


def test_a_stopped_rewrite_leaves_no_lists_or_classes_of_the_old_dataset(tmp_path, monkeypatch):
    """Helper 291: a re-run stopped among the images left train.txt, val.txt and classes.yaml of
    the dataset before, describing pixels already replaced."""
    from ssma_tf import visualize
    from ssma_tf.data import synthetic

    synthetic.write_dataset(tmp_path, num_train=2, num_val=1, height=16, width=16, seed=0)
    saved = visualize.save_png
    calls = []

    def stop_at_the_fourth(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 4:
            raise OSError(28, 'No space left on device')
        return saved(*args, **kwargs)

    monkeypatch.setattr(visualize, "save_png", stop_at_the_fourth)
    with pytest.raises(OSError):
        synthetic.write_dataset(tmp_path, num_train=2, num_val=1, height=32, width=32, seed=1)
    assert [name for name in ("train.txt", "val.txt", "classes.yaml") if (tmp_path / name).exists()] == []
    monkeypatch.setattr(visualize, "save_png", saved)
    synthetic.write_dataset(tmp_path, num_train=2, num_val=1, height=32, width=32, seed=1)
    assert len((tmp_path / "val.txt").read_text().splitlines()) == 1
    assert "seed: 1" in (tmp_path / "classes.yaml").read_text()


def test_an_output_dir_that_is_a_file_is_named_as_one(tmp_path, capsys):
    """Helper 291: "error: mk.py: File exists", status 1."""
    from ssma_tf.cli.synthetic import main

    file = tmp_path / "mk.py"
    file.write_text("")
    assert main(["--output_dir", str(file), "--num_train", "1", "--num_val", "0"]) == 2
    assert capsys.readouterr().err.strip() == f"error: --output_dir {file} is a file; give a folder"
    assert main(["--output_dir", str(file / "d"), "--num_train", "1", "--num_val", "0"]) == 2
    assert capsys.readouterr().err.strip() == f"error: --output_dir {file / 'd'}: {file} is a file, not a folder"
