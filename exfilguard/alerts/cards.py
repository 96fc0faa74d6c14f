"""Adaptive Card 1.5 rendering and the Teams Workflows envelope, kept under 28 KB.

Only elements every Teams client renders are used: Container, ColumnSet/Column, TextBlock,
FactSet and Action.OpenUrl; the test suite validates each card against the official 1.5
schema in ``exfilguard/data``. All text from Azure (names, details, claims) is markdown
escaped, because TextBlocks are markdown and an NSG detail such as "ports * to *" would
otherwise turn into italics.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

from exfilguard.alerts.content import Content, Fact, Group, Line, Section, clip

CARD_SCHEMA_URL = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_VERSION = "1.5"
CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
MAX_PAYLOAD_BYTES = 28 * 1024  # Teams' message size limit, envelope included

_COLOR = {"attention": "Attention", "warning": "Warning", "accent": "Accent", "good": "Good"}
_STYLE = {"attention": "attention", "warning": "warning", "accent": "accent", "good": "good"}
_MD_SPECIAL = re.compile(r"([\\*_\[\]])")


def md(text: str) -> str:
    """Escape the markdown Adaptive Cards understand (emphasis and links)."""
    return _MD_SPECIAL.sub(r"\\\1", text or "")


def _url(url: str) -> str:
    """A markdown link target: ARM names may hold spaces and parentheses, which end the link."""
    return url.replace(" ", "%20").replace("(", "%28").replace(")", "%29")


def _link(text: str, url: str | None) -> str:
    return f"[{md(text)}]({_url(url)})" if url else md(text)


def _tb(text: str, **props: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **props}


def _line(line: Line) -> str:
    lead = f"**{_link(line.lead, line.url)}**" if line.lead else ""
    return f"- {lead}{' ' if lead and line.text else ''}{md(line.text)}"


def _more(n: int, label: str) -> dict[str, Any]:
    return _tb(f"…and {n} {label}", isSubtle=True, spacing="Small")


def _facts(facts: tuple[Fact, ...]) -> dict[str, Any]:
    return {"type": "FactSet", "facts": [{"title": md(f.label), "value": _link(f.value, f.url)} for f in facts]}


def _groups_text(groups: tuple[Group, ...]) -> str:
    """All of a severity section's resources in one markdown TextBlock: a TextBlock per resource
    would spend a fifth of the 28 KB on JSON punctuation."""
    parts = []
    for g in groups:
        rows = [f"**{_link(g.title, g.url)}** · {md(g.subtitle)}"]
        rows += [_line(x) for x in g.lines]
        if g.more:
            rows.append(f"- …and {g.more} more on this resource")
        parts.append("\n".join(rows))
    return "\n\n".join(parts)


def _section(s: Section) -> list[dict[str, Any]]:
    heading: dict[str, Any] = _tb(md(s.heading), weight="Bolder", separator=True, spacing="Medium")
    if s.tone in _COLOR:
        heading["color"] = _COLOR[s.tone]
    out = [heading]
    if s.lead or s.text:
        lead = f"**{md(s.lead)}**" if s.lead else ""
        sep = ": " if lead and s.text else ""
        block = _tb(f"{lead}{sep}{md(s.text)}", spacing="Small")
        if s.lead and s.tone in _COLOR:
            block["color"] = _COLOR[s.tone]
        out.append(block)
    if s.facts:
        out.append(_facts(s.facts))
    if s.lines:
        out.append(_tb("\n".join(_line(x) for x in s.lines), spacing="Small"))
    out.extend(_tb(md(code), fontType="Monospace", size="Small", spacing="Small") for code in s.code)
    if s.groups:
        out.append(_tb(_groups_text(s.groups), spacing="Small"))
    if s.more:
        out.append(_more(s.more, s.more_label))
    return out


def build_card(content: Content) -> dict[str, Any]:
    """The Adaptive Card for one message: a coloured header with the severity as a word, then
    the sections in reading order, then buttons."""
    header: dict[str, Any] = {
        "type": "Container",
        "style": _STYLE.get(content.tone, "emphasis"),
        "bleed": True,
        "items": [
            {"type": "ColumnSet", "columns": [
                {"type": "Column", "width": "auto", "items": [
                    _tb(md(content.badge), weight="Bolder", size="Medium", color=_COLOR.get(content.tone, "Default")),
                ]},
                {"type": "Column", "width": "stretch", "verticalContentAlignment": "Center", "items": [
                    _tb("ExfilGuard", isSubtle=True, horizontalAlignment="Right", size="Small"),
                ]},
            ]},
            _tb(_link(content.title, content.title_url), size="Large", weight="Bolder", spacing="Small"),
        ],
    }
    if content.summary:
        header["items"].append(_tb(md(content.summary), spacing="Small"))
    body: list[dict[str, Any]] = [header]
    for s in content.sections:
        body.extend(_section(s))
    if content.cut:
        body.append(_tb(f"{content.cut} more not shown: a Teams message holds at most 28 KB. "
                        "Run exfilguard scan for the full list.", isSubtle=True, separator=True))
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": CARD_SCHEMA_URL,
        "version": CARD_VERSION,
        "fallbackText": content.subject,
        "body": body,
    }
    actions = [{"type": "Action.OpenUrl", "title": lk.text, "url": lk.url} for lk in content.links if lk.url]
    if actions:
        card["actions"] = actions
    return card


def envelope(card: dict[str, Any]) -> dict[str, Any]:
    """The body a Teams Workflows "post to a channel when a webhook request is received" flow takes."""
    return {"type": "message",
            "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}]}


def encode(payload: dict[str, Any]) -> bytes:
    """The exact bytes posted (and measured against the limit)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def _squeezed(content: Content, limit: int) -> Content:
    """Last resort for a message whose free texts alone are too big: shorten every text."""
    def s(sec: Section) -> Section:
        return replace(sec, text=clip(sec.text, limit), code=tuple(clip(c, limit) for c in sec.code),
                       facts=tuple(replace(f, value=clip(f.value, limit)) for f in sec.facts))
    return replace(content, summary=clip(content.summary, limit), sections=tuple(s(x) for x in content.sections))


def teams_payload(content: Content, max_bytes: int = MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    """The envelope with the card, cutting list lines ("and N more") until it fits ``max_bytes``.

    Binary search over how many lines to keep: a 500-finding digest takes about ten renders.
    """
    full = envelope(build_card(content))
    if len(encode(full)) <= max_bytes:
        return full
    for candidate in (content, _squeezed(content, 300), _squeezed(content, 80)):
        lo, hi = 0, candidate.line_count()
        best = None
        while lo <= hi:
            mid = (lo + hi) // 2
            payload = envelope(build_card(candidate.limited(mid)))
            if len(encode(payload)) <= max_bytes:
                best, lo = payload, mid + 1
            else:
                hi = mid - 1
        if best is not None:
            return best
    # Nothing of the lists fits: say so in a card that certainly does.
    tiny = replace(content.limited(0), sections=(), summary=clip(content.summary, 200),
                   title=clip(content.title, 200), cut=content.line_count() or 1)
    return envelope(build_card(tiny))
