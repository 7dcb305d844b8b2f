"""Run the ``implicit-basis`` command: ``python -m implicit_basis``."""

from .cli import main

raise SystemExit(main())
