"""``python -m compare`` is the same program as the ``backprop-parity`` console script. Its first line holds
SIGINT and SIGTERM (``compare.cli.interrupt``): one sent while the program is still being imported ends it
at once with 130 or 143, as one sent later ends it cleanly."""

from compare.cli import interrupt

interrupt.hold()

import sys  # noqa: E402  (after the signals are held)

from compare.cli.main import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
