"""How to fix the user's code, in one line, for each known mistake and textbook variant a diagnosis can name
(keyed by the fault catalog's and ``manual.optim.VARIANTS``' names; tests/test_check_textbook.py checks every
key names one of them). A name without a line here is named without a fix."""

FIXES: dict[str, str] = {
    "transposed-weight-grad": "dW = x.T @ dout for W stored (in, out); dW = dout.T @ x for torch's (out, in)",
    "bias-grad-averaged": "db = dout.sum(axis=0): the loss's gradient already carries the 1/N",
    "bias-grad-not-summed": "db = dout.sum(axis=0): the bias was broadcast over the batch, so sum its gradient",
    "missing-zero-grad": "set each gradient (=, not +=) every step, or zero the accumulators before backward",
    "relu-grad-at-zero": "mask = x > 0 (strictly): torch's ReLU derivative at exactly 0 is 0",
    "leaky-relu-keras-slope": "negative_slope = 0.01, torch's default (or pass nn.LeakyReLU(0.3) to the twin)",
    "sigmoid-grad-from-preactivation": "dx = dout * out * (1 - out), with out = σ(x), not x * (1 - x)",
    "softmax-without-max-shift": "subtract each row's max before exp: e = np.exp(z - z.max(axis=1, keepdims=True))",
    "cross-entropy-grad-without-mean": "dscores = (softmax - onehot) / N, the mean's 1/N",
    "cross-entropy-log-eps": "take -log of the probability itself (or use log-softmax), without the + 1e-7",
    "mse-mean-over-batch-only": "divide by N·C (every element), as MSELoss does, not by N",
    "dropout-not-inverted": "scale the kept units by 1/(1 - p) in training (and nothing at test time)",
    "dropout-backward-without-mask": "dx = dout * mask / (1 - p), the same mask and scale as the forward",
    "batchnorm-biased-running-var": "running_var from the unbiased batch variance: var * N / (N - 1)",
    "batchnorm-unbiased-normalisation": "normalise with the biased variance, x.var(axis=0) (ddof=0)",
    "batchnorm-momentum-inverted": "running = (1 - m)·running + m·batch with torch's m = 0.1 (or m·running with 0.9)",
    "batchnorm-backward-constant-stats": "backpropagate through the batch mean and variance as well (the full formula)",
    "clip-each-tensor": "clip by the norm of all gradients together: c = max_norm / (total_norm + 1e-6)",
    "schedule-stepped-before-update": "step the lr scheduler after the optimizer step, not before",
    "momentum-zero-init-dampened": "on the first step set the buffer to the gradient itself, undamped",
    "momentum-lr-in-buffer": "keep b ← μb + g and apply θ ← θ − γ·b (lr outside the buffer)",
    "classic_momentum": "keep b ← μb + g and apply θ ← θ − γ·b, or pass the twin the same constant lr",
    "l2-on-weights-only": "add weight_decay·θ to every parameter's gradient, biases included",
    "adam-eps-inside-root": "denominator √v̂ + ε, ε outside the root",
    "adam-no-bias-correction": "divide m by (1 − β1^t) and v by (1 − β2^t) before the update",
    "adam-global-step-counter": "keep one step counter per parameter, bumped once per step",
    "adam-beta-on-new-gradient": "m = β1·m + (1 − β1)·g: β1 weighs the old average",
    "adam_eps_hat": "ε outside the corrected root: θ −= lr·m̂ / (√v̂ + ε)",
    "adamw-decay-not-scaled-by-lr": "decay as θ ← θ·(1 − lr·λ), scaled by the lr",
    "adamw-coupled-l2": "decay θ directly, θ ← θ·(1 − lr·λ), not by adding λθ to the gradient",
    "rmsprop_eps_inside": "denominator √v + ε, ε outside the root",
    "adagrad-lr-decay-off-by-one": "lr / (1 + (t − 1)·lr_decay): step 1 runs at the full lr",
}


def fix_of(names: str) -> str:
    """The fix line(s) of a diagnosis name (``"a and b"``: both), a home-made engine's mistake's
    included (``compare.check.autograd.catalog``, which keeps each one's fix beside it), or ``""``."""
    # imported here: compare.check.engine's package imports its runner, which imports report, which imports this
    from compare.check.autograd.catalog import FIX_BY_NAME

    known = {**FIXES, **FIX_BY_NAME}
    return "; ".join(known[name] for name in names.split(" and ") if name in known)
