"""The released model zoo: the data file, presets through `file://` archives, local sources."""

import os
import pathlib
import re
import tarfile
import zipfile

import numpy as np
import pytest

import ssma_tf
from ssma_tf.checkpoints import CheckpointError, zoo
from ssma_tf.data.datasets import get_dataset_info
from ssma_tf.models import SSMA, AdapNetPP


def test_the_zoo_lists_every_released_model_consistently():
    presets = zoo.presets()
    # 16 AdapNet++ and 9 SSMA models in the original READMEs.
    assert sum(p.model == "AdapNet_pp" for p in presets.values()) == 16
    assert sum(p.model == "SSMA" for p in presets.values()) == 9
    for name, p in presets.items():
        assert p.num_classes == get_dataset_info(p.dataset).num_classes, name
        assert len(p.modalities) == (2 if p.model == "SSMA" else 1), name
        assert name == "_".join([p.model.lower(), p.dataset]
                                + list(p.modalities)), name
        assert p.url.startswith("http://deepscene.cs.uni-freiburg.de/static/models/") and p.url.endswith(".zip")
    assert presets["ssma_cityscapes_rgb_depth"].miou == 82.29
    assert presets["adapnet_pp_cityscapes19_rgb"].easpp_rates == (6, 12, 18)
    assert "adapnet_pp_imagenet" in zoo.initialization_checkpoints()
    table = zoo.markdown_table()
    assert table.count("\n") == len(presets) + 1 and "| 82.29 |" in table


@pytest.fixture()
def fixture_archive(tmp_path, tf1_fixture_dir):
    """The TF1 fixture zipped as the released archives are: a folder holding the checkpoint."""
    archive = tmp_path / "adapnet_pp_fixture.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name in ("model.ckpt.index", "model.ckpt.data-00000-of-00001"):
            z.write(tf1_fixture_dir / name, f"adapnet_pp_fixture/{name}")
    return archive


def _use_zoo(tmp_path, monkeypatch, *entries):
    """A zoo file of the given entries in place of the real one. An entry: (name, model, dataset,
    modalities, classes, archive URL, eASPP rates or None)."""
    text = "initialization: {}\nmodels:\n"
    for name, model, dataset, modalities, classes, url, rates in entries:
        text += (f"  {name}:\n    model: {model}\n    dataset: {dataset}\n    modalities: [{', '.join(modalities)}]\n"
                 f"    num_classes: {classes}\n    input_size: [128, 256]\n    url: {url}\n    miou: null\n"
                 + (f"    easpp_rates: {list(rates)}\n" if rates else ""))
    zoo_file = tmp_path / "zoo.yaml"
    zoo_file.write_text(text)
    monkeypatch.setattr(zoo, "ZOO_FILE", zoo_file)


# The fixture's release in a test zoo, trained (so the test says) with other eASPP rates.
FIXTURE_RELEASE = ("adapnet_pp_fixture_rgb", "AdapNet_pp", "cityscapes", ["rgb"], 12,
                   "http://example.org/models/adapnet_pp_fixture.zip", (6, 12, 18))


def _reproduces_the_fixture(model, tf1_fixture_dir):
    reference = np.load(tf1_fixture_dir / "reference.npz")
    probs = np.asarray(model(reference["modality1"], training=False))
    error = np.max(np.abs(probs - reference["softmax"])) / np.max(np.abs(reference["softmax"]))
    assert error <= 1e-4


def test_from_preset_fetches_a_file_url_archive_and_reproduces_the_fixture(
        tmp_path, monkeypatch, fixture_archive, tf1_fixture_dir):
    _use_zoo(tmp_path, monkeypatch, FIXTURE_RELEASE[:5] + (fixture_archive.as_uri(), None))
    cache = tmp_path / "keras_cache"
    model = AdapNetPP.from_preset("adapnet_pp_fixture_rgb", cache_dir=str(cache))
    assert isinstance(model, AdapNetPP) and model.num_classes == 12
    # Downloaded into the Keras cache and unpacked there.
    assert (cache / "models" / "ssma_tf" / "adapnet_pp_fixture_rgb_extracted").is_dir()
    _reproduces_the_fixture(model, tf1_fixture_dir)
    with pytest.raises(CheckpointError, match="holds AdapNet_pp, not SSMA"):
        SSMA.from_preset("adapnet_pp_fixture_rgb", cache_dir=str(cache))
    # The zoo file says the network: refused before anything is fetched (was after the download).
    monkeypatch.setattr(zoo, "fetch_archive", lambda *a, **k: pytest.fail("fetched"))
    with pytest.raises(CheckpointError, match="^adapnet_pp_fixture_rgb holds AdapNet_pp, not SSMA$"):
        SSMA.from_preset("adapnet_pp_fixture_rgb", cache_dir=str(tmp_path / "other_cache"))
    with pytest.raises(ValueError, match="adapnet_pp_fixture_rgb"):
        ssma_tf.load_model("adapnet_pp_nowhere")


def test_local_archives_and_folders_load_the_same_way(tmp_path, fixture_archive, tf1_fixture_dir):
    model = ssma_tf.load_model(str(fixture_archive), cache_dir=str(tmp_path / "cache"))
    _reproduces_the_fixture(model, tf1_fixture_dir)
    tarball = tmp_path / "fixture.tar"  # uncompressed: gzip of the 120 MB fixture takes minutes
    with tarfile.open(tarball, "w") as tar:
        tar.add(tf1_fixture_dir / "model.ckpt.index", "m/model.ckpt.index")
        tar.add(tf1_fixture_dir / "model.ckpt.data-00000-of-00001", "m/model.ckpt.data-00000-of-00001")
    folder = zoo.fetch_archive(tarball.as_uri(), cache_dir=str(tmp_path / "cache"))
    assert zoo.find_checkpoint(folder) == os.path.join(folder, "m", "model.ckpt")
    assert isinstance(AdapNetPP.from_preset(folder), AdapNetPP)


@pytest.mark.parametrize("suffix, mode", [(".tar.xz", "w:xz"), (".tbz2", "w:bz2")])
def test_xz_and_bz2_archives_unpack_and_a_local_archive_is_not_copied_into_the_cache(tmp_path, suffix, mode):
    """A `.tar.xz` was called "no checkpoint at ..." though tarfile reads it; a local archive was
    copied whole into the cache and kept there beside its unpacked folder (helper 344)."""
    (tmp_path / "model.keras").write_bytes(b"not read here")
    archive = tmp_path / f"release{suffix}"
    with tarfile.open(archive, mode) as tar:
        tar.add(tmp_path / "model.keras", "m/model.keras")
    cache = tmp_path / "cache"
    found = zoo.preset_checkpoint(str(archive), cache_dir=str(cache))
    assert pathlib.Path(found).read_bytes() == b"not read here" and found.endswith(os.path.join("m", "model.keras"))
    kept = [p.name for p in (cache / "models" / "ssma_tf").iterdir() if not p.name.endswith(".lock")]
    assert len(kept) == 1 and kept[0].startswith("release_") and kept[0].endswith("_extracted")
    assert archive.is_file()  # the user's own file stays
    assert zoo.preset_checkpoint(str(archive), cache_dir=str(cache)) == found  # read from the unpacked copy


