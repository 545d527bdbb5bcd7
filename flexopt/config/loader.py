"""Load a portfolio YAML file (with includes), validate it and report every problem readably.

A problem names the file, the path inside it (``sites[2].assets[0].energy_kwh``), what is wrong and
what is allowed. Callers get either a :class:`~flexopt.config.portfolio.Portfolio` or a
:class:`PortfolioError` holding all problems at once, never a traceback.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from flexopt.config.plugins import PluginError, load_plugins
from flexopt.config.portfolio import ASSET_TYPES, Portfolio, SeriesRef
from flexopt.config.protocols import registered
from flexopt.config.quantities import Yaml11Number
from flexopt.config.yaml_reader import YamlFileError, read_yaml_file

_MERGED_LISTS = ("sites", "congestion_points")
MAX_INCLUDE_DEPTH = 32  # a file including a file including ...: deeper chains are a mistake (and a stack risk)
_MERGED_DICTS = ("data_sources",)


def display_path(path: Path) -> str:
    """The path as the user knows it: relative to the working directory when below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except (ValueError, RuntimeError, OSError):  # outside the working directory, a link loop, a name too long
        return str(path)


@dataclass(frozen=True)
class Problem:
    file: str
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.path}" if self.path else self.file
        return f"{where}: {self.message}"


@dataclass
class PortfolioError(Exception):
    """Every problem found in a portfolio; its string form is what the user reads."""

    problems: list[Problem] = field(default_factory=list)

    def __str__(self) -> str:
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in the portfolio:"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


@dataclass
class LoadedPortfolio:
    """A validated portfolio and where it came from (for run records and hashes)."""

    portfolio: Portfolio
    path: Path
    files: list[Path]
    base_dir: Path
    origins: dict[tuple[str, Any], tuple[str, Any]] = field(default_factory=dict)
    """Where merged entries came from: ("sites", i) -> (file, index there), ("data_sources", name) and
    ("key", top-level key) -> (file, same)."""

    def file_of(self, kind: str, key: Any) -> str:
        """The file (as shown to the user) that states a site, congestion point, data source or top-level key."""
        return self.origins.get((kind, key), (display_path(self.path), key))[0]


# --- reading YAML ----------------------------------------------------------------------------


def _read_yaml(path: Path, problems: list[Problem]) -> dict | None:
    shown = display_path(path)
    try:
        if path.is_dir():
            problems.append(Problem(shown, "", "is a directory, not a YAML file; give the portfolio file itself"))
            return None
        if path.exists() and not path.is_file():  # a pipe or a device would be read forever
            problems.append(Problem(shown, "", "is not a regular file (a pipe or a device?); give a YAML file"))
            return None
        data = read_yaml_file(path)
    except FileNotFoundError:
        problems.append(Problem(shown, "", "file not found; check the path"))
        return None
    except OSError as exc:
        problems.append(Problem(shown, "", f"cannot read the file: {exc.strerror or exc}"))
        return None
    except YamlFileError as exc:
        problems.append(Problem(shown, exc.where, exc.message))
        return None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        problems.append(Problem(shown, "", f"the top level must be a mapping (key: value), not "
                                           f"{type(data).__name__}; start with e.g. 'portfolio: {{name: ...}}'"))
        return None
    return data


