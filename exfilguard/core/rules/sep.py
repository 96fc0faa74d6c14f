"""Service endpoint policy rules: the policy on a guarded subnet must carry the Azure ML
alias and allow exactly the workspaces' own storage accounts (seed: "Create a service
endpoint policy", "add the alias /services/Azure/MachineLearning")."""

from __future__ import annotations

from collections.abc import Iterator

from exfilguard.core import ids, types
from exfilguard.core.catalog import RULES as CATALOG
from exfilguard.core.findings import Finding
from exfilguard.core.fixes import Edit, Sel
from exfilguard.core.model import SEP, SepDefinition, ServiceEndpointPolicy
from exfilguard.core.rules.base import Context

SEP_01 = CATALOG["EXF-SEP-01"]
SEP_02 = CATALOG["EXF-SEP-02"]
SEP_03 = CATALOG["EXF-SEP-03"]
SEP_04 = CATALOG["EXF-SEP-04"]

RULES = (SEP_01, SEP_02, SEP_03, SEP_04)
TARGETS = types.targets([r.id for r in RULES])  # resource types its findings are about

ML_ALIAS = "/services/Azure/MachineLearning"
ALIAS_DEFINITION = "exfilguard-aml-alias"
STORAGE_DEFINITION = "exfilguard-storage"
_DEFS = ("properties", "serviceEndpointPolicyDefinitions")


_ALIAS_LOWER = ML_ALIAS.lower()
_ACCOUNT_TYPE = "microsoft.storage/storageaccounts"


def is_ml_alias(entry: str) -> bool:
    """The alias exactly, case-insensitively: ``/services/Azure/MachineLearning/`` (a trailing
    slash) is not the alias (baseline EXF-SEP-01)."""
    return entry.lower() == _ALIAS_LOWER


def _scope(entry: str) -> str:
    """'account', 'wide' (subscription or resource group) or 'other'."""
    parsed = ids.try_parse(entry)
    if parsed is None:
        return "other"
    if parsed.namespace is None:
        return "wide"
    if parsed.type.lower() == _ACCOUNT_TYPE:
        return "account"
    return "other"


def _named_account(entry: str) -> str | None:
    """The storage account an entry names: the account itself, or the account an entry below
    it belongs to (``.../storageAccounts/<a>/blobServices/default`` names ``<a>``); None for
    anything else (the ML alias, a subscription or resource group, another provider's IDs)."""
    parsed = ids.try_parse(entry)
    if parsed is None or parsed.namespace is None:
        return None
    if parsed.type.lower() == _ACCOUNT_TYPE:
        return str(parsed)
    steps = parsed.type.lower().split("/")
    if steps[:2] == _ACCOUNT_TYPE.split("/"):
        return str(parsed.ancestor(len(parsed.types) - 1))
    return None


def _required_accounts(ctx: Context, sep_key: str) -> dict[str, str]:
    """Default storage accounts of workspaces with a compute on a guarded subnet using this SEP
    (a hub-based project that names none uses its hub's)."""
    out: dict[str, str] = {}
    for g in ctx.picture.subnets_of_sep(sep_key):
        for c in g.computes:
            ws = ctx.picture.workspace_of(c)
            storage = ctx.picture.default_storage(ws) if ws is not None else None
            if storage:
                out.setdefault(ids.key(storage), storage)
    return out


def _resources_path(def_name: str) -> tuple:
    return (*_DEFS, Sel("name", def_name), "properties", "serviceResources")


def evaluate(ctx: Context) -> Iterator[Finding]:
    for k in ctx.picture.guarded_sep_keys():
        yield from _evaluate_sep(ctx, ctx.picture.seps[k])