@pytest.mark.parametrize("suffix, mode", [(".tar.xz", "w:xz"), (".tar.gz", "w:gz")])
def test_archives_with_damaged_bytes_inside_are_refused_and_leave_the_cache(tmp_path, suffix, mode):
    """A damaged .tar.xz was a raw LZMAError traceback, its copy kept in the cache for every later
    call; a .tar.gz with bytes flipped inside unpacked the damaged member as good: tarfile stops at
    the end-of-archive marker, before gzip's CRC (helper 346)."""
    payload = np.random.default_rng(0).integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    (tmp_path / "model.keras").write_bytes(payload)
    whole = tmp_path / "whole"
    with tarfile.open(whole, mode) as tar:
        tar.add(tmp_path / "model.keras", "m/model.keras")
    data = bytearray(whole.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(255 - b for b in data[len(data) // 2: len(data) // 2 + 64])
    damaged = tmp_path / f"bad{suffix}"
    damaged.write_bytes(bytes(data))
    cache = tmp_path / "cache"
    with pytest.raises(CheckpointError, match=rf"^cannot unpack the archive .*bad{re.escape(suffix)}: it is damaged "
                                              r"or incomplete \(.+\)$"):
        zoo.preset_checkpoint(str(damaged), cache_dir=str(cache))
    assert not [p for p in cache.rglob("*") if p.is_file() and p.suffix != ".lock"]


def test_a_local_copy_of_a_release_builds_the_releases_network(tmp_path, monkeypatch, fixture_archive,
                                                                tf1_fixture_dir):
    """The eASPP rates are not in the checkpoint: a local copy takes them from the zoo entry its
    file name (or `released_as`) names (before: the default rates, without a word)."""
    _use_zoo(tmp_path, monkeypatch, FIXTURE_RELEASE)
    model = ssma_tf.load_model(str(fixture_archive), cache_dir=str(tmp_path / "cache"))
    assert model.get_config()["easpp_rates"] == [6, 12, 18]
    # The flags are checked as for any file that says its network (helper 89: ignored, and the
    # 12-class AdapNet++ returned).
    with pytest.raises(CheckpointError, match=r"model\.ckpt has 12 classes, not 5$"):
        ssma_tf.load_model(str(fixture_archive), cache_dir=str(tmp_path / "cache"), num_classes=5)
    with pytest.raises(CheckpointError, match=r"model\.ckpt holds AdapNet_pp, not SSMA$"):
        ssma_tf.load_model(str(fixture_archive), cache_dir=str(tmp_path / "cache"), model="SSMA")
    # Unpacked into a folder of another name: said by released_as.
    folder = tmp_path / "unpacked"
    folder.mkdir()
    for name in ("model.ckpt.index", "model.ckpt.data-00000-of-00001"):
        (folder / name).symlink_to(tf1_fixture_dir / name)
    assert list(ssma_tf.load_model(str(folder)).get_config()["easpp_rates"]) == [3, 6, 12]
    released = AdapNetPP.from_preset(str(folder), released_as="adapnet_pp_fixture_rgb")
    assert released.get_config()["easpp_rates"] == [6, 12, 18]
    with pytest.raises(CheckpointError, match="^unpacked holds AdapNet_pp, not SSMA$"):
        SSMA.from_preset("unpacked", released_as="adapnet_pp_fixture_rgb")
    with pytest.raises(ValueError, match="unknown preset 'adapnet_pp_elsewhere'.*adapnet_pp_fixture_rgb"):
        ssma_tf.load_model(str(folder), released_as="adapnet_pp_elsewhere")


def test_a_damaged_archive_is_named_and_leaves_the_cache(tmp_path, fixture_archive):
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(fixture_archive.read_bytes()[:20000])
    cache = tmp_path / "cache"
    for _ in range(2):  # before: the second call met the cached copy and named a folder never made
        # Named as given (before: its file:// URL, and "download it again"; helper 143).
        with pytest.raises(CheckpointError, match=rf"^cannot unpack the archive {re.escape(str(damaged))}: it is "
                                                  r"damaged or incomplete \(.*\)$"):
            ssma_tf.load_model(str(damaged), cache_dir=str(cache))
        assert not [p for p in cache.rglob("*") if p.is_file() and p.suffix != ".lock"]  # its lock file stays


def test_archives_whose_names_hold_dots_and_cut_tarballs_are_unpacked_each_on_its_own(tmp_path):
    """Helper 89: Keras named the unpacked folder after the name up to its first dot, so
    `model.v2.zip`, damaged, loaded `model.v1.zip`'s checkpoint without a word; a cut `.tar.gz`
    was a bare EOFError that stayed in the cache with a half-unpacked folder."""
    import io

    cache = str(tmp_path / "cache")
    good = tmp_path / "model.v1.zip"
    with zipfile.ZipFile(good, "w") as archive:
        archive.writestr("m/model.ckpt.index", b"not read here")
    assert zoo.preset_checkpoint(str(good), cache).endswith(os.path.join("m", "model.ckpt"))
    damaged = tmp_path / "model.v2.zip"
    damaged.write_bytes(good.read_bytes()[:40])
    with pytest.raises(CheckpointError, match=r"^cannot unpack the archive .*model\.v2\.zip: it is damaged"):
        zoo.preset_checkpoint(str(damaged), cache)
    payload = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    whole = io.BytesIO()
    with tarfile.open(fileobj=whole, mode="w:gz") as tar:
        info = tarfile.TarInfo("m/model.ckpt.data-00000-of-00001")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(whole.getvalue()[:150_000])
    for _ in range(2):
        with pytest.raises(CheckpointError, match=r"^cannot unpack the archive .*cut\.tar\.gz: it is damaged or "
                                                  r"incomplete \(.*\)$"):
            ssma_tf.load_model(str(cut), cache_dir=cache)
    left = sorted(p.name for p in (tmp_path / "cache" / "models" / "ssma_tf").iterdir())
    left = [name for name in left if not name.endswith(".lock")]  # the lock files stay
    # The good one's unpacked folder only (its copy of the archive is removed once unpacked; helper 344).
    assert len(left) == 1 and left[0].startswith("model_v1_") and left[0].endswith("_extracted"), left


def test_a_tar_cut_between_two_members_is_refused_and_a_whole_one_unpacked(tmp_path):
    """Helper 120: `tarfile` reads a plain tar cut exactly after a member as a whole, shorter
    archive; its first member alone was cached, and every later load (even once the server had the
    whole file) failed on a missing data file. GNU tar's own archives still unpack."""
    import io
    import shutil
    import subprocess

    cache = str(tmp_path / "cache")
    whole = io.BytesIO()
    with tarfile.open(fileobj=whole, mode="w") as tar:
        for name, size in (("m/model.ckpt.index", 700), ("m/model.ckpt.data-00000-of-00001", 3000)):
            info = tarfile.TarInfo(name)
            info.size = size
            tar.addfile(info, io.BytesIO(b"x" * size))
    with tarfile.open(fileobj=io.BytesIO(whole.getvalue())) as tar:
        second = tar.getmembers()[1].offset
    cut = tmp_path / "model.tar"
    cut.write_bytes(whole.getvalue()[:second])
    with pytest.raises(CheckpointError, match=r"^cannot unpack the archive .*model\.tar: it is damaged or "
                                              r"incomplete \(it ends after 1 member\(s\) without the end-of-archive "
                                              r"marker\)$"):
        zoo.preset_checkpoint(str(cut), cache)
    assert not any("extracted" in name for name in os.listdir(tmp_path / "cache" / "models" / "ssma_tf"))
    cut.write_bytes(whole.getvalue())
    folder = os.path.dirname(zoo.preset_checkpoint(str(cut), cache))
    assert sorted(os.listdir(folder)) == ["model.ckpt.data-00000-of-00001", "model.ckpt.index"]
    if shutil.which("tar"):
        source = tmp_path / "gnu" / "m"
        source.mkdir(parents=True)
        (source / "model.ckpt.index").write_bytes(b"i" * 10)
        subprocess.run(["tar", "cf", str(tmp_path / "gnu.tar"), "-C", str(tmp_path / "gnu"), "m"], check=True)
        assert zoo.preset_checkpoint(str(tmp_path / "gnu.tar"), cache).endswith(os.path.join("m", "model.ckpt"))


def test_a_missing_local_path_is_not_called_an_unknown_preset(tmp_path):
    for path in ("nowhere/model.zip", "model.zip", str(tmp_path / "missing_dir") + "/"):
        with pytest.raises(CheckpointError, match=r": no such file or folder$"):
            ssma_tf.load_model(path)


def test_a_failed_download_is_one_error_that_says_what_to_do(tmp_path):
    missing = (tmp_path / "nowhere" / "model.zip").as_uri()
    with pytest.raises(CheckpointError, match=r"^cannot download file://.*nowhere/model.zip \(.*\): without a "
                                              r"network, download the archive elsewhere and pass its path"):
        zoo.fetch_archive(missing, cache_dir=str(tmp_path / "cache"))


def test_a_server_that_does_not_answer_in_http_is_one_error(tmp_path):
    """Helper 264: an http:// address of a port that answers in another protocol (SSH, TLS) gave
    http.client's BadStatusLine traceback; urllib wraps only OSError."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def answer():
        connection, _ = server.accept()
        with connection:
            connection.recv(4096)
            connection.sendall(b"SSH-2.0-OpenSSH_8.9\r\n")

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.getsockname()[1]}/model.zip"
    try:
        with pytest.raises(CheckpointError, match=rf"^cannot download {re.escape(url)} \(.*SSH-2.0.*\): without a "
                                                  "network"):
            zoo.fetch_archive(url, cache_dir=str(tmp_path / "cache"))
    finally:
        thread.join(10)
        server.close()
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.suffix != ".lock"]  # no part


def test_the_initialisation_checkpoint_is_not_loaded_as_a_model_and_says_where_it_goes():
    with pytest.raises(CheckpointError, match=r"^adapnet_pp_imagenet is the initialisation of the encoder \(ResNet-50 "
                                              r".*give the prefix AdapNet_pp_init.ckpt as a training config's "
                                              r"intialize$"):
        ssma_tf.load_model("adapnet_pp_imagenet")


def test_unknown_presets_list_the_known_ones():
    with pytest.raises(ValueError, match="ssma_cityscapes_rgb_depth"):
        zoo.get_preset("ssma_citiscapes")
    with pytest.raises(ValueError, match="unknown preset 'nothing_here'"):
        ssma_tf.load_model("nothing_here")


def test_the_readme_table_is_the_zoo_file():
    readme = (pathlib.Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert zoo.markdown_table() in readme, (
        "README.md's model table differs from zoo.yaml: paste the output of python -m ssma_tf.checkpoints"
    )


def test_a_local_archive_is_cached_by_its_content_not_its_name(tmp_path):
    """A retrained model zipped under the same name loads anew (before: the first one's unpacked
    copy, without a word)."""
    archive, cache = tmp_path / "model.zip", str(tmp_path / "cache")

    def zipped(content):
        # A fixed time stamp: by default each member gets the current time (2 s resolution), so two
        # writes of the same content a moment apart could make two different archives.
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr(zipfile.ZipInfo("model/model.keras", date_time=(2026, 1, 1, 0, 0, 0)), content)
        return zoo.preset_checkpoint(str(archive), cache_dir=cache)

    first = zipped(b"first")
    assert zipped(b"first") == first  # the same archive: the same unpacked copy
    second = zipped(b"second")
    assert second != first
    assert pathlib.Path(first).read_bytes() == b"first" and pathlib.Path(second).read_bytes() == b"second"


def test_the_config_reader_points_to_the_zoos_imagenet_initialisation():
    """A missing `intialize: .../AdapNet_pp_init.ckpt` says where to get it (the reader imports no zoo)."""
    from ssma_tf.config import config_from_dict, reader

    entry = zoo.initialization_checkpoints()["adapnet_pp_imagenet"]
    assert (entry["prefix"], entry["url"]) == (reader.IMAGENET_PREFIX, reader.IMAGENET_URL)
    values = dict(model="AdapNet_pp", num_classes=4, height=32, width=64, batch_size=1, max_iteration=1,
                  learning_rate=1e-3, checkpoint="ck", train_data="t.tfrecords",
                  initialize="nowhere/AdapNet_pp_init.ckpt")
    with pytest.raises(reader.ConfigError, match=r"it is the released ImageNet initialisation: download "
                                                 r"AdapNet_pp_init.ckpt.index and .data-00000-of-00001 from "
                                                 r"https://github.com/DeepSceneSeg/AdapNet-pp/tree/master/init_checkpoint"):
        config_from_dict(values, source="t.config")


def test_the_imagenet_initialisation_spelled_the_other_way_is_named(tmp_path):
    """The original configs spell it Adapnet_pp_init.ckpt, the release AdapNet_pp_init.ckpt: a copy
    of the other spelling was not found, and the error said to download it again (helper 321)."""
    from ssma_tf.config import config_from_dict, reader

    (tmp_path / "AdapNet_pp_init.ckpt.index").write_bytes(b"")
    values = dict(model="AdapNet_pp", num_classes=4, height=32, width=64, batch_size=1, max_iteration=1,
                  learning_rate=1e-3, checkpoint="ck", train_data="t.tfrecords",
                  initialize=str(tmp_path / "Adapnet_pp_init.ckpt"))
    with pytest.raises(reader.ConfigError, match=r"AdapNet_pp_init\.ckpt is there: the config spells it "
                                                 r"Adapnet_pp_init\.ckpt, give AdapNet_pp_init\.ckpt$"):
        config_from_dict(values, source="t.config", check_paths=True)


def test_only_the_released_rates_the_loaders_warn_of_differ_from_the_default():
    """`loading.RELEASED_OTHER_RATES` (below the zoo in the import contract) says what zoo.yaml says."""
    from ssma_tf.checkpoints.loading import RELEASED_OTHER_RATES
    from ssma_tf.constants import EASPP_RATES

    other = {p.num_classes: p.easpp_rates for p in zoo.presets().values() if p.easpp_rates != EASPP_RATES}
    assert other == RELEASED_OTHER_RATES
    assert all(p.model == "AdapNet_pp" for p in zoo.presets().values() if p.easpp_rates != EASPP_RATES)


def test_a_release_checkpoint_in_its_folder_keeps_its_rates_and_any_other_is_warned_of(
        tmp_path, monkeypatch, capsys, tf1_fixture_dir):
    """The prefix inside a released archive's folder, as ssma-convert-tf1 and load_model are
    given it, built the default eASPP rates: the 19-class Cityscapes models predicted with 3, 6,
    12 instead of 6, 12, 18, without a word. A checkpoint elsewhere of that class count warns."""
    import warnings

    from ssma_tf.checkpoints import loading
    from ssma_tf.cli.convert_tf1 import main as convert
    from ssma_tf.config import ConfigWarning

    _use_zoo(tmp_path, monkeypatch, FIXTURE_RELEASE)
    monkeypatch.setattr(loading, "RELEASED_OTHER_RATES", {12: (6, 12, 18)})  # the fixture's class count
    prefixes = {}
    for folder in ("adapnet_pp_fixture/model", "mine"):
        (tmp_path / folder).mkdir(parents=True)
        for name in ("model.ckpt.index", "model.ckpt.data-00000-of-00001"):
            (tmp_path / folder / name).symlink_to(tf1_fixture_dir / name)
        prefixes[folder] = str(tmp_path / folder / "model.ckpt")
    release = prefixes["adapnet_pp_fixture/model"]
    assert zoo.released_entry(release) == "adapnet_pp_fixture_rgb"
    # The cache's copies: a preset's and a local archive's (named by 16 digits of its content).
    for cached in ("adapnet_pp_fixture_rgb_extracted/x/model.ckpt",
                   "adapnet_pp_fixture_0123456789abcdef_extracted/adapnet_pp_fixture/model.ckpt"):
        assert zoo.released_entry(str(tmp_path / cached)) == "adapnet_pp_fixture_rgb", cached
    assert zoo.released_entry(prefixes["mine"]) is None

    from ssma_tf.inference.settings import setup_inference

    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)
        assert ssma_tf.load_model(release).get_config()["easpp_rates"] == [6, 12, 18]
        # ssma-predict and ssma-export --checkpoint, without a config.
        assert setup_inference(checkpoint=release).model.get_config()["easpp_rates"] == [6, 12, 18]
        assert convert(["-c", release, "-o", str(tmp_path / "release.keras")]) == 0
    assert "eASPP rates 6, 12, 18: those of the release adapnet_pp_fixture_rgb" in capsys.readouterr().out
    assert ssma_tf.load_model(str(tmp_path / "release.keras")).get_config()["easpp_rates"] == [6, 12, 18]

    told = r"model.ckpt: a TF1 AdapNet\+\+ checkpoint of 12 classes, .* easpp_rates: \[6, 12, 18\]"
    with pytest.warns(ConfigWarning, match=told):
        assert ssma_tf.load_model(prefixes["mine"]).get_config()["easpp_rates"] == [3, 6, 12]
    capsys.readouterr()
    assert convert(["-c", prefixes["mine"], "-o", str(tmp_path / "mine.weights.h5")]) == 0
    assert re.search("warning: .*" + told, capsys.readouterr().err)  # the commands' one line
    # Said on the command line: no warning, and a note that a weights file does not keep them.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)
        assert convert(["-c", prefixes["mine"], "-o", str(tmp_path / "mine.weights.h5"), "--overwrite",
                        "--easpp-rates", "6", "12", "18"]) == 0
    assert "does not hold the eASPP rates: load it into a network of rates 6, 12, 18" in capsys.readouterr().out
    # Given on the command line, even the default rates are the user's word: no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)
        assert convert(["-c", prefixes["mine"], "-o", str(tmp_path / "mine.weights.h5"), "--overwrite",
                        "--easpp-rates", "3", "6", "12"]) == 0
    # SSMA's experts started from such checkpoints are warned of too (helper 75).
    from ssma_tf.checkpoints.initialize import initialize_model
    from ssma_tf.config import config_from_dict
    from ssma_tf.models import SSMA

    records = tmp_path / "x.tfrecords"
    records.write_bytes(b"")
    stage2 = config_from_dict({"model": "SSMA", "num_classes": 12, "batch_size": 1, "height": 32, "width": 32,
                               "checkpoint": str(tmp_path / "run"), "train_data": str(records), "max_iteration": 1,
                               "learning_rate": 0.1, "checkpoint1": prefixes["mine"], "checkpoint2": prefixes["mine"]},
                              source="s2.config", mode="train")
    with pytest.warns(ConfigWarning, match=r"mine/model.ckpt: a TF1 AdapNet\+\+ checkpoint of 12 classes, .* the "
                                           r"network it goes into has the default rates 3, 6, 12\."):
        initialize_model(SSMA(12), stage2)


def test_a_release_is_told_by_its_folders_name_only_when_the_checkpoint_is_its_model(
        tmp_path, monkeypatch, tf1_fixture_dir):
    """Any folder above a checkpoint, named like a release, gave its network (helper 75): a
    `.keras` file of other rates lost them, an AdapNet++ under an SSMA release's folder was
    refused, and a checkpoint of another class count took the release's rates."""
    import warnings

    from ssma_tf.checkpoints.convert import convert_tf1_checkpoint
    from ssma_tf.inference.settings import setup_inference

    _use_zoo(tmp_path, monkeypatch, FIXTURE_RELEASE,
             ("adapnet_pp_other_rgb", "AdapNet_pp", "freiburg_forest", ["rgb"], 6,
              "http://example.org/models/adapnet_pp_other.zip", (6, 12, 18)),
             ("ssma_fixture_rgb_depth", "SSMA", "cityscapes", ["rgb", "depth"], 12,
              "http://example.org/models/ssma_fixture.zip", None))
    mine = tmp_path / "adapnet_pp_fixture" / "mine.keras"
    mine.parent.mkdir()
    convert_tf1_checkpoint(str(tf1_fixture_dir / "model.ckpt"), str(mine), easpp_rates=(2, 4, 8))
    assert ssma_tf.load_model(str(mine)).get_config()["easpp_rates"] == [2, 4, 8]
    for release in ("adapnet_pp_other", "ssma_fixture"):  # another class count, another network
        prefix = tmp_path / release / "experts" / "model.ckpt"
        prefix.parent.mkdir(parents=True)
        for name in ("model.ckpt.index", "model.ckpt.data-00000-of-00001"):
            (prefix.parent / name).symlink_to(tf1_fixture_dir / name)
        assert zoo.released_entry(str(prefix)) is not None and zoo.fitting_release(str(prefix)) is None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loaded = ssma_tf.load_model(str(prefix))
            assert isinstance(loaded, AdapNetPP) and loaded.get_config()["easpp_rates"] == [3, 6, 12]
            assert setup_inference(checkpoint=str(prefix)).model.get_config()["easpp_rates"] == [3, 6, 12]
    # Only a few folders up: a folder of that name far above is not the archive's.
    deep = tmp_path / "adapnet_pp_fixture" / "a" / "b" / "c" / "d" / "model.ckpt"
    assert zoo.released_entry(str(deep)) is None and zoo.released_entry(str(deep.parents[2] / "model.ckpt"))


def test_released_as_naming_the_other_network_says_so(tmp_path, tf1_fixture_dir):
    """An AdapNet++ folder with released_as an SSMA preset got the training loader's words: "SSMA
    needs two of them, one per expert (checkpoint1 ..., checkpoint2 ...)"."""
    folder = tmp_path / "unpacked"
    folder.mkdir()
    for name in ("model.ckpt.index", "model.ckpt.data-00000-of-00001"):
        (folder / name).symlink_to(tf1_fixture_dir / name)
    with pytest.raises(CheckpointError, match=re.escape(
            "model.ckpt holds AdapNet_pp, but released_as='ssma_cityscapes_rgb_depth' names "
            "ssma_cityscapes_rgb_depth, an SSMA of 12 classes; give the preset of the model it holds")):
        ssma_tf.load_model(str(folder), released_as="ssma_cityscapes_rgb_depth")


def test_urls_are_cached_each_on_its_own_and_read_by_their_path(tmp_path, monkeypatch):
    """Helper 143: `.../run1/model.zip` and `.../run2/model.zip` shared one cached copy (the second
    loaded the first's model); `model.tar.gz?dl=1` was unpacked as a zip, called damaged and its
    good download deleted; `FusionBaseline.from_preset` of a release was downloaded before it was
    refused."""
    import io
    import urllib.request

    from ssma_tf.models import FusionBaseline

    served = {}
    for run in ("run1", "run2"):
        archive = tmp_path / run / "model.zip"
        archive.parent.mkdir()
        with zipfile.ZipFile(archive, "w") as opened:
            opened.writestr(f"{run}/model.ckpt.index", b"not read here")
        served[f"https://example.org/{run}/model.zip"] = archive
    packed = io.BytesIO()
    with tarfile.open(fileobj=packed, mode="w:gz") as tar:
        info = tarfile.TarInfo("gz/model.ckpt.index")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"data"))
    (tmp_path / "model.tar.gz").write_bytes(packed.getvalue())
    served["https://example.org/model.tar.gz?dl=1"] = tmp_path / "model.tar.gz"

    opened = urllib.request.urlopen

    def urlopen(url, timeout):
        return opened(served[url].as_uri(), timeout=timeout)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    cache = str(tmp_path / "cache")
    for run in ("run1", "run2"):
        found = zoo.preset_checkpoint(f"https://example.org/{run}/model.zip", cache)
        assert found.endswith(os.path.join(run, "model.ckpt")), found
    assert zoo.preset_checkpoint("https://example.org/model.tar.gz?dl=1", cache).endswith(
        os.path.join("gz", "model.ckpt"))
    monkeypatch.setattr(zoo, "fetch_archive", lambda *a, **k: pytest.fail("fetched"))
    with pytest.raises(CheckpointError, match="^adapnet_pp_cityscapes_rgb holds AdapNet_pp, not FusionBaseline$"):
        FusionBaseline.from_preset("adapnet_pp_cityscapes_rgb", cache_dir=cache)
    with pytest.raises(CheckpointError, match="^ssma_cityscapes_rgb_depth holds SSMA, not FusionBaseline$"):
        FusionBaseline.from_preset("ssma_cityscapes_rgb_depth", cache_dir=cache)


def test_a_tar_ending_in_a_keras_file_is_unpacked_as_a_tar(tmp_path):
    """Helper 146: a `.tar` whose last file is a `.keras` (a zip) read as a zip by its content,
    and only that file's insides were unpacked."""
    inner = tmp_path / "final.keras"
    with zipfile.ZipFile(inner, "w") as opened:
        opened.writestr("config.json", "{}")
    archive = tmp_path / "run.tar"
    (tmp_path / "index").write_bytes(b"not read here")
    with tarfile.open(archive, "w") as tar:
        tar.add(tmp_path / "index", "run/model.ckpt.index")
        tar.add(inner, "run/final.keras")
    assert zipfile.is_zipfile(archive)  # what the content alone says
    folder = pathlib.Path(zoo.fetch_archive(archive.as_uri(), cache_dir=str(tmp_path / "cache")))
    assert sorted(p.name for p in (folder / "run").iterdir()) == ["final.keras", "model.ckpt.index"]


def test_two_first_loads_of_one_archive_at_once_both_get_its_folder(tmp_path, monkeypatch):
    """Both unpacked into one shared `.partial-<name>_extracted`: the second removed what the first
    was unpacking, and one of them failed with a raw FileNotFoundError."""
    good = tmp_path / "model.zip"
    with zipfile.ZipFile(good, "w") as archive:
        archive.writestr("m/model.ckpt.index", b"not read here")
    cache = str(tmp_path / "cache")
    unpack = zoo._unpack
    calls = []

    def unpack_while_another_does(archive, folder, suffix):
        calls.append(folder)
        if len(calls) == 1:  # another process loads the same model meanwhile, and finishes first
            assert zoo.fetch_archive(good.as_uri(), cache_dir=cache).endswith("model_extracted")
        unpack(archive, folder, suffix)

    monkeypatch.setattr(zoo, "_unpack", unpack_while_another_does)
    folder = zoo.fetch_archive(good.as_uri(), cache_dir=cache)
    assert len(calls) == 2 and (pathlib.Path(folder) / "m" / "model.ckpt.index").read_bytes() == b"not read here"
    assert sorted(os.listdir(os.path.dirname(folder))) == [".model.lock", "model.zip", "model_extracted"]
    # The unpacking of a process that was killed is removed; one still running is left alone.
    os.remove(good)
    cached = pathlib.Path(os.path.dirname(folder))
    dead, alive = (cached / f".partial-{pid}-0123abcd-model_extracted" for pid in (2**22 + 7, os.getpid()))
    dead.mkdir()
    alive.mkdir()
    zoo._remove_dead_unpackings(folder)
    assert not dead.exists() and alive.exists()


def _zipped(path, member="m/model.ckpt.index", content=b"not read here"):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, content)
    return path


