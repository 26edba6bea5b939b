"""AdamW, as torch.optim.AdamW computes it: Adam with decoupled weight decay."""

from dataclasses import dataclass
from typing import ClassVar

from manual.optim.adam import Adam


@dataclass
class AdamW(Adam):
    r"""torch.optim.AdamW, single-tensor path (torch's AdamW is its Adam with ``decoupled_weight_decay=True``).

    For each parameter θ with gradient g, learning rate γ, betas (β1, β2), eps ε,
    weight decay λ, and its own step counter t::

        t ← t + 1
        θ ← θ·(1 − γλ)                           (if λ ≠ 0; decoupled, scaled by lr, applied first)   decay
        m ← m + (1 − β1)·(g − m)                 (g is the raw gradient: no λθ term enters m or v)
        v ← β2·v + (1 − β2)·g²
        v_max ← max(v_max, v)                    (amsgrad only; v_max replaces v below)
        denom ← √v / √(1 − β2^t) + ε
        θ ← θ − (γ / (1 − β1^t)) · m / denom

    Convention: the paper (Loshchilov & Hutter) writes the decay as θ ← θ − η_t·λ·θ with a
    schedule multiplier η_t separate from the lr; torch multiplies λ by the lr itself, so the same
    λ decays ten times less at lr 1e-4 than at lr 1e-3. Default λ is 1e-2 (Adam's is 0). Only the
    ``decay`` piece differs from :class:`Adam`'s (``Rule.decay``'s decoupled branch).
    """

    weight_decay: float = 1e-2

    every_branch: ClassVar[dict] = {"weight_decay": 0.1, "amsgrad": True}
    # Rule.decay's decoupled branch, always: θ ← θ·(1 − γλ) (torch: param.mul_(1 - lr * weight_decay))
    decoupled_weight_decay: ClassVar[bool] = True
