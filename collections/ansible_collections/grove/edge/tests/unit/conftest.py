"""Make `ansible_collections.grove.edge` importable when pytest runs from the repository."""

import sys
from pathlib import Path

# tests/unit -> tests -> edge -> grove -> ansible_collections -> collections
COLLECTIONS_ROOT = Path(__file__).resolve().parents[5]
if str(COLLECTIONS_ROOT) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_ROOT))
