"""``python -m detectors``: see :mod:`detectors.cli`."""
from .cli import main

raise SystemExit(main())
