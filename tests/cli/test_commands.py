"""The console commands: declared in pyproject.toml, each with `--help` and `--version`; `--set`."""

from __future__ import annotations

import importlib
import sys
import tomllib

import pytest

import ssma_tf
from ssma_tf.cli.common import ArgumentParser
from ssma_tf.config import ConfigError, load_config, parse_overrides
from tests.conftest import ROOT
from tests.training_helpers import smoke_config

COMMANDS = {
    "ssma-train": "ssma_tf.cli.train",
    "ssma-evaluate": "ssma_tf.cli.evaluate",
    "ssma-predict": "ssma_tf.cli.predict",
    "ssma-export": "ssma_tf.cli.export",
    "ssma-convert": "ssma_tf.cli.convert",
    "ssma-check-records": "ssma_tf.cli.check_records",
    "ssma-prepare": "ssma_tf.cli.prepare",
    "ssma-convert-tf1": "ssma_tf.cli.convert_tf1",
    "ssma-demo": "ssma_tf.cli.demo",
    "ssma-select-labels": "ssma_tf.cli.select_labels",
    "ssma-pretrain-depth": "ssma_tf.cli.pretrain_depth",
    "ssma-importance-weights": "ssma_tf.cli.importance_weights",
    "ssma-prune": "ssma_tf.cli.prune",
    "ssma-scene": "ssma_tf.cli.scene",
}


def test_pyproject_declares_every_command_and_reads_the_one_version():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    scripts = project["project"]["scripts"]
    assert scripts == {name: f"{module}:main" for name, module in COMMANDS.items()}
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "ssma_tf.__version__"}
    extras = project["project"]["optional-dependencies"]
    assert set(extras) >= {"test", "tensorboard", "jax", "gpu"}
    assert not any(d.startswith("absl") for d in project["project"]["dependencies"])


def test_every_data_file_the_package_reads_is_packaged():
    # A wheel carries only the files package-data names: each data file inside ssma_tf must match.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = project["tool"]["setuptools"]["package-data"]["ssma_tf"]
    package = ROOT / "ssma_tf"
    data_files = [p for p in package.rglob("*") if p.is_file() and p.suffix in (".yaml", ".config", ".json")]
    assert data_files
    for path in data_files:
        relative = path.relative_to(package)
        assert any(relative.match(pattern) for pattern in patterns), f"{relative} is not in package-data"


@pytest.mark.parametrize("name, module", sorted(COMMANDS.items()))
def test_every_command_prints_its_version_and_help(name, module, capsys, monkeypatch):
    main = importlib.import_module(module).main
    parsed = []
    reads = ArgumentParser.parse_known_args
    monkeypatch.setattr(ArgumentParser, "parse_known_args",
                        lambda self, *args, **kwargs: parsed.append(self.prog) or reads(self, *args, **kwargs))
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"{name} (ssma-tf) {ssma_tf.__version__}"
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0
    assert f"usage: {name}" in capsys.readouterr().out
    assert parsed and parsed[0] == name  # the parser that takes either spelling of a flag


def test_the_synthetic_data_module_prints_its_version_too(capsys):
    """The README's command table lists it beside the ssma-* commands (helper 97: no --version)."""
    from ssma_tf.cli import synthetic

    with pytest.raises(SystemExit) as stop:
        synthetic.main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"python -m ssma_tf.cli.synthetic (ssma-tf) {ssma_tf.__version__}"


@pytest.mark.parametrize("module", ["semi_supervised_experiment", "adaptation_demo", "fusion_table"])
def test_the_experiments_print_their_version_and_take_debug(module, capsys):
    """The semi-supervised experiment had neither --version nor --debug, though the README says
    every command has --version (helper 328)."""
    main = importlib.import_module(f"ssma_tf.cli.{module}").main
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and f"(ssma-tf) {ssma_tf.__version__}" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    assert stop.value.code == 0 and "--debug" in capsys.readouterr().out


