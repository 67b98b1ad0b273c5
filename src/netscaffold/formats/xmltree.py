"""A small, safe XML reader: a tree of :class:`XmlElement` that remember their line numbers.

Built on expat directly so that (1) every element knows the line it starts on, for error messages, and
(2) documents with a DOCTYPE (and so any entity declaration: billion laughs, external entities) are
refused outright, as defusedxml does. Topology XML formats (GraphML, SNDlib) never need a DTD.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

from netscaffold.errors import TopologyError


@dataclass(slots=True)
class XmlElement:
    """An element: ``tag`` is ``{namespace}local`` (or ``local``); ``text`` is its stripped own text."""

    tag: str
    attrib: dict[str, str]
    line: int
    children: list[XmlElement] = field(default_factory=list)
    text_parts: list[str] = field(default_factory=list)

    @property
    def local(self) -> str:
        return self.tag.rpartition("}")[2]

    @property
    def namespace(self) -> str:
        return self.tag[1:].partition("}")[0] if self.tag.startswith("{") else ""

    @property
    def raw_text(self) -> str:
        return "".join(self.text_parts)

    @property
    def text(self) -> str:
        return self.raw_text.strip()

    def iter_children(self, local: str) -> Iterator[XmlElement]:
        """Direct children with this local name (any namespace)."""
        return (child for child in self.children if child.local == local)

    def child(self, local: str) -> XmlElement | None:
        return next(self.iter_children(local), None)


class _RefusedError(Exception):
    """Raised from an expat handler to stop parsing a document we do not accept."""


def _qualified(name: str) -> str:
    namespace, sep, local = name.rpartition("}")
    return f"{{{namespace}}}{local}" if sep else name


class _Builder:
    """Builds the tree; subtrees whose local name is in ``skip`` are not built (speed, memory)."""

    def __init__(self, parser: expat.XMLParserType, skip: frozenset[str]) -> None:
        self.parser = parser
        self.skip = skip
        self.skipping = 0
        self.names: dict[str, str] = {}
        self.stack: list[XmlElement] = []
        self.root: XmlElement | None = None

    def _name(self, raw: str) -> str:
        name = self.names.get(raw)
        if name is None:
            name = self.names[raw] = _qualified(raw)
        return name

    def start(self, raw: str, attrs: dict[str, str]) -> None:
        tag = self._name(raw)
        if self.skipping or tag.rpartition("}")[2] in self.skip:
            self.skipping += 1
            return
        element = XmlElement(
            tag=tag,
            attrib={self._name(k): v for k, v in attrs.items()},
            line=self.parser.CurrentLineNumber,
        )
        if self.stack:
            self.stack[-1].children.append(element)
        else:
            self.root = element
        self.stack.append(element)

    def end(self, _name: str) -> None:
        if self.skipping:
            self.skipping -= 1
        else:
            self.stack.pop()

    def data(self, text: str) -> None:
        if self.stack and not self.skipping:
            self.stack[-1].text_parts.append(text)


def _refuse_doctype(*_args: object) -> None:
    raise _RefusedError("DOCTYPE declarations are not accepted (entities and DTDs are refused)")


def parse_xml(data: bytes, path: Path, skip: frozenset[str] = frozenset()) -> XmlElement:
    """Parse ``data`` (the bytes of ``path``), leaving out subtrees named in ``skip`` (local names);
    malformed XML raises :class:`TopologyError` with the line."""
    parser = expat.ParserCreate(namespace_separator="}")
    builder = _Builder(parser, skip)
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.EntityDeclHandler = _refuse_doctype
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    try:
        parser.Parse(data, True)
    except expat.ExpatError as exc:
        reason = expat.ErrorString(exc.code)
        raise TopologyError(
            f"malformed XML: {reason} (column {exc.offset + 1})", file=str(path), line=exc.lineno
        ) from None
    except LookupError as exc:  # an encoding declaration Python does not know
        raise TopologyError(f"malformed XML: {exc}", file=str(path), line=1) from None
    except _RefusedError as exc:
        raise TopologyError(str(exc), file=str(path), line=parser.CurrentLineNumber) from None
    if builder.root is None:
        raise TopologyError("no XML element found", file=str(path))
    return builder.root
