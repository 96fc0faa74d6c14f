"""The rule configuration: ``EXFILGUARD_*`` environment variables over an optional YAML file.

A value object and its validation only; :mod:`exfilguard.core.settings` composes it with the
Function app's and the alerts' settings; the app runtime and the CLI read the sources. Every
setting is validated up front and a bad one raises :class:`ConfigError` naming the setting and
what it expects: a typo in a deployed app setting must fail loudly at start, not silently turn
remediation off.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from exfilguard.core import ids

Mode = Literal["audit", "remediate"]
MODES: tuple[Mode, ...] = ("audit", "remediate")

DEFAULT_FQDN_ALLOW_LIST: tuple[str, ...] = (
    "ml.azure.com",
    "automlresources-prod-d0eaehh7g8andvav.b02.azurefd.net",
    "automlresources-prod.azureedge.net",
    "mcr.microsoft.com",
    "*.data.mcr.microsoft.com",
    "*.<region>.batch.azure.com",
    "*.<region>.service.batch.azure.com",
)

_RULE_ID = re.compile(r"^EXF-[A-Z]+-\d\d$")


class ConfigError(ValueError):
    """A setting has an invalid value; the message names the setting."""


@dataclass(frozen=True)
class Config:
    mode: Mode = "audit"
    rule_modes: Mapping[str, Mode] = field(default_factory=dict)
    extra_service_tags: tuple[str, ...] = ()
    storage_allow_list: tuple[str, ...] = ()
    deny_priority: int = 4096
    curated_environments: bool = True
    attach_sep_id: str | None = None
    attach_nsg_id: str | None = None
    fqdn_allow_list: tuple[str, ...] = DEFAULT_FQDN_ALLOW_LIST
    guarded_subnets: tuple[str, ...] = ()
    quarantine: bool = False
    # Required outbound flows (baseline "Required outbound flows"): Azure Monitor reached
    # privately (no AzureMonitor TCP 443 required), and the file-share scenario (Storage TCP 445).
    secured_monitor: bool = False
    storage_smb: bool = False
    trusted_egress_appliances: tuple[str, ...] = ()  # next-hop IPs whose egress policy a person reviewed
    # An exemption's until= may lie at most this many days after the evaluation day
    # (docs/semantics.md, "Exemptions"): a tag cannot switch protection off for years.
    max_exemption_days: int = 90

    def mode_for(self, rule_id: str) -> Mode:
        """The mode one rule runs in: its override, else the global mode."""
        return self.rule_modes.get(rule_id, self.mode)

    def storage_allowed(self, account_id: str) -> bool:
        k = ids.key(account_id)
        return any(ids.key(a) == k for a in self.storage_allow_list)


_ENV = {
    "mode": "EXFILGUARD_MODE",
    "rule_modes": "EXFILGUARD_RULE_MODES",
    "extra_service_tags": "EXFILGUARD_EXTRA_SERVICE_TAGS",
    "storage_allow_list": "EXFILGUARD_STORAGE_ALLOW_LIST",
    "deny_priority": "EXFILGUARD_DENY_PRIORITY",
    "curated_environments": "EXFILGUARD_CURATED_ENVIRONMENTS",
    "attach_sep_id": "EXFILGUARD_ATTACH_SEP_ID",
    "attach_nsg_id": "EXFILGUARD_ATTACH_NSG_ID",
    "fqdn_allow_list": "EXFILGUARD_FQDN_ALLOW_LIST",
    "guarded_subnets": "EXFILGUARD_GUARDED_SUBNETS",
    "quarantine": "EXFILGUARD_QUARANTINE",
    "secured_monitor": "EXFILGUARD_SECURED_MONITOR",
    "storage_smb": "EXFILGUARD_STORAGE_SMB",
    "trusted_egress_appliances": "EXFILGUARD_TRUSTED_EGRESS_APPLIANCES",
    "max_exemption_days": "EXFILGUARD_MAX_EXEMPTION_DAYS",
}

_YAML = {
    "mode": "mode",
    "rules": "rule_modes",
    "permittedServiceTags": "extra_service_tags",
    "storageAllowList": "storage_allow_list",
    "denyPriority": "deny_priority",
    "curatedEnvironments": "curated_environments",
    "attachServiceEndpointPolicy": "attach_sep_id",
    "attachNetworkSecurityGroup": "attach_nsg_id",
    "fqdnAllowList": "fqdn_allow_list",
    "guardedSubnets": "guarded_subnets",
    "quarantine": "quarantine",
    "securedMonitor": "secured_monitor",
    "secured_monitor": "secured_monitor",  # the baseline's spelling
    "storageSmb": "storage_smb",
    "storage_smb": "storage_smb",
    "trustedEgressAppliances": "trusted_egress_appliances",
    "maxExemptionDays": "max_exemption_days",
}


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}: expected true or false, got {value!r}")


def _list(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(v.strip() for v in value if v.strip())
    raise ConfigError(f"{name}: expected a list of strings (or a comma-separated string), got {value!r}")


def _mode(name: str, value: Any) -> Mode:
    text = str(value).strip().lower()
    if text not in MODES:
        raise ConfigError(f"{name}: expected 'audit' or 'remediate', got {value!r}")
    return text


def _rule_modes(name: str, value: Any) -> dict[str, Mode]:
    pairs: list[tuple[str, Any]]
    if isinstance(value, str):
        pairs = []
        for item in value.split(","):
            if not item.strip():
                continue
            if "=" not in item:
                raise ConfigError(f"{name}: expected RULE-ID=audit|remediate pairs, got {item.strip()!r}")
            k, v = item.split("=", 1)
            pairs.append((k.strip(), v))
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    else:
        raise ConfigError(f"{name}: expected a mapping of rule ID to mode, got {value!r}")
    from exfilguard.core.rules import RULES  # late: rules import config

    out: dict[str, Mode] = {}
    for k, v in pairs:
        rid = str(k).strip().upper()
        if not _RULE_ID.match(rid) or rid not in RULES:
            raise ConfigError(f"{name}: unknown rule ID {k!r}")
        out[rid] = _mode(f"{name}[{rid}]", v)
    return out


def _arm_id(name: str, value: Any, want_type: str | None = None) -> str | None:
    if value in (None, ""):
        return None
    try:
        parsed = ids.parse(str(value))
    except ids.BadResourceId as exc:
        raise ConfigError(f"{name}: {exc}") from None
    if want_type and parsed.type.lower() != want_type.lower():
        raise ConfigError(f"{name}: expected a {want_type} ID, got a {parsed.type} ID")
    return str(value).strip()


def _arm_ids(name: str, value: Any) -> tuple[str, ...]:
    items = _list(name, value)
    for item in items:
        _arm_id(name, item)
    return items


def _whole(name: str, value: Any, lo: int, hi: int, what: str, *, floats: bool = True) -> int:
    """A whole number in [lo, hi]; ``what`` completes "expected a whole number ..." in the message."""
    message = f"{name}: expected a whole number {what}, got {value!r}"
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(message) from None
    if isinstance(value, bool) or (not floats and isinstance(value, float)) or not lo <= number <= hi:
        raise ConfigError(message)
    return number


def _ips(name: str, value: Any) -> tuple[str, ...]:
    items = _list(name, value)
    for item in items:
        try:
            ipaddress.ip_address(item)
        except ValueError:
            raise ConfigError(f"{name}: expected IP addresses (a virtual appliance's next-hop IP), "
                              f"got {item!r}") from None
    return items


# How each Config field is read: a setting's name and raw value in, the typed value out.
_CONVERT: dict[str, Callable[[str, Any], Any]] = {
    "mode": _mode,
    "rule_modes": _rule_modes,
    "extra_service_tags": _list,
    "fqdn_allow_list": _list,
    "storage_allow_list": _arm_ids,
    "guarded_subnets": _arm_ids,
    "deny_priority": lambda n, v: _whole(n, v, 100, 4096, "from 100 to 4096"),
    "trusted_egress_appliances": _ips,
    "max_exemption_days": lambda n, v: _whole(n, v, 0, 3650, "of days from 0 to 3650", floats=False),
    "curated_environments": _bool,
    "quarantine": _bool,
    "secured_monitor": _bool,
    "storage_smb": _bool,
    "attach_sep_id": lambda n, v: _arm_id(n, v, "Microsoft.Network/serviceEndpointPolicies"),
    "attach_nsg_id": lambda n, v: _arm_id(n, v, "Microsoft.Network/networkSecurityGroups"),
}


def _convert(attr: str, name: str, value: Any) -> Any:
    return _CONVERT[attr](name, value)


def parse(env: Mapping[str, str], document: Mapping[str, Any] | None = None, source: str = "") -> Config:
    """The rule configuration from a configuration file's mapping (if any; ``source`` names
    the file in messages), then ``EXFILGUARD_*`` variables on top. Pure: the caller reads them."""
    values: dict[str, Any] = {}
    for k, v in (document or {}).items():
        attr = _YAML.get(k)
        if attr is None:
            raise ConfigError(f"config file {source}: unknown setting {k!r} (known: {', '.join(_YAML)})")
        values[attr] = _convert(attr, f"{source}:{k}", v)
    for attr, var in _ENV.items():
        if var in env and env[var].strip() != "":
            values[attr] = _convert(attr, var, env[var])
    return Config(**values)
