"""Misbehaviour by name: what a learner's code gets wrong besides a formula, each problem with its fix.

``compare.check.sandbox.guard`` raises the first six as findings (the check ends there: what follows would
only repeat the consequence); the last two are problems the comparison itself finds, given their words
here so that the report's line says what to do. One table: the report, ``check``'s output and the
README's list all read it.
"""

FIXES: dict[str, str] = {  # problem → the fix, in one line
    "timeout": "look for a loop that never ends (or raise time_limit / --time-limit for slow code)",
    "exit": "raise an exception instead (sys.exit, exit() and os._exit end the checker's process, not a check)",
    "died": "look for os._exit, a crash in C code or memory past the limit (memory_limit, --memory-limit)",
    "none": "return the array (a missing `return`?)",
    "type": "return a NumPy array (np.asarray(...)): a list takes no part in array arithmetic (W -= lr * dW)",
    "mutated": "compute into new arrays (x = x * mask, not x *= mask); only the optimizer step changes parameters",
    "replaced": "update in place (params[k] -= lr * grads[k]): the layers still hold the arrays you replaced",
    "shape": "a gradient has the shape of what it is the gradient of: look for a transposed product (x.T @ dout)",
    "nonfinite:manual": "your code made the first NaN/inf from finite inputs: look for log(0), 0/0, exp of a large "
    "number (a softmax without subtracting the max?), a division by a value that can be zero",
}
