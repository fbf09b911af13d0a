from __future__ import annotations

import sys

from sqltraits_kit.cli import main

sys.exit(main())
