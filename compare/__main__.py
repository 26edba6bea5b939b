"""``python -m compare`` is the same program as the ``backprop-parity`` console script."""

import sys

from compare.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
