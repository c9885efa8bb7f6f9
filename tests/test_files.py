"""ssma_tf.files: atomic writes that leave nothing half-written and honour the umask."""

import contextlib
import os
import stat

import pytest

from ssma_tf.files import TEMPORARY_PREFIX, atomic_path, atomic_write, file_sizes, remove_path, size_changes


@contextlib.contextmanager
def umask(value):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def leftovers(folder):
    return [name for name in os.listdir(folder) if name.startswith(TEMPORARY_PREFIX)]


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_files_and_folders_get_the_permissions_of_the_umask(tmp_path, mask):
    with umask(mask):
        with atomic_write(tmp_path / "a.txt") as stream:
            stream.write("text")
        with atomic_write(tmp_path / "deep" / "b.png", "wb") as stream:
            stream.write(b"\x89PNG")
        with atomic_path(tmp_path / "c.bin") as partial:
            with open(partial, "wb") as stream:  # a writer that wants a name (Keras, TFRecord)
                stream.write(b"c")
        with atomic_path(tmp_path / "export", directory=True) as partial:
            with open(os.path.join(partial, "saved_model.pb"), "wb") as stream:
                stream.write(b"model")
    for name in ("a.txt", "deep/b.png", "c.bin", "export/saved_model.pb"):
        assert mode(tmp_path / name) == 0o666 & ~mask, name  # mkstemp would give 0o600
    assert mode(tmp_path / "export") == 0o777 & ~mask
    assert (tmp_path / "a.txt").read_text() == "text" and (tmp_path / "c.bin").read_bytes() == b"c"
    assert leftovers(tmp_path) == [] and leftovers(tmp_path / "deep") == []


def test_a_failure_keeps_the_old_version_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(target) as stream:
            stream.write("half of the new")
            raise RuntimeError("interrupted")
    assert target.read_text() == "old" and leftovers(tmp_path) == []

    with atomic_write(target) as stream:
        stream.write("new")
    assert target.read_text() == "new" and leftovers(tmp_path) == []


def test_the_temporary_keeps_the_destination_name_at_its_end(tmp_path):
    with atomic_path(tmp_path / "final.weights.h5") as partial:
        assert os.path.dirname(partial) == str(tmp_path)  # same file system: the rename is atomic
        assert os.path.basename(partial).startswith(TEMPORARY_PREFIX)
        assert partial.endswith(".final.weights.h5") or partial.endswith("-final.weights.h5")
        with open(partial, "w") as stream:
            stream.write("w")
    assert (tmp_path / "final.weights.h5").read_text() == "w"


def test_a_long_but_legal_name_is_written_through_a_shorter_temporary(tmp_path, monkeypatch):
    """Helper 236: a name of 232-255 bytes made a temporary over the file system's 255, and the
    write failed after the work ("File name too long", exit 1 as for a full disk)."""
    from ssma_tf.files import leftover_temporaries, temporary_name

    name = "r" * 240 + ".weights.h5"
    with atomic_path(tmp_path / name) as partial:
        assert len(os.path.basename(partial).encode()) <= 255 and partial.endswith(".weights.h5")
        with open(partial, "w") as stream:
            stream.write("w")
    assert (tmp_path / name).read_text() == "w" and os.listdir(tmp_path) == [name]
    # A leftover of such a temporary is still found as the output's.
    left = temporary_name(tmp_path / name)
    open(left, "w").close()
    assert leftover_temporaries(tmp_path / name) == [left]
    assert leftover_temporaries(tmp_path / ("s" * 240 + ".weights.h5")) == []


def test_nothing_written_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with atomic_path(tmp_path / "x.tfrecords"):
            pass
    assert os.listdir(tmp_path) == []


def test_a_folder_is_replaced_only_once_the_new_one_is_complete(tmp_path):
    export = tmp_path / "export"
    export.mkdir()
    (export / "old.pb").write_text("old")
    with pytest.raises(ValueError):
        with atomic_path(export, directory=True) as partial:
            with open(os.path.join(partial, "new.pb"), "w") as stream:
                stream.write("new")
            raise ValueError("conversion failed")
    assert os.listdir(export) == ["old.pb"] and leftovers(tmp_path) == []

    with atomic_path(export, directory=True) as partial:
        with open(os.path.join(partial, "new.pb"), "w") as stream:
            stream.write("new")
    assert os.listdir(export) == ["new.pb"] and leftovers(tmp_path) == []


