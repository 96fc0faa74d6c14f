"""Settings: ``EXFILGUARD_*`` environment variables over an optional YAML file.

Every setting is validated up front and a bad one raises :class:`ConfigError` naming the
setting and what it expects: a typo in a deployed app setting must fail loudly at start,
not silently turn remediation off.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from exfilguard.core import ids

MODES = ("audit", "remediate")

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
    mode: str = "audit"
    rule_modes: Mapping[str, str] = field(default_factory=dict)
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

    def mode_for(self, rule_id: str) -> str:
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


def _mode(name: str, value: Any) -> str:
    text = str(value).strip().lower()
    if text not in MODES:
        raise ConfigError(f"{name}: expected 'audit' or 'remediate', got {value!r}")
    return text


def _rule_modes(name: str, value: Any) -> dict[str, str]:
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

    out = {}
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


def _convert(attr: str, name: str, value: Any) -> Any:
    if attr == "mode":
        return _mode(name, value)
    if attr == "rule_modes":
        return _rule_modes(name, value)
    if attr in ("extra_service_tags", "fqdn_allow_list"):
        return _list(name, value)
    if attr in ("storage_allow_list", "guarded_subnets"):
        items = _list(name, value)
        for item in items:
            _arm_id(name, item)
        return items
    if attr == "deny_priority":
        try:
            prio = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a whole number from 100 to 4096, got {value!r}") from None
        if isinstance(value, bool) or not 100 <= prio <= 4096:
            raise ConfigError(f"{name}: expected a whole number from 100 to 4096, got {value!r}")
        return prio
    if attr == "trusted_egress_appliances":
        items = _list(name, value)
        for item in items:
            try:
                ipaddress.ip_address(item)
            except ValueError:
                raise ConfigError(f"{name}: expected IP addresses (a virtual appliance's next-hop IP), "
                                  f"got {item!r}") from None
        return items
    if attr == "max_exemption_days":
        try:
            days = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: expected a whole number of days from 0 to 3650, got {value!r}") from None
        if isinstance(value, bool | float) or not 0 <= days <= 3650:
            raise ConfigError(f"{name}: expected a whole number of days from 0 to 3650, got {value!r}")
        return days
    if attr in ("curated_environments", "quarantine", "secured_monitor", "storage_smb"):
        return _bool(name, value)
    if attr == "attach_sep_id":
        return _arm_id(name, value, "Microsoft.Network/serviceEndpointPolicies")
    if attr == "attach_nsg_id":
        return _arm_id(name, value, "Microsoft.Network/networkSecurityGroups")
    raise AssertionError(attr)


def load(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Build the configuration: YAML file (if any), then environment variables on top."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if path is None and env.get("EXFILGUARD_CONFIG"):
        path = env["EXFILGUARD_CONFIG"]
    if path is not None:
        values.update(_from_yaml(Path(path)))
    for attr, var in _ENV.items():
        if var in env and env[var].strip() != "":
            values[attr] = _convert(attr, var, env[var])
    return Config(**values)


def _from_yaml(path: Path) -> dict[str, Any]:
    try:
        import yaml  # lazy: only needed when a file is given
    except ImportError:  # the Function app ships without the cli extra
        raise ConfigError(f"config file {path}: YAML configuration needs PyYAML "
                          "(pip install 'exfilguard[cli]', or add PyYAML to the app's requirements)") from None

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"config file {path}: cannot read it ({exc.strerror})") from None
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML ({exc})") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"config file {path}: expected a mapping at the top level")
    out = {}
    for k, v in doc.items():
        attr = _YAML.get(k)
        if attr is None:
            raise ConfigError(f"config file {path}: unknown setting {k!r} (known: {', '.join(_YAML)})")
        out[attr] = _convert(attr, f"{path}:{k}", v)
    return out
