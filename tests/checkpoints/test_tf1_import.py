"""TF1 checkpoint import: the fixture's numbers, every kind of checkpoint, and the errors."""


import numpy as np
import pytest

from ssma_tf.checkpoints import CheckpointError, detect_kind, load_tf1_checkpoint, tf1_variable_map
from ssma_tf.models import SSMA, AdapNetPP
from tests.conftest import SHARED, shared_path
from tests.tf1_helpers import random_arrays, read_spec, write_tf1_checkpoint

SPEC = SHARED / "spec"


@pytest.fixture(scope="module")
def adapnet():
    return AdapNetPP(12)


@pytest.fixture(scope="module")
def ssma():
    return SSMA(12)


def relative_error(actual, expected):
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def test_fixture_reproduces_every_reference_array(tf1_fixture_dir, adapnet):
    report = load_tf1_checkpoint(adapnet, str(tf1_fixture_dir / "model.ckpt"))
    assert (len(report.loaded), report.missing, report.unused) == (388, [], [])
    reference = np.load(tf1_fixture_dir / "reference.npz")
    image = reference["modality1"]
    outputs = adapnet(image, training=False, return_all=True)
    features = adapnet.encoder(image, training=False)
    for name, value in [("softmax", outputs["softmax"]), ("logits", outputs["logits"])] + [
        (key, features[key]) for key in ("easpp", "block4", "skip1", "skip2")
    ]:
        assert relative_error(np.asarray(value), reference[name]) <= 1e-4, name
    # The plain call is the softmax, exactly.
    np.testing.assert_array_equal(np.asarray(adapnet(image, training=False)), np.asarray(outputs["softmax"]))


def test_mapping_covers_the_spec_names_and_shapes(adapnet, ssma):
    for model, listing in ((adapnet, "tf1_variables_adapnet_pp.txt"), (ssma, "tf1_variables_ssma.txt")):
        spec = read_spec(shared_path("spec", listing))
        mapping = tf1_variable_map(model)
        assert set(mapping) == set(spec)
        assert {n: list(v.shape) for n, v in mapping.items()} == spec
        assert len({id(v) for v in mapping.values()}) == len(model.weights)


def test_ssma_checkpoint_loads_every_variable(tmp_path, ssma):
    spec = read_spec(shared_path("spec", "tf1_variables_ssma.txt"))
    arrays = random_arrays(spec, seed=1)
    prefix = write_tf1_checkpoint(str(tmp_path / "ssma.ckpt"), arrays)
    report = load_tf1_checkpoint(ssma, prefix)
    assert report.kind == "ssma"
    assert (len(report.loaded), report.missing, report.unused) == (747, [], [])
    mapping = tf1_variable_map(ssma)
    for name, value in arrays.items():
        np.testing.assert_array_equal(np.asarray(mapping[name]), value, err_msg=name)


def test_imagenet_checkpoint_fills_the_encoder_only(tmp_path):
    spec = read_spec(shared_path("spec", "tf1_variables_imagenet_init.txt"))
    arrays = random_arrays(spec, seed=2)
    prefix = write_tf1_checkpoint(str(tmp_path / "imagenet.ckpt"), arrays)
    assert detect_kind(arrays) == "imagenet"
    model = AdapNetPP(5)
    report = load_tf1_checkpoint(model, prefix)
    mapping = tf1_variable_map(model)
    # Every name of the ImageNet file that the architecture has is loaded, the rest reported unused.
    usable = {n[:-2] for n in arrays if n[:-2] in mapping}
    assert set(report.loaded) == usable
    assert all("shortcut/BatchNorm" in n for n in report.unused)
    assert "resnet_v2_50/conv0/BatchNorm/gamma" in report.missing
    assert "resnet_v2_50/conv41/weights" in report.missing
    name = "resnet_v2_50/block2/unit_4/bottleneck_v1/conv2/weights"
    np.testing.assert_array_equal(np.asarray(mapping[name]), arrays[name + ":0"])
    # Loaded as a model (helper 89: "only trained models convert", a word of ssma-convert-tf1's).
    import ssma_tf

    with pytest.raises(CheckpointError, match=r"imagenet\.ckpt is the ImageNet initialisation of AdapNet\+\+'s encoder, "
                                              r"not a trained model \(it has no decoder\): give it as a training "
                                              r"config's intialize$"):
        ssma_tf.load_model(prefix)


