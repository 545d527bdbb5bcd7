"""Read one portfolio YAML file defensively: every way a file can be malformed becomes a message, fast.

PyYAML on its own keeps the last of two equal keys, expands an alias bomb into gigabytes, reads ``1e3`` as text,
an unquoted ``18:00`` as 1080 and ``010`` as 8, and raises on bytes that are not UTF-8. Here a file is checked on
its node graph (before any Python object is built): size, nesting, expanded size, duplicate keys; then built.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from flexopt.config.quantities import Yaml11Number

MAX_FILE_BYTES = 20 * 1024 * 1024
"""A hand-written portfolio is kilobytes; a generated 5,000-device fleet is about 2 MB."""
MAX_EXPANDED_NODES = 2_000_000
"""Values after aliases are expanded (about 20 per device); an alias bomb is refused before it is built."""
MAX_DEPTH = 64
"""Nesting levels; a portfolio needs about 10 (HTTP body templates a few more)."""

_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_YAML11_NUMBER = "tag:flexopt,2024:yaml11-number"
# numbers YAML 1.1 reads in a way hardly anyone means: base 60 (18:00 -> 1080) and octal (010 -> 8)
_SURPRISING = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$|^[-+]?0[0-7_]+$")
# YAML 1.2 floats that YAML 1.1 leaves as text: 1e3, 1.5e-3, 2E6
_FLOAT_12 = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$")

_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ten times faster on the pilot files


class _Loader(_BASE):  # type: ignore[misc, valid-type]
    """The safe loader, with YAML 1.2 exponent floats (1e3 is a number, not the text "1e3")."""


_Loader.add_implicit_resolver(_FLOAT, _FLOAT_12, list("-+0123456789."))


def _construct_yaml11(loader: yaml.SafeLoader, node: ScalarNode) -> Yaml11Number:
    tag = _FLOAT if "." in node.value else _INT
    value = loader.construct_yaml_float(node) if tag == _FLOAT else loader.construct_yaml_int(node)
    return Yaml11Number(node.value, float(value))


_Loader.add_constructor(_YAML11_NUMBER, _construct_yaml11)


class YamlFileError(ValueError):
    """The file cannot be read as a portfolio YAML file; ``where`` is e.g. "line 3, column 5"."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(message)
        self.message, self.where = message, where


def read_yaml_file(path: Path) -> Any:
    """The document of ``path`` as Python data; YamlFileError with the line and the fix otherwise."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise YamlFileError(f"the file is {size / 2**20:.0f} MB; a portfolio file may be at most "
                            f"{MAX_FILE_BYTES // 2**20} MB (split it with include: or check it is the right file)")
    return load_yaml_text(decode(path.read_bytes()))


def decode(data: bytes) -> str:
    """UTF-8 text (a UTF-8 byte-order mark is allowed); anything else is refused with how to fix it."""
    for bom, name in ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                      (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16")):
        if data.startswith(bom):
            raise YamlFileError(f"the file is {name} encoded; save it as UTF-8")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    if b"\x00" in data[:65536]:
        raise YamlFileError("the file holds NUL bytes: it is binary (or UTF-16 without a byte-order mark), "
                            "not a YAML text file; check the path, or save it as UTF-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise YamlFileError(f"byte 0x{data[exc.start]:02x} is not UTF-8 (the file is probably Latin-1 or "
                            "Windows-1252); save it as UTF-8", f"line {line}, column {column}") from None


def load_yaml_text(text: str) -> Any:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        check_nodes(node)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = exc.problem or str(exc)
        if isinstance(exc, yaml.constructor.ConstructorError) and "constructor for the tag" in problem:
            problem += "; tags such as !!python/object are not allowed, remove the tag"
        elif "another document" in problem:
            problem += "; a portfolio file holds one YAML document: remove the '---' line and what follows"
        elif "unhashable key" in problem:
            problem += "; keys must be plain text"
        elif "nesting depth" in problem:
            problem += f"; a portfolio file nests at most {MAX_DEPTH} levels"
        raise YamlFileError(f"not valid YAML: {problem}", where) from None
    except yaml.YAMLError as exc:
        raise YamlFileError(f"not valid YAML: {exc}") from None
    except RecursionError:
        raise YamlFileError(f"not valid YAML: nested too deeply (a portfolio file nests at most {MAX_DEPTH} "
                            "levels)") from None
    finally:
        loader.dispose()


def _where(node: Node) -> str:
    return f"line {node.start_mark.line + 1}, column {node.start_mark.column + 1}"


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def check_nodes(root: Node) -> None:
    """Walk the node graph once (shared nodes once): nesting, expanded size, duplicate keys, YAML 1.1 numbers."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            on_path.discard(key)
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            depth[key] = 1 + max((depth[id(k)] for k in kids), default=0)
            if depth[key] > MAX_DEPTH:
                raise YamlFileError(f"nested more than {MAX_DEPTH} levels deep; a portfolio file needs about 10",
                                    _where(node))
            if size[key] > MAX_EXPANDED_NODES:
                raise YamlFileError(
                    f"aliases (*name) expand this document to more than {MAX_EXPANDED_NODES:,} values (an alias "
                    "bomb?); use fewer nested aliases", _where(node))
            continue
        if key in size:
            continue
        if key in on_path:
            raise YamlFileError("an alias refers to a node that contains it (a recursive structure); "
                                "remove the cycle", _where(node))
        on_path.add(key)
        stack.append((node, True))
        if isinstance(node, ScalarNode):
            _retag(node)
        elif isinstance(node, MappingNode):
            _check_keys(node)
        stack.extend((k, False) for k in _children(node) if id(k) not in size)
        if len(on_path) > MAX_DEPTH + 1:
            raise YamlFileError(f"nested more than {MAX_DEPTH} levels deep; a portfolio file needs about 10",
                                _where(node))


def _retag(node: ScalarNode) -> None:
    if not node.style and node.tag in (_INT, _FLOAT) and _SURPRISING.match(node.value):
        node.tag = _YAML11_NUMBER


def _check_keys(node: MappingNode) -> None:
    seen: dict[tuple[str, str], Node] = {}
    for key_node, _value in node.value:
        if not isinstance(key_node, ScalarNode):
            continue
        ident = (key_node.tag, key_node.value)
        if ident in seen:
            first = seen[ident].start_mark.line + 1
            raise YamlFileError(f"duplicate key {key_node.value!r} (first on line {first}); YAML would silently "
                                "keep only the last one: remove or rename one of them", _where(key_node))
        seen[ident] = key_node
