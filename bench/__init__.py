"""Benchmarks (`make bench`): figures printed for a person, never asserted in tests.

Each module exposes `main()`; `python -m bench [name ...]` runs them in turn.
"""

import warnings

# platformdirs warns about a missing XDG_RUNTIME_DIR in containers; it is noise here.
warnings.filterwarnings("ignore", module="platformdirs")
