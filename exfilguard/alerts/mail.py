"""Email rendering: an HTML part and a plain-text part with the card's content, and the MIME.

HTML is table-based with inline styles because mail clients (Outlook above all) drop
stylesheets; the same markup is the body of the browser preview. Both parts come from the
same :class:`~exfilguard.alerts.content.Content` as the Teams card and are never cut: email
has no 28 KB limit.
"""

from __future__ import annotations

import html
import uuid
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from exfilguard.alerts.content import Content, Fact, Group, Line, Section

BADGE_COLOURS = {
    "CRITICAL": "#a4262c",
    "HIGH": "#d13438",
    "MEDIUM": "#b35c00",
    "LOW": "#0f6cbd",
    "RESOLVED": "#107c10",
    "ESCALATION": "#a4262c",
    "EXEMPTION": "#b35c00",
    "TEST": "#0f6cbd",
}
TONE_COLOURS = {"attention": "#d13438", "warning": "#b35c00", "accent": "#0f6cbd", "good": "#107c10"}
_FONT = "'Segoe UI',-apple-system,BlinkMacSystemFont,Roboto,'Helvetica Neue',Arial,sans-serif"
_MONO = "Consolas,'SFMono-Regular',Menlo,'DejaVu Sans Mono',monospace"


def badge_colour(content: Content) -> str:
    return BADGE_COLOURS.get(content.badge, TONE_COLOURS.get(content.tone, "#605e5c"))


def _e(text: str) -> str:
    return html.escape(text or "", quote=True)


def _a(text: str, url: str | None, style: str = "color:#0f6cbd;text-decoration:none") -> str:
    return f'<a href="{_e(url)}" style="{style}">{_e(text)}</a>' if url else _e(text)


def _html_line(line: Line) -> str:
    lead = f'<strong>{_a(line.lead, line.url)}</strong>' if line.lead else ""
    return f'<li style="margin:2px 0">{lead}{" " if lead and line.text else ""}{_e(line.text)}</li>'


def _html_more(n: int, label: str) -> str:
    return f'<p style="margin:4px 0;color:#605e5c;font-size:13px">…and {n} {label}</p>'


def _html_facts(facts: tuple[Fact, ...]) -> str:
    rows = []
    for f in facts:
        value = _a(f.value, f.url) if f.url else _e(f.value)
        if f.mono:
            value = f'<span style="font-family:{_MONO};font-size:12px">{value}</span>'
        rows.append(f'<tr><td style="padding:3px 12px 3px 0;color:#605e5c;white-space:nowrap;vertical-align:top;'
                    f'width:130px">{_e(f.label)}</td><td style="padding:3px 0;vertical-align:top;'
                    f'word-break:break-word">{value}</td></tr>')
    return f'<table role="presentation" style="border-collapse:collapse;font-size:14px">{"".join(rows)}</table>'


def _html_group(g: Group) -> str:
    out = (f'<div style="margin:10px 0 0"><strong>{_a(g.title, g.url)}</strong>'
           f' <span style="color:#605e5c;font-size:13px">· {_e(g.subtitle)}</span>')
    if g.lines:
        out += f'<ul style="margin:4px 0 0;padding-left:20px">{"".join(_html_line(x) for x in g.lines)}</ul>'
    if g.more:
        out += _html_more(g.more, "more on this resource")
    return out + "</div>"


def _html_section(s: Section) -> str:
    colour = TONE_COLOURS.get(s.tone or "", "#605e5c")
    parts = [f'<h2 style="margin:0 0 8px;font-size:12px;letter-spacing:.06em;text-transform:uppercase;'
             f'color:{colour}">{_e(s.heading)}</h2>']
    if s.lead or s.text:
        lead = f'<strong style="color:{colour if s.tone else "#201f1e"}">{_e(s.lead)}</strong>' if s.lead else ""
        sep = ": " if s.lead and s.text else ""
        parts.append(f'<p style="margin:0 0 8px">{lead}{sep}{_e(s.text)}</p>')
    if s.facts:
        parts.append(_html_facts(s.facts))
    if s.lines:
        parts.append(f'<ul style="margin:4px 0;padding-left:20px">{"".join(_html_line(x) for x in s.lines)}</ul>')
    for code in s.code:
        parts.append(f'<pre style="margin:4px 0;padding:8px 10px;background:#f3f2f1;border-radius:4px;'
                     f'font-family:{_MONO};font-size:12px;white-space:pre-wrap;word-break:break-all">'
                     f'{_e(code)}</pre>')
    parts.extend(_html_group(g) for g in s.groups)
    if s.more:
        parts.append(_html_more(s.more, s.more_label))
    return f'<tr><td style="padding:14px 24px;border-top:1px solid #edebe9">{"".join(parts)}</td></tr>'


