"""Running other people's code: copies in, exceptions, time limits and misbehaviour out as findings (``guard``),
each misbehaviour named with its fix (``misbehaviour``), and small checks run single-threaded (``threads``)."""
