"""The exit statuses of ``backprop-parity``, every command's: the one table. It imports nothing, and lies in
the lowest layer with ``compare.errors``: the command line returns these, and so does a data-parallel rank
(``compare.core.distributed``) that its group abandoned. ``compare.core.verdict`` gives each verdict word
(PASS, FAIL, DEPARTS, DIVERGED, INCOMPLETE) its status."""

PASS = 0  # PASS, PASS (drift adjudicated): parity holds; the command did what it was asked
FAIL = 1  # FAIL, DEPARTS: parity broken (the report says where), or a textbook variant departs
USAGE = 2  # bad input or usage: one line on stderr, no traceback, nothing written
ABORTED = 3  # a data-parallel run could not finish (a rank died or timed out); the report holds the steps done
DIVERGED = 4  # DIVERGED: both sides alike left the finite numbers, or undecidable from step N (no verdict on the rule)
SIGNAL_BASE = 128  # + the signal's number, the shell's convention: 130 Ctrl-C, 141 closed pipe, 143 SIGTERM
INTERRUPTED = SIGNAL_BASE + 2  # SIGINT

TABLE = {
    PASS: "parity holds",
    FAIL: "FAIL: parity broken, or a side raised; DEPARTS: a textbook variant departs from torch's rule (or a fault "
    "the table expected was missed)",
    USAGE: "bad input or usage",
    ABORTED: "INCOMPLETE: a data-parallel run could not finish",
    DIVERGED: "DIVERGED: both sides alike left the finite numbers, or undecidable from step N (no verdict on the rule)",
    INTERRUPTED: "INCOMPLETE: interrupted (Ctrl-C); 143 for SIGTERM, 141 when the reader of stdout went away",
}
