"""``python -m gsoplib.cli`` and ``torchrun -m gsoplib.cli``: the `gsop` command."""

from . import main

raise SystemExit(main())