def render_html_card(content: Content) -> str:
    """The message as one self-contained HTML table (the email body and the preview's card)."""
    colour = badge_colour(content)
    title = _a(content.title, content.title_url, "color:#201f1e;text-decoration:none")
    head = (
        f'<tr><td style="padding:18px 24px 14px">'
        f'<table role="presentation" width="100%" style="border-collapse:collapse"><tr>'
        f'<td><span class="badge" style="display:inline-block;background:{colour};color:#ffffff;font-weight:700;'
        f'font-size:12px;letter-spacing:.08em;padding:4px 10px;border-radius:3px">{_e(content.badge)}</span></td>'
        f'<td align="right" style="color:#605e5c;font-size:12px">ExfilGuard</td></tr></table>'
        f'<h1 style="margin:12px 0 6px;font-size:20px;line-height:1.3">{title}</h1>'
        + (f'<p style="margin:0;color:#323130">{_e(content.summary)}</p>' if content.summary else "")
        + "</td></tr>"
    )
    sections = "".join(_html_section(s) for s in content.sections)
    buttons = "".join(
        f'<a href="{_e(lk.url)}" style="display:inline-block;margin:0 8px 8px 0;padding:8px 14px;'
        f'background:#0f6cbd;color:#ffffff;border-radius:4px;text-decoration:none;font-weight:600;'
        f'font-size:14px">{_e(lk.text)}</a>'
        for lk in content.links if lk.url)
    actions = (f'<tr><td style="padding:12px 24px 8px;border-top:1px solid #edebe9">{buttons}</td></tr>'
               if buttons else "")
    return (
        f'<table role="presentation" width="640" class="exfilguard-card" style="width:640px;max-width:100%;'
        f'border-collapse:separate;background:#ffffff;border:1px solid #e1dfdd;border-top:6px solid {colour};'
        f'border-radius:6px;font-family:{_FONT};font-size:14px;line-height:1.45;color:#201f1e">'
        f'{head}{sections}{actions}</table>'
    )


def render_html(content: Content) -> str:
    """A complete HTML document for the email's text/html part."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{_e(content.subject)}</title></head>"
        '<body style="margin:0;padding:0;background:#f3f2f1">'
        '<table role="presentation" width="100%" style="border-collapse:collapse;background:#f3f2f1">'
        f'<tr><td align="center" style="padding:24px 12px">{render_html_card(content)}'
        f'<p style="font-family:{_FONT};font-size:12px;color:#605e5c;margin:12px 0 0">Sent by ExfilGuard. '
        "An open finding is alerted again only after the dedup window.</p>"
        "</td></tr></table></body></html>"
    )


def _text_line(line: Line, indent: str) -> str:
    lead = f"{line.lead} " if line.lead and line.text else line.lead
    return f"{indent}- {lead}{line.text}"


def render_text(content: Content) -> str:
    """The plain-text part: the same sections, readable in a terminal or a pager."""
    out = [f"{content.badge} | {content.title}"]
    if content.summary:
        out.append(content.summary)
    if content.title_url:
        out.append(f"Guidance: {content.title_url}")
    for s in content.sections:
        out += ["", s.heading.upper()]
        if s.lead or s.text:
            out.append("  " + (f"{s.lead}: {s.text}" if s.lead and s.text else (s.lead or s.text)))
        width = max((len(f.label) for f in s.facts), default=0)
        for f in s.facts:
            out.append(f"  {f.label + ':':<{width + 1}} {f.value}")
            if f.url:
                out.append(f"  {'':<{width + 1}} {f.url}")
        out += [_text_line(x, "  ") for x in s.lines]
        out += [f"    {c}" for c in s.code]
        for g in s.groups:
            out.append(f"  {g.title} ({g.subtitle})" + (f"\n    {g.url}" if g.url else ""))
            out += [_text_line(x, "    ") for x in g.lines]
            if g.more:
                out.append(f"    …and {g.more} more on this resource")
        if s.more:
            out.append(f"  …and {s.more} {s.more_label}")
    if content.links:
        out.append("")
        out += [f"{lk.text}: {lk.url}" for lk in content.links if lk.url]
    out += ["", "-- ", "Sent by ExfilGuard. An open finding is alerted again only after the dedup window."]
    return "\n".join(out) + "\n"


def email_payload(content: Content, recipients: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """Everything needed to send (and later retry) one email, as JSON-able data."""
    headers = {"X-ExfilGuard-Kind": content.kind}
    if content.severity is not None:
        headers["X-ExfilGuard-Severity"] = content.severity.value
    if content.kind == "alert" and content.keys:
        headers["X-ExfilGuard-Rule"] = content.keys[0].split("|", 1)[0]
    return {
        "subject": " ".join(content.subject.split()),
        "to": list(recipients),
        "text": render_text(content),
        "html": render_html(content),
        "headers": headers,
        "urgent": content.badge in {"CRITICAL", "ESCALATION"},
    }


def build_mime(payload: dict[str, Any], sender: str, *, message_id: str | None = None,
               date: str | None = None) -> EmailMessage:
    """multipart/alternative, text first (RFC 2046: the preferred part last)."""
    msg = EmailMessage()
    msg["Subject"] = payload["subject"]
    msg["From"] = sender
    msg["To"] = ", ".join(payload["to"])
    msg["Date"] = date or formatdate(usegmt=True)
    domain = sender.rpartition("@")[2] or "exfilguard.invalid"
    msg["Message-ID"] = message_id or make_msgid(idstring=uuid.uuid4().hex[:12], domain=domain)
    # Suppress out-of-office and other auto-replies (RFC 3834; Exchange's own header).
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    if payload.get("urgent"):
        msg["Importance"] = "High"
        msg["X-Priority"] = "1"
    for name, value in payload.get("headers", {}).items():
        msg[name] = value
    msg.set_content(payload["text"], subtype="plain", charset="utf-8")
    msg.add_alternative(payload["html"], subtype="html", charset="utf-8")
    return msg