def test_an_interrupted_download_leaves_nothing_a_later_load_trusts(tmp_path, monkeypatch, capsys):
    """Helper 187: Keras downloaded to the archive's own name; a download stopped by SIGTERM or
    SIGKILL stayed there, and the next load called it damaged (only the third worked)."""
    import urllib.request

    from ssma_tf.errors import Terminated

    content = np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes()  # more than 1000 bytes zipped
    good = _zipped(tmp_path / "model.zip", content=content)
    cache = tmp_path / "cache"
    cached = cache / "models" / "ssma_tf"
    opened = urllib.request.urlopen
    url = "https://example.org/model.zip"

    class Cut:
        """The server's response, stopped after its first kilobyte."""

        def __init__(self, stop):
            self.response, self.stop, self.calls = opened(good.as_uri()), stop, 0
            self.headers = {"Content-Length": str(good.stat().st_size)}

        def read(self, size):
            self.calls += 1
            if self.calls > 1:
                raise self.stop
            return self.response.read(1000)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.response.close()

    for stop, error in ((Terminated(), Terminated), (ConnectionResetError(104, "Connection reset by peer"),
                                                     CheckpointError), (None, CheckpointError)):
        monkeypatch.setattr(urllib.request, "urlopen", lambda u, timeout: Cut(stop if stop is not None else b""))
        if stop is None:  # the server closed the connection early without an error
            monkeypatch.setattr(Cut, "read", lambda self, size: b"" if self.calls else setattr(self, "calls", 1) or
                                self.response.read(1000))
        with pytest.raises(error) as raised:
            zoo.fetch_archive(url, cache_dir=str(cache))
        assert sorted(os.listdir(cached)) == [".model.lock"], stop
        if stop is None:
            assert str(raised.value) == (f"the download of {url} stopped after 1000 of its {good.stat().st_size} "
                                         "bytes: try again")
        elif error is CheckpointError:
            assert str(raised.value).startswith(f"cannot download {url} (Connection reset by peer): without a network")
    # What a killed download left (its process gone) is removed; the next load downloads whole.
    (cached / ".partial-4194311-0123abcd-model.zip").write_bytes(b"PK\x03\x04 cut")
    monkeypatch.setattr(urllib.request, "urlopen", lambda u, timeout: opened(good.as_uri(), timeout=timeout))
    folder = zoo.fetch_archive(url, cache_dir=str(cache))
    assert (pathlib.Path(folder) / "m" / "model.ckpt.index").read_bytes() == content
    assert sorted(os.listdir(cached)) == [".model.lock", "model.zip", "model_extracted"]
    assert f"downloading {url}" in capsys.readouterr().err


