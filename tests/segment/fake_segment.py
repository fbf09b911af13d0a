"""The strict Segment stand-in the tests use: it now ships in the package
(:mod:`sqltraits_kit.publishing.standin`, ``sqltraits standin``); this name stays for the tests.

``python -m tests.segment.fake_segment --port 0`` still serves it (the sync tests run it in a
process of its own).
"""

from __future__ import annotations

import sys

from sqltraits_kit.publishing import standin

if __name__ == "__main__":
    sys.exit(standin.main())
sys.modules[__name__] = standin  # one module: the tests' names, private ones included
