"""``python -m ebmkit`` is the ``ebmkit`` command."""

from ebmkit.cli import main

raise SystemExit(main())
