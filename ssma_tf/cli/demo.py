"""The whole SSMA workflow in miniature, on synthetic RGB-D scenes: `ssma-demo` (or `make demo`).

Steps, each one the command a user would type (the configs are in ssma_tf/cli/demo_configs/):
  1. python -m ssma_tf.cli.synthetic   synthetic street scenes: RGB, depth as jet, labels
  2. ssma-convert                      train and validation lists to TFRecords
  3. ssma-train                        AdapNet++ on RGB, AdapNet++ on depth, then SSMA with the two
                                       as frozen experts (checkpoint1/checkpoint2)
  4. ssma-evaluate --json              the three models on the validation scenes
  5. ssma-predict --attention          pictures: predictions, overlays, SSMA attention maps
and finally a table of mIoU per model and a side-by-side panel (demo_output/comparison.png).
Everything goes to `demo_output/` in the current folder (the configs name it).

Runs resume: the data and a finished training run are not made again when they exist (delete
demo_output/ to start over); the evaluations, the pictures and the table are made every time.
"""

import argparse
import json
import pathlib
import sys
import time

from ssma_tf.cli.common import ArgumentParser, add_version, tensorflow_command
from ssma_tf.cli.experiment import is_finished, run_command

CONFIGS = pathlib.Path(__file__).resolve().parent / "demo_configs"
OUTPUT = "demo_output"
MODELS = (
    ("adapnet_pp_rgb", "AdapNet++ (RGB)"),
    ("adapnet_pp_depth", "AdapNet++ (depth)"),
    ("ssma", "SSMA (RGB + depth)"),
)
NUM_PICTURES = 4
# The synthetic dataset the demo makes (its configs' height and width); a `data/` folder made
# otherwise is refused, not trained and evaluated on resized (before: stretched labels, then a
# traceback from the comparison panel).
DATA = {"seed": 0, "height": 48, "width": 96, "num_train": 200, "num_val": 50, "style": "source", "thermal": False}
# What a `classes.yaml` written before a key was recorded made: no thermal modality.
_UNRECORDED = {"thermal": False}


def data_arguments() -> list:
    """The synthetic command's flags that make `DATA` (a switch only when on: `--thermal` takes
    no value; before, "--thermal False" stopped `make demo` at its first step)."""
    flags = []
    for key, value in DATA.items():
        if isinstance(value, bool):
            flags += [f"--{key}"] if value else []
        else:
            flags += [f"--{key}", str(value)]
    return flags


def check_existing_data(data: pathlib.Path) -> None:
    """Raises `UserInputError` unless `data` holds the synthetic dataset the demo makes (`DATA`),
    as its `classes.yaml` records the generator's arguments; says which differ."""
    import yaml

    from ssma_tf.errors import UserInputError

    start_over = f"delete {data.parent} (or its data/ folder) to start over"
    try:
        generator = (yaml.safe_load((data / "classes.yaml").read_text()) or {}).get("generator")
    except (OSError, yaml.YAMLError, AttributeError) as error:
        raise UserInputError(f"{data} holds a val.txt but no readable classes.yaml of the synthetic generator "
                             f"({type(error).__name__}): not the demo's data; {start_over}") from None
    if not isinstance(generator, dict):
        raise UserInputError(f"{data / 'classes.yaml'} does not say how the data was made (no 'generator' "
                             f"entry): not the demo's data; {start_over}")
    # The thermal modality too (before: a folder written with --thermal passed, and the demo failed
    # on its four-column lists after training every model; helper 240).
    made = {key: generator.get(key, _UNRECORDED.get(key)) for key in DATA}
    differ = [f"{key} {made[key]!r} (the demo's {value!r})" for key, value in DATA.items() if made[key] != value]
    if differ:
        raise UserInputError(f"{data} holds synthetic data made with other arguments than the demo's: "
                             f"{', '.join(differ)}; its configs train and evaluate at "
                             f"{DATA['height']}x{DATA['width']}: {start_over}")
    # Its lists too: a classes.yaml written before `thermal` was recorded does not say it (helper 241).
    from ssma_tf.lists import read_lines

    try:
        columns = {len(fields) for _, fields in read_lines(data / "val.txt")}
    except UserInputError as error:
        raise UserInputError(f"{error}: not the demo's data; {start_over}") from None
    if not columns:
        raise UserInputError(f"{data / 'val.txt'} lists no sample: not the demo's data; {start_over}")
    if columns != {3}:
        shown = " or ".join(map(str, sorted(columns)))
        raise UserInputError(f"{data / 'val.txt'} has lines of {shown} columns, not the demo's 3 (rgb depth label): "
                             f"{start_over}")