def test_a_long_flag_takes_dashes_or_underscores_and_says_unknown_ones_as_typed(capsys):
    parser = ArgumentParser(prog="tool")
    parser.add_argument("--finetune-steps", type=int, default=0)
    parser.add_argument("--test_data", nargs="+")
    parser.add_argument("rest", nargs="*")
    for given in (["--finetune_steps", "3"], ["--finetune_steps=3"], ["--finetune-steps", "3"]):
        assert parser.parse_args(given).finetune_steps == 3
    assert parser.parse_args(["--test-data", "a", "b"]).test_data == ["a", "b"]
    assert parser.parse_args(["--test-data=a"]).test_data == ["a"]
    # After `--` nothing is a flag, and nothing is rewritten.
    assert parser.parse_args(["--", "--finetune_steps"]).rest == ["--finetune_steps"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--finetune_stepz", "3"])
    assert "unrecognized arguments: --finetune_stepz" in capsys.readouterr().err


def test_a_flag_of_a_list_given_twice_is_refused_not_cut_to_its_last_list(capsys):
    """argparse keeps the last list: `ssma-select-labels --budgets 2 --budgets 4` selected for 4
    alone, `ssma-prune --stages a --stages b` pruned b alone, without a word."""
    from ssma_tf.cli import prune, select_labels

    parser = ArgumentParser(prog="tool")
    parser.add_argument("--test_data", nargs="+")
    parser.add_argument("--seed", type=int)
    parser.add_argument("rest", nargs="*")
    for given in (["--test_data", "a", "--test_data", "b"], ["--test-data=a", "--test_data", "b"]):
        with pytest.raises(SystemExit, match="2"):
            parser.parse_args(given)
        assert ("tool: error: --test_data is given twice: give all its values after one --test_data (argparse would "
                "keep the last list alone)") in capsys.readouterr().err
    # A flag of one value given again is argparse's as ever (the last), and after `--` nothing is a flag.
    assert parser.parse_args(["--seed", "1", "--seed", "2"]).seed == 2
    assert parser.parse_args(["--test_data", "a", "--", "--test_data"]).rest == ["--test_data"]
    for build, given in ((select_labels.build_parser, ["-c", "x", "--budget", "8", "-o", "o", "--budgets", "2",
                                                        "--budgets", "4"]),
                         (prune.build_parser, ["-c", "x", "-o", "out", "--stages", "block4:0.1",
                                               "--stages", "all:0.1"])):
        with pytest.raises(SystemExit, match="2"):
            build().parse_args(given)
        assert "is given twice" in capsys.readouterr().err


def test_a_module_run_with_python_m_is_named_so_in_its_usage(monkeypatch, capsys):
    """argparse names a parser after sys.argv[0], the module's file: "usage: synthetic.py"."""
    monkeypatch.setattr(sys, "argv", [str(ROOT / "ssma_tf" / "cli" / "synthetic.py")])
    assert ArgumentParser().prog == "python -m ssma_tf.cli.synthetic"
    assert ArgumentParser(prog="tool").prog == "tool"
    monkeypatch.setattr(sys, "argv", [str(ROOT / "tools" / "make_synthetic_dataset.py")])
    assert ArgumentParser().prog == "make_synthetic_dataset.py"  # a script is typed as it is named


def test_subcommands_and_tools_take_either_spelling():
    from ssma_tf.cli import prepare, prune

    args = prepare.build_parser().parse_args(["fill", "--from_list", "l.txt", "--output_dir", "out", "--max_depth", "7"])
    assert (str(args.from_list), str(args.output_dir), args.max_depth) == ("l.txt", "out", 7.0)
    args = prune.build_parser().parse_args(["-c", "x.config", "-o", "out", "--finetune_steps", "0", "--test-data", "r"])
    assert (args.finetune_steps, args.test_data) == (0, ["r"])
    # Only the parents that `ssma-prepare` shares between its subcommands are plain argparse.
    for path in sorted((ROOT / "ssma_tf" / "cli").glob("*.py")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if "argparse.ArgumentParser(" in line and "def " not in line:
                assert "add_help=False" in line, f"{path.name}: {line.strip()}"


def test_set_values_are_read_as_yaml():
    assert parse_overrides(["batch_size=4", "learning_rate=1e-3", "train_data=[a.tfrecords, b.tfrecords]",
                            "augmentation={flip: true}", "intialize="]) == {
        "batch_size": 4, "learning_rate": 1e-3, "train_data": ["a.tfrecords", "b.tfrecords"],
        "augmentation": {"flip": True}, "intialize": None,
    }
    with pytest.raises(ConfigError, match="expected KEY=VALUE, got 'batch_size'"):
        parse_overrides(["batch_size"])
    with pytest.raises(ConfigError, match="key 'seed': given twice"):
        parse_overrides(["seed=1", "seed=2"])


def test_set_replaces_a_key_and_is_validated_like_the_file():
    path = smoke_config("adapnet_train.config")
    config = load_config(path, "train", check_paths=False,
                         overrides={"batch_size": 4, "initialize": None, "max_iteration": 9})
    assert (config.batch_size, config.max_iteration, config.initialize) == (4, 9, None)
    with pytest.raises(ConfigError) as error:
        load_config(path, "train", check_paths=False, overrides={"batch_size": "two"})
    message = str(error.value)
    assert f"{path} with --set batch_size='two': key 'batch_size': expected" in message
    with pytest.raises(ConfigError, match="key 'learning_rat': unknown key; did you mean 'learning_rate'"):
        load_config(path, "train", check_paths=False, overrides={"learning_rat": 0.1})
    # `--set batch_size=` (nothing after '='): shown as typed (before: "--set batch_size=None").
    with pytest.raises(ConfigError, match=r"with --set batch_size=: key 'batch_size': is empty; train needs a value"):
        load_config(path, "train", check_paths=False, overrides={"batch_size": None})


def test_train_reports_a_bad_set_with_the_key_and_value(tmp_path, monkeypatch, capsys):
    from ssma_tf.cli import train

    monkeypatch.chdir(tmp_path)
    assert train.main(["-c", str(smoke_config("adapnet_train.config")), "--set", "height=100"]) == 2
    error = capsys.readouterr().err
    assert "--set height=100" in error and "key 'height'" in error and "multiple of 16" in error
    with pytest.raises(SystemExit) as stop:
        train.main(["-c", str(smoke_config("adapnet_train.config")), "--set", "height"])
    assert stop.value.code == 2
    assert not (tmp_path / "checkpoints").exists()
    # Two settings after one --set: the second is a word argparse did not expect (before: only
    # "unrecognized arguments: seed=3"; predict took it for the run folder and said "not both").
    with pytest.raises(SystemExit):
        train.main(["-c", str(smoke_config("adapnet_train.config")), "--set", "height=64", "seed=3"])
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        "unrecognized arguments: seed=3 (seed=3 is a setting: give --set before each one, as --set a=1 --set b=2)")
    # A quoted value with spaces is named whole (before: cut at its first space, "semi_supervised={method:").
    with pytest.raises(SystemExit):
        train.main(["-c", str(smoke_config("adapnet_train.config")), "--set", "height=64",
                    "semi_supervised={method: classmix}"])
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        "('semi_supervised={method: classmix}' is a setting: give --set before each one, as --set a=1 --set b=2)")
    from ssma_tf.cli import predict

    with pytest.raises(SystemExit):
        predict.main(["-c", str(smoke_config("adapnet_train.config")), "-o", str(tmp_path / "out"), "--set",
                      "height=64", "seed=3"])
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        "error: seed=3 is a setting: give --set before each one, as --set a=1 --set b=2")
    from ssma_tf.cli import evaluate

    with pytest.raises(SystemExit):
        evaluate.main(["-c", str(smoke_config("adapnet_train.config")), "--set", "height=64", "seed=3"])
    assert capsys.readouterr().err.splitlines()[-1].endswith("error: seed=3 is a setting: give --set before each one, "
                                                            "as --set a=1 --set b=2")
    # A flag and the --set of its key: before, the flag won without a word.
    with pytest.raises(SystemExit):
        evaluate.main(["-c", str(smoke_config("adapnet_eval.config")), "--set", "test_data=a.tfrecords",
                       "--test_data", "b.tfrecords"])
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        "error: --test_data and --set test_data=... both give the test_data; give one of them")


