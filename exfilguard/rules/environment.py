"""Environment rule: curated images must come from mcr.microsoft.com, not the retired
viennaglobal.azurecr.io registry that needs wider outbound access (seed: "curated
environments ... mcr.microsoft.com")."""

from __future__ import annotations

from collections.abc import Iterator

from ..catalog import RULES as CATALOG
from ..findings import Finding
from ..model import ENV_VERSION
from .base import Context

ENV_01 = CATALOG["EXF-ENV-01"]

RULES = (ENV_01,)
TARGETS = (ENV_VERSION,)  # resource types its findings are about


def evaluate(ctx: Context) -> Iterator[Finding]:
    for env in ctx.picture.environments.values():
        image = (env.image or "").strip()
        host = image.split("/", 1)[0].lower()
        if host == "viennaglobal.azurecr.io":
            yield ENV_01.finding(env.id, ENV_VERSION, f"environment {env.name} uses image {image}")
