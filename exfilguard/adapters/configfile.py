"""Reading the settings' sources: the environment and the optional YAML configuration file.

The one loader: the Function app runtime calls :func:`load` once per settings fingerprint and
the CLI calls :func:`load_config` for a scan; the values are validated in
:mod:`exfilguard.core.settings` and passed down from there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from exfilguard.core import config, settings
from exfilguard.core.config import ConfigError

CONFIG_FILE = "EXFILGUARD_CONFIG"


def read(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The configuration file's top-level mapping (empty for an empty file)."""
    path = Path(path)
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
    return doc


def _sources(path: str | os.PathLike[str] | None,
             environ: Mapping[str, str] | None) -> tuple[Mapping[str, str], dict[str, Any], str]:
    env = os.environ if environ is None else environ
    if path is None and env.get(CONFIG_FILE):
        path = env[CONFIG_FILE]
    return env, ({} if path is None else read(path)), ("" if path is None else str(path))


def load_config(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> config.Config:
    """The rule configuration: the file (``path``, else ``EXFILGUARD_CONFIG``), then the environment on top."""
    return config.parse(*_sources(path, environ))


def load(environ: Mapping[str, str] | None = None) -> settings.Settings:
    """Every Function app setting; raises :class:`~exfilguard.core.settings.SettingsError`."""
    try:
        return settings.parse(*_sources(None, environ))
    except settings.SettingsError:
        raise
    except ConfigError as exc:  # the file could not be read
        raise settings.SettingsError(str(exc)) from None