def test_a_second_process_waits_for_the_first_and_takes_its_copy(tmp_path, capsys):
    """Helper 187: a second process took the first's download in progress for the archive,
    called it damaged and deleted it, and the first failed with a raw FileNotFoundError."""
    import subprocess
    import sys

    cached = tmp_path / "cache" / "models" / "ssma_tf"
    cached.mkdir(parents=True)
    # The other process holds the lock while it "downloads", then leaves the unpacked folder.
    other = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"folder = {str(cached)!r}\n"
        "lock = open(os.path.join(folder, '.model.lock'), 'a+b')\n"
        "fcntl.flock(lock.fileno(), fcntl.LOCK_EX)\n"
        "open(os.path.join(folder, 'model.zip'), 'wb').write(b'PK half a download')\n"
        "print('locked', flush=True)\n"
        "time.sleep(1.5)\n"
        "os.makedirs(os.path.join(folder, 'model_extracted', 'm'))\n"
        "open(os.path.join(folder, 'model_extracted', 'm', 'model.ckpt.index'), 'wb').write(b'theirs')\n"
        "os.replace(os.path.join(folder, 'model.zip'), os.path.join(folder, 'model.zip'))\n")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline() == "locked\n"
        folder = zoo.fetch_archive("https://example.org/model.zip", cache_dir=str(tmp_path / "cache"))
    finally:
        other.wait(timeout=60)
    assert (pathlib.Path(folder) / "m" / "model.ckpt.index").read_bytes() == b"theirs"
    assert (cached / "model.zip").read_bytes() == b"PK half a download"  # not taken for damaged and deleted
    assert ("waiting for another process that fetches https://example.org/model.zip into the same cache"
            in capsys.readouterr().err)


