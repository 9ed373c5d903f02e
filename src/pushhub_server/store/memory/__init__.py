"""The repositories in memory: the same ports and the same core rules as the SQL store.

For tests of the services (no database) and for anyone embedding PushHub's core.
tests/contract runs one suite of cases against these and the SQL store on SQLite
and PostgreSQL, so the twin cannot drift from the real thing.
"""

from .apps import MemoryAppRepository
from .audience import MemoryAudienceReader
from .messages import MemoryMessageRepository
from .registrations import MemoryRegistrationRepository
from .state import MemoryStore
from .tracking import MemoryTrackingRepository

__all__ = [
    "MemoryAppRepository",
    "MemoryAudienceReader",
    "MemoryMessageRepository",
    "MemoryRegistrationRepository",
    "MemoryStore",
    "MemoryTrackingRepository",
]