def _resolve_paths(node: Any, base: Path, problems: list[Problem], file: str, where: str = "") -> Any:
    """Make ``path`` and ``*_file`` values absolute relative to the file that states them."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            here = f"{where}.{key}" if where else str(key)
            if isinstance(value, str) and (key == "path" or str(key).endswith("_file")):
                out[key] = _absolute(value, base, problems, file, here)
            else:
                out[key] = _resolve_paths(value, base, problems, file, here)
        return out
    if isinstance(node, list):
        return [_resolve_paths(v, base, problems, file, f"{where}[{i}]") for i, v in enumerate(node)]
    return node


def _absolute(value: str, base: Path, problems: list[Problem], file: str, where: str) -> str:
    try:
        if not value.strip():
            raise ValueError("the path is empty")
        p = Path(value).expanduser()
        return str(p if p.is_absolute() else (base / p).resolve())
    except (ValueError, RuntimeError, OSError) as exc:
        problems.append(Problem(file, where, f"{value[:80]!r} is not a usable path ({exc}); give a file path, "
                                             "relative to this YAML file"))
        return value


def _within(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _include_paths(data: dict, path: Path, problems: list[Problem]) -> list[Path]:
    shown = display_path(path)
    includes = data.pop("include", []) or []
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list):
        problems.append(Problem(shown, "include", "must be a list of file paths, e.g. include: [sites/a.yaml]"))
        return []
    out = []
    for i, inc in enumerate(includes):
        if not isinstance(inc, str) or not inc.strip():
            problems.append(Problem(shown, f"include[{i}]", f"must be a file path (text), got {inc!r}"))
            continue
        try:
            p = Path(inc).expanduser()
            out.append((p if p.is_absolute() else path.parent / p).resolve())
        except (ValueError, RuntimeError, OSError) as exc:
            problems.append(Problem(shown, f"include[{i}]", f"{inc[:80]!r} is not a usable path ({exc})"))
    return out


def _load_tree(
    path: Path, problems: list[Problem], seen: list[Path], origins: dict[tuple[str, Any], tuple[str, Any]],
    stack: tuple[Path, ...] = (), root: Path | None = None, outside_ok: bool = False,
) -> dict:
    """Read ``path`` and merge its includes: lists are concatenated, mappings must not collide.
    A file is included once (a second include of it adds nothing); an include cycle is an error.
    Includes must lie in the main file's folder tree unless the main file sets allow_includes_outside."""
    try:
        path = path.resolve()
    except (RuntimeError, OSError, ValueError) as exc:  # a link loop, a name too long
        problems.append(Problem(display_path(path), "", f"cannot be used as a path ({exc}); give a YAML file"))
        return {}
    if len(stack) >= MAX_INCLUDE_DEPTH:
        problems.append(Problem(display_path(stack[-1]), "include", f"includes nested more than {MAX_INCLUDE_DEPTH} "
                                                                    "files deep; include the files from fewer levels"))
        return {}
    if path in stack:
        chain = " -> ".join(display_path(p) for p in (*stack, path))
        problems.append(Problem(display_path(stack[-1]), "include", f"include cycle: {chain}; remove one include"))
        return {}
    if path in seen:
        return {}
    seen.append(path)
    data = _read_yaml(path, problems)
    if data is None:
        return {}
    shown = display_path(path)
    for key in [k for k in data if isinstance(k, str) and k.startswith("x-")]:
        data.pop(key)  # extension fields: YAML anchors/templates, ignored like in compose files
    if "allow_includes_outside" in data:
        flag = data.pop("allow_includes_outside")
        if stack:
            problems.append(Problem(shown, "allow_includes_outside", "only the main portfolio file may set it; "
                                                                     "move it there"))
        elif not isinstance(flag, bool):
            problems.append(Problem(shown, "allow_includes_outside", f"must be true or false (got {flag!r})"))
        else:
            outside_ok = flag
    if root is None:
        root = path.parent
    includes = _include_paths(data, path, problems)
    data = _resolve_paths(data, path.parent, problems, shown)
    for key in _MERGED_LISTS:
        if isinstance(data.get(key), list):
            for i in range(len(data[key])):
                origins[(key, i)] = (shown, i)
    if isinstance(data.get("data_sources"), dict):
        for name in data["data_sources"]:
            origins[("data_sources", name)] = (shown, name)
    for key in data:
        origins[("key", key)] = (shown, key)
    for i, inc_path in enumerate(includes):
        if not outside_ok and not _within(inc_path, root):
            problems.append(Problem(shown, f"include[{i}]", f"{display_path(inc_path)} is outside the portfolio's "
                                    f"folder {display_path(root)}; move it inside, or set "
                                    "allow_includes_outside: true in the main portfolio file"))
            continue
        sub = _load_tree(inc_path, problems, seen, origins_sub := {}, (*stack, path), root, outside_ok)
        _merge(data, sub, origins, origins_sub, display_path(inc_path), problems)
    return data