def test_a_read_only_cache_that_holds_the_model_is_read_and_one_that_does_not_is_named(tmp_path, monkeypatch):
    """Helper 187: Keras moved to /tmp/.keras when the cache could not be written, and downloaded
    again what the cache held (offline: "cannot download")."""
    good = _zipped(tmp_path / "model.zip")
    cache = tmp_path / "shared_cache"
    folder = zoo.fetch_archive(good.as_uri(), cache_dir=str(cache))
    monkeypatch.setattr(zoo.os, "access", lambda path, mode: False)  # read-only (root writes anywhere)
    monkeypatch.setattr(zoo, "_download", lambda *a: pytest.fail("downloaded"))
    assert zoo.fetch_archive(good.as_uri(), cache_dir=str(cache)) == folder
    empty = tmp_path / "empty_cache"
    with pytest.raises(CheckpointError, match=(
            rf"^cannot keep https://example.org/x.zip in the cache folder {re.escape(str(empty))}/models/ssma_tf "
            r"\(not writable\): give cache_dir= a folder you can write \(or set KERAS_HOME\)$")):
        zoo.fetch_archive("https://example.org/x.zip", cache_dir=str(empty))
    monkeypatch.setenv("KERAS_HOME", str(cache))
    assert zoo.cache_folder() == str(cache / "models" / "ssma_tf")