def test_a_child_command_imports_this_checkouts_package(tmp_path, monkeypatch):
    # The demos and experiments run each step as `python -m ssma_tf.cli...`: the step must run this
    # code, not another installed copy, from any folder.
    import subprocess
    import sys

    from ssma_tf.cli.common import child_environment

    monkeypatch.delenv("PYTHONPATH", raising=False)
    env = child_environment()
    assert env["TF_CPP_MIN_LOG_LEVEL"] == "2" and env["PYTHONUNBUFFERED"] == "1"
    out = subprocess.run([sys.executable, "-c", "import ssma_tf; print(ssma_tf.__file__)"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(ROOT / "ssma_tf" / "__init__.py")


def test_a_modules_main_guard_comes_after_everything_it_runs():
    """`python -m ssma_tf.cli.predict` ran `main()` before a function defined below the
    `if __name__ == "__main__":` block existed (a NameError in `make demo`), which imports of the
    module in tests never see: every module of the package, tools and benchmarks ends with its guard."""
    import ast

    late = []
    for path in sorted(p for folder in ("ssma_tf", "tools", "bench") for p in (ROOT / folder).rglob("*.py")):
        body = ast.parse(path.read_text(encoding="utf-8")).body
        guards = [index for index, node in enumerate(body) if isinstance(node, ast.If)
                  and "__name__" in ast.unparse(node.test) and "__main__" in ast.unparse(node.test)]
        if guards and guards[-1] != len(body) - 1:
            late.append(f"{path.relative_to(ROOT)}: {ast.unparse(body[guards[-1] + 1]).splitlines()[0]}")
    assert not late, late
