"""Generated subscriptions of any size for sweep benchmarks: ``python -m bench.generate N FILE``.

Built from the same region stack as the samples (VNet, NSG, SEP, storage, workspace, two
computes, one environment), every fifth stack drifted, so the rules do real work.
"""

from __future__ import annotations

import json
import sys

from tests import factory as f

REGIONS = ("westeurope", "eastus", "northeurope", "westus2", "uksouth", "japaneast", "australiaeast",
           "canadacentral")


def subscription(n_resources: int) -> list[dict]:
    out: list[dict] = []
    i = 0
    while len(out) < n_resources:
        region = REGIONS[i % len(REGIONS)]
        stack = f.region_stack(f"rg-ml-{i:05d}", region, i % 250)
        if i % 5 == 0:
            nsg = stack[1]
            nsg["properties"]["securityRules"] = [r for r in nsg["properties"]["securityRules"]
                                                  if r["name"] != "deny-internet-out"]
            stack[4]["properties"]["publicNetworkAccess"] = "Enabled"
        out.extend(stack)
        i += 1
    return out[:n_resources]


def main(argv: list[str]) -> None:
    n, path = int(argv[0]), argv[1]
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(subscription(n), fh)


if __name__ == "__main__":
    main(sys.argv[1:])