def test_a_folder_of_final_weights_loads_by_preset_as_by_path(tmp_path):
    """Helper 187: a folder holding only `final.weights.h5` (a run whose checkpoints were
    removed) loaded with `ssma_tf.checkpoints.load_model`, not with `ssma_tf.load_model`."""
    model = AdapNetPP(3, aux_heads=False)  # a functional model: built when made
    (tmp_path / "run").mkdir()
    model.save_weights(tmp_path / "run" / "final.weights.h5")
    loaded = ssma_tf.load_model(str(tmp_path / "run"), model="AdapNet_pp", num_classes=3)
    for ours, theirs in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def test_from_preset_of_weights_alone_takes_the_class_count_it_asks_for(tmp_path):
    """Helper 191: from_preset of a `.weights.h5` file said to give model= and num_classes=, which
    it did not take (a TypeError)."""
    from ssma_tf.checkpoints.reading import UnnamedNetworkError
    from ssma_tf.models import FusionBaseline

    model = AdapNetPP(3)  # a functional model: built when made
    path = str(tmp_path / "weights.weights.h5")
    model.save_weights(path)
    with pytest.raises(UnnamedNetworkError, match=rf"^{re.escape(path)} does not say how many classes the AdapNetPP "
                                                  r"it holds has: give num_classes= \(AdapNetPP.from_preset\(path, "
                                                  r"num_classes=N\)\), or load it from its training run's folder"):
        AdapNetPP.from_preset(path)
    loaded = AdapNetPP.from_preset(path, num_classes=3)
    for ours, theirs in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    with pytest.raises(UnnamedNetworkError, match="does not say which FusionBaseline it holds: give its .keras file"):
        FusionBaseline.from_preset(path, num_classes=3)
    # Weights of the other network: said so, not a layer's shapes alone (helper 198).
    from ssma_tf.models import SSMA

    with pytest.raises(CheckpointError, match=rf"^{re.escape(path)} does not hold an SSMA of 3 classes \(another "
                                              r"network, or another class count\?\): "):
        SSMA.from_preset(path, num_classes=3)


