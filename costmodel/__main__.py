import sys

from costmodel.faces.cli import main

sys.exit(main())
