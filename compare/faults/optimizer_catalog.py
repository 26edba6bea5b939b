"""The optimizer faults of the catalog (``compare.faults.catalog``): each a ``compare.faults.optimizers``
rule, the correct ``manual.optim`` rule with one named piece overridden, and where it must first show."""

from compare.core.override import optimizer_as
from compare.faults import optimizers
from compare.faults.fault import Fault
from compare.faults.needs import has, hyperparameter_off, hyperparameter_positive, optimizer_is, two_steps

OPTIMIZER_FAULTS = [
    Fault(
        "momentum-zero-init-dampened",
        "momentum buffer initialised to zeros, so the first step is dampened (torch copies g undamped)",
        (1, "state", "0.weight.momentum_buffer"),
        "with τ > 0 step 1 gives (1 − τ)·g instead of g; with τ = 0 the two agree, hence --dampening",
        optimizer_as(optimizers.MomentumBufferZeroInit),
        args=("--optimizer", "momentum", "--dampening", "0.5"),
        needs=(
            optimizer_is("momentum", "sgd"),
            hyperparameter_positive("momentum"),
            hyperparameter_positive("dampening"),
        ),
    ),
    Fault(
        "momentum-lr-in-buffer",
        "lr folded into the momentum buffer (v ← μv + γg; θ ← θ − v), which an lr schedule exposes",
        (6, "param", "0.weight"),
        "equal to torch's rule while the lr is constant; StepLR(5, 0.1) changes it at step 6, where the buffer "
        "still carries the old lr. The buffer γ·b has no torch counterpart, so the parameters show it",
        optimizer_as(optimizers.MomentumLrInBuffer),
        args=("--optimizer", "momentum", "--lr-schedule", "step:5:0.1"),
        needs=(
            optimizer_is("momentum", "sgd"),
            hyperparameter_positive("momentum"),
            hyperparameter_off("dampening"),
            hyperparameter_off("nesterov"),
            has("lr_schedule", "--lr-schedule"),
        ),
    ),
    Fault(
        "l2-on-weights-only",
        "weight decay added to the .weight tensors only (torch's weight_decay decays the biases too)",
        (1, "param", "0.bias"),
        "SGD keeps no state; 0.weight is right and 0.bias, the second parameter updated, misses λ·b",
        optimizer_as(optimizers.SGDDecayWeightsOnly),
        args=("--optimizer", "sgd", "--weight-decay", "0.01"),
        needs=(optimizer_is("sgd", "momentum", "nesterov"), hyperparameter_positive("weight_decay")),
    ),
    Fault(
        "adam-eps-inside-root",
        "Adam with ε inside the root, √(v̂ + ε), instead of √v̂ + ε",
        (1, "param", "0.weight"),
        "m and v are right; the first update of the first parameter divides by a different denominator",
        optimizer_as(optimizers.AdamEpsInsideRoot),
        args=("--optimizer", "adam"),
        needs=(optimizer_is("adam"), hyperparameter_off("amsgrad")),
    ),
    Fault(
        "adam-no-bias-correction",
        "Adam without the 1/(1 − β1^t) and 1/(1 − β2^t) bias corrections",
        (1, "param", "0.weight"),
        "m and v are right; at step 1 the uncorrected step is √(1 − β2)/(1 − β1) ≈ 0.32 of torch's",
        optimizer_as(optimizers.AdamNoBiasCorrection),
        args=("--optimizer", "adam"),
        needs=(optimizer_is("adam"), hyperparameter_off("amsgrad")),
    ),
    Fault(
        "adam-global-step-counter",
        "Adam with one step counter for the optimizer, bumped by every tensor, driving the bias correction",
        (1, "state", "0.bias.step"),
        "the first parameter gets t = 1 as in torch; the second (0.bias) already gets t = 2 at step 1",
        optimizer_as(optimizers.AdamGlobalStepCounter),
        args=("--optimizer", "adam"),
        needs=(optimizer_is("adam"), hyperparameter_off("amsgrad")),
    ),
    Fault(
        "adam-beta-on-new-gradient",
        "Adam first moment as β1·g + (1 − β1)·m: β1 weighing the new gradient (a reversed lerp)",
        (1, "state", "0.weight.exp_avg"),
        "from zero, step 1 gives m = 0.9·g instead of 0.1·g in the first parameter's exp_avg",
        optimizer_as(optimizers.AdamBetaOnTheNewGradient),
        args=("--optimizer", "adam"),
        needs=(optimizer_is("adam"), hyperparameter_off("amsgrad")),
    ),
    Fault(
        "adamw-decay-not-scaled-by-lr",
        "AdamW decay θ·(1 − λ) instead of torch's θ·(1 − γλ)",
        (1, "param", "0.weight"),
        "the decay touches only the parameters; at step 1 the first one shrinks by λ instead of γλ",
        optimizer_as(optimizers.AdamWDecayNotScaledByLr),
        args=("--optimizer", "adamw"),
        needs=(optimizer_is("adamw"), hyperparameter_positive("weight_decay")),
    ),
    Fault(
        "adamw-coupled-l2",
        "AdamW written as Adam with λθ added to the gradient (coupled L2 instead of decoupled decay)",
        (1, "state", "0.weight.exp_avg"),
        "λθ enters the first moment at step 1; exp_avg is the first state tensor checked",
        optimizer_as(optimizers.AdamWCoupledL2),
        args=("--optimizer", "adamw"),
        needs=(optimizer_is("adamw"), hyperparameter_positive("weight_decay")),
    ),
    Fault(
        "adagrad-lr-decay-off-by-one",
        "Adagrad lr decay γ/(1 + t·η) with the step just counted (torch: t − 1, so step 1 runs at γ)",
        (1, "param", "0.weight"),
        "the accumulator is right; step 1 already runs at γ/(1 + η)",
        optimizer_as(optimizers.AdagradLrDecayOffByOne),
        args=("--optimizer", "adagrad", "--lr-decay", "0.1"),
        needs=(optimizer_is("adagrad"), hyperparameter_positive("lr_decay")),
    ),
    Fault(
        "adamax-no-bias-correction",
        "Adamax without the first moment's bias correction 1/(1 − β1^t)",
        (1, "param", "0.weight"),
        "m and u are right; at step 1 the uncorrected step is (1 − β1) = 0.1 of torch's",
        optimizer_as(optimizers.AdamaxNoBiasCorrection),
        args=("--optimizer", "adamax"),
        needs=(optimizer_is("adamax"),),
    ),
    Fault(
        "nadam-mu-for-mu-next",
        "NAdam's momentum term weighed by this step's μ_t instead of the next step's μ_{t+1}",
        (1, "param", "0.weight"),
        "mu_product and the moments are right; the first update's m coefficient uses μ_1 for μ_2, which differ "
        "by β1·½·0.96^ψ·(1 − 0.96^ψ) ≈ 7e-5 (ψ = 0.004), far above float64's tolerance",
        optimizer_as(optimizers.NAdamMuForMuNext),
        args=("--optimizer", "nadam"),
        needs=(optimizer_is("nadam"),),
    ),
    Fault(
        "radam-uncorrected-first-moment",
        "RAdam stepping with m instead of its bias-corrected m/(1 − β1^t)",
        (1, "param", "0.weight"),
        "the moments are right; step 1 is an un-rectified SGD step (ρ_1 = 1 ≤ 5) of γ·m, 0.1 of torch's γ·m̂",
        optimizer_as(optimizers.RAdamUncorrectedFirstMoment),
        args=("--optimizer", "radam"),
        needs=(optimizer_is("radam"),),
    ),
    Fault(
        "adadelta-eps-outside-roots",
        "Adadelta's step (√u + ε)/(√v + ε)·g: ε outside both roots instead of torch's √(u + ε)/√(v + ε)",
        (1, "state", "0.weight.acc_delta"),
        "square_avg is right; at step 1 u = 0, so the numerator is ε instead of √ε and the delta that "
        "acc_delta accumulates, the next state tensor checked, is about √ε = 1e-3 times torch's",
        optimizer_as(optimizers.AdadeltaEpsOutsideRoots),
        args=("--optimizer", "adadelta"),
        needs=(optimizer_is("adadelta"),),
    ),
    Fault(
        "asgd-shrink-not-scaled-by-eta",
        "ASGD's weight shrinkage θ·(1 − λ_d) instead of torch's θ·(1 − λ_d·η)",
        (1, "state", "0.weight.ax"),
        "eta and mu are right; ax is a copy of θ after the update (μ = 1), so the state stage, before the "
        "parameters, already sees θ shrunk by λ_d = 1e-4 instead of λ_d·γ = 1e-5",
        optimizer_as(optimizers.ASGDShrinkNotScaledByEta),
        args=("--optimizer", "asgd"),
        needs=(optimizer_is("asgd"),),
    ),
    Fault(
        "rprop-etas-swapped",
        "Rprop's step-size factors swapped: η+ where the gradient's sign flipped, η− where it held",
        (2, "state", "0.weight.step_size"),
        "at step 1 every previous gradient is 0, so every factor is 1 either way; at step 2 the elements "
        "whose sign held shrink by η− instead of growing by η+ (prev, checked first, is still right)",
        optimizer_as(optimizers.RpropEtasSwapped),
        args=("--optimizer", "rprop"),
        needs=(optimizer_is("rprop"), two_steps),
    ),
]
