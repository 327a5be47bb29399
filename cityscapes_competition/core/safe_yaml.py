"""YAML from participants and platforms, parsed without aliases and with every parser failure caught.

PyYAML's safe loader builds only plain data, but it still follows aliases (``&a [*b, *b]`` repeated
nine times is a billion-element value in a few hundred bytes: harmless as shared references, until a
message or a walk expands it), recurses once per nesting level (a few kilobytes of ``[[[[`` end in a
RecursionError), and raises ValueError or OverflowError from its constructors (a 5000-digit integer, a
date such as 2019-02-30). Here an alias is refused when it is met, and each of those failures is one
``YamlError`` with a reason a person can act on.
"""

from __future__ import annotations

from typing import Any

import yaml


class YamlError(Exception):
    """Why a text is not acceptable YAML; the caller names the file."""


class _NoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise YamlError(f"uses a YAML alias ('*') at line {mark.line + 1}; write each value out")
        return super().compose_node(parent, index)


class _NoAliasTextLoader(_NoAliasLoader):
    """Every scalar stays text ("yes", "0012" and dates as written), as yaml.BaseLoader reads them."""


for _tag in list(_NoAliasTextLoader.yaml_constructors):
    if _tag is not None and _tag.startswith("tag:yaml.org,2002:") and _tag.rsplit(":", 1)[1] not in ("map", "seq"):
        _NoAliasTextLoader.add_constructor(_tag, yaml.BaseLoader.construct_scalar)  # type: ignore[arg-type]
_NoAliasTextLoader.yaml_implicit_resolvers = {}


def load_yaml(text: str, scalars_as_text: bool = False) -> Any:
    """The document in ``text``; YamlError for anything but plain YAML without aliases."""
    loader = _NoAliasTextLoader if scalars_as_text else _NoAliasLoader
    try:
        return yaml.load(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = (exc.problem or exc.context or "").strip()
        raise YamlError(f"is not valid YAML{where}: {problem}" if problem else f"is not valid YAML{where}") from None
    except yaml.YAMLError as exc:
        raise YamlError(f"is not valid YAML ({str(exc).splitlines()[0][:200] if str(exc) else 'unreadable'})") from None
    except RecursionError:
        raise YamlError("is nested too deeply to be a settings file") from None
    except (ValueError, OverflowError) as exc:
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise YamlError(f"holds a value YAML cannot represent ({reason})") from None
