"""HTML previews a person opens in a browser before trusting ExfilGuard with their channel.

Each page shows the message as the email renders it (the Teams card carries the same
content) and, folded away, the exact Teams JSON and the plain-text part.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from pathlib import Path

from exfilguard.alerts.cards import encode, teams_payload
from exfilguard.alerts.content import Content, alert_content, digest_content
from exfilguard.alerts.mail import badge_colour, render_html_card, render_text
from exfilguard.alerts.message import Alert

_PAGE_CSS = """
body{margin:0;background:#f3f2f1;font-family:'Segoe UI',-apple-system,Roboto,'Helvetica Neue',Arial,sans-serif;
color:#201f1e}
header{background:#201f1e;color:#fff;padding:12px 24px;font-size:14px;letter-spacing:.02em}
header strong{font-weight:600}
main{max-width:664px;margin:0 auto;padding:24px 12px 48px}
details{box-sizing:border-box;margin:16px 0 0;background:#fff;border:1px solid #e1dfdd;border-radius:6px;
padding:10px 14px;max-width:640px}
summary{cursor:pointer;font-weight:600;font-size:14px}
pre.raw{white-space:pre-wrap;word-break:break-all;font:12px Consolas,'DejaVu Sans Mono',monospace;margin:10px 0 0}
ul.index{list-style:none;padding:0} ul.index li{margin:6px 0;font-size:14px}
span.dot{display:inline-block;width:10px;height:10px;border-radius:50%;margin-right:8px}
"""


def preview_page(content: Content) -> str:
    payload = teams_payload(content)
    size = len(encode(payload))
    raw_json = html.escape(json.dumps(payload, indent=2, ensure_ascii=False))
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{html.escape(content.subject)}</title><style>{_PAGE_CSS}</style></head><body>"
        "<header><strong>ExfilGuard</strong> · alert preview (Teams card and email carry the same content)</header>"
        f"<main>{render_html_card(content)}"
        f"<details><summary>Teams payload: {size:,} bytes of at most 28,672</summary>"
        f'<pre class="raw">{raw_json}</pre></details>'
        f'<details><summary>Email plain-text part</summary><pre class="raw">{html.escape(render_text(content))}'
        "</pre></details></main></body></html>"
    )


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-")[:80] or "resource"


def write_previews(alerts: Sequence[Alert], out_dir: Path, *, digest_title: str = "") -> list[Path]:
    """One page per alert, one for the digest a sweep would send, and an index; returns the
    pages written, index first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    entries: list[tuple[Path, Content]] = []
    for i, alert in enumerate(alerts, 1):
        content = alert_content(alert)
        path = out_dir / f"{i:03d}-{_slug(alert.finding.rule_id)}-{_slug(alert.resource.name)}.html"
        path.write_text(preview_page(content), encoding="utf-8")
        entries.append((path, content))
    live = [a for a in alerts if a.action.kind.value != "exempt"]
    if live:
        content = digest_content(live, title=digest_title)
        path = out_dir / "digest.html"
        path.write_text(preview_page(content), encoding="utf-8")
        entries.insert(0, (path, content))
    items = "".join(
        f'<li><span class="dot" style="background:{badge_colour(cn)}"></span>'
        f'<a href="{html.escape(p.name)}">{html.escape(cn.subject)}</a></li>' for p, cn in entries)
    index = out_dir / "index.html"
    index.write_text(
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>ExfilGuard alert previews</title>'
        f"<style>{_PAGE_CSS}</style></head><body><header><strong>ExfilGuard</strong> · "
        f"{len(entries)} alert previews</header><main><ul class=\"index\">{items}</ul></main></body></html>",
        encoding="utf-8")
    return [index, *(p for p, _ in entries)]
