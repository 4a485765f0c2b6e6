"""A 2-D convolution over a 1-channel input whose *input* gradient is fast on CPUs.

oneDNN, PyTorch's CPU convolution library, computes the gradient with respect to a 1-channel input
as a transposed convolution onto one channel, and pads that channel to a whole SIMD block (8 or 16
channels): for the MNIST CNN's first layer at batch 128 (20 maps of 24x24 back onto 1x28x28) it took
7.4-8 ms on the 2-core development VM with AVX-512 kernels and with AVX2 ones, eight times the forward
convolution. Training never needs that gradient,
but gradient attacks, adversarial training and DeepConfuse's pseudo-update do: DeepConfuse twice per
iteration, once through the surrogate's forward and once in the double backward of its weight
gradient (where it runs inside autograd's own convolution double backward, out of reach of any
option).

:class:`OneChannelConv2d` computes it as a batched matmul of the output gradient with the kernel (k*k
values per output pixel) and k*k shifted adds ("col2im"): 1.4-1.5 ms in isolation for that layer. It
keeps ``nn.Conv2d``'s parameters, initialisation and state dict, and takes its own path only when it
is needed and helps: a CPU input that requires a gradient, outside autocast. Everything else
(training on data, CUDA, ``vmap``, bf16 autocast) is the plain ``nn.Conv2d`` forward. The forward
and the weight gradient stay oneDNN's.
The weight gradient is a function of its own, so that its gradient with respect to the input (the
double-backward term) is computed the same fast way; every backward is built from differentiable
operations, so gradients of any order are exact. The two gradients are separate graph nodes, so a
backward pass computes only the one it needs, as ``nn.Conv2d`` does. Timed against ``nn.Conv2d`` in
``benchmarks/test_one_channel_conv.py``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class _ColumnsToImage(torch.autograd.Function):
    """image[n, s*i + a, s*j + b] += columns[n, a*k + b, i, j]: the shifted adds of col2im, in place on one
    buffer. Its adjoint is ``F.unfold``, which is differentiable, so higher-order gradients follow."""

    @staticmethod
    def forward(columns, kernel, stride, size):
        n, _, h, w = columns.shape
        (kh, kw), (sh, sw) = kernel, stride
        image = columns.new_zeros(n, *size)
        columns = columns.view(n, kh, kw, h, w)
        for a in range(kh):
            for b in range(kw):
                image[:, a : a + sh * (h - 1) + 1 : sh, b : b + sw * (w - 1) + 1 : sw] += columns[:, a, b]
        return image.unsqueeze(1)

    @staticmethod
    def setup_context(ctx, inputs, output):
        columns, ctx.kernel, ctx.stride, _ = inputs
        ctx.columns_shape = columns.shape

    @staticmethod
    def backward(ctx, grad):
        columns = F.unfold(grad, ctx.kernel, stride=ctx.stride)
        return columns.view(ctx.columns_shape), None, None, None


def input_gradient(grad_out: torch.Tensor, weight: torch.Tensor, stride, padding, input_size) -> torch.Tensor:
    """∂L/∂x of ``conv2d(x, weight)`` for a 1-channel x: matmul into k*k columns, then col2im and unpad."""
    n, c, h, w = grad_out.shape
    kh, kw = weight.shape[-2:]
    (ph, pw), (height, width) = padding, input_size
    taps = weight.reshape(c, kh * kw).t().expand(n, kh * kw, c)
    columns = torch.bmm(taps, grad_out.reshape(n, c, h * w)).view(n, kh * kw, h, w)
    image = _ColumnsToImage.apply(columns, (kh, kw), stride, (height + 2 * ph, width + 2 * pw))
    return image[..., ph : ph + height, pw : pw + width]


class _WeightGradient(torch.autograd.Function):
    """∂L/∂w from (x, ∂L/∂out) by oneDNN; its own backward gives the double-backward terms: w.r.t. x the
    fast :func:`input_gradient`, w.r.t. ∂L/∂out the forward convolution of x with the incoming gradient."""

    @staticmethod
    def forward(x, grad_out, weight, stride, padding):
        return torch.ops.aten.convolution_backward(grad_out, x, weight, None, stride, padding, (1, 1), False,
                                                   (0, 0), 1, (False, True, False))[1]

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, grad_out, _, ctx.stride, ctx.padding = inputs
        ctx.save_for_backward(x, grad_out)

    @staticmethod
    def backward(ctx, grad_weight_grad):
        x, grad_out = ctx.saved_tensors
        dx = dgrad_out = None
        if ctx.needs_input_grad[0]:
            dx = input_gradient(grad_out, grad_weight_grad, ctx.stride, ctx.padding, x.shape[-2:])
        if ctx.needs_input_grad[1]:
            dgrad_out = F.conv2d(x, grad_weight_grad, stride=ctx.stride, padding=ctx.padding)
        return dx, dgrad_out, None, None, None


class _Captured:
    """A tensor handed to a Function as a plain object: the Function gets no autograd edge to it, yet its
    backward can use it with its graph intact (see :class:`OneChannelConv2d`). In-place changes after
    the forward are refused, as autograd refuses them for saved tensors."""

    __slots__ = ("tensor", "version")

    def __init__(self, tensor: torch.Tensor):
        self.tensor, self.version = tensor, tensor._version

    def get(self) -> torch.Tensor:
        if self.tensor._version != self.version:
            raise RuntimeError("a OneChannelConv2d input or weight was modified in place after the forward pass")
        return self.tensor


class _WeightPath(torch.autograd.Function):
    """conv2d(x, weight, bias), differentiable in weight and bias only (x is captured, not an input)."""

    @staticmethod
    def forward(x, weight, bias, stride, padding):
        return F.conv2d(x.tensor, weight, bias, stride, padding)

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.x, weight, bias, ctx.stride, ctx.padding = inputs
        ctx.has_bias = bias is not None
        ctx.save_for_backward(weight)

    @staticmethod
    def backward(ctx, grad_out):
        (weight,) = ctx.saved_tensors
        dweight = dbias = None
        if ctx.needs_input_grad[1]:
            dweight = _WeightGradient.apply(ctx.x.get(), grad_out, weight, ctx.stride, ctx.padding)
        if ctx.has_bias and ctx.needs_input_grad[2]:
            dbias = grad_out.sum((0, 2, 3))
        return None, dweight, dbias, None, None


class _InputPath(torch.autograd.Function):
    """A zero of the output's shape, differentiable in x only: its backward is the fast input gradient
    (with the captured weight, so that gradient stays differentiable in the weight)."""

    @staticmethod
    def forward(x, weight, shape, stride, padding):
        return x.new_zeros(()).expand(shape)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, ctx.weight, _, ctx.stride, ctx.padding = inputs
        ctx.input_size = x.shape[-2:]

    @staticmethod
    def backward(ctx, grad_out):
        dx = input_gradient(grad_out, ctx.weight.get(), ctx.stride, ctx.padding, ctx.input_size)
        return dx, None, None, None, None


class OneChannelConv2d(nn.Conv2d):
    """``nn.Conv2d(1, out_channels, ...)`` (zero padding, no dilation or groups) with the fast CPU input
    gradient above; same parameters, initialisation and state dict."""

    def __init__(self, out_channels: int, kernel_size, stride=1, padding=0, bias: bool = True):
        if isinstance(padding, str):
            raise ValueError(f"OneChannelConv2d needs numeric padding, not {padding!r}")
        super().__init__(1, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (x.requires_grad and x.device.type == "cpu") or torch.is_autocast_enabled("cpu"):
            return super().forward(x)  # autocast's dtype casts live in the native graph only
        stride, padding = self.stride, self.padding  # nn.Conv2d keeps both as pairs
        # Two graph nodes, one per gradient, joined by an add: autograd then skips whichever one a
        # backward pass does not need (a single Python Function would compute both every time).
        out = _WeightPath.apply(_Captured(x), self.weight, self.bias, stride, padding)
        return out + _InputPath.apply(x, _Captured(self.weight), out.shape, stride, padding)


def conv2d(cin: int, cout: int, kernel: int, padding: int = 0, bias: bool = True) -> nn.Conv2d:
    """``nn.Conv2d``, or :class:`OneChannelConv2d` (the same layer, faster input gradient) when ``cin`` is 1."""
    if cin == 1:
        return OneChannelConv2d(cout, kernel, padding=padding, bias=bias)
    return nn.Conv2d(cin, cout, kernel, padding=padding, bias=bias)
