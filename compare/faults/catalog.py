"""The fault catalog: realistic mistakes made when hand-writing backprop and optimizers, each
swapped into the manual twin so the checker can be seen to catch it at the right place.

Every fault is the correct piece (layer, loss, optimizer, clipping, schedule) with the minimum
overridden to make the mistake, and carries:

* its ``fix``: what to change in the user's code, in one line (what a diagnosis that names it prints);
* the command-line arguments under which the mistake can act at all (a ReLU gradient at exactly 0
  needs a pre-activation of exactly 0; a softmax without max-subtraction needs a logit past
  log(max float) ≈ 709.8 in float64; a dampening mistake needs ``--dampening`` > 0);
* the expected first failure ``(step, stage, tensor)``, derived from the order a step computes
  (forward, loss, grad from the loss down, state, param: ``compare.core.engine``) and from the first
  step at which the mistake changes a number, with the reasoning in ``why``.

``backprop-parity run --inject NAME`` applies one to a run; ``backprop-parity faults --table`` runs
them all and checks each against its expectation.

Default layout (``--layers 2,16,16,3``): 0 Linear, 1 activation, 2 Linear, 3 activation, 4 Linear;
so the grad stage checks 4.out, 4.weight, 4.bias, 3.out, 2.out, 2.weight, ... and dL/d``<i>.out``
is computed by the backward of layer ``i + 1``.
"""

from typing import TYPE_CHECKING

from compare.core.override import SCHEDULE_FIRST, clip_with, layer_as, layer_made, loss_as
from compare.errors import InputError
from compare.faults import layers, loop, losses
from compare.faults.fault import Fault
from compare.faults.needs import activation_is, has, loss_is, square_layers, two_steps
from compare.faults.optimizer_catalog import OPTIMIZER_FAULTS
from manual.layers import BatchNorm1d, Dropout, LeakyReLU, Linear, ReLU, Sigmoid

if TYPE_CHECKING:
    from compare.inputs.config import RunConfig


