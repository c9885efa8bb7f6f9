"""Reading a YAML file of the package (a config, a run's `config.yaml`, a datasets file), and the
error of a bad config.

One loader for all of them (`1e-3` is a number, a repeated key is an error) and one set of
messages (the file, and the line where YAML can tell it). This module imports nothing of the
package but `ssma_tf.errors`, so that the dataset registry (`ssma_tf.data.datasets`), which the
config reader itself looks up, can read its file the same way without an import circle.
"""

from __future__ import annotations

import os
import re
from typing import Any, Optional

import yaml

from ssma_tf.errors import UserInputError


class ConfigError(UserInputError):
    """A configuration problem, naming the key and the file it comes from.

    Attributes:
        key: the offending key, or None when the problem is not about one key.
        source: the config file (or "<dict>" for configs built in code).
        missing: the key is absent or empty where a value is needed (a caller that can do
            without the key, such as prediction without `train_data`, tells these apart by it).
        line: the key's line in the file (`ConfigMapping.lines`), or None.
        column: the column on `line` where the problem is (a character YAML refuses), or None.
    """

    def __init__(self, message: str, key: Optional[str] = None, source: str = "<dict>",
                 missing: bool = False, line: Optional[int] = None, column: Optional[int] = None):
        # A config built in code has no file to name: "<dict>: " would only puzzle a user.
        at = "" if line is None else f", line {line}" + ("" if column is None else f", column {column}")
        where = [] if source == "<dict>" else [source + at]
        if key is not None:
            where.append(f"key '{key}'")
        super().__init__(": ".join(where + [message]))
        self.key = key
        self.source = source
        self.path = None if source == "<dict>" else source
        self.detail = message
        self.missing = missing
        self.line = line
        self.column = column


class ConfigMapping(dict):
    """A config file's top-level mapping, with the line each key is on (`lines`) and the line of
    each key inside a top-level mapping such as `semi_supervised:` (`inner_lines`, by (section,
    key)), so that an error about a key names its line as YAML's own errors do."""

    def __init__(self, values: Any, lines: Optional[dict] = None, inner_lines: Optional[dict] = None,
                 spellings: Optional[dict] = None):
        super().__init__(values)
        self.lines = dict(lines or {})
        self.inner_lines = dict(inner_lines or {})
        # Keys YAML reads as something else than a string (`on:` is True), by that value: their
        # text in the file, so that the error about them quotes the file.
        self.spellings = dict(spellings or {})

    def line_of(self, name: Optional[str], aliases: Optional[dict] = None) -> Optional[int]:
        """The line of key `name`, or of a spelling of it that `aliases` (spelling: name) maps to it."""
        for key, line in self.lines.items():
            if key == name or (aliases or {}).get(key) == name:
                return line
        return None

    def inner_line_of(self, section: str, name: Any) -> Optional[int]:
        """The line of key `name` inside the top-level mapping `section`, or None."""
        return self.inner_lines.get((section, name))



class _Loader(yaml.SafeLoader):
    """A safe YAML loader that reads `1e-3` as a float and refuses duplicate keys.

    PyYAML follows YAML 1.1, where a float needs a dot: `learning_rate: 1e-3` would load as the
    string "1e-3". Duplicate keys would silently keep the last value. YAML 1.1's integers are
    left out too: `010` (octal, 8) and `1:30` (base 60, 90) stay strings, which an integer key
    refuses, naming the value; decimal (`1_000` included) and hexadecimal integers remain.
    """

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except ValueError as e:
            if not isinstance(node, yaml.ScalarNode):
                raise
            # A value a resolver takes for a number or a date that its constructor refuses
            # (`2020-13-45`). Before: a ValueError traceback, which is no YAMLError (helper 285).
            kind = {"timestamp": "date", "int": "integer", "float": "number"}.get(node.tag.rpartition(":")[2], "value")
            raise _LoaderError(None, None, f"'{node.value}' reads as a {kind} but is not one ({e}); quote it to "
                                           "mean text", node.start_mark) from None


class _LoaderError(yaml.constructor.ConstructorError):
    """An error the configs' loader raises itself (a repeated key, a list as a key, a number that is
    not one): its message says what to do, and its line holds no YAML sign to quote."""