def _merge(data: dict, sub: dict, origins: dict, origins_sub: dict, sub_file: str, problems: list[Problem]) -> None:
    """Merge an included file's data into ``data`` (the including file's values win)."""
    for key, value in sub.items():
        if key in _MERGED_LISTS:
            mine = data.get(key)
            mine = [] if mine is None else mine
            if not isinstance(value, list):
                problems.append(Problem(sub_file, str(key), f"must be a list (got {type(value).__name__})"))
                continue
            if not isinstance(mine, list):
                continue  # reported by validation against the including file
            offset = len(mine)
            data[key] = mine + value
            for (k, i), origin in origins_sub.items():
                if k == key:
                    origins[(key, offset + i)] = origin
        elif key in _MERGED_DICTS:
            mine = data.get(key)
            mine = {} if mine is None else mine
            value = {} if value is None else value
            if not isinstance(value, dict):
                problems.append(Problem(sub_file, str(key), f"must be a mapping (got {type(value).__name__})"))
                continue
            if not isinstance(mine, dict):
                continue
            for name in set(mine) & set(value):
                if mine[name] != value[name]:  # the same definition in two files is fine
                    problems.append(Problem(sub_file, f"{key}.{name}", "defined differently in more than one file"))
            for name in set(value) - set(mine):
                origins[(key, name)] = origins_sub.get((key, name), (sub_file, name))
            data[key] = {**value, **mine}
        elif key not in data:
            data[key] = value
            origins[("key", key)] = origins_sub.get(("key", key), (sub_file, key))


# --- turning pydantic errors into problems ---------------------------------------------------


def _strip_tags(loc: tuple) -> list:
    """Drop the discriminator tags pydantic inserts (``assets.0.battery.x`` -> ``assets.0.x``)."""
    out: list = []
    for i, part in enumerate(loc):
        prev = loc[i - 2] if i >= 2 else None
        if isinstance(part, str) and (
            (part in ASSET_TYPES and prev == "assets") or (part in registered() and loc[i - 1] == "endpoint")
        ):
            continue
        if isinstance(part, str) and (part in ("float", "SeriesRef") or part.startswith("function-")):
            continue
        out.append(part)
    return out


def _format_loc(parts: list) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _unwrap(ann: Any) -> Any:
    """Strip Annotated[...] and Optional[...] so containers and models show through; a registry's type (the
    endpoint of every registered protocol) shows its current union."""
    while True:
        origin, args = typing.get_origin(ann), typing.get_args(ann)
        if isinstance(ann, type) and not issubclass(ann, BaseModel) and callable(getattr(ann, "union", None)):
            ann = ann.union()
        elif origin is typing.Annotated:
            ann = args[0]
        elif origin in (typing.Union, types.UnionType) and type(None) in args and len(args) == 2:
            ann = next(a for a in args if a is not type(None))
        else:
            return ann


def _model_for(ann: Any, node: Any) -> type[BaseModel] | None:
    """The model an annotation means for this raw node (discriminated unions pick by type/protocol)."""
    ann = _unwrap(ann)
    if isinstance(ann, type) and issubclass(ann, BaseModel):
        return ann
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(ann) if isinstance(a, type) and issubclass(a, BaseModel)]
        for model in members:
            for tag in ("type", "protocol"):
                f = model.model_fields.get(tag)
                if isinstance(node, dict) and f and node.get(tag) in typing.get_args(f.annotation):
                    return model
        return members[0] if len(members) == 1 else None
    return None


def _model_at(parts: list, raw: dict) -> type[BaseModel] | None:
    """The pydantic model that owns the mapping at ``parts`` (for listing its allowed keys)."""
    ann: Any = Portfolio
    node: Any = raw
    for part in parts:
        container = _unwrap(ann)
        if typing.get_origin(container) in (list, dict):
            ann = typing.get_args(container)[-1]
        else:
            model = _model_for(ann, node)
            if model is None or part not in model.model_fields:
                return None
            ann = model.model_fields[part].annotation
        node = node[part] if _has(node, part) else None
    return _model_for(ann, node)


