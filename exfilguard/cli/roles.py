"""ExfilGuard's custom role as data: ``infra/role-actions.json``.

One file says which ARM actions the role holds, which rule needs each, and in which
deployment mode it is granted: reads always, writes (and what only writes need: join checks,
operation polling) only when the deployment's mode is ``remediate``, compute quarantine on top
only with ``enableQuarantine``. ``infra/modules/role.bicep`` holds the same lists (a test
compares them mode by mode) and the docs table is :func:`render_role_table`'s output, so
the three cannot drift.

Run ``python -m exfilguard.cli.roles`` to print the table, ``--update docs/deploy.md`` (``make docs``) to
rewrite it in place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "infra" / "role-actions.json"
WHEN = ("always", "remediate", "quarantine")


@dataclass(frozen=True, slots=True)
class RoleAction:
    action: str
    access: str     # read | write
    when: str       # always | remediate | quarantine
    needed_by: str
    why: str


def load(path: Path | str = DEFAULT_PATH) -> list[RoleAction]:
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    out = []
    for row in doc["actions"]:
        item = RoleAction(row["action"], row["access"], row["when"], row["neededBy"], row["why"])
        if item.access not in ("read", "write") or item.when not in WHEN:
            raise ValueError(f"{path}: {item.action}: access must be read or write, when one of {WHEN}")
        out.append(item)
    return out


def actions_for(mode: str, quarantine: bool = False, path: Path | str = DEFAULT_PATH) -> list[str]:
    """The actions a deployment in ``mode`` (audit | remediate) grants."""
    grant = {"always"} | ({"remediate"} | ({"quarantine"} if quarantine else set()) if mode == "remediate"
                          else set())
    return [a.action for a in load(path) if a.when in grant]


_WHEN_WORDS = {"always": "always", "remediate": "`remediate` mode", "quarantine": "`remediate` + quarantine"}


def render_role_table(path: Path | str = DEFAULT_PATH) -> str:
    """The docs' Markdown table: every action with the rule that needs it and when it is granted."""
    lines = ["| Action | Access | Granted | Needed by | Why |", "|---|---|---|---|---|"]
    for a in load(path):
        lines.append(f"| `{a.action}` | {a.access} | {_WHEN_WORDS[a.when]} | {a.needed_by} | {a.why} |")
    return "\n".join(lines) + "\n"


def update_doc(doc: Path | str) -> None:
    """Replace the role table in ``doc`` (the lines from its ``| Action | Access`` header to the
    first line that is not a table row) with :func:`render_role_table` (``make docs``)."""
    lines = Path(doc).read_text(encoding="utf-8").splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith("| Action | Access |"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    Path(doc).write_text("".join(lines[:start]) + render_role_table() + "".join(lines[end:]), encoding="utf-8")


if __name__ == "__main__":  # pragma: no cover
    import sys

    if sys.argv[1:2] == ["--update"]:
        update_doc(sys.argv[2])
    else:
        print(render_role_table(), end="")