_NUMBER_TAGS = ("tag:yaml.org,2002:float", "tag:yaml.org,2002:int")
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _NUMBER_TAGS]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    # A digit at least after `0x` (and after the `.` below): before, `0x_` and `._` resolved to
    # numbers that the constructors refused with a ValueError traceback (helper 285).
    re.compile(r"^(?:[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]*[0-9a-fA-F][0-9a-fA-F_]*)$"),
    list("-+0123456789"),
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |[-+]?\.[0-9_]*[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def _construct_mapping_no_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False):
    seen: dict[Any, int] = {}  # each key's first line
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            # A merge key (`<<: *defaults`): its keys are the merged mapping's, which
            # `construct_mapping` flattens in (before: "could not determine a constructor for the
            # tag 'tag:yaml.org,2002:merge'"; helper 131). Explicit keys still may not repeat.
            continue
        name = loader.construct_object(key_node, deep=deep)
        try:
            hash(name)
        except TypeError:
            # A list or mapping as a key (`[a, b]: 1`): before, a TypeError traceback (helper 186).
            kind = "list" if isinstance(key_node, yaml.SequenceNode) else "mapping"
            raise _LoaderError(
                None, None, f"found a key that is a {kind}; keys are names", key_node.start_mark) from None
        if name in seen:
            raise _LoaderError(None, None, f"duplicate key '{name}' (first on line {seen[name]})", key_node.start_mark)
        seen[name] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping_no_duplicates
)


def read_yaml_file(path: "str | os.PathLike[str]", what: str) -> Any:
    """The content of a YAML file (a config, a run's `config.yaml`, a datasets file).

    Read with the configs' loader: duplicate keys are an error and `1e-3` is a number.

    Raises:
        ConfigError: naming the file: unreadable (`what` says which file it is meant to be), not
            UTF-8 (the byte and its line), or not YAML (the line and column).
    """
    source = os.fspath(path)
    try:
        with open(source, "rb") as f:
            data = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read {what}: {e.strerror or e}", source=source) from e
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ConfigError(f"not UTF-8 text (byte {data[e.start]:#04x} on line {line})", source=source) from None
    try:
        content = yaml.load(text, Loader=_Loader)  # noqa: S506 (_Loader is a SafeLoader)
        if isinstance(content, dict):
            node = yaml.compose(text, Loader=_Loader)  # noqa: S506
            lines, inner_lines, spellings = {}, {}, {}

            def name_of(key: yaml.ScalarNode) -> Any:
                # A merge key (`<<`) is no key of the config: its line is kept under '<<'.
                if key.tag in ("tag:yaml.org,2002:str", "tag:yaml.org,2002:merge"):
                    return key.value
                value = yaml.load(key.value, Loader=_Loader)  # noqa: S506
                spellings[value] = key.value
                return value

            for key, value in _entries(node):
                name = name_of(key)
                lines.setdefault(name, key.start_mark.line + 1)
                if isinstance(value, yaml.MappingNode):
                    for inner, _ in _entries(value):
                        inner_lines.setdefault((name, name_of(inner)), inner.start_mark.line + 1)
            return ConfigMapping(content, lines, inner_lines, spellings)
        return content
    except yaml.reader.ReaderError as e:
        # A character YAML refuses anywhere in the text (a pasted colour code, a NUL). Before: PyYAML's
        # two lines, "position 67" of "<unicode string>", without a line (helper 330).
        line, column = _line_and_column(text, e.position)
        raise ConfigError(refused_character(e, text), source=source, line=line, column=column) from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        line = text.splitlines()[mark.line] if mark is not None and mark.line < len(text.splitlines()) else ""
        value = line.partition(":")[2] if ":" in line else line  # `key: *.x`, or a list item `  - *.x`
        if mark is not None:
            # The sign YAML stopped after (`[a.x, *.x]`): the word from it on.
            start = max(line.rfind(sign, 0, mark.column + 1) for sign in "*&!%@`")
            if start >= 0:
                value = re.split(r"[\s,\]]", line[start:])[0]
        # Before: the advice to quote a value came with a duplicate key too (`checkpoint1: *c`
        # twice), built from that line's value (helper 285).
        hint = "" if isinstance(e, _LoaderError) else quoting_hint(value)
        raise ConfigError(f"not valid YAML{where}: {yaml_problem(e)}{hint}", source=source) from e
    except ValueError as e:
        # A backstop: a constructor's ValueError that `_Loader.construct_object` did not see.
        raise ConfigError(f"not valid YAML: {e}", source=source) from e