def test_an_interrupt_while_an_old_folder_is_removed_comes_after_it_is_gone(tmp_path, monkeypatch):
    """Helper 271: a Ctrl-C during the removal of the folder replaced raised there: the command
    said "interrupted" with the new folder in place and the old one left half-deleted beside it."""
    import shutil
    import signal

    from ssma_tf import files

    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "old.txt").write_text("old")
    rmtree = shutil.rmtree

    def interrupted_removal(path, *args, **kwargs):
        signal.getsignal(signal.SIGINT)(signal.SIGINT, None)  # as Python runs a signal's handler
        rmtree(path, *args, **kwargs)

    monkeypatch.setattr(files.shutil, "rmtree", interrupted_removal)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with atomic_path(tmp_path / "out", directory=True) as partial:
                with open(os.path.join(partial, "new.txt"), "w") as handle:
                    handle.write("new")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back
    finally:
        signal.signal(signal.SIGINT, previous)
    assert os.listdir(tmp_path) == ["out"] and os.listdir(tmp_path / "out") == ["new.txt"]


def test_outputs_entered_together_appear_together(tmp_path):
    names = [tmp_path / f"train-0000{i}-of-00003.tfrecords" for i in range(3)]
    with pytest.raises(OSError):
        with contextlib.ExitStack() as outputs:
            partials = [outputs.enter_context(atomic_path(name)) for name in names]
            for partial in partials[:2]:
                with open(partial, "w") as stream:
                    stream.write("shard")
            raise OSError("the third image is unreadable")
    assert os.listdir(tmp_path) == []


def test_a_failed_write_removes_the_folders_it_made_but_no_others(tmp_path):
    """Helper 242: a failed or stopped ssma-convert into out/sub/r.tfrecords left out/sub/, empty."""
    names = [tmp_path / "out" / "sub" / f"r-0000{i}-of-00002.tfrecords" for i in range(2)]
    for stop in (OSError("a label is bad"), KeyboardInterrupt()):
        with pytest.raises(type(stop)):
            with contextlib.ExitStack() as outputs:
                for partial in [outputs.enter_context(atomic_path(name)) for name in names]:
                    with open(partial, "w") as stream:
                        stream.write("shard")
                raise stop
        assert os.listdir(tmp_path) == []
    # A folder that was there stays, and one another writer put a file into meanwhile.
    (tmp_path / "out").mkdir()
    with pytest.raises(OSError):
        with atomic_path(names[0]):
            (tmp_path / "out" / "other.txt").write_text("another writer's")
            raise OSError("stopped")
    assert sorted(os.listdir(tmp_path / "out")) == ["other.txt"]
    with pytest.raises(OSError):
        with atomic_path(names[0]) as partial:
            (tmp_path / "out" / "sub" / "theirs.txt").write_text("another writer's")
            raise OSError("stopped")
    assert sorted(os.listdir(tmp_path / "out" / "sub")) == ["theirs.txt"]
    # A write of this process going on in a folder another made stays possible (helper 243: the
    # failed one removed `records/` before the other opened its temporary there).
    first = atomic_path(tmp_path / "records" / "train.tfrecords")
    first.__enter__()
    second = atomic_path(tmp_path / "records" / "val.tfrecords")
    written = second.__enter__()
    assert first.__exit__(OSError, OSError("a bad label"), None) is False  # the error goes on
    with open(written, "w") as stream:
        stream.write("val")
    second.__exit__(None, None, None)
    assert os.listdir(tmp_path / "records") == ["val.tfrecords"]


def test_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        with atomic_write("x", "a"):
            pass


def test_a_failed_write_names_the_destination_and_leaves_nothing(tmp_path, monkeypatch):
    import errno

    target = tmp_path / "out" / "metrics.json"
    with pytest.raises(OSError) as error:
        with atomic_write(target) as stream:
            stream.write("{")
            raise OSError(errno.ENOSPC, "No space left on device")  # as a full disk's write
    assert (error.value.errno, error.value.filename) == (errno.ENOSPC, str(target))
    assert os.listdir(tmp_path) == []  # the folder it made goes too (helper 242)


