"""Each rule's conventions, optax's defaults against torch's: what differs, and the keywords that make the two
compute the same rule (``--framework-defaults`` names them in the verdict; docs/frameworks.md measures each).

``EQUAL``: optax's defaults beyond the learning rate compute torch's rule. Every other entry names the
difference and the keywords that remove it, or says that none does (then ``jax_ref.optim`` raises
``InexpressibleError`` when asked for torch's rule).
"""

EQUAL = "optax's defaults compute torch's rule"

CONVENTIONS: dict[str, str] = {
    "sgd": EQUAL,
    "momentum": EQUAL + " (optax.sgd(lr, momentum=0.9) against torch.optim.SGD(lr, momentum=0.9))",
    "nesterov": EQUAL + " (optax.sgd(lr, momentum=0.9, nesterov=True))",
    "adam": EQUAL,
    "adamw": "optax.adamw's weight_decay defaults to 1e-4, torch.optim.AdamW's to 1e-2: "
    "optax.adamw(lr, weight_decay=1e-2) matches torch",
    "rmsprop": "optax.rmsprop decays by 0.9 and adds ε inside the square root, 1/√(v + ε); torch.optim.RMSprop "
    "decays by alpha=0.99 and adds ε outside, 1/(√v + ε): optax.rmsprop(lr, decay=0.99, eps_in_sqrt=False) "
    "matches torch",
    "adagrad": "optax.adagrad starts the accumulator at 0.1 and adds eps=1e-7 inside the square root; "
    "torch.optim.Adagrad starts at 0 and adds eps=1e-10 outside: torch.optim.Adagrad(lr, "
    "initial_accumulator_value=0.1, eps=0) and optax.adagrad(lr, eps=0) match (no optax keyword puts ε outside)",
    "adamax": EQUAL,
    "nadam": "torch.optim.NAdam multiplies its momentum by μ_t = β1·(1 − ½·0.96^(t·ψ)) (momentum_decay "
    "ψ = 4e-3); optax.nadam is Adam with Nesterov's look-ahead and no momentum schedule: no keyword makes them equal",
    "radam": "optax.radam adds ε to √v̂ after the bias correction, torch.optim.RAdam to √v before it (the two "
    "differ once the rectification starts, at step 6 with β2 = 0.999): equal with eps=0 on both",
    "adadelta": EQUAL + " (lr=1.0, rho=0.9, eps=1e-6 in both)",
    "asgd": "optax has no ASGD",
    "rprop": "optax.rprop applies the previous step's update (its first step moves nothing) where torch.optim.Rprop "
    "applies this step's: no keyword makes them equal",
}
SCHEDULES = (
    "optax calls a schedule with its int32 step count, and JAX's promotion computes count / T in float32: the "
    "learning rate is rounded to float32 (jax_ref.schedules casts the count to float64)"
)


def line(optimizer: str, passed: bool) -> str:
    """The verdict's line of a ``--framework-defaults`` run."""
    convention = CONVENTIONS[optimizer]
    if convention.startswith(EQUAL):
        return f"framework defaults: {optimizer}: {convention}"
    verb = "the first difference is this convention" if not passed else "a convention that this run did not show"
    return f"framework defaults: {optimizer}: {convention} ({verb})"
