"""``python -m hardware_catalog accelerators|systems|offers|cheapest|efficiency ...``"""

from .cli import main

raise SystemExit(main())
