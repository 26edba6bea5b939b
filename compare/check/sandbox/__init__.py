"""Running other people's code: copies in, exceptions, time limits and misbehaviour out as findings (``guard``),
each misbehaviour named with its fix (``misbehaviour``), small checks run single-threaded (``threads``), and user
code kept where it cannot take the checker down: a child process (``child``, ``isolated``), the last call into it
traced (``trail``), each call bounded and the child's process group ended from outside (``watchdog``)."""