def test_remove_path_takes_files_folders_and_links_but_not_what_a_link_points_to(tmp_path):
    folder = tmp_path / "folder"
    (folder / "inner").mkdir(parents=True)
    (folder / "inner" / "a.txt").write_text("a")
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "b.txt").write_text("b")
    link = tmp_path / "link"
    link.symlink_to(kept, target_is_directory=True)
    single = tmp_path / "single.txt"
    single.write_text("c")
    for path in (folder, link, single, tmp_path / "missing"):
        remove_path(str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept"]
    assert (kept / "b.txt").read_text() == "b"


def test_temporaries_left_by_a_killed_writer_are_named_not_removed(tmp_path, capsys):
    """A writer killed with SIGKILL (or out of memory) leaves its temporary; the next write of the
    same output warns of it with its size, once per process (before: nothing said; readers that
    glob `*.tfrecords` read it as records). It is not removed: another process may be writing it."""
    import signal
    import subprocess
    import sys
    import warnings

    from ssma_tf.cli.common import command
    from ssma_tf.files import LeftoverWarning, check_output, leftover_temporaries, temporary_name

    target = tmp_path / "r.tfrecords"
    writer = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from ssma_tf.files import atomic_write\n"
        f"with atomic_write({str(target)!r}, 'wb') as stream:\n"
        "    stream.write(b'x' * 2_000_000); stream.flush(); print('written', flush=True); time.sleep(60)\n")],
        stdout=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert writer.stdout.readline() == "written\n"
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    left = leftover_temporaries(target)
    assert len(left) == 1 and not target.exists()
    # Another output's temporary and a file of the user's that only looks like one are not named.
    (tmp_path / os.path.basename(temporary_name(tmp_path / "other.tfrecords"))).write_bytes(b"")
    (tmp_path / ".partial-notes-r.tfrecords").write_bytes(b"")
    with pytest.warns(LeftoverWarning) as caught:
        assert check_output(target, what="--record") == str(target)
    assert [str(w.message) for w in caught] == [
        f"1 unfinished temporary of --record {target} (2.0 MB), left by an earlier writer that did not finish: "
        f"{left[0]}; remove it unless another process is writing {target} now"]
    assert os.path.exists(left[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_output(target, what="record file")  # named once per process
    # A folder's (an export's), through a command: one `warning:` line.
    export = tmp_path / "export"
    (tmp_path / os.path.basename(temporary_name(export))).mkdir()
    (tmp_path / os.path.basename(temporary_name(export))).mkdir()

    @command
    def main(argv=None):
        check_output(export, what="--output", directory=True)
        return 0

    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main([]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"warning: 2 unfinished temporaries of --output {export} (0.0 MB), left by an earlier "
                          "writer that did not finish: ") and err.endswith(f"; remove them unless another process is writing {export} now\n")


def test_a_folder_that_permissions_call_writable_but_is_not_is_named_before_the_work(tmp_path, monkeypatch):
    """As root on a read-only disk (or in /proc) `os.access` says yes: the export failed after the
    model had loaded, naming its temporary folder, and ssma-predict blamed the first input image."""
    import errno
    import tempfile

    from ssma_tf.files import OutputPathError, check_output

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "probe"))

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(OutputPathError, match=rf"^--output {tmp_path}/out: cannot write in the folder {tmp_path} \(Read-only "
                                              r"file system\)$"):
        check_output(tmp_path / "out", what="--output", directory=True)
    monkeypatch.undo()
    assert check_output(tmp_path / "out", directory=True) == str(tmp_path / "out") and os.listdir(tmp_path) == []
    real_mkdir = os.mkdir
    monkeypatch.setattr(os, "mkdir", lambda path, *args: (_ for _ in ()).throw(
        OSError(errno.EROFS, "Read-only file system", path)) if "out" in os.fspath(path) else real_mkdir(path, *args))
    with pytest.raises(OSError) as error:
        with atomic_path(tmp_path / "out", directory=True):
            pytest.fail("the block ran")
    assert error.value.filename == str(tmp_path / "out") and error.value.errno == errno.EROFS


