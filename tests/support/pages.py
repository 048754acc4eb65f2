"""The HTML pages gpt2core writes (verify --html, audit), read back as text: what a reader of the page sees, table
by table, for the tests that compare a page with its report."""

from __future__ import annotations

from html.parser import HTMLParser


class Page(HTMLParser):
    """A page's headings, paragraphs and tables as text: tables = [[row cells...] ...] per table, headings and
    paragraphs = [text ...], classes = {text of a span: its class}."""

    def __init__(self, html: str):
        super().__init__()
        self.tables, self.headings, self.paragraphs, self.classes = [], [], [], {}
        self.aligned, self.stray = [], []  # per table, per row: the cells' classes; text no element holds
        self._text, self._in, self._span, self._open = None, None, None, []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag not in ("meta", "br"):
            self._open.append(tag)
        if tag == "table":
            self.tables.append([])
            self.aligned.append([])
        elif tag == "tr":
            self.tables[-1].append([])
            self.aligned[-1].append([])
        elif tag in ("td", "th", "h1", "h2", "h3", "p"):
            self._text, self._in = [], tag
            if tag in ("td", "th"):
                self.aligned[-1][-1].append(dict(attrs).get("class"))
        elif tag == "span":
            self._span = (dict(attrs).get("class"), len(self._text or []))

    def handle_endtag(self, tag):
        if self._open and self._open[-1] == tag:
            self._open.pop()
        if tag == "span" and self._span and self._text is not None:
            cls, start = self._span
            self.classes["".join(self._text[start:])] = cls
        if tag != self._in:
            return
        text = "".join(self._text)
        if tag in ("td", "th"):
            self.tables[-1][-1].append(text)
        elif tag == "p":
            self.paragraphs.append(text)
        else:
            self.headings.append(text)
        self._text, self._in = None, None

    def handle_data(self, data):
        if self._text is not None:
            self._text.append(data)
        elif data.strip() and (not self._open or self._open[-1] in ("html", "body", "table", "tr")):  # between elements
            self.stray.append(data)
