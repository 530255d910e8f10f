"""YAML with limits: a config file is untrusted input that must fail fast and clearly, never take the process.

Seen in issue 13: a billion-laughs file made ``config check`` end in a MemoryError after 20 s and took a
running daemon from 70 MB to 1.9 GB on reload; a 20k-deep file gave a RecursionError traceback; a 50 MB file
took 81 s; duplicate keys were silently last-one-wins. Here:

- the text is at most ``MAX_BYTES`` (1 MiB: a full config with every option is ~20 KB);
- nesting is at most ``MAX_DEPTH`` (64) levels, checked while composing, before Python's recursion limit;
- the document, with every alias expanded, has at most ``MAX_NODES`` (200k) nodes, and there are at most
  ``MAX_ALIASES`` (1000) alias uses: PyYAML shares aliased objects while loading, but everything that walks
  the result afterwards (``${VAR}`` interpolation, validation, the line map) expands them;
- a key given twice in one mapping is an error naming both lines.

Every refusal is a ``yaml.MarkedYAMLError`` with the line, so callers report it as they report a syntax error.
"""

from __future__ import annotations

from collections.abc import Hashable

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 200_000
MAX_ALIASES = 1000


class YamlLimitError(yaml.MarkedYAMLError):
    """The document is refused for its size or shape, not its syntax."""


class _LimitedLoader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._aliases = 0

    # ``index`` as the stubs type it; PyYAML also passes a mapping value's key node here (only handed on)
    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark
                raise YamlLimitError(None, None, f"more than {MAX_ALIASES} aliases (*name)", mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise YamlLimitError(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, object]:
        seen: dict[object, Node] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.get(key)
            except TypeError:
                continue
            if first is not None:
                raise ConstructorError(
                    None, None,
                    f"duplicate key {str(key)[:60]!r} (first on line {first.start_mark.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def _expanded_size(root: Node) -> int:
    """Nodes in the document with every alias expanded, counted without expanding (memoised per node)."""
    memo: dict[int, int] = {}
    # iterative post-order: aliases make a DAG, so each node is sized once
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        if id(node) in memo:
            continue
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [n for pair in node.value for n in pair]
        if done:
            total = 1
            for child in children:
                total += memo[id(child)]
                if total > MAX_NODES:
                    return total
            memo[id(node)] = total
            continue
        stack.append((node, True))
        stack.extend((c, False) for c in children if id(c) not in memo)
    return memo[id(root)]


def compose_limited(text: str) -> Node | None:
    """The node tree of ``text`` after every limit was checked (YAMLError otherwise)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise YamlLimitError(None, None, f"the file is larger than {MAX_BYTES // 1024} KiB; a config is a few KB", None)
    loader = _LimitedLoader(text)
    try:
        root = loader.get_single_node()
        if root is not None and _expanded_size(root) > MAX_NODES:
            raise YamlLimitError(
                None, None, f"more than {MAX_NODES} values once aliases are expanded (an alias bomb?)", root.start_mark
            )
        return root
    finally:
        loader.dispose()


def load_limited(text: str) -> tuple[object, Node | None]:
    """Parse ``text`` into Python data within the limits; returns the data and its node tree (for line numbers).
    The data is untrusted and of any shape (callers narrow it with isinstance)."""
    root = compose_limited(text)
    if root is None:
        return None, None
    loader = _LimitedLoader("")
    try:
        return loader.construct_document(root), root
    finally:
        loader.dispose()
