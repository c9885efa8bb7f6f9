"""List files (`ssma_tf.lists`): spaces, tabs and quotes; comments; encodings; round trips."""

from __future__ import annotations

import pytest

from ssma_tf.errors import UserInputError
from ssma_tf.lists import ListFileError, MissingFileError, format_line, read_lines, split_line


@pytest.mark.parametrize("line, fields", [
    ("a.png b.png c.png", ["a.png", "b.png", "c.png"]),
    ("  a.png   b.png \r", ["a.png", "b.png"]),
    ("rgb/a b.png\tdepth/a b.png\tlabel/a b.png", ["rgb/a b.png", "depth/a b.png", "label/a b.png"]),
    ("a b.png\t\tc.png \t", ["a b.png", "c.png"]),
    ('"rgb/a b.png" label.png', ["rgb/a b.png", "label.png"]),
    ("'rgb/a \"b\".png' label.png", ['rgb/a "b".png', "label.png"]),
    ('"C:\\data\\a b.png" C:\\data\\l.png', ["C:\\data\\a b.png", "C:\\data\\l.png"]),
    ("", []),
    # Helper 86: an apostrophe inside a word opened a quote, as in a shell: one path "its/a.png its/l.png".
    ("it's/a.png it's/l.png", ["it's/a.png", "it's/l.png"]),
    ('"my dir"/a.png b.png', ["my dir/a.png", "b.png"]),
    # Helper 236: Unicode spaces (macOS screenshot names hold U+202F) split paths, as the original
    # tools never did (Python 2 split bytes at ASCII blanks).
    ("rgb\u00a0copy.png l.png", ["rgb\u00a0copy.png", "l.png"]),
    ("Shot 10.00\u202fAM.png\tl.png", ["Shot 10.00\u202fAM.png", "l.png"]),
    ("'a b\u00a0c.png' x\u202fy.png", ["a b\u00a0c.png", "x\u202fy.png"]),
    # Helper 241: a no-break space pasted after the last path became part of it; a line of one was
    # no longer blank. Any space at an unquoted path's ends goes, as before.
    ("a.png l.png\u00a0", ["a.png", "l.png"]),
    ("\u00a0", []),
    ('"a b.png " l.png\u00a0', ["a b.png ", "l.png"]),
])
def test_lines_split_at_spaces_tabs_or_around_quotes(line, fields):
    assert split_line(line) == fields


def test_format_line_quotes_what_needs_it_and_round_trips():
    fields = ["plain.png", "with space.png", 'double"quote.png', "it's here.png", "C:\\x y\\z.png"]
    line = format_line(fields)
    assert line.startswith("plain.png \"with space.png\" 'double\"quote.png' \"it's here.png\"")
    assert split_line(line) == fields
    for bad in ("tab\there.png", "both'\"quotes.png", ""):
        with pytest.raises(ValueError):
            format_line([bad])


def test_read_lines_skips_blanks_and_comments_and_names_bad_files(tmp_path):
    good = tmp_path / "list.txt"
    good.write_bytes("\ufeff# comment\n\na.png b.png\n  \n\"c d.png\" e.png\n".encode("utf-8"))
    assert read_lines(good) == [(3, ["a.png", "b.png"]), (5, ["c d.png", "e.png"])]

    latin = tmp_path / "latin.txt"
    latin.write_bytes("a.png b.png\nb\xe9b\xe9.png c.png\n".encode("latin-1"))
    with pytest.raises(ListFileError, match=rf"{latin}, line 2: not UTF-8 text \(byte 0xe9\)"):
        read_lines(latin)
    quote = tmp_path / "quote.txt"
    quote.write_text("a.png b.png\n\"a b.png c.png\n", encoding="utf-8")
    with pytest.raises(ListFileError, match=rf"{quote}, line 2: a quote is not closed"):
        read_lines(quote)
    with pytest.raises(MissingFileError, match="does not exist") as missing:
        read_lines(tmp_path / "nope.txt")
    assert isinstance(missing.value, FileNotFoundError) and isinstance(missing.value, UserInputError)
    with pytest.raises(ListFileError, match="is a folder"):
        read_lines(tmp_path)


def test_a_tab_lines_path_meant_to_be_split_otherwise_gets_a_hint(tmp_path):
    """Helper 69: 'a.png b.png<TAB>c.png' and '"a b/x.png"<TAB>c.png' said only that the joined or
    quoted path does not exist."""
    from ssma_tf.lists import place_hint

    for name in ("a.png", "b.png", "a b.png"):
        (tmp_path / name).write_bytes(b"")
    folder = str(tmp_path)
    for field in ('"a b.png"', "'a b.png' a.png"):
        assert place_hint(field, folder).startswith(" (the line holds a tab, so it is split at tabs only"), field
    # Spaces alone: a tab line's, or words quoted together on a line without a tab (helper 70:
    # the hint said "the line holds a tab" of '"a.png b.png" c.png').
    assert place_hint("a.png b.png", folder) == (
        " (its words are files each: 'a.png', 'b.png'; a line with a tab is split at tabs only, and quotes join "
        "words into one path: separate the paths by tabs, or by spaces without quotes around them)")
    for field in ("a.png c.png", '"c d.png"', "a b c.png"):  # the words name no files either: no such hint
        assert "tab" not in place_hint(field, folder), field