def test_two_unimodal_checkpoints_fill_the_two_experts(tmp_path, ssma):
    spec = read_spec(shared_path("spec", "tf1_variables_adapnet_pp.txt"))
    first, second = random_arrays(spec, seed=3), random_arrays(spec, seed=4)
    prefix1 = write_tf1_checkpoint(str(tmp_path / "rgb.ckpt"), first)
    prefix2 = write_tf1_checkpoint(str(tmp_path / "depth.ckpt"), second)
    before = np.asarray(tf1_variable_map(ssma)["conv511/weights"]).copy()
    report = load_tf1_checkpoint(ssma, prefix1, prefix2)
    mapping = tf1_variable_map(ssma)
    name = "block3/unit_5/bottleneck_v1/conv2/weights"
    np.testing.assert_array_equal(np.asarray(mapping["rgb/resnet_v2_50/" + name]), first["resnet_v2_50/" + name])
    np.testing.assert_array_equal(np.asarray(mapping["depth/resnet_v2_50/" + name]), second["resnet_v2_50/" + name])
    # Fusion and decoder keep their values; the unimodal decoders are reported unused.
    np.testing.assert_array_equal(np.asarray(mapping["conv511/weights"]), before)
    assert "conv511/weights" in report.missing
    assert any(n.endswith("resnet_v2_50/conv41/weights") for n in report.unused)
    ssma_spec = read_spec(shared_path("spec", "tf1_variables_ssma.txt"))
    assert sorted(report.loaded) == sorted(n for n in ssma_spec if n.startswith(("rgb/", "depth/")))


def test_wrong_kind_and_shape_mismatch_are_errors_that_name_the_variable(tmp_path, tf1_fixture_dir):
    spec = read_spec(shared_path("spec", "tf1_variables_ssma.txt"))
    prefix = write_tf1_checkpoint(str(tmp_path / "ssma.ckpt"), random_arrays(spec))
    with pytest.raises(CheckpointError, match="SSMA checkpoint"):
        load_tf1_checkpoint(AdapNetPP(12), prefix)
    model = AdapNetPP(20)
    before = [np.asarray(w).copy() for w in model.weights]
    with pytest.raises(CheckpointError, match=r"resnet_v2_50/conv(5|78|911|912)/.*has shape \[12\].*number of classes"):
        load_tf1_checkpoint(model, str(tf1_fixture_dir / "model.ckpt"))
    # Nothing was assigned: shapes are checked before any variable changes.
    for old, new in zip(before, model.weights):
        np.testing.assert_array_equal(old, np.asarray(new))
    with pytest.raises(CheckpointError, match="needs two"):
        load_tf1_checkpoint(SSMA(12), str(tf1_fixture_dir / "model.ckpt"))
    with pytest.raises(CheckpointError, match="does not exist"):
        load_tf1_checkpoint(model, str(tmp_path / "nothing.ckpt"))
    # Helper 89: "No such layer: input_bn", a traceback, for another backbone.
    with pytest.raises(CheckpointError, match=r"model\.ckpt: the original TF1 checkpoints hold AdapNet\+\+'s ResNet-50 "
                                              r"encoder \(backbone: adapnet_pp\), but this AdapNetPP is on the "
                                              r"mobilenet_v2 backbone$"):
        load_tf1_checkpoint(AdapNetPP(12, backbone="mobilenet_v2"), str(tf1_fixture_dir / "model.ckpt"))


def test_incomplete_checkpoint_is_an_error_unless_not_strict(tmp_path):
    spec = read_spec(shared_path("spec", "tf1_variables_adapnet_pp.txt"))
    arrays = random_arrays(spec)
    del arrays["resnet_v2_50/conv89/weights"]
    prefix = write_tf1_checkpoint(str(tmp_path / "partial.ckpt"), arrays)
    model = AdapNetPP(12)
    with pytest.raises(CheckpointError, match="conv89/weights"):
        load_tf1_checkpoint(model, prefix)
    report = load_tf1_checkpoint(model, prefix, strict=False)
    assert report.missing == ["resnet_v2_50/conv89/weights"]
    assert "not in the checkpoint: resnet_v2_50/conv89/weights" in str(report)


