"""check_function: custom autograd.Functions (a fused SiLU, a fused LayerNorm) against autograd's backward of
the plain composition, in float32/float16/bfloat16 on the CPU (and CUDA when present)."""

import pytest
import torch
from torch import nn
from torch.nn import functional

from compare import check_function
from compare.check.check_function import DRAWS, ONLY_FLOAT64, WRONG_EVERYWHERE

DTYPES = ("float32", "float16", "bfloat16")
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")


class SiLU(torch.autograd.Function):
    """x·σ(x); d/dx = σ(x)(1 + x(1 − σ(x)))."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * torch.sigmoid(x)

    @staticmethod
    def backward(ctx, dout):
        (x,) = ctx.saved_tensors
        s = torch.sigmoid(x)
        return dout * s * (1 + x * (1 - s))


class SiLUWrong(SiLU):
    @staticmethod
    def backward(ctx, dout):  # the product rule's second term forgotten: σ(x) only
        (x,) = ctx.saved_tensors
        return dout * torch.sigmoid(x)


class SiLUOverflowing(SiLU):
    @staticmethod
    def backward(ctx, dout):  # right as math; exp(-x) overflows float16 from x = -11 (inf / inf = NaN)
        (x,) = ctx.saved_tensors
        e = torch.exp(-x)
        return dout * (1 / (1 + e) + x * e / (1 + e) ** 2)


class LayerNormFn(torch.autograd.Function):
    """y = (x − μ)/σ · w + b over the last axis (biased variance, ε inside the root)."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps=1e-5):
        mu = x.mean(-1, keepdim=True)
        inv = torch.rsqrt(x.var(-1, unbiased=False, keepdim=True) + eps)
        xhat = (x - mu) * inv
        ctx.save_for_backward(xhat, inv, weight)
        return xhat * weight + bias

    @staticmethod
    def backward(ctx, dout):
        xhat, inv, weight = ctx.saved_tensors
        dxhat = dout * weight  # (N, D)
        dx = inv * (dxhat - dxhat.mean(-1, keepdim=True) - xhat * (dxhat * xhat).mean(-1, keepdim=True))
        return dx, (dout * xhat).sum(0), dout.sum(0), None


def layer_norm(x, weight, bias):
    return functional.layer_norm(x, x.shape[-1:], weight, bias, 1e-5)


def ln_inputs():
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(shape, generator=generator, dtype=torch.float64) for shape in ((6, 10), (10,), (10,))]


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_right_fused_silu_and_layernorm_pass_in_every_dtype(dtype):
    silu = check_function(SiLU, functional.silu, torch.randn(6, 10, dtype=torch.float64), dtype=dtype, device="cpu")
    assert silu.passed, silu
    assert {c.tensor for c in silu.checks} >= {"out", "dx", "dx (float64)"}
    norm = check_function(LayerNormFn.apply, layer_norm, *ln_inputs(), dtype=dtype, device="cpu")
    assert norm.passed, norm
    assert {c.tensor for c in norm.checks if c.stage == "grad"} >= {"dx", "dweight", "dbias"}


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_wrong_backward_fails_at_dx_and_is_wrong_everywhere(dtype):
    report = check_function(SiLUWrong, functional.silu, torch.randn(6, 10), dtype=dtype, device="cpu")
    assert not report.passed
    assert (report.first_failure.stage, report.first_failure.tensor) == ("grad", "dx")
    # wrong in float64 too, and measured: the product rule's second term forgotten leaves σ(x)
    assert report.diagnosis.explanation.startswith(WRONG_EVERYWHERE.explanation), report
    assert report.diagnosis.name == "measured:derivative" and "your derivative is σ(x)" in str(report), report


def test_a_backward_only_right_in_float64_is_told_apart():
    report = check_function(SiLUOverflowing, functional.silu, torch.randn(6, 10), dtype="float16", device="cpu")
    assert not report.passed and report.diagnosis.name == ONLY_FLOAT64.name, report
    assert report.diagnosis.max_rel < 1e-10  # the float64 re-run agrees with autograd
    failure = report.first_failure
    assert (failure.step, failure.tensor, failure.problem) == (4, "dx", "nonfinite:manual")  # the "large" draw
    assert check_function(SiLUOverflowing, functional.silu, torch.randn(6, 10), dtype="float32", device="cpu").passed


def test_module_parameters_are_compared_by_name_and_exceptions_are_findings():
    class Scaled(nn.Module):
        def __init__(self, act):
            super().__init__()
            self.scale = nn.Parameter(torch.tensor([1.5, -0.5, 2.0]))
            self.act = act

        def forward(self, x):
            return self.act(x) * self.scale

    report = check_function(
        Scaled(SiLU.apply), Scaled(functional.silu), torch.randn(4, 3), dtype="float32", device="cpu"
    )
    assert report.passed and "dscale" in {c.tensor for c in report.checks}, report

    def broken(x):
        raise ValueError("not yet")

    failed = check_function(broken, functional.silu, torch.randn(4, 3), device="cpu")
    assert failed.first_failure.problem == "exception" and "not yet" in failed.first_failure.message


@CUDA
@pytest.mark.parametrize("dtype", DTYPES)
def test_on_cuda(dtype):
    assert check_function(SiLU, functional.silu, torch.randn(64, 256), dtype=dtype, device="cuda").passed
    assert not check_function(SiLUWrong, functional.silu, torch.randn(64, 256), dtype=dtype, device="cuda").passed


class Log(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.log()

    @staticmethod
    def backward(ctx, dout):
        (x,) = ctx.saved_tensors
        return dout / x


def test_draws_outside_the_references_domain_are_noted_not_failed():
    report = check_function(Log, torch.log, torch.rand(4, 3) + 0.5, dtype="float32", device="cpu")
    assert report.passed, report
    assert {c.step for c in report.checks} == {1}  # only the given, positive draw is in log's domain
    assert sum("not finite" in note for note in report.notes) == 2 * (len(DRAWS) - 1)  # float32 and float64