def test_a_home_that_cannot_be_written_keeps_the_model_where_keras_would(tmp_path, monkeypatch, capsys):
    """Helper 198: Keras keeps its cache in /tmp/.keras where the home folder cannot be written
    (a container, a cluster job); the zoo's own downloader refused, and no longer found what
    Keras had cached there."""
    import tempfile

    good = _zipped(tmp_path / "model.zip")
    home = tmp_path / "home"
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    real = zoo._unwritable
    monkeypatch.setattr(zoo, "_unwritable", lambda cache: "Read-only file system" if cache.startswith(str(home))
                        else real(cache))
    folder = zoo.fetch_archive(good.as_uri())
    assert folder == str(tmp_path / "tmp" / ".keras" / "models" / "ssma_tf" / "model_extracted")
    assert (f"note: the model cache {home / '.keras' / 'models' / 'ssma_tf'} cannot be written (Read-only file "
            f"system); using {tmp_path / 'tmp' / '.keras' / 'models' / 'ssma_tf'}, as Keras does") in \
        capsys.readouterr().err
    monkeypatch.setattr(zoo, "_download", lambda *a: pytest.fail("downloaded again"))
    assert zoo.fetch_archive(good.as_uri()) == folder  # found there the next time, without a word
    assert "note:" not in capsys.readouterr().err


def test_a_download_of_no_announced_size_says_how_much_came(tmp_path, monkeypatch, capsys):
    """Helper 198: without a Content-Length only "downloading URL" was printed until the end; a
    small archive's progress read "downloaded 0/0"."""
    import io
    import urllib.request

    content = np.random.default_rng(1).integers(0, 256, 3_000_000, dtype=np.uint8).tobytes()
    archive = _zipped(tmp_path / "model.zip", content=content)

    class Response(io.BytesIO):
        headers: dict = {}

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Response(archive.read_bytes()))
    monkeypatch.setattr(zoo, "PIPED_LOG_SECONDS", 0.0)
    folder = zoo.fetch_archive("https://example.org/model.zip", cache_dir=str(tmp_path / "cache"))
    assert (pathlib.Path(folder) / "m" / "model.ckpt.index").read_bytes() == content
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "downloading https://example.org/model.zip"
    assert "downloaded 1.0 MB so far (the server gives no size)" in lines and lines[-1] == "downloaded 3.0 MB"
    small = _zipped(tmp_path / "small.zip")

    class Sized(Response):
        headers = {"Content-Length": str(small.stat().st_size)}

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Sized(small.read_bytes()))
    zoo.fetch_archive("https://example.org/small.zip", cache_dir=str(tmp_path / "cache"))
    assert "downloaded 1/1 (100%)" in capsys.readouterr().err


def test_a_file_url_is_cached_by_the_content_of_its_file(tmp_path):
    """Helper 280: a `file://` URL was cached by its text, so an archive replaced at that path
    loaded the old one's unpacked copy without a word (the same file given as a path was cached
    by content)."""
    archive, cache = tmp_path / "my model.zip", str(tmp_path / "cache")  # a space: %20 in the URL

    def zipped(content):
        with zipfile.ZipFile(archive, "w") as z:
            z.writestr(zipfile.ZipInfo("model/model.keras", date_time=(2026, 1, 1, 0, 0, 0)), content)
        return zoo.preset_checkpoint(archive.as_uri(), cache_dir=cache)

    first = zipped(b"first")
    assert zipped(b"first") == first == zoo.preset_checkpoint(str(archive), cache_dir=cache)
    second = zipped(b"second")
    assert second != first and pathlib.Path(second).read_bytes() == b"second"
    assert zoo.preset_checkpoint(f"file://localhost{archive.as_uri()[len('file://'):]}", cache_dir=cache) == second
    missing = tmp_path / "nowhere" / "model.zip"
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(missing))}: no such file or folder$"):
        zoo.preset_checkpoint(missing.as_uri(), cache_dir=cache)


def test_the_shared_temp_cache_is_read_only_when_the_home_cache_cannot_be_written(tmp_path, monkeypatch):
    """Helper 280: with KERAS_HOME unset, a `<name>_extracted` folder in <temp>/.keras (anyone's,
    on a shared machine) was loaded though ~/.keras could be written."""
    import tempfile

    good = _zipped(tmp_path / "model.zip", content=b"mine")
    monkeypatch.delenv("KERAS_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    planted = tmp_path / "tmp" / ".keras" / "models" / "ssma_tf" / "model_extracted" / "m"
    planted.mkdir(parents=True)
    (planted / "model.ckpt.index").write_bytes(b"someone else's")
    folder = zoo.fetch_archive(good.as_uri())
    assert folder == str(tmp_path / "home" / ".keras" / "models" / "ssma_tf" / "model_extracted")
    assert (pathlib.Path(folder) / "m" / "model.ckpt.index").read_bytes() == b"mine"


def test_a_failed_download_advises_what_the_caller_takes(tmp_path, monkeypatch, capsys):
    """Helper 280: ssma-convert-tf1 was told to pass released_as=NAME, which it has no flag for;
    it finds a release (and its eASPP rates) by the archive's file name."""
    import urllib.error
    import urllib.request

    from ssma_tf.cli import convert_tf1

    def offline(url, timeout):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    _use_zoo(tmp_path, monkeypatch, FIXTURE_RELEASE)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "cache"))
    for source in ("adapnet_pp_fixture_rgb", "http://example.org/models/adapnet_pp_fixture.zip"):
        assert convert_tf1.main(["-c", source, "-o", str(tmp_path / "out.keras")]) == 2
        err = capsys.readouterr().err
        assert ("error: cannot download http://example.org/models/adapnet_pp_fixture.zip (Temporary failure in name "
                "resolution): without a network, download the archive elsewhere and pass its path (or its unpacked "
                "folder) to -c, keeping its file name (adapnet_pp_fixture.zip): a released model's eASPP rates are "
                "found by it (or give --easpp-rates)") in err, source
        assert "released_as" not in err
    with pytest.raises(CheckpointError, match=r"instead of the name, with released_as=NAME for a released model$"):
        ssma_tf.load_model("adapnet_pp_fixture_rgb")