def _has(node: Any, part: Any) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _describe(err: dict, parts: list, raw: dict) -> str:
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        key = parts[-1]
        model = _model_at(parts[:-1], raw)
        if model is not None:
            allowed = list(model.model_fields)
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            return f"unknown key{hint}; allowed keys: {', '.join(allowed)}"
        return "unknown key; check the spelling against `flexopt schema`"
    if kind == "missing":
        return "required field is missing"
    if kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        close = difflib.get_close_matches(str(ctx.get("tag")), re.findall(r"'([^']*)'", ctx.get("expected_tags", "")),
                                          n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{ctx.get('discriminator', '').strip(chr(39))}: unknown value {ctx.get('tag')!r}{hint}; allowed: " \
               f"{ctx.get('expected_tags', '')}"
    if kind == "union_tag_not_found":
        return f"needs a '{err.get('ctx', {}).get('discriminator', 'type').strip(chr(39))}' field"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if kind.startswith("flexopt_"):  # our own messages already show the value and the fix
        return msg
    if kind in ("literal_error", "enum"):
        return f"{msg} (got {value!r})"
    if kind == "invalid_key":
        return (f"key {value!r} is not text: quote it (YAML reads unquoted null/~, true/false/yes/no/on/off and "
                "numbers as other types)")
    if kind == "string_type" and isinstance(value, bool):
        return (f"must be text (got {value!r}): YAML reads unquoted yes/no/on/off/true/false as booleans; "
                "quote it, e.g. country: \"NO\"")
    if kind == "string_type" and isinstance(value, Yaml11Number):
        return f"must be text (got {value!r}); quote it: \"{value.text}\""
    if kind == "string_type" and isinstance(value, int | float):
        return f"must be text (got the number {value!r}); quote it, e.g. \"{value}\""
    if kind == "list_type":
        msg = "must be a list (one '- item' line per entry, or [a, b])"
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        msg = "must be a mapping of keys and values (key: value, or {key: value})"
    if value is not None and not isinstance(value, (dict, list)) and repr(value) not in msg:
        msg = f"{msg} (got {value!r})"
    elif isinstance(value, (dict, list)) and kind in ("list_type", "dict_type", "model_type"):
        msg = f"{msg} (got a {'mapping' if isinstance(value, dict) else 'list'})"
    return msg


def _problems_from_validation(exc: ValidationError, raw: dict, main_file: str,
                              origins: dict) -> list[Problem]:
    problems = []
    seen_msgs: set[tuple[str, str]] = set()
    for err in exc.errors():
        loc = tuple(err["loc"])
        parts = _strip_tags(loc)
        # a number-or-series field reports both union branches; keep the one that fits what was written
        number_branch = any(isinstance(p, str) and p.startswith("function-before[") for p in loc)
        if "SeriesRef" in loc and err["type"] in ("model_type", "model_attributes_type"):
            continue
        if number_branch and isinstance(err.get("input"), dict):
            continue
        if number_branch and err["type"] in ("flexopt_text", "flexopt_type", "flexopt_bool"):
            err = {**err, "msg": err["msg"].replace("must be a number", "must be a number or a series "
                                                    "{source: NAME}", 1)}
        file = main_file
        if len(parts) >= 2 and isinstance(parts[1], int) and (parts[0], parts[1]) in origins:
            file, local_index = origins[(parts[0], parts[1])]
            shown = [parts[0], local_index, *parts[2:]]
        else:
            shown = parts
        path, msg = _format_loc(shown), _describe(err, parts, raw)
        if (path, msg) in seen_msgs:
            continue
        seen_msgs.add((path, msg))
        problems.append(Problem(file, path, msg))
    return problems


# --- checks across the whole file ------------------------------------------------------------


def series_refs(portfolio: Portfolio) -> list[tuple[str, str]]:
    """(path, source name) for every series reference in the portfolio."""
    refs: list[tuple[str, str]] = []

    def visit(obj: Any, path: str) -> None:
        if isinstance(obj, SeriesRef):
            refs.append((path, obj.source))
        elif isinstance(obj, BaseModel):
            for name in type(obj).model_fields:
                visit(getattr(obj, name), f"{path}.{name}" if path else name)
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                visit(v, f"{path}[{i}]")

    visit(portfolio, "")
    return refs


def _cross_check(pf: Portfolio, main_file: str, origins: dict) -> list[Problem]:
    """What one file alone cannot say: unique ids, known congestion points and data sources, address clashes.
    The data files themselves are read by :func:`flexopt.data.checks.check_inputs` (validate and every run)."""
    problems: list[Problem] = []

    def where(site_index: int) -> tuple[str, int]:
        return origins.get(("sites", site_index), (main_file, site_index))

    site_ids: dict[str, int] = {}
    asset_ids: dict[str, str] = {}
    cps = {cp.id for cp in pf.congestion_points}
    if len(cps) != len(pf.congestion_points):
        problems.append(Problem(main_file, "congestion_points", "congestion point ids must be unique"))
    for si, site in enumerate(pf.sites):
        file, li = where(si)
        if site.id in site_ids:
            problems.append(Problem(file, f"sites[{li}].id", f"duplicate site id {site.id!r}; ids must be unique"))
        site_ids[site.id] = si
        if site.congestion_point is not None and site.congestion_point not in cps:
            known = ", ".join(sorted(cps)) or "none defined"
            problems.append(Problem(file, f"sites[{li}].congestion_point",
                                    f"unknown congestion point {site.congestion_point!r}; defined: {known}"))
        for ai, asset in enumerate(site.assets):
            if asset.id in asset_ids:
                problems.append(Problem(file, f"sites[{li}].assets[{ai}].id",
                                        f"duplicate asset id {asset.id!r} (also in site {asset_ids[asset.id]!r}); "
                                        "asset ids must be unique in the portfolio"))
            asset_ids[asset.id] = site.id
    if not any(site.assets for site in pf.sites):
        problems.append(Problem(main_file, "sites", "no site has any asset: there is nothing to schedule; add assets "
                                                    "(a load alone is enough to see its cost)"))
    from flexopt.config.endpoints import endpoint_problems

    asset_paths = {asset.id: (where(si), ai) for si, site in enumerate(pf.sites) for ai, asset in
                   enumerate(site.assets)}
    for asset_id, text in endpoint_problems(pf):
        (file, li), ai = asset_paths[asset_id]
        problems.append(Problem(file, f"sites[{li}].assets[{ai}].endpoint", text))
    for path, name in series_refs(pf):
        if name not in pf.data_sources:
            known = ", ".join(sorted(pf.data_sources)) or "none defined"
            file, shown = main_file, path
            if path.startswith("sites["):
                si = int(path[6:path.index("]")])
                file, li = where(si)
                shown = f"sites[{li}]" + path[path.index("]") + 1:]
            problems.append(Problem(file, f"{shown}.source",
                                    f"unknown data source {name!r}; defined in data_sources: {known}"))
    dso = pf.dso_limits_file
    try:
        what = None if dso is None or dso.is_file() else \
            "is a directory, not the CSV file" if dso.is_dir() else \
            "is not a regular file (a pipe or a device?)" if dso.exists() else "file not found"
    except (OSError, ValueError) as exc:
        what = f"cannot be used as a path ({exc.__class__.__name__})"
    if what is not None:
        problems.append(Problem(origins.get(("key", "dso_limits_file"), (main_file,))[0], "dso_limits_file",
                                f"{what}: {display_path(dso)}; check the path (relative to the YAML file)"))
    return problems


def load_portfolio(path: str | Path) -> LoadedPortfolio:
    """Read, merge, validate and cross-check a portfolio; raise PortfolioError with every problem."""
    path = Path(path)
    try:
        load_plugins()  # installed plug-in types and protocols validate like built-in ones
    except PluginError as exc:
        raise PortfolioError([Problem(display_path(path), "", str(exc))]) from None
    problems: list[Problem] = []
    files: list[Path] = []
    origins: dict[tuple[str, Any], tuple[str, Any]] = {}
    raw = _load_tree(path, problems, files, origins)
    if problems:
        raise PortfolioError(problems)
    shown = display_path(path)
    try:
        pf = Portfolio.model_validate(raw)
    except ValidationError as exc:
        raise PortfolioError(_problems_from_validation(exc, raw, shown, origins)) from None
    problems = _cross_check(pf, shown, origins)
    if problems:
        raise PortfolioError(problems)
    return LoadedPortfolio(portfolio=pf, path=path.resolve(), files=files, base_dir=path.resolve().parent,
                           origins=origins)