def _evaluate_sep(ctx: Context, sep: ServiceEndpointPolicy) -> Iterator[Finding]:
    if not any(is_ml_alias(r) for d in sep.definitions for r in d.service_resources):
        yield _missing_alias(sep)
    storage_defs = [d for d in sep.definitions if d.service.lower() == "microsoft.storage"]
    required = _required_accounts(ctx, sep.key)
    listed = {ids.key(r) for d in storage_defs for r in d.service_resources if _scope(r) == "account"}
    missing = [acct for k, acct in required.items() if k not in listed]
    wide, unexpected = _misplaced_entries(ctx, storage_defs, required)
    target = storage_defs[0].name if storage_defs else None
    if missing:
        yield _missing_accounts(sep, target, missing)
    # Both kinds of entry are removed together: a definition left empty by them goes whole.
    gone = {name: {ids.key(e) for e in (*wide.get(name, ()), *unexpected.get(name, ()))}
            for name in {*wide, *unexpected}}
    kept_target = target if missing else None
    if wide:
        entries = [e for v in wide.values() for e in v]
        yield SEP_03.finding(sep.id, SEP, f"policy {sep.name} allows whole scopes: {', '.join(entries)}",
                             edits=_removals(wide, storage_defs, gone, kept_target), items=entries,
                             fix_summary=f"remove {len(entries)} subscription/resource-group entr"
                             f"{'y' if len(entries) == 1 else 'ies'}")
    if unexpected:
        entries = [e for v in unexpected.values() for e in v]
        yield SEP_04.finding(sep.id, SEP, f"policy {sep.name} allows unexpected storage: {', '.join(entries)}",
                             edits=_removals(unexpected, storage_defs, gone, kept_target), items=entries,
                             fix_summary=f"remove {len(entries)} unexpected storage entr"
                             f"{'y' if len(entries) == 1 else 'ies'}")


def _missing_alias(sep: ServiceEndpointPolicy) -> Finding:
    """EXF-SEP-01: no definition carries the Azure ML alias."""
    new_def = {"name": ALIAS_DEFINITION, "properties": {
        "service": "Global", "serviceResources": [ML_ALIAS],
        "description": "Azure Machine Learning alias (ExfilGuard EXF-SEP-01)"}}
    return SEP_01.finding(sep.id, SEP, f"policy {sep.name} has no definition with {ML_ALIAS}",
                          edits=[Edit("upsert", _DEFS, new_def)],
                          fix_summary=f"add definition {ALIAS_DEFINITION} (Global, {ML_ALIAS})")


def _missing_accounts(sep: ServiceEndpointPolicy, target: str | None, missing: list[str]) -> Finding:
    """EXF-SEP-02: added to the first storage definition, or to a new one when there is none."""
    if target is not None:
        edits = [Edit("add", _resources_path(target), acct) for acct in missing]
    else:
        edits = [Edit("upsert", _DEFS, {"name": STORAGE_DEFINITION, "properties": {
            "service": "Microsoft.Storage", "serviceResources": list(missing),
            "description": "Workspace default storage accounts (ExfilGuard EXF-SEP-02)"}})]
    return SEP_02.finding(sep.id, SEP, f"policy {sep.name} does not list: {', '.join(missing)}",
                          edits=edits, items=missing,
                          fix_summary=f"add {len(missing)} storage account(s) to definition "
                          f"{target or STORAGE_DEFINITION}")


def _misplaced_entries(ctx: Context, storage_defs: list[SepDefinition], required: dict[str, str]
                       ) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(definition name -> whole-scope entries (EXF-SEP-03), definition name -> entries naming a
    storage account that is neither required nor allowed (EXF-SEP-04))."""
    wide: dict[str, list[str]] = {}
    unexpected: dict[str, list[str]] = {}
    for d in storage_defs:
        for r in d.service_resources:
            if _scope(r) == "wide":
                wide.setdefault(d.name, []).append(r)
                continue
            # The ML alias may sit in any definition and is never removed; an entry that names
            # no storage account is not SEP-04's to judge.
            account = None if is_ml_alias(r) else _named_account(r)
            if account is not None and ids.key(account) not in required and not ctx.config.storage_allowed(account):
                unexpected.setdefault(d.name, []).append(r)
    return wide, unexpected


def _removals(found: dict[str, list[str]], storage_defs: list[SepDefinition], gone: dict[str, set[str]],
              kept_target: str | None) -> list[Edit]:
    """The edits removing ``found``: each entry, or its whole definition when nothing would be
    left in it (unless it is ``kept_target``, where EXF-SEP-02 adds accounts)."""
    edits = []
    for def_name, entries in found.items():
        d = next(x for x in storage_defs if x.name == def_name)
        left = [r for r in d.service_resources if ids.key(r) not in gone[def_name]]
        if not left and def_name != kept_target:
            edits.append(Edit("remove", _DEFS, {"name": def_name}))
        else:
            edits.extend(Edit("remove", _resources_path(def_name), e) for e in entries)
    return edits