def test_released_as_of_a_keras_file_of_another_model_says_so(tmp_path, monkeypatch):
    """Helper 280: a `.keras` file of another class count or network with released_as ended in the
    loader's shapes ("variable aux_up1_head/bn/gamma has shape [12] ... but [20]"); a TF1
    checkpoint's said what it holds and what released_as names."""
    model = AdapNetPP(3)  # a functional model: built when made
    path = str(tmp_path / "mine.keras")
    model.save(path)
    for released, held, entry in (("adapnet_pp_cityscapes19_rgb", "has 3 classes", "an AdapNet_pp of 20 classes"),
                                  ("ssma_cityscapes_rgb_depth", "holds AdapNet_pp", "an SSMA of 12 classes")):
        with pytest.raises(CheckpointError, match=re.escape(
                f"{path} {held}, but released_as='{released}' names {released}, {entry}; give the preset of the "
                "model it holds")):
            ssma_tf.load_model(path, released_as=released)
    _use_zoo(tmp_path, monkeypatch, ("adapnet_pp_three_rgb", "AdapNet_pp", "cityscapes", ["rgb"], 3,
                                     "http://example.org/three.zip", None))
    loaded = ssma_tf.load_model(path, released_as="adapnet_pp_three_rgb")  # one that fits still loads
    for ours, theirs in zip(loaded.get_weights(), model.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


def _unreadable_zip(path, method=None, encrypted=False):
    """A whole zip whose member `m/model.ckpt.index` zipfile cannot read: its compression method
    set to `method` (9: Deflate64, which Windows' zipper writes), or flagged encrypted, in both its
    local and its central header."""
    import struct

    data = bytearray(_zipped(path).read_bytes())
    for signature, flags, method_at in ((b"PK\x03\x04", 6, 8), (b"PK\x01\x02", 8, 10)):
        at = data.find(signature)
        if method is not None:
            data[at + method_at: at + method_at + 2] = struct.pack("<H", method)
        if encrypted:
            data[at + flags] |= 0x1
    path.write_bytes(bytes(data))
    return path


def test_a_zip_member_zipfile_cannot_read_is_named_and_leaves_the_cache(tmp_path, capsys):
    """Helper 314: a Deflate64 or encrypted member was zipfile's NotImplementedError ("That
    compression method is not supported") or RuntimeError ("... is encrypted, password required"),
    naming no archive, the same again on the next call (the copy stayed in the cache), and
    ssma-convert-tf1 printed its traceback."""
    from ssma_tf.cli import convert_tf1

    cache = tmp_path / "cache"
    for kind, why in (({"method": 9}, "uses the compression method 9 (Deflate64)"),
                      ({"encrypted": True}, "is encrypted")):
        archive = _unreadable_zip(tmp_path / "mymodel.zip", **kind)
        said = (f"cannot unpack the archive {archive}: its member m/model.ckpt.index {why}, which Python's zipfile "
                "cannot read; re-zip it with plain deflate")
        for _ in range(2):
            with pytest.raises(CheckpointError, match=f"^{re.escape(said)}$"):
                ssma_tf.load_model(str(archive), cache_dir=str(cache))
            assert not [p for p in cache.rglob("*") if p.is_file() and p.suffix != ".lock"]  # its lock file stays
        assert convert_tf1.main(["-c", str(archive), "-o", str(tmp_path / "out.keras")]) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {said}"


def test_the_files_macos_adds_to_a_zip_are_no_checkpoints(tmp_path):
    """Helper 314: an archive zipped by macOS' Finder (`__MACOSX/<folder>/._model.ckpt.index`) was
    refused as holding "several checkpoints", naming a path in the cache."""
    archive = tmp_path / "model.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for member in ("m/model.ckpt.index", "__MACOSX/m/._model.ckpt.index", "__MACOSX/._m", "m/._model.keras"):
            z.writestr(member, b"not read here")
    checkpoint = zoo.preset_checkpoint(str(archive), str(tmp_path / "cache"))
    assert checkpoint.endswith(os.path.join("_extracted", "m", "model.ckpt")), checkpoint


def test_an_export_or_a_run_without_a_checkpoint_is_said_to_be_one(tmp_path, capsys):
    """Helper 314: load_model of an ssma-export folder said its `variables/variables` did not say
    its network ("give model= ..."), and of a run without a checkpoint "no TF1 checkpoint (*.index)
    or .keras file inside"; `resolve_weights` says what they are."""
    import json

    from ssma_tf.cli import convert_tf1

    export = tmp_path / "exported"
    (export / "assets.extra").mkdir(parents=True)
    (export / "assets.extra" / "ssma_tf.json").write_text(json.dumps({"backend": "saved_model"}))
    import tensorflow as tf

    tf.train.Checkpoint(v=tf.Variable(1.0)).write(str(export / "variables" / "variables"))  # as a SavedModel's
    run = tmp_path / "unsaved"
    run.mkdir()
    (run / "config.yaml").write_text("model: AdapNet_pp\n")
    for folder, what in ((export, "it is an export of ssma-export (a SavedModel: load it with tf.saved_model.load), "
                                  "not weights"),
                         (run, "it is a training run that has not saved a checkpoint yet")):
        said = (f"{folder} is a directory without a 'checkpoint' state file, a final.weights.h5 or a single "
                f"checkpoint (*.index): {what}")
        with pytest.raises(CheckpointError, match=f"^{re.escape(said)}$"):
            ssma_tf.load_model(str(folder))
        with pytest.raises(CheckpointError, match=f"^{re.escape(said)}$"):
            AdapNetPP.from_preset(str(folder), num_classes=3)
        assert convert_tf1.main(["-c", str(folder), "-o", str(tmp_path / "out.keras")]) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == f"error: {said}"
    # A run folder that holds a network (ssma-prune's stage<k>.keras beside its config.yaml) is searched as before.
    (run / "report.json").write_text("{}")
    (run / "stage1.keras").write_bytes(b"not read here")
    assert zoo.preset_checkpoint(str(run)) == str(run / "stage1.keras")


def test_a_file_url_is_loaded_as_its_path(tmp_path, monkeypatch, tiny_backbone):
    """Helper 314: from_preset of a `file://` URL of an archive named like a release of the other
    network was refused on its name alone ("... holds SSMA, not AdapNetPP"), though its path loaded:
    a local copy says its network itself."""
    _use_zoo(tmp_path, monkeypatch, ("ssma_fixture_rgb_depth", "SSMA", "cityscapes", ["rgb", "depth"], 12,
                                     "http://example.org/models/ssma_fixture.zip", None))
    model = AdapNetPP(3, backbone=tiny_backbone)
    model(np.zeros((1, 32, 32, 3), np.float32))
    model.save(tmp_path / "model.keras")
    archive = tmp_path / "ssma_fixture.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(tmp_path / "model.keras", "ssma_fixture/model.keras")
    cache = str(tmp_path / "cache")
    for source in (str(archive), archive.as_uri()):
        loaded = AdapNetPP.from_preset(source, cache_dir=cache)
        assert isinstance(loaded, AdapNetPP) and loaded.num_classes == 3, source
        assert isinstance(ssma_tf.load_model(source, cache_dir=cache), AdapNetPP), source
        # Refused for what it holds, named by its path (before: by the URL, for its name).
        with pytest.raises(CheckpointError, match=f"^{re.escape(str(archive))} holds AdapNet_pp, not SSMA$"):
            SSMA.from_preset(source, cache_dir=cache)