def test_a_device_pipe_or_link_is_not_replaced_by_the_output(tmp_path):
    """Helper 88: `--json /dev/stdout` (or a link to the terminal) renamed a file over the device,
    and as root `/dev/full` became a JSON file for every later process; a link was replaced by a
    file instead of its target being written."""
    from ssma_tf.files import OutputPathError, check_json_output, check_output

    for device in ("/dev/null", "/dev/stdout"):  # checked only: never written by this test
        with pytest.raises(OutputPathError, match=rf"^--json {device} is not a file but a device, pipe or socket"):
            check_json_output(device)
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    with pytest.raises(OutputPathError, match="is not a file but a device, pipe or socket"):
        check_output(pipe, what="--output")
    with pytest.raises(OutputPathError, match="is not a file but a device, pipe or socket"):
        with atomic_write(pipe) as stream:
            stream.write("x")
    assert stat.S_ISFIFO(os.lstat(pipe).st_mode)
    (tmp_path / "target.json").write_text("{}")
    (tmp_path / "link.json").symlink_to(tmp_path / "target.json")
    assert check_json_output(tmp_path / "link.json") == str(tmp_path / "target.json")
    with atomic_write(tmp_path / "link.json") as stream:
        stream.write('{"a": 1}')
    assert (tmp_path / "link.json").is_symlink() and (tmp_path / "target.json").read_text() == '{"a": 1}'


def test_a_file_output_named_like_a_folder_is_refused(tmp_path):
    """Helper 90: `--json results/`, a folder not made yet, wrote a file named `results`."""
    from ssma_tf.files import OutputPathError, check_json_output, check_output

    with pytest.raises(OutputPathError, match=r"^--json .*results/ ends with '/', a folder's name; give a file name$"):
        check_json_output(f"{tmp_path}/results/")
    assert not (tmp_path / "results").exists()
    assert check_output(f"{tmp_path}/out/", what="--output", directory=True) == str(tmp_path / "out")


def test_a_failed_write_inside_a_temporary_folder_names_the_file_where_it_was_going(tmp_path):
    """A TFLite file that failed to write in an export's temporary folder was named under that
    folder, gone when the message came (helper 132)."""
    import errno

    with pytest.raises(OSError) as caught:
        with atomic_path(tmp_path / "export", directory=True) as partial:
            raise OSError(errno.EFBIG, "File too large", os.path.join(partial, "model_float32.tflite"))
    assert caught.value.filename == str(tmp_path / "export" / "model_float32.tflite")
    assert caught.value.errno == errno.EFBIG and leftovers(tmp_path) == []


def test_an_output_folder_that_is_a_dangling_link_is_refused_before_the_work(tmp_path):
    """Helper 200: a link to a folder not made yet passed the check, and each command failed late
    and otherwise ("File exists" after the model was built, "No such file or directory")."""
    from ssma_tf.files import OutputPathError, check_output

    (tmp_path / "run").symlink_to(tmp_path / "not yet", target_is_directory=True)
    with pytest.raises(OutputPathError, match=(rf"^--output {tmp_path / 'run'} is a symbolic link to "
                                               rf"{tmp_path / 'not yet'}, which does not exist: make that folder, "
                                               "or give another --output$")):
        check_output(tmp_path / "run", what="--output", directory=True, overwrite=None)
    (tmp_path / "not yet").mkdir()
    assert check_output(tmp_path / "run", what="--output", directory=True, overwrite=None) == str(tmp_path / "not yet")
    (tmp_path / "m.json").symlink_to(tmp_path / "new.json")  # a file through a link: made where it points
    assert check_output(tmp_path / "m.json", what="--json") == str(tmp_path / "new.json")


def test_size_changes_name_each_file_that_differs_and_count_the_rest(tmp_path):
    first, second = tmp_path / "a.tfrecords", tmp_path / "b.tfrecords"
    first.write_bytes(b"1234")
    second.write_bytes(b"12")
    before = file_sizes([first, second])
    assert before == {str(first): 4, str(second): 2}
    assert size_changes(before, file_sizes([first, second])) == ""
    second.write_bytes(b"123")
    third = tmp_path / "c.tfrecords"
    third.write_bytes(b"")
    now = file_sizes([first, second, third])
    assert size_changes(before, now) == f"{second} 2 -> 3 bytes; {third} absent -> 0 bytes"
    assert size_changes(before, {}) == f"{first} 4 -> absent bytes; {second} 2 -> absent bytes"
    assert size_changes(before, now, shown=1) == f"{second} 2 -> 3 bytes and 1 more"


# Helper 366: the "exists; pass --overwrite" refusal came at start-up only; a write that ended
# replaced whatever another command had put there meanwhile, both commands reporting success.