def test_a_comment_is_never_parsed_and_a_quoted_hash_path_is_a_path(tmp_path):
    """Before: "# recordings of the '19 campaign" was refused for its quote, and `"#b.png" ...`
    (which `format_line` wrote unquoted) dropped as a comment."""
    listed = tmp_path / "l.txt"
    listed.write_text("# recordings of the '19 campaign\n  # indented 'comment\n\"#b.png\" \"#lb.png\"\n"
                      + format_line(["#c.png", "#lc.png"]) + "\n")
    assert read_lines(str(listed)) == [(3, ["#b.png", "#lb.png"]), (4, ["#c.png", "#lc.png"])]
    assert format_line(["#c.png", "#lc.png"]) == '"#c.png" #lc.png'


def test_line_numbers_are_the_editors_line_feeds(tmp_path):
    """`splitlines` also broke at form feeds and Unicode separators: errors named another line."""
    listed = tmp_path / "l.txt"
    listed.write_bytes("a\x0cb.png l.png\r\nc.png \"d.png\n".encode("utf-8"))
    with pytest.raises(ListFileError, match=r"l\.txt, line 2: a quote is not closed"):
        read_lines(str(listed))


def test_carriage_returns_alone_end_lines_too(tmp_path):
    """Old Mac and some spreadsheet exports: before the fix of the line numbers, `splitlines`
    took them; splitting at line feeds alone made two samples one line of six paths."""
    listed = tmp_path / "cr.txt"
    listed.write_bytes(b"a.png b.png l.png\rc.png d.png m.png\r")
    assert read_lines(str(listed)) == [(1, ["a.png", "b.png", "l.png"]), (2, ["c.png", "d.png", "m.png"])]


def test_a_bad_byte_after_lone_carriage_returns_is_named_on_its_line(tmp_path):
    """Helper 236: only line feeds were counted, and a bad byte on line 3 of a file with lone
    carriage returns was said to be on line 1."""
    for ending in (b"\r", b"\r\n", b"\n"):
        listed = tmp_path / "bad.txt"
        listed.write_bytes(ending.join([b"x.png l.png", b"x.png l.png", b"x.png \xff.png", b""]))
        with pytest.raises(ListFileError, match=r"bad\.txt, line 3: not UTF-8 text \(byte 0xff\)"):
            read_lines(str(listed))


def test_an_empty_quoted_path_is_named_not_taken_for_the_lists_folder(tmp_path):
    """Helper 236: `"" l.png` named the list's own folder ("image '.../L' is a folder")."""
    listed = tmp_path / "empty.txt"
    listed.write_text('a.png l.png\n"" l.png\n')
    with pytest.raises(ListFileError, match=r'empty\.txt, line 2: an empty quoted path \(""\) in \'"" l\.png\''):
        read_lines(str(listed))


def test_a_path_holding_a_unicode_space_or_a_line_of_more_columns_is_told_so_by_every_reader(tmp_path):
    """Helper 241: a no-break space between two paths was printed as a plain space without a word;
    and a line of more columns whose every path is a file got "a path with spaces?" from
    ssma-predict --list and ssma-scene convert (the converter's alone was mended)."""
    from ssma_tf.data.scene import read_scene_lines
    from ssma_tf.inference.predictor import PredictionError
    from ssma_tf.inference.samples import samples_from_list
    from ssma_tf.lists import missing_path_detail

    for name in ("a.png", "d.png", "t.png", "l.png"):
        (tmp_path / name).write_bytes(b"")
    detail = missing_path_detail(str(tmp_path / "a.png\u00a0l.png"), ["a.png\u00a0l.png"], 0, str(tmp_path))
    assert detail == ("does not exist (it holds U+00A0 NO-BREAK SPACE at character 6, which is part of the path: list "
                      "files separate paths by ASCII spaces or tabs only)")
    four = tmp_path / "four.txt"
    four.write_text("a.png d.png t.png l.png\n")
    with pytest.raises(PredictionError) as caught:
        samples_from_list(four, True, 2)
    assert str(caught.value).endswith("got 4 columns")
    scenes = tmp_path / "scenes.txt"
    scenes.write_text("a.png d.png 1\na.png d.png t.png 1\n")
    with pytest.raises(UserInputError) as caught:
        read_scene_lines(str(scenes), None)
    assert str(caught.value).endswith("has 4 columns but the lines before it have 3")
    # A path cut at its spaces is still hinted.
    (tmp_path / "my rgb.png").write_bytes(b"")
    scenes.write_text("a.png d.png 1\nmy rgb.png d.png 1\n")
    with pytest.raises(UserInputError, match=r"\(a path with spaces\? quote it"):
        read_scene_lines(str(scenes), None)