BIAS_NOTE = "the last Linear's bias is the first bias gradient checked"
CATALOG_LIST = [
    Fault(
        "transposed-weight-grad",
        "Linear weight gradient xᵀ·dout (the (in, out)-layout formula): the transpose of torch's (out, in) one",
        "dW = x.T @ dout for W stored (in, out); dW = dout.T @ x for torch's (out, in)",
        (1, "grad", "4.weight"),
        "the first parameter gradient checked is the last Linear's weight; on square layers the transpose has "
        "the right shape, so it is a silent wrong value (on non-square ones NumPy raises in the update)",
        layer_as(Linear, layers.LinearTransposedWeightGrad),
        args=("--dataset", "xor", "--layers", "2,2,2,2"),
        needs=(square_layers,),
    ),
    Fault(
        "bias-grad-averaged",
        "Linear bias gradient averaged over the batch instead of summed (the loss's 1/N applied twice)",
        "db = dout.sum(axis=0): the loss's gradient already carries the 1/N",
        (1, "grad", "4.bias"),
        f"dL/d4.out and 4.weight are right; {BIAS_NOTE}, wrong by 1/N from step 1",
        layer_as(Linear, layers.LinearBiasGradAveraged),
    ),
    Fault(
        "bias-grad-not-summed",
        "Linear bias gradient left per example, (N, O), instead of summed over the batch to (O,)",
        "db = dout.sum(axis=0): the bias was broadcast over the batch, so sum its gradient",
        (1, "grad", "4.bias"),
        f"{BIAS_NOTE}; its shape is wrong (problem 'shape'), and the manual update then cannot broadcast it",
        layer_as(Linear, layers.LinearBiasGradNotSummed),
        problem="shape",
    ),
    Fault(
        "missing-zero-grad",
        "gradients never zeroed: each step's Linear gradients are added to the previous step's",
        "set each gradient (=, not +=) every step, or zero the accumulators before backward",
        (2, "grad", "4.weight"),
        "step 1 has nothing to accumulate onto; at step 2 the first parameter gradient checked holds g1 + g2",
        layer_as(Linear, layers.LinearGradsNeverZeroed),
        needs=(two_steps,),
    ),
    Fault(
        "relu-grad-at-zero",
        "ReLU backward with mask x >= 0: derivative 1 at exactly 0 (torch: 0)",
        "mask = x > 0 (strictly): torch's ReLU derivative at exactly 0 is 0",
        (1, "grad", "2.out"),
        "acts only on pre-activations of exactly 0: with zero biases, the spiral's three points at the origin give "
        "exact zeros from layer 0 on, and only until the first update moves the biases; the full batch (nothing "
        "held out) puts them into step 1. The first ReLU backward is layer 3's, which computes dL/d2.out",
        layer_as(ReLU, layers.ReLUGradOneAtZero),
        args=("--weights", "{zero_bias_weights}", "--val-fraction", "0", "--batch-size", "300"),
        needs=(activation_is("relu"),),
    ),
    Fault(
        "leaky-relu-keras-slope",
        "LeakyReLU with Keras's default slope 0.3 instead of torch's 0.01",
        "negative_slope = 0.01, torch's default (or pass nn.LeakyReLU(0.3) to the twin)",
        (1, "forward", "1.out"),
        "the first activation's output differs wherever its input is negative, in every batch",
        layer_made(LeakyReLU, lambda layer: layers.LeakyReLUKerasSlope()),
        args=("--activation", "leaky_relu"),
        needs=(activation_is("leaky_relu"),),
    ),
    Fault(
        "sigmoid-grad-from-preactivation",
        "sigmoid derivative taken as x(1 − x) of the pre-activation instead of out(1 − out)",
        "dx = dout * out * (1 - out), with out = σ(x), not x * (1 - x)",
        (1, "grad", "2.out"),
        "the forward is right; the first sigmoid backward is layer 3's, which computes dL/d2.out",
        layer_as(Sigmoid, layers.SigmoidGradFromPreactivation),
        args=("--activation", "sigmoid"),
        needs=(activation_is("sigmoid"),),
    ),
    Fault(
        "softmax-without-max-shift",
        "softmax as e^z/Σe^z without subtracting the row max: overflows to inf/inf = NaN for large logits",
        "subtract each row's max before exp: e = np.exp(z - z.max(axis=1, keepdims=True))",
        (1, "loss", "loss"),
        "equal to rounding while every logit stays below log(max float) ≈ 709.8 (float64); on inputs 1000x "
        "unnormalised the logits pass that at step 1, and the manual loss is NaN/inf (nonfinite:manual)",
        loss_as(losses.CrossEntropyNoMaxShift),
        args=("--data", "{unnormalised_spiral}"),
        needs=(loss_is("cross_entropy"),),
        problem="nonfinite:manual",
    ),
    Fault(
        "cross-entropy-grad-without-mean",
        "cross-entropy gradient softmax − onehot without the 1/N of the mean",
        "dscores = (softmax - onehot) / N, the mean's 1/N",
        (1, "grad", "4.out"),
        "the loss value is right; the first gradient checked, dL/d4.out, is N times torch's",
        loss_as(losses.CrossEntropyGradWithoutMean),
        needs=(loss_is("cross_entropy"),),
    ),
    Fault(
        "cross-entropy-log-eps",
        "cross-entropy as −log(p + 1e-7), the textbook guard against log(0)",
        "take -log of the probability itself (or use log-softmax), without the + 1e-7",
        (1, "loss", "loss"),
        "the forward outputs are right; the loss value is off by about 1e-7/p from step 1",
        loss_as(losses.CrossEntropyLogEps),
        needs=(loss_is("cross_entropy"),),
    ),
    Fault(
        "mse-mean-over-batch-only",
        "MSE summed over the outputs and averaged over the batch only (torch averages over all N·C elements)",
        "divide by N·C (every element), as MSELoss does, not by N",
        (1, "loss", "loss"),
        "with C = 3 one-hot targets the loss is 3x torch's from step 1",
        loss_as(losses.MSEMeanOverBatchOnly),
        args=("--loss", "mse"),
        needs=(loss_is("mse"),),
    ),
    Fault(
        "dropout-not-inverted",
        "dropout masks in training without the 1/(1 − p) scale",
        "scale the kept units by 1/(1 - p) in training (and nothing at test time)",
        (1, "forward", "2.out"),
        "layer 2 is the first Dropout; its output is (1 − p) times torch's wherever the mask keeps a unit",
        layer_as(Dropout, layers.DropoutNotInverted),
        args=("--dropout", "0.2"),
        needs=(has("dropout", "--dropout > 0"),),
    ),
    Fault(
        "dropout-backward-without-mask",
        "dropout backward passes dout through unmasked",
        "dx = dout * mask / (1 - p), the same mask and scale as the forward",
        (1, "grad", "4.out"),
        "layout 0 L, 1 act, 2 drop, 3 L, 4 act, 5 drop, 6 L: the last Dropout (5) computes dL/d4.out",
        layer_as(Dropout, layers.DropoutBackwardWithoutMask),
        args=("--dropout", "0.2"),
        needs=(has("dropout", "--dropout > 0"),),
    ),
    Fault(
        "batchnorm-biased-running-var",
        "BatchNorm running variance updated with the biased batch variance (torch keeps the unbiased one)",
        "running_var from the unbiased batch variance: var * N / (N - 1)",
        (1, "state", "1.running_var"),
        "training-mode outputs use batch statistics, so nothing before the state stage changes; "
        "1.running_mean is right, 1.running_var is off by N/(N − 1) in its update",
        layer_as(BatchNorm1d, layers.BatchNormBiasedRunningVar),
        args=("--batchnorm",),
        needs=(has("batchnorm", "--batchnorm"),),
    ),
    Fault(
        "batchnorm-unbiased-normalisation",
        "BatchNorm normalising with the unbiased variance (ddof=1) instead of the biased one",
        "normalise with the biased variance, x.var(axis=0) (ddof=0)",
        (1, "forward", "1.out"),
        "layer 1 is the first BatchNorm; its output is scaled by √((N − 1)/N) from step 1",
        layer_as(BatchNorm1d, layers.BatchNormUnbiasedNormalisation),
        args=("--batchnorm",),
        needs=(has("batchnorm", "--batchnorm"),),
    ),
    Fault(
        "batchnorm-momentum-inverted",
        "BatchNorm running statistics as m·running + (1 − m)·batch with torch's m = 0.1 (Keras's convention)",
        "running = (1 - m)·running + m·batch with torch's m = 0.1 (or m·running with 0.9)",
        (1, "state", "1.running_mean"),
        "outputs use batch statistics; the first buffer checked, 1.running_mean, takes 0.9 of the batch mean",
        layer_as(BatchNorm1d, layers.BatchNormMomentumInverted),
        args=("--batchnorm",),
        needs=(has("batchnorm", "--batchnorm"),),
    ),
    Fault(
        "batchnorm-backward-constant-stats",
        "BatchNorm backward treating the batch mean and variance as constants: dx = γ·dout/√(σ² + ε)",
        "backpropagate through the batch mean and variance as well (the full formula)",
        (1, "grad", "3.out"),
        "layout 0 L, 1 BN, 2 act, 3 L, 4 BN, 5 act, 6 L: γ and β gradients are right, and the last BatchNorm "
        "(4) computes dL/d3.out",
        layer_as(BatchNorm1d, layers.BatchNormBackwardConstantStats),
        args=("--batchnorm",),
        needs=(has("batchnorm", "--batchnorm"),),
    ),
    Fault(
        "clip-each-tensor",
        "gradient clipping applied to each tensor's own norm instead of the global norm",
        "clip by the norm of all gradients together: c = max_norm / (total_norm + 1e-6)",
        (1, "grad", "0.weight.clipped"),
        "the raw gradients and the returned global norm are right; the first clipped gradient, 0.weight's, "
        "is scaled by max/‖g‖ of its own instead of max/‖all‖ (the norm exceeds 0.01 at step 1)",
        clip_with(loop.clip_each_tensor),
        args=("--clip-grad-norm", "0.01"),
        needs=(has("clip_grad_norm", "--clip-grad-norm"),),
    ),
    Fault(
        "schedule-stepped-before-update",
        "lr scheduler stepped before the optimizer step in the loop: every lr comes one step early",
        "step the lr scheduler after the optimizer step, not before",
        (3, "state", "lr"),
        "with StepLR(3, 0.5) torch halves the lr at step 4; one step ahead, the manual lr halves at step 3, "
        "and the lr is the first tensor of the state stage",
        SCHEDULE_FIRST,
        args=("--lr-schedule", "step:3:0.5"),
        needs=(has("lr_schedule", "--lr-schedule"),),
    ),
    *OPTIMIZER_FAULTS,
]
CATALOG: dict[str, Fault] = {fault.name: fault for fault in CATALOG_LIST}


def check(config: "RunConfig") -> None:
    """Raise ``InputError`` when ``config.inject`` names a fault that cannot act on this run."""
    if config.inject is None:
        return
    if config.variant is not None:
        raise InputError(f"--inject {config.inject} cannot be combined with --variant (both replace the manual rule)")
    missing = [what for need in CATALOG[config.inject].needs if (what := need(config)) is not None]
    if missing:
        raise InputError(f"--inject {config.inject} cannot act on this run: it needs {', '.join(missing)}")
