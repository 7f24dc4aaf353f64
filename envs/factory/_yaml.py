"""Bounded YAML reading for site.yaml: untrusted input must not crash, hang or exhaust memory.

A site.yaml comes from outside the testbed, so before anything is built from it the event
stream is checked (iteratively, so even a very deep document cannot overflow the stack):

- nesting at most `MAX_DEPTH` levels (deeper documents crash libyaml's composer and overflow
  Python's recursion limit in PyYAML's);
- at most `MAX_VALUES` values after expanding aliases (an "alias bomb" of nested anchors is a
  few hundred bytes that expand to billions of values);
- scalars of at most `MAX_SCALAR_CHARS` characters (Python refuses to parse integers of more
  than 4300 digits, and no site.yaml value is that long).

Only then is the document composed (for key line numbers) and constructed, with libyaml's
loader when it is available (about 10x faster than the pure-Python one).
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_DEPTH = 32
"""Deepest nesting of mappings and sequences accepted."""
MAX_VALUES = 100_000
"""Most values (scalars and collections) accepted, counting each alias as what it expands to."""
MAX_SCALAR_CHARS = 4096
"""Longest scalar accepted."""

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # type: ignore[assignment]
_OPEN = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
_CLOSE = (yaml.MappingEndEvent, yaml.SequenceEndEvent)


class YamlProblem(Exception):
    """Why a YAML text was refused, and where (``line 3, column 5``, or ``top level``).

    Attributes:
        where: Location in the file.
        expected: What would have been accepted.
    """

    def __init__(self, where: str, expected: str) -> None:
        super().__init__(f"{where}: expected {expected}")
        self.where = where
        self.expected = expected


def _where(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""


def check_bounds(text: str) -> None:
    """Walk the YAML events of ``text`` once, refusing documents beyond the limits.

    Raises:
        YamlProblem: On a syntax error or a document beyond `MAX_DEPTH`, `MAX_VALUES` or
            `MAX_SCALAR_CHARS`.
    """
    sizes: dict[str, int] = {}  # anchor -> values it expands to
    stack: list[tuple[str | None, int]] = []  # open collections: (anchor, values before it)
    total = 0  # values so far, each alias counted as what it expands to
    try:
        for event in yaml.parse(text, Loader=_Loader):
            if isinstance(event, _OPEN):
                stack.append((event.anchor, total))
                total += 1
                if len(stack) > MAX_DEPTH:
                    raise YamlProblem(_where(event.start_mark), f"at most {MAX_DEPTH} levels")
            elif isinstance(event, _CLOSE):
                anchor, before = stack.pop()
                if anchor is not None:
                    sizes[anchor] = total - before
            elif isinstance(event, yaml.ScalarEvent):
                total += 1
                if len(event.value) > MAX_SCALAR_CHARS:
                    expected = f"a value of at most {MAX_SCALAR_CHARS} characters"
                    raise YamlProblem(_where(event.start_mark), expected)
                if event.anchor is not None:
                    sizes[event.anchor] = 1
            elif isinstance(event, yaml.AliasEvent):
                total += sizes.get(event.anchor, 1)
            if total > MAX_VALUES:
                expected = f"at most {MAX_VALUES} values after expanding aliases (*name)"
                raise YamlProblem(_where(event.start_mark), expected)
    except yaml.YAMLError as error:
        raise _syntax(error, text) from None


def _syntax(error: yaml.YAMLError, text: str) -> YamlProblem:
    if isinstance(error, yaml.reader.ReaderError) and isinstance(error.position, int):
        line = text.count("\n", 0, error.position) + 1
        column = error.position - (text.rfind("\n", 0, error.position) + 1) + 1
        code = error.character if isinstance(error.character, int) else -1
        return YamlProblem(
            f"line {line}, column {column}",
            f"valid YAML (character #x{code:04x} is not allowed: {error.reason})",
        )
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    if problem == "exceeded maximum nesting depth":
        # libyaml >= 0.2.6 stops at 1,000 levels while its scanner reads ahead, before our
        # event walk sees level MAX_DEPTH + 1: the same refusal, the same message.
        return YamlProblem(_where(mark) or "top level", f"at most {MAX_DEPTH} levels")
    return YamlProblem(_where(mark) or "top level", f"valid YAML ({problem})")


def compose_and_load(text: str) -> tuple[yaml.Node | None, Any]:
    """The node tree (for line numbers) and the Python data of a bounded YAML document.

    Call `check_bounds` first.

    Raises:
        YamlProblem: If the document cannot be composed or constructed.
    """
    loader = _Loader(text)
    node: yaml.Node | None = None
    try:
        node = loader.get_single_node()
        return node, (loader.construct_document(node) if node is not None else None)
    except yaml.YAMLError as error:
        raise _syntax(error, text) from None
    except (ValueError, OverflowError) as error:  # a value PyYAML cannot build, e.g. 2025-02-30
        mark = _unbuildable_scalar(node) if node is not None else None
        raise YamlProblem(_where(mark) or "top level", f"valid YAML values ({error})") from None
    finally:
        loader.dispose()


def _unbuildable_scalar(root: yaml.Node) -> Any:
    """Start mark of the first scalar PyYAML cannot turn into a value (None if none fails)."""
    constructor = yaml.constructor.SafeConstructor()
    pending, seen = [root], set()
    while pending:
        node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode):
            try:
                constructor.construct_object(node)
            except (ValueError, OverflowError, yaml.YAMLError):
                return node.start_mark
        elif isinstance(node, yaml.MappingNode):
            pending.extend(item for pair in reversed(node.value) for item in reversed(pair))
        elif isinstance(node, yaml.SequenceNode):
            pending.extend(reversed(node.value))
    return None