def _entries(node: yaml.MappingNode, within: tuple = ()) -> list:
    """The (key, value) nodes of a mapping whose key is a scalar, with those a merge key (`<<:`)
    brings in after them: a mapping, a list of them or an alias to either. Explicit keys come
    first, then each merged mapping's in order, so that the first entry of a name is the one YAML
    keeps. The merge key itself is an entry too (a mapping's line of `<<`). `within`: the mappings
    being read, which merge nothing new into themselves (`a: &a {<<: *a}` is legal YAML)."""
    own, merged = [], []
    for key, value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        own.append((key, value))
        if key.tag == "tag:yaml.org,2002:merge":
            # Before: a key the merge brought in had no line (helper 330).
            for part in value.value if isinstance(value, yaml.SequenceNode) else [value]:
                if isinstance(part, yaml.MappingNode) and all(part is not outer for outer in (node, *within)):
                    merged += _entries(part, (node, *within))
    return own + merged


# YAML's line breaks: a line and a column count from them as YAML's own errors do.
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
# Names of the characters YAML refuses that are met in practice; the others are named by code alone.
_CHARACTER_NAMES = {0x00: "NUL", 0x08: "backspace", 0x0B: "vertical tab", 0x0C: "form feed", 0x1B: "escape",
                    0x7F: "delete"}


def _line_and_column(text: str, position: int) -> tuple[int, int]:
    """The line and column (from 1) of character `position` of `text`."""
    lines = _LINE_BREAK.split(text[:position])
    return len(lines), len(lines[-1]) + 1


def refused_character(error: yaml.reader.ReaderError, text: str, where: str = "") -> str:
    """What a character YAML refuses (`error`, found in `text`; `where` says where, when the caller
    does not) is, and what it may come from."""
    code = error.character if isinstance(error.character, int) else ord(error.character)
    kind = ("control character" if code < 0x20 or 0x7F <= code <= 0x9F
            else "noncharacter" if code in (0xFFFE, 0xFFFF) else "character")
    named = f" ({_CHARACTER_NAMES[code]})" if code in _CHARACTER_NAMES else ""
    hint = ""
    if code == 0x1B:
        hint = " (a terminal colour code pasted in?)"
    elif code == 0 and text.count("\0") * 3 >= len(text):
        # UTF-16 without a byte-order mark decodes as UTF-8 with a NUL beside every ASCII letter.
        hint = "; the file looks like UTF-16 (a NUL beside every letter): save it as UTF-8"
    return f"{kind} U+{code:04X}{named}{where} is not allowed in YAML{hint}"


def yaml_problem(error: yaml.YAMLError, one_line: bool = False) -> str:
    """What YAML found wrong, with what it was reading and where that began (`context`).

    Before, the context was left out, and with it the only line that points at the slip: an
    unclosed quote on line 9 of 11 was "line 12: found unexpected end of stream" (helper 285).
    Where it began is a column on the problem's line or in a `one_line` value (a `--set`'s).
    """
    problem = getattr(error, "problem", None) or str(error)
    context, begun, mark = (getattr(error, name, None) for name in ("context", "context_mark", "problem_mark"))
    if not context or begun is None or (mark is not None and (begun.line, begun.column) == (mark.line, mark.column)):
        return problem
    if problem.startswith("but "):
        return f"{context}, {problem}"  # "expected a single document in the stream, but found another document"
    same_line = one_line or (mark is not None and mark.line == begun.line)
    at = f"at column {begun.column + 1}" if same_line else f"on line {begun.line + 1}"
    return f"{problem}, {context} started {at}"


def quoting_hint(value: str, set_key: Optional[str] = None) -> str:
    """For a value YAML could not read that starts with one of its own signs (`*.tfrecords` is
    an alias to YAML): the advice to quote it; else "". With `set_key` (a `--set` value) a plain
    value's advice is the whole flag, the YAML quotes inside the shell's (which the shell takes
    off a value quoted alone)."""
    value = value.strip()
    flow = value[:1] == "["
    if set_key is not None and value[:1] in tuple("*&!%@`") and '"' not in value and "'" not in value:
        return (f"; a value starting with {value[0]!r} is YAML syntax, not text: quote it inside the shell's quotes, "
                f"--set \"{set_key}='{value}'\"")
    while value[:1] in ("-", "[") and value[1:2] in (" ", "*", "&", "!", "%", "@", "`", ""):
        value = value[1:].strip()  # an item of a list (`- *.x`, `[*.x]`): its own first sign
    if flow:
        value = re.split(r"[,\]]", value)[0].strip()
    if value[:1] in tuple("*&!%@`"):
        return f"; a value starting with {value[0]!r} is YAML syntax, not text: quote it, '{value}'"
    return ""