def test_any_part_of_a_checkpoint_or_its_unpacked_folder_names_it(tf1_fixture_dir):
    """People paste the file they see (`model.ckpt.index`, `.meta`, `.data-…`) or the folder an
    archive unpacked into (no `checkpoint` state file): each reads the one checkpoint there."""
    from ssma_tf.checkpoints.resolve import FORMAT_TF1, resolve_weights
    from ssma_tf.checkpoints.tf1_import import read_checkpoint

    prefix = str(tf1_fixture_dir / "model.ckpt")
    shapes = read_checkpoint(prefix)
    for given in (prefix + ".index", prefix + ".meta", prefix + ".data-00000-of-00001", str(tf1_fixture_dir)):
        assert read_checkpoint(given) == shapes, given
        assert resolve_weights(given) == (FORMAT_TF1, prefix), given
    # Before: "model.ckpt.index.index does not exist" (load_tf1_checkpoint, ssma-convert-tf1).
    load_tf1_checkpoint(AdapNetPP(12), prefix + ".index")


def test_a_folder_of_several_checkpoints_without_a_state_file_is_named(tmp_path):
    from ssma_tf.checkpoints.tf1_import import read_checkpoint

    for name in ("a.ckpt.index", "b.ckpt.index"):
        (tmp_path / name).write_bytes(b"")
    listed = rf"{tmp_path}/a\.ckpt, {tmp_path}/b\.ckpt"
    with pytest.raises(CheckpointError, match=r"is a directory without a checkpoint to read: it holds several "
                                              r"checkpoints and no 'checkpoint' state file to say which; give one "
                                              rf"of its checkpoints by prefix: {listed}$"):
        read_checkpoint(str(tmp_path))


def _imagenet_checkpoint(tmp_path) -> str:
    spec = read_spec(shared_path("spec", "tf1_variables_imagenet_init.txt"))
    return write_tf1_checkpoint(str(tmp_path / "imagenet.ckpt"), random_arrays(spec, seed=2))


def _config(**values):
    from ssma_tf.config import config_from_dict

    base = {"model": "AdapNet_pp", "num_classes": 5, "checkpoint": "ck", "train_data": "t.tfrecords",
            "batch_size": 2, "height": 32, "width": 32, "max_iteration": 2, "learning_rate": 1e-3}
    return config_from_dict({**base, **values}, check_paths=False)


def test_the_imagenet_initialisation_is_a_start_not_a_trained_model(tmp_path):
    """Before: `ssma-predict --checkpoint AdapNet_pp_init.ckpt` (and the export, and load_weights)
    ran on a decoder nothing had loaded, exit 0."""
    from ssma_tf.checkpoints.loading import load_weights
    from ssma_tf.checkpoints.initialize import check_checkpoint_fits, initialize_model

    prefix = _imagenet_checkpoint(tmp_path)
    refused = r"imagenet\.ckpt is the ImageNet initialisation of AdapNet\+\+'s encoder, not a trained model"
    model = AdapNetPP(5)
    with pytest.raises(CheckpointError, match=refused):
        load_weights(model, prefix)
    with pytest.raises(CheckpointError, match=refused):
        check_checkpoint_fits(_config(), prefix)  # a training config given to ssma-predict --checkpoint
    # What a training run starts from.
    config = _config(initialize=prefix)
    check_checkpoint_fits(config, prefix)
    (line,) = initialize_model(model, config)
    assert "imagenet" in line


def test_a_fusion_baseline_is_refused_a_tf1_checkpoint_in_one_line(tmp_path):
    """Before: "'FusionBaseline' object has no attribute 'encoder'", a traceback."""
    from ssma_tf.checkpoints.initialize import check_checkpoint_fits
    from ssma_tf.models import FusionBaseline

    prefix = _imagenet_checkpoint(tmp_path)
    config = _config(model="SSMA", fusion="lfc", initialize=prefix)
    with pytest.raises(CheckpointError, match=r"holds AdapNet\+\+ or SSMA, not the fusion baseline lfc: start its "
                                              r"experts from unimodal runs"):
        check_checkpoint_fits(config, prefix)
    with pytest.raises(CheckpointError, match=r"not a fusion baseline \(average\)"):
        load_tf1_checkpoint(FusionBaseline(3, fusion="average"), prefix)
    # Its experts start from it as an SSMA's do (a whole AdapNet++ each, for average) when they
    # train; frozen, their decoders would stay random (before: taken, nothing trained; helper 144).
    from ssma_tf.checkpoints.initialize import initialize_model

    lines = initialize_model(FusionBaseline(5, fusion="average"),
                             _config(model="SSMA", fusion="average", checkpoint1=prefix, checkpoint2=prefix,
                                     freeze_experts=False))
    assert len(lines) == 2 and all("imagenet" in line for line in lines)
    with pytest.raises(CheckpointError, match=r"imagenet\.ckpt is the ImageNet initialisation of AdapNet\+\+'s encoder "
                                              r"\(no decoders\), and the experts of fusion late are frozen "
                                              r"\(freeze_experts\): their decoders would stay random"):
        initialize_model(FusionBaseline(5, fusion="late"),
                         _config(model="SSMA", fusion="late", checkpoint1=prefix, checkpoint2=prefix))


