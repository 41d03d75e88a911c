"""Error messages of scenario specs: pydantic errors → ``file:line: key.path: what is wrong; how to fix it``.

Lines come from the YAML node marks (``yaml.compose``); see ``docs/design/scenarios.md`` (section "Errors").
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from scenarios.spec_mods import MODIFICATION_KINDS

__all__ = ["SpecError", "format_errors"]


class SpecError(ValueError):
    """A spec file is invalid; the message lists ``file:line: key.path: problem`` lines."""


Loc = tuple[str | int, ...]
_HINTS = {
    "missing": "add it",
    "extra_forbidden": "remove it or fix its spelling",
    "union_tag_not_found": f"add 'kind:' with one of {list(MODIFICATION_KINDS)}",
}


def _yaml_lines(text: str) -> dict[Loc, int]:
    """Key path → 1-based line of every mapping key and sequence item of a YAML document."""
    lines: dict[Loc, int] = {}

    def walk(node: yaml.Node, path: Loc) -> None:
        lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                lines[(*path, key.value)] = key.start_mark.line + 1
                walk(value, (*path, key.value))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if root is not None:
        walk(root, ())
    return lines


def _data_path(loc: Loc, data: Any) -> tuple[Loc, Any]:
    """The key path of a pydantic ``loc`` in ``data`` (union tags and type names dropped) and the parent there."""
    path: list[str | int] = []
    node, parent = data, data
    for part in loc:
        in_dict = isinstance(node, dict) and part in node
        if in_dict or (isinstance(node, list) and isinstance(part, int) and part < len(node)):
            parent, node = node, node[part]
            path.append(part)
        elif isinstance(node, dict) and part not in MODIFICATION_KINDS and not str(part).startswith(_TYPE_TAGS):
            parent, node = node, None  # a missing or unknown key
            path.append(part)
    return tuple(path), parent


_TYPE_TAGS = ("list[", "Option")


def _dotted(path: Loc) -> str:
    text = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")
    return text or "(top level)"


def _allowed(path: Loc, parent: Any, sections: dict[str, type[BaseModel]]) -> list[str]:
    """Keys allowed next to an unknown key at ``path`` (``sections``: key → model under it, ``""``: the top)."""
    if isinstance(parent, dict) and parent.get("kind") in MODIFICATION_KINDS:
        return list(MODIFICATION_KINDS[parent["kind"]].model_fields)
    named = [p for p in path[:-1] if isinstance(p, str)]
    if named and named[-1] in sections:
        return list(sections[named[-1]].model_fields)
    if len(named) >= 2 and named[-2] in sections:
        return list(sections[named[-2]].model_fields)
    return list(sections[""].model_fields) if len(path) == 1 else []


def format_errors(err: ValidationError, data: Any, text: str, source: str, sections: dict[str, type[BaseModel]]) -> str:
    """One ``source:line: key.path: message; hint`` line per pydantic error.

    Parameters
    ----------
    err : ValidationError
        Pydantic's error of validating ``data``.
    data : Any
        The parsed YAML document.
    text : str
        The YAML text (for line numbers).
    source : str
        File name shown in the message.
    sections : dict
        Key → model of the mapping under that key (for "allowed keys"); ``""`` → the top-level model.
    """
    lines = _yaml_lines(text)
    found = [(e, *_data_path(tuple(e["loc"]), data)) for e in err.errors()]
    # a union (option: list or mapping) reports a type error for the branch not taken: keep the deeper errors
    found = [
        (e, path, parent)
        for e, path, parent in found
        if not (str(e["type"]).endswith("_type") and any(p[: len(path)] == path and p != path for _, p, _ in found))
    ]
    out = [f"{source}: {len(found)} problem(s) in the scenario spec:"]
    for e, key_path, parent in found:
        tagged = e["type"] in ("union_tag_invalid", "union_tag_not_found")
        path = (*key_path, "kind") if tagged else key_path
        line = next((lines[path[:k]] for k in range(len(path), -1, -1) if path[:k] in lines), 1)
        msg = str(e["msg"]).removeprefix("Value error, ")
        hint = _HINTS.get(e["type"], "")
        if e["type"] == "extra_forbidden":
            hint += f"; allowed keys: {_allowed(path, parent, sections)}"
        out.append(f"  {source}:{line}: {_dotted(path)}: {msg}" + (f"; {hint}" if hint else ""))
    return "\n".join(out)
