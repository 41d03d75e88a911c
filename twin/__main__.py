"""Run the ``gridtwin`` command as ``python -m twin``."""

from twin.cli import main

raise SystemExit(main())
