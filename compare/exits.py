"""The exit statuses of ``backprop-parity``, every command's: the one table. It imports nothing, and lies in
the lowest layer with ``compare.errors``: the command line returns these, and so does a data-parallel rank
(``compare.core.distributed``) that its group abandoned."""

PASS = 0  # parity holds (run, check), the experiment's parity held, the command did what it was asked
FAIL = 1  # parity broken: the report names the first step, stage and tensor where the sides part
USAGE = 2  # bad input or usage: one line on stderr, no traceback, nothing written
ABORTED = 3  # a data-parallel run could not finish (a rank died or timed out); the report holds the steps done
DIVERGED = 4  # diverged: undecidable from step N (both sides overflowed from identical values: no verdict on the rule)
SIGNAL_BASE = 128  # + the signal's number, the shell's convention: 130 Ctrl-C, 141 closed pipe, 143 SIGTERM
INTERRUPTED = SIGNAL_BASE + 2  # SIGINT

TABLE = {
    PASS: "parity holds",
    FAIL: "parity broken, or a side raised, or both sides diverged alike (or a fault the table expected was missed)",
    USAGE: "bad input or usage",
    ABORTED: "a data-parallel run could not finish",
    DIVERGED: "diverged: undecidable from step N (a run that left the finite numbers; no verdict on the rule)",
    INTERRUPTED: "interrupted (Ctrl-C); 143 for SIGTERM, 141 when the reader of stdout went away",
}
