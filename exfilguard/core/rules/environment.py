"""Environment rule: curated images must come from mcr.microsoft.com, not the retired
viennaglobal.azurecr.io registry that needs wider outbound access (seed: "curated
environments ... mcr.microsoft.com")."""

from __future__ import annotations

from collections.abc import Iterator

from exfilguard.core import types
from exfilguard.core.catalog import RULES as CATALOG
from exfilguard.core.findings import Finding
from exfilguard.core.model import ENV_VERSION
from exfilguard.core.rules.base import Context

ENV_01 = CATALOG["EXF-ENV-01"]

RULES = (ENV_01,)
TARGETS = types.targets([r.id for r in RULES])  # resource types its findings are about


RETIRED_REGISTRY = "viennaglobal.azurecr.io"


def registry_host(image: str) -> str:
    """The registry host of an image reference, lowercase, without a ``:port``
    (``viennaglobal.azurecr.io:443/azureml/base`` -> ``viennaglobal.azurecr.io``)."""
    host = image.strip().split("/", 1)[0].lower()
    name, colon, port = host.partition(":")
    return name if colon and port.isdigit() else host


def evaluate(ctx: Context) -> Iterator[Finding]:
    for env in ctx.picture.environments.values():
        image = (env.image or "").strip()
        if registry_host(image) == RETIRED_REGISTRY:
            yield ENV_01.finding(env.id, ENV_VERSION, f"environment {env.name} uses image {image}")
