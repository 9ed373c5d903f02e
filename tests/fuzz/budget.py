"""How much the fuzz suite does: examples per RPC, and how big its largest values are.

`make test` runs FAST_EXAMPLES per RPC with values up to about 1 MiB and 1,001
entries, from the fixed seed FAST_SEED (the same requests every run, whatever
else changed in the test's code), so the package stays well under a minute on a
2-core machine. PUSHHUB_FUZZ_EXAMPLES=N runs N per RPC, adds values
near the server's 16 MiB message limit and 100,000-entry lists and maps, draws
from PUSHHUB_FUZZ_SEED (random when unset, printed with each failure), and
shrinks failures. PUSHHUB_FUZZ_FINDINGS=FILE makes a survey: every failing example
is appended to FILE as a JSON line and the run goes on (without shrinking); the
package fails once, at its end, if anything was recorded.
"""

from __future__ import annotations

import os
import random

FAST_EXAMPLES = 20
DEEP = bool(os.environ.get("PUSHHUB_FUZZ_EXAMPLES"))
EXAMPLES = int(os.environ.get("PUSHHUB_FUZZ_EXAMPLES") or FAST_EXAMPLES)
FINDINGS = os.environ.get("PUSHHUB_FUZZ_FINDINGS") or None
FAST_SEED = 0
SEED = int(
    os.environ.get("PUSHHUB_FUZZ_SEED")
    or (random.SystemRandom().randrange(2**32) if DEEP else FAST_SEED)
)

# String lengths around the server's limits (core/limits.py) and beyond them.
LENGTHS = (255, 256, 1024, 1025, 4096, 4097, 8193, 65_536, 1_048_576)
# Near the 16 MiB message limit the server has today.
HUGE_LENGTHS = (4 * 1024 * 1024, 15 * 1024 * 1024) if DEEP else ()
# Entries of a repeated field or map when it is amplified.
MANY = (64, 65, 1000, 1001, 5000, 100_000) if DEEP else (64, 65, 1000, 1001)