def test_frozen_ssma_experts_are_refused_the_imagenet_initialisation(tmp_path, ssma):
    """Helper 244: SSMA's experts (frozen by default) started from AdapNet++'s ImageNet
    initialisation kept a random input batch norm, skips and eASPP, which never trained."""
    from ssma_tf.checkpoints.initialize import initialize_model

    prefix = _imagenet_checkpoint(tmp_path)
    parts = r"\(no input batch norms, skips and eASPP\), and the experts of fusion ssma are frozen"
    for keys, key in (({"checkpoint1": prefix, "checkpoint2": prefix}, "checkpoint1"),
                      ({"initialize": prefix}, "initialize")):
        with pytest.raises(CheckpointError, match=rf"key '{key}': .*imagenet\.ckpt is the ImageNet initialisation of "
                                                  rf"AdapNet\+\+'s encoder {parts}"):
            initialize_model(ssma, _config(model="SSMA", num_classes=12, **keys))


def test_a_damaged_second_expert_checkpoint_leaves_the_first_expert_unchanged(tmp_path, ssma):
    """Before: expert 1 was loaded when expert 2's data turned out to be cut short."""
    spec = read_spec(shared_path("spec", "tf1_variables_adapnet_pp.txt"))
    prefix1 = write_tf1_checkpoint(str(tmp_path / "rgb.ckpt"), random_arrays(spec, seed=5))
    prefix2 = write_tf1_checkpoint(str(tmp_path / "depth.ckpt"), random_arrays(spec, seed=6))
    data = tmp_path / "depth.ckpt.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    before = [np.asarray(v).copy() for v in ssma.encoders[0].weights]
    with pytest.raises(CheckpointError, match=r"depth\.ckpt"):
        load_tf1_checkpoint(ssma, prefix1, prefix2)
    assert all(np.array_equal(np.asarray(v), b) for v, b in zip(ssma.encoders[0].weights, before))


def test_a_tf1_expert_starts_an_ssma_of_a_narrower_decoder(tf1_fixture_dir):
    """A TF1 checkpoint's decoder is the released one (256): only its encoder is used (before:
    refused for decoder_filters 64, naming a decoder variable)."""
    from ssma_tf.checkpoints.loading import unimodal_encoder_weights

    prefix = str(tf1_fixture_dir / "model.ckpt")
    assert len(unimodal_encoder_weights(prefix, None, 0.5, decoder_filters=64)) == len(
        unimodal_encoder_weights(prefix, None, 0.5))


def test_a_folder_whose_state_file_names_missing_files_says_so_and_lists_what_it_holds(tmp_path, capfd):
    """TF1's Saver writes absolute paths: a folder copied from another machine (before: "a directory
    without a TF1 'checkpoint' file", and TensorFlow's ERROR line)."""
    from ssma_tf.checkpoints.loading import load_weights

    spec = read_spec(shared_path("spec", "tf1_variables_adapnet_pp.txt"))
    folder = tmp_path / "stale"
    folder.mkdir()
    write_tf1_checkpoint(str(folder / "model.ckpt-100"), random_arrays(spec, seed=7))
    (folder / "checkpoint").write_text('model_checkpoint_path: "/home/other/train/model.ckpt-100"\n')
    with pytest.raises(CheckpointError, match=r"its 'checkpoint' state file names /home/other/train/model\.ckpt-100, "
                                              r"which is not there .*give one of its checkpoints by prefix: "
                                              rf"{folder}/model\.ckpt-100$"):
        load_tf1_checkpoint(AdapNetPP(12), str(folder))
    with pytest.raises(CheckpointError, match=r"names /home/other/train/model\.ckpt-100, which is not there"):
        load_weights(AdapNetPP(12), str(folder))
    assert "Couldn't match files" not in capfd.readouterr().err


