"""A local Azure Resource Manager emulator that the real management SDKs can talk to over HTTP."""

from tests.armemu.emulator import ArmEmulator
from tests.armemu.faults import RESET, Fault
from tests.armemu.log import LogRecord
from tests.armemu.snapshot import SnapshotError

__all__ = ["RESET", "ArmEmulator", "Fault", "LogRecord", "SnapshotError"]