def comparison_panel(output: pathlib.Path, data: pathlib.Path) -> pathlib.Path:
    """One picture per row: RGB | depth | ground truth | each model's prediction."""
    import numpy as np
    from PIL import Image

    # Neither imports TensorFlow, so no start-up lines interleave with the results.
    from ssma_tf.data.datasets import get_dataset_info
    from ssma_tf.lists import read_lines
    from ssma_tf.visualize import colorize, picture_grid, save_png

    info = get_dataset_info("synthetic")
    palette = info.palette
    rows = []
    for _, fields in read_lines(data / "val.txt")[:NUM_PICTURES]:
        rgb, depth, label = (data / part for part in fields)
        name = rgb.stem
        tiles = [np.asarray(Image.open(rgb).convert("RGB")), np.asarray(Image.open(depth).convert("RGB")),
                 colorize(np.asarray(Image.open(label)), palette)]
        for key, _ in MODELS:
            tiles.append(colorize(np.asarray(Image.open(output / "pictures" / key / "class_ids" / f"{name}.png")),
                                  palette))
        rows.append(tiles)
    titles = ["RGB", "depth (jet)", "ground truth"] + [title for _, title in MODELS]
    # Shown small otherwise: enlarged 3x.
    panel = picture_grid(rows, titles, info.class_names, palette, scale=3)
    path = output / "comparison.png"
    save_png(str(path), panel)
    return path


@tensorflow_command
def main(argv=None) -> int:
    """Runs the steps not done yet and prints the results; returns the exit status."""
    from ssma_tf.files import atomic_write

    parser = ArgumentParser(prog="ssma-demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=OUTPUT, help=f"folder for data, checkpoints, results: {OUTPUT} under "
                        "the current folder, which the demo's configs name (the only value taken)")
    add_version(parser)
    args = parser.parse_args(argv)
    output = pathlib.Path.cwd() / args.output
    if output != pathlib.Path.cwd() / OUTPUT:
        # Before: a SystemExit message and status 1, where a flag's value is a usage error.
        parser.error(f"--output: the configs in {CONFIGS} write to {OUTPUT}/; keep the default (run the demo from "
                     "another folder to put it elsewhere)")
    data = output / "data"
    timings = {}
    started = time.time()

    if not (data / "val.txt").exists():
        timings["dataset"] = run_command("python -m ssma_tf.cli.synthetic", [
            "--output_dir", data, *data_arguments()],
            step="1. synthetic RGB-D dataset")
    else:
        check_existing_data(data)
    for split in ("train", "val"):
        if not (data / f"{split}.tfrecords").exists():
            timings[f"convert {split}"] = run_command("ssma-convert", [
                "-f", data / f"{split}.txt", "-r", data / f"{split}.tfrecords"], step=f"2. {split} list to TFRecords")
    for key, title in MODELS:
        if not is_finished(output / "checkpoints" / key):
            timings[f"train {key}"] = run_command("ssma-train", ["-c", CONFIGS / f"{key}.config"],
                                                  step=f"3. train {title}")
    results = {}
    for key, title in MODELS:
        path = output / "results" / f"{key}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        # The test config a user would write, evaluated every time (the demo shows the commands).
        timings[f"evaluate {key}"] = run_command("ssma-evaluate", [
            "-c", CONFIGS / f"{key}_test.config", "--json", path], step=f"4. evaluate {title}")
        results[key] = json.loads(path.read_text())
    pictures_list = data / "pictures.txt"
    with atomic_write(pictures_list) as stream:
        stream.write("\n".join((data / "val.txt").read_text().split("\n")[:NUM_PICTURES]) + "\n")
    for key, title in MODELS:
        extra = ["--attention"] if key == "ssma" else []
        timings[f"predict {key}"] = run_command("ssma-predict", [
            "-c", CONFIGS / f"{key}_test.config", "--list", pictures_list,
            "-o", output / "pictures" / key, "--quiet"] + extra, step=f"5. pictures of {title}")
    panel = comparison_panel(output, data)

    ssma = results["ssma"]
    print(f"\n=== Results on the synthetic validation scenes ({ssma['num_images']} images, "
          f"{DATA['height']}x{DATA['width']}, {ssma['num_classes']} classes)\n")
    header = f"{'model':22s} {'mIoU':>6s} {'pixel acc.':>10s}  " + " ".join(
        f"{entry['name'][:10]:>10s}" for entry in results["ssma"]["per_class"])
    print(header)
    for key, title in MODELS:
        metrics = results[key]
        per_class = " ".join(f"{entry['iou']:10.1f}" for entry in metrics["per_class"])
        print(f"{title:22s} {metrics['mIoU']:6.1f} {metrics['pixel_accuracy']:10.1f}  {per_class}")
    best_single = max(results["adapnet_pp_rgb"]["mIoU"], results["adapnet_pp_depth"]["mIoU"])
    margin = results["ssma"]["mIoU"] - best_single
    print(f"\nSSMA vs the better unimodal model: {margin:+.1f} mIoU")
    print(f"pictures: {output / 'pictures'} (class ids, colours, overlays, SSMA attention); panel: {panel}")
    print(f"total time: {(time.time() - started) / 60:.1f} min")
    with atomic_write(output / "results" / "timings.json") as stream:
        stream.write(json.dumps(timings, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
