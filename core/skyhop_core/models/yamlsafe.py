"""Loading untrusted YAML within limits: size, alias expansion, duplicate keys.

PyYAML's safe loader shares one object between an anchor and its aliases, so a
"billion laughs" file loads quickly into a small graph, and then everything that walks
it (validation, copying, printing, JSON) expands it exponentially. :class:`LimitedLoader`
measures the document as if every alias were expanded, on the composed node graph and
before anything is constructed, and refuses it past :data:`MAX_EXPANDED_NODES`. A key
given twice in one mapping is an error naming the key and both lines (merge keys
``<<`` may still be overridden, as YAML intends).

The C parser (libyaml) is used when PyYAML has it; construction stays in Python.
"""

from __future__ import annotations

from typing import Any

import yaml

#: Largest task YAML accepted, in bytes (the request body limit is 16 MiB too).
MAX_YAML_BYTES = 16 * 1024 * 1024
#: Most values (scalars, lists, mappings) a document may hold with its aliases expanded.
MAX_EXPANDED_NODES = 100_000

_Base: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"


class YamlLimitError(ValueError):
    """The YAML is over a limit, or has a duplicate key; the message says where."""


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1 if node.start_mark is not None else 0


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def check_expansion(root: yaml.Node, limit: int = MAX_EXPANDED_NODES) -> int:
    """The node count of ``root`` with aliases expanded; YamlLimitError past ``limit``
    or when an alias refers to a node that contains it. Linear in the distinct nodes."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, finished = stack.pop()
        key = id(node)
        if finished:
            on_path.discard(key)
            size = 1 + sum(sizes[id(child)] for child in _children(node))
            if size > limit:
                raise YamlLimitError(
                    f"line {_line(node)}: the document expands to more than {limit} values "
                    "(anchors and aliases repeat their content); write it out plainly "
                    "or make it smaller"
                )
            sizes[key] = size
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise YamlLimitError(f"line {_line(node)}: an alias refers to a node containing it")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((child, False) for child in _children(node) if id(child) not in sizes)
    return sizes[id(root)]


class LimitedLoader(_Base):  # type: ignore[misc]
    """A safe loader that refuses alias bombs and duplicate keys (see the module)."""

    max_nodes = MAX_EXPANDED_NODES

    def construct_document(self, node: yaml.Node) -> Any:
        check_expansion(node, self.max_nodes)
        return super().construct_document(node)

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # unhashable: the constructor reports it
                if first is not None:
                    raise YamlLimitError(
                        f"duplicate key {key!r} at lines {first} and {_line(key_node)}; "
                        "a mapping names each key once: remove one of them"
                    )
                seen[key] = _line(key_node)
        return super().construct_mapping(node, deep=deep)


def load_all(text: str) -> list[Any]:
    """Every document of ``text``, within the limits (YamlLimitError otherwise)."""
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_YAML_BYTES:
        raise YamlLimitError(
            f"the YAML is {size} bytes; at most {MAX_YAML_BYTES} are accepted"
        )
    return list(yaml.load_all(text, Loader=LimitedLoader))