@pytest.mark.parametrize("kind", ["adapnet_pp", "ssma"])
def test_a_checkpoint_lacking_a_variable_changes_no_weight(tmp_path, kind):
    """The completeness check ran after every weight found had been assigned: a checkpoint
    lacking one variable was refused with the model half loaded (helper 126)."""
    spec = read_spec(shared_path("spec", f"tf1_variables_{kind}.txt"))
    arrays = random_arrays(spec, seed=3)
    dropped = next(name for name in arrays if name.endswith("moving_variance"))
    del arrays[dropped]
    prefix = write_tf1_checkpoint(str(tmp_path / "partial.ckpt"), arrays)
    model = AdapNetPP(12) if kind == "adapnet_pp" else SSMA(12)
    before = [w.numpy().copy() for w in model.weights]
    with pytest.raises(CheckpointError, match=rf"lacks 1 variables of the model: {dropped}"):
        load_tf1_checkpoint(model, prefix)
    for old, new in zip(before, model.weights):
        np.testing.assert_array_equal(old, new.numpy())


def test_a_training_folder_reports_the_checkpoint_it_read(tmp_path, tf1_fixture_dir):
    """The report named the folder typed, never the model.ckpt-N read in it (helper 126)."""
    import shutil

    folder = tmp_path / "run"
    folder.mkdir()
    for part in tf1_fixture_dir.glob("model.ckpt.*"):
        shutil.copy(part, folder / part.name.replace("model.ckpt", "model.ckpt-100"))
    (folder / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-100"\n')
    report = load_tf1_checkpoint(AdapNetPP(12), str(folder))
    assert report.checkpoint == str(folder / "model.ckpt-100")
    assert str(report).startswith(f"{folder / 'model.ckpt-100'} (adapnet_pp): loaded 388 variables")


def test_a_whole_ssma_checkpoint_as_an_expert_names_its_key_and_intialize(tmp_path, tf1_fixture_dir):
    """Before: "is a whole SSMA checkpoint; do not pass a second checkpoint", naming no key, while
    leaving checkpoint2 out is itself refused (helper 126)."""
    from ssma_tf.checkpoints.initialize import initialize_model
    from ssma_tf.config import config_from_dict

    spec = read_spec(shared_path("spec", "tf1_variables_ssma.txt"))
    whole = write_tf1_checkpoint(str(tmp_path / "ssma.ckpt"), random_arrays(spec, seed=5))
    config = config_from_dict(dict(model="SSMA", num_classes=12, height=32, width=64, batch_size=1, max_iteration=1,
                                   learning_rate=1e-3, checkpoint=str(tmp_path / "run"), train_data="unused",
                                   checkpoint1=whole, checkpoint2=str(tf1_fixture_dir / "model.ckpt")),
                              source="s2.config", check_paths=False)
    with pytest.raises(CheckpointError, match=r"^s2.config: key 'checkpoint1': .*ssma.ckpt is a whole SSMA "
                                              r"checkpoint: it starts a run as intialize"):
        initialize_model(SSMA(12), config)


def test_an_ssma_checkpoint_without_the_auxiliary_heads_says_what_to_change(tmp_path):
    """`aux_heads: true` builds conv911/conv912, which the released SSMA checkpoints lack: a list of
    their variables, without a word on what to change (helper 126)."""
    spec = read_spec(shared_path("spec", "tf1_variables_ssma.txt"))
    prefix = write_tf1_checkpoint(str(tmp_path / "ssma.ckpt"), random_arrays(spec, seed=6))
    with pytest.raises(CheckpointError, match=r"lacks 10 variables of the model: conv911/.* and 5 more; it has no "
                                              r"auxiliary heads \(conv911, conv912\): set aux_heads: false, or start "
                                              r"from it with finetune_from"):
        load_tf1_checkpoint(SSMA(12, aux_heads=True), prefix)


def test_a_trained_checkpoint_lacking_conv41_is_not_taken_for_the_imagenet_one(tmp_path, adapnet):
    """Before: a trained AdapNet++ checkpoint without its 5 `conv41` variables was told to be "the
    ImageNet initialisation ... give it as a training config's intialize" by ssma-convert-tf1, and
    load_weights(..., initialization=True) loaded it with them missing, in a log line (helper 333)."""
    from ssma_tf.checkpoints.convert import convert_tf1_checkpoint
    from ssma_tf.checkpoints.loading import load_weights

    trained = read_spec(shared_path("spec", "tf1_variables_adapnet_pp.txt"))
    assert detect_kind(n for n in trained if not n.startswith("resnet_v2_50/conv41/")) == "adapnet_pp"
    # The ImageNet initialisation is still told by its names alone, ':0' or not.
    imagenet = read_spec(shared_path("spec", "tf1_variables_imagenet_init.txt"))
    assert detect_kind(n[:-2] for n in imagenet) == "imagenet"
    # A few trained scopes (input BN, a refinement conv, the classifier) and no conv41: small, and
    # checked as the whole model, not as the ResNet-50 backbone an ImageNet start needs.
    kept = [n for n in trained if n.startswith(("resnet_v2_50/conv0/", "resnet_v2_50/conv89/", "resnet_v2_50/conv78/"))]
    prefix = write_tf1_checkpoint(str(tmp_path / "trained.ckpt"), random_arrays({n: trained[n] for n in kept}))
    before = [w.numpy().copy() for w in adapnet.weights]
    with pytest.raises(CheckpointError, match=r"trained\.ckpt: the checkpoint lacks \d+ variables of the model: "):
        load_weights(adapnet, prefix, initialization=True)
    for old, new in zip(before, adapnet.weights):
        np.testing.assert_array_equal(old, new.numpy())
    output = tmp_path / "out.weights.h5"
    with pytest.raises(CheckpointError, match=r"trained\.ckpt: the checkpoint lacks \d+ variables of the model"):
        convert_tf1_checkpoint(prefix, str(output))
    assert not output.exists()


def test_a_folders_checkpoint_state_file_given_as_the_checkpoint_names_the_prefix(tmp_path):
    """Before: "multi/checkpoint is not a TF1 checkpoint prefix: multi/checkpoint.index does not
    exist", for the state file TF1's Saver writes beside model.ckpt-N.* (helper 333)."""
    from ssma_tf.checkpoints.tf1_import import read_checkpoint

    folder = tmp_path / "multi"
    folder.mkdir()
    one = {"resnet_v2_50/conv0/BatchNorm/gamma": np.ones(3, np.float32)}
    write_tf1_checkpoint(str(folder / "model.ckpt-100"), one)
    (folder / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-100"\n'
                                       'all_model_checkpoint_paths: "model.ckpt-100"\n')
    with pytest.raises(CheckpointError, match=rf"^{folder}/checkpoint is the folder's checkpoint state file, not a "
                                              rf"checkpoint: give the folder {folder} or the checkpoint prefix the "
                                              rf"file names, {folder}/model\.ckpt-100$"):
        read_checkpoint(str(folder / "checkpoint"))
    assert read_checkpoint(str(folder)) == {"resnet_v2_50/conv0/BatchNorm/gamma": [3]}
    # So does every command that resolves weights (`--checkpoint multi/checkpoint`; before: "no
    # checkpoint at multi/checkpoint (expected multi/checkpoint.index, ...)").
    from ssma_tf.checkpoints.resolve import resolve_weights

    with pytest.raises(CheckpointError, match=r"checkpoint is the folder's checkpoint state file, not a checkpoint: "):
        resolve_weights(str(folder / "checkpoint"))
    # The commands' --checkpoint refuses such a file before it resolves it (before: "is a file but
    # not a model (a training run's folder, a .keras file or weights)", no prefix named; helper 337).
    from ssma_tf.cli.common import not_a_model_file

    assert not_a_model_file("--checkpoint", str(folder / "checkpoint")) == (
        f"--checkpoint {folder}/checkpoint is the folder's checkpoint state file, not a checkpoint: give the folder "
        f"{folder} or the checkpoint prefix the file names, {folder}/model.ckpt-100")
    # A state file naming a checkpoint that is not there (a copied folder) says so and what the folder holds.
    (folder / "checkpoint").write_text('model_checkpoint_path: "/home/other/model.ckpt-100"\n')
    with pytest.raises(CheckpointError, match=r"checkpoint is the folder's checkpoint state file, not a checkpoint, "
                                              r"and its 'checkpoint' state file names /home/other/model\.ckpt-100, "
                                              rf"which is not there .*by prefix: {folder}/model\.ckpt-100$"):
        read_checkpoint(str(folder / "checkpoint"))
    # Any other file called `checkpoint` keeps the plain message.
    (folder / "checkpoint").write_text("not a state file {{{")
    with pytest.raises(CheckpointError, match=r"is not a TF1 checkpoint prefix: .*checkpoint\.index does not exist"):
        read_checkpoint(str(folder / "checkpoint"))
