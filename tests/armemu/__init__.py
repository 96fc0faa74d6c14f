"""A local Azure Resource Manager emulator that the real management SDKs can talk to over HTTP."""

from .emulator import ArmEmulator
from .faults import RESET, Fault
from .log import LogRecord
from .snapshot import SnapshotError

__all__ = ["RESET", "ArmEmulator", "Fault", "LogRecord", "SnapshotError"]
