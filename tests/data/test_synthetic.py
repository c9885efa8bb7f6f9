

def test_command_reports_a_bad_size_as_one_error_line(tmp_path, capsys):
    from ssma_tf.cli.synthetic import main

    assert main(["--output_dir", str(tmp_path / "d"), "--height", "8", "--num_train", "1", "--num_val", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: height must be an integer >= 16, got 8"
    assert not (tmp_path / "d").exists()