def test_a_file_that_appeared_meanwhile_is_kept_without_overwrite(tmp_path):
    from ssma_tf.files import OutputPathError

    out = tmp_path / "same.tfrecords"
    with pytest.raises(OutputPathError) as error:
        with atomic_path(out, overwrite=False) as partial:
            with open(partial, "wb") as stream:
                stream.write(b"mine")
            out.write_bytes(b"theirs")  # another command finished first
    assert str(error.value) == (
        f"'{out}' appeared while this command was writing it (another command writing the same output?): it is "
        "left as it is and this command's result is dropped; pass --overwrite to replace it, or give another output")
    assert out.read_bytes() == b"theirs" and leftovers(tmp_path) == []
    with atomic_write(tmp_path / "new.txt", overwrite=False) as stream:  # nothing there: written
        stream.write("new")
    assert (tmp_path / "new.txt").read_text() == "new" and leftovers(tmp_path) == []
    with atomic_path(out) as partial:  # overwrite=True: replaced, as before
        with open(partial, "wb") as stream:
            stream.write(b"mine")
    assert out.read_bytes() == b"mine"


def test_without_hard_links_a_file_that_appeared_is_still_kept(tmp_path, monkeypatch):
    import errno

    from ssma_tf.files import OutputPathError

    def refused(*args, **kwargs):
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", refused)  # FAT, some network file systems
    out = tmp_path / "out.json"
    with pytest.raises(OutputPathError, match="appeared while this command was writing it"):
        with atomic_write(out, overwrite=False) as stream:
            stream.write("mine")
            out.write_text("theirs")
    assert out.read_text() == "theirs" and leftovers(tmp_path) == []
    with atomic_write(tmp_path / "b.json", overwrite=False) as stream:
        stream.write("mine")
    assert (tmp_path / "b.json").read_text() == "mine" and leftovers(tmp_path) == []


def test_a_folder_that_appeared_meanwhile_is_kept_without_overwrite(tmp_path):
    from ssma_tf.files import OutputPathError

    out = tmp_path / "export"
    with pytest.raises(OutputPathError, match="'.*export' appeared while"):
        with atomic_path(out, directory=True, overwrite=False) as partial:
            (tmp_path / "export" / "theirs").mkdir(parents=True)  # an empty folder a rename would replace
    assert os.listdir(out) == ["theirs"] and leftovers(tmp_path) == []
    with atomic_path(out, directory=True) as partial:  # overwrite=True: replaced, as before
        with open(os.path.join(partial, "mine"), "w") as stream:
            stream.write("x")
    assert os.listdir(out) == ["mine"]


def test_no_shard_is_put_in_place_where_one_appeared_meanwhile(tmp_path, monkeypatch):
    from ssma_tf.files import OutputPathError, atomic_paths

    first, second = tmp_path / "r-00000-of-00002", tmp_path / "r-00001-of-00002"
    with pytest.raises(OutputPathError, match="r-00001-of-00002' appeared"):
        with atomic_paths([first, second], overwrite=False) as partials:
            for partial in partials:
                with open(partial, "wb") as stream:
                    stream.write(b"mine")
            second.write_bytes(b"theirs")
    assert not first.exists() and second.read_bytes() == b"theirs" and leftovers(tmp_path) == []
    # One appearing after the look, just before its own rename: the shards already in place go again.
    second.unlink()
    link = os.link

    def other_first(source, destination, **kwargs):
        if destination == str(first):
            second.write_bytes(b"theirs")
        return link(source, destination, **kwargs)

    monkeypatch.setattr(os, "link", other_first)
    with pytest.raises(OutputPathError, match="r-00001-of-00002' appeared"):
        with atomic_paths([second, first], overwrite=False) as partials:  # renamed last to first
            for partial in partials:
                with open(partial, "wb") as stream:
                    stream.write(b"mine")
    assert not first.exists() and second.read_bytes() == b"theirs" and leftovers(tmp_path) == []
    monkeypatch.undo()
    # Overwrite per path: the existing one replaced, the new one written.
    with atomic_paths([first, second], overwrite=[False, True]) as partials:
        for partial in partials:
            with open(partial, "wb") as stream:
                stream.write(b"mine")
    assert first.read_bytes() == second.read_bytes() == b"mine"
