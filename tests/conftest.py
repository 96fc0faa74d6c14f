"""Fixtures shared by tests in more than one layer folder.

Why here: the same three set-ups (a clean ``EXFILGUARD_*`` environment, the ARM emulator on
the bundled sample, an ``ArmClient`` tuned for it) were written out in five test files.
Helpers that are plain functions (builders, emulator variants) stay in ``tests/*_support.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from exfilguard.adapters.arm import ArmClient
from tests.arm_support import ExtendedEmulator, client_for, emulator


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own ``EXFILGUARD_*`` settings must not change what a test expects."""
    for name in list(os.environ):
        if name.startswith("EXFILGUARD_"):
            monkeypatch.delenv(name)


@pytest.fixture
def emu() -> Iterator[ExtendedEmulator]:
    """The ARM emulator on loopback, serving the bundled drifted sample."""
    with emulator() as e:
        yield e


@pytest.fixture
def arm_client(emu: ExtendedEmulator) -> Iterator[ArmClient]:
    """An ``ArmClient`` for :func:`emu` with millisecond polls and back-off."""
    with client_for(emu) as c:
        yield c
