"""Find elements in rendered HTML by tag, id or class, for assertions on pages and partials."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from html.parser import HTMLParser

VOID_TAGS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)


@dataclass
class Element:
    tag: str
    attrs: dict[str, str | None]
    children: list[Element] = field(default_factory=list)
    parts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The text inside, whitespace collapsed (as a browser's innerText, roughly)."""
        return " ".join("".join(self.parts).split())

    @property
    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def find_all(self, selector: str) -> list[Element]:
        """Descendants matching ``tag``, ``#id``, ``.class`` or ``tag.class``."""
        tag, _, cls = selector.partition(".")
        found = []
        for child in self.children:
            if selector.startswith("#"):
                if child.attrs.get("id") == selector[1:]:
                    found.append(child)
            elif (not tag or child.tag == tag) and (not cls or cls in child.classes):
                found.append(child)
            found.extend(child.find_all(selector))
        return found

    def find(self, selector: str) -> Element:
        """The only descendant matching ``selector`` (fails if none or several)."""
        found = self.find_all(selector)
        assert len(found) == 1, f"{len(found)} elements match {selector!r}"
        return found[0]


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, dict(attrs))
        self.stack[-1].children.append(element)
        if tag not in VOID_TAGS:
            self.stack.append(element)

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        for element in self.stack:
            element.parts.append(data)


def parse(html: str | bytes) -> Element:
    """Parse an HTML page or fragment into a tree of Elements."""
    builder = _TreeBuilder()
    builder.feed(html.decode() if isinstance(html, bytes) else html)
    builder.close()
    return builder.root
