"""Bound propagation for ReLU networks: what a perturbation of size ε can do to the logits, *proved*.

A ReLU network is a chain of affine maps with ReLUs between them:

    z_1 = W_1 x + b_1,   a_k = ReLU(z_k),   z_{k+1} = W_{k+1} a_k + b_{k+1},   logits = z_K.

- :func:`relu_network` — turn a PyTorch model built from supported layers into
  that list of (W_k, b_k) (float64; convolutions become matrices).
- :func:`layer_bounds` — lower and upper bounds l_k ≤ z_k ≤ u_k of every
  pre-activation over an input set (the ℓ∞ box of radius ε intersected with
  the valid box, or the ℓ2 ball), by interval bound propagation ("ibp") or by
  a CROWN-style backward linear relaxation ("crown"), and an upper bound of
  z_j − z_y for every class j.
- :func:`certified_margins` — the largest ε at which those bounds prove that
  no perturbation changes the decision (bisection on ε): a lower bound of the
  true margin.

Why our own code and not auto_LiRPA: its only PyPI release (0.3) pins
torch < 1.13 and torchvision < 0.14 and pulls pytest, pylint and ninja in as
run-time dependencies, so it does not install beside torch 2.x. What this
course needs — IBP and CROWN for fully connected and small convolutional ReLU
chains — fits in this module.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import norms
from .attacks._common import Clip, check_batch, check_count, check_not_empty, eval_mode
from .losses import is_correct

SUPPORTED = (
    "nn.Linear, nn.Conv2d, nn.ReLU (or F.relu, torch.relu, x.relu()), nn.Flatten (or x.flatten(1), "
    "torch.flatten(x, 1)), nn.Identity, nn.Dropout (eval mode), and containers of them such as nn.Sequential, "
    "mma_edu.models.MLP and mma_edu.models.Linear"
)
METHODS = ("ibp", "crown")
# Largest dense matrix a convolution may become (rows x columns): ~400 MB in float64.
_MAX_CONV_ENTRIES = 50_000_000


@dataclass
class ReluNetwork:
    """z_1 = W_1 x + b_1, a_k = ReLU(z_k), z_{k+1} = W_{k+1} a_k + b_{k+1}; logits z_K. All float64.

    ``weights[k]`` has shape (n_{k+1}, n_k) with n_0 = the number of input
    features; ``input_shape`` is the shape of one example, e.g. (1, 28, 28).
    """

    weights: list[Tensor]
    biases: list[Tensor]
    input_shape: tuple[int, ...]

    @property
    def widths(self) -> list[int]:
        """Hidden widths n_1 .. n_{K-1} (the ReLU layers)."""
        return [w.shape[0] for w in self.weights[:-1]]

    def pre_activations(self, x: Tensor) -> list[Tensor]:
        """z_1 .. z_K for inputs x (N, *input_shape) or (N, n_0): a list of (N, n_k) float64 tensors."""
        a = x.reshape(x.shape[0], -1).double()
        out = []
        for w, b in zip(self.weights, self.biases):
            z = a @ w.T + b
            out.append(z)
            a = z.clamp_min(0)
        return out

    def __call__(self, x: Tensor) -> Tensor:
        """Logits (N, C) in float64."""
        return self.pre_activations(x)[-1]


@contextmanager
def one_thread():
    """Run torch's CPU ops on one thread for a while (restored after).

    Why: bound propagation is thousands of tiny matrix products; extra threads
    only add synchronisation, and on a busy machine their spin-waiting made
    the same computation up to 50x slower (measured on 2 shared cores).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ----------------------------------------------------------------------------
# Model -> list of affine layers
# ----------------------------------------------------------------------------

def _unsupported(what: str) -> ValueError:
    return ValueError(f"unsupported layer {what}: exact and certified margins handle ReLU networks built from "
                      f"{SUPPORTED}")


def _conv_matrix(conv: nn.Conv2d, shape: tuple[int, ...]) -> tuple[Tensor, Tensor, tuple[int, ...]]:
    """The convolution as a dense matrix: apply it to every basis image (why: it is linear, so that's all of it)."""
    if len(shape) != 3:
        raise ValueError(f"layer {conv!r} needs (C, H, W) inputs, but it receives shape {shape}")
    if conv.padding_mode != "zeros":
        raise _unsupported(f"{conv!r} (padding_mode {conv.padding_mode!r}; only 'zeros')")
    n_in = math.prod(shape)
    w = conv.weight.detach().double().cpu()
    with torch.no_grad():
        probe = F.conv2d(torch.zeros(1, *shape, dtype=torch.float64), w, None, conv.stride, conv.padding,
                         conv.dilation, conv.groups)
        out_shape = tuple(probe.shape[1:])
        if n_in * probe.numel() > _MAX_CONV_ENTRIES:
            raise ValueError(f"layer {conv!r} on inputs {shape} would be a {probe.numel()} x {n_in} matrix; exact "
                             "margins are for small networks")
        basis = torch.eye(n_in, dtype=torch.float64).reshape(n_in, *shape)
        cols = F.conv2d(basis, w, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    matrix = cols.reshape(n_in, -1).T.contiguous()
    bias = torch.zeros(out_shape, dtype=torch.float64)
    if conv.bias is not None:
        bias += conv.bias.detach().double().cpu().view(-1, 1, 1)
    return matrix, bias.reshape(-1), out_shape


def _flatten_start(node) -> int | None:
    """start_dim of a flatten call (None if it is not a flatten of all non-batch dimensions)."""
    args = list(node.args[1:])
    start = node.kwargs.get("start_dim", args[0] if args else 0)
    end = node.kwargs.get("end_dim", args[1] if len(args) > 1 else -1)
    return start if end == -1 else None


def relu_network(model: nn.Module, input_shape: tuple[int, ...]) -> ReluNetwork:
    """Read ``model`` as a chain of affine layers and ReLUs (traced with torch.fx).

    Supported: see :data:`SUPPORTED`. Consecutive affine maps (a convolution,
    a flatten and a linear layer with no ReLU between) are multiplied into one.
    Anything else — max-pooling, batch norm, residual additions, other
    activations — is a ValueError naming the layer.

    Args:
        model: maps (N, *input_shape) to logits (N, C).
        input_shape: the shape of one example, e.g. (1, 28, 28) or (2,).
    """
    import torch.fx

    try:
        graph = torch.fx.symbolic_trace(model)
    except Exception as err:  # any tracing failure means the model is not a plain chain
        raise ValueError(f"cannot read {type(model).__name__} as a chain of layers with torch.fx ({err}); "
                         f"exact and certified margins handle {SUPPORTED}") from err
    shape = tuple(int(s) for s in input_shape)
    weights: list[Tensor] = []
    biases: list[Tensor] = []
    pending: tuple[Tensor, Tensor] | None = None  # the affine map since the last ReLU (None: identity)
    current = None

    def compose(w: Tensor, b: Tensor) -> None:
        nonlocal pending
        pending = (w, b) if pending is None else (w @ pending[0], w @ pending[1] + b)

    def flush() -> None:
        nonlocal pending
        n = math.prod(shape)
        if pending is None:  # two ReLUs in a row, or one right after the input: an identity layer
            pending = (torch.eye(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64))
        weights.append(pending[0])
        biases.append(pending[1])
        pending = None

    for node in graph.graph.nodes:
        if node.op == "placeholder":
            if current is not None:
                raise ValueError(f"{type(model).__name__} takes more than one input; only x -> logits is supported")
            current = node
            continue
        if node.op == "output":
            if node.args[0] is not current:
                raise _unsupported(f"output {node.args[0]!r} (the model must return the last layer's logits)")
            break
        if node.op == "get_attr":
            raise _unsupported(f"{node.target!r} (a parameter used directly in forward)")
        if list(node.all_input_nodes) != [current]:
            raise _unsupported(f"{node.name!r} ({node.op} {getattr(node.target, '__name__', node.target)!r}): "
                               "the model is not a simple chain")
        kind = None
        if node.op == "call_module":
            mod = graph.get_submodule(node.target)
            name = f"{node.target!r} ({type(mod).__name__})"
            if isinstance(mod, nn.Linear):
                if len(shape) != 1 or shape[0] != mod.in_features:
                    raise ValueError(f"layer {name} expects {mod.in_features} features but receives shape {shape}; "
                                     "flatten before it")
                compose(mod.weight.detach().double().cpu(),
                        mod.bias.detach().double().cpu() if mod.bias is not None
                        else torch.zeros(mod.out_features, dtype=torch.float64))
                shape = (mod.out_features,)
            elif isinstance(mod, nn.Conv2d):
                w, b, shape_out = _conv_matrix(mod, shape)
                compose(w, b)
                shape = shape_out
            elif isinstance(mod, nn.ReLU):
                kind = "relu"
            elif isinstance(mod, nn.Flatten):
                if mod.start_dim != 1 or mod.end_dim != -1:
                    raise _unsupported(f"{name} with start_dim={mod.start_dim}, end_dim={mod.end_dim}")
                kind = "flatten"
            elif isinstance(mod, (nn.Identity, nn.Dropout)):
                pass  # identity in eval mode
            else:
                raise _unsupported(name)
        elif node.op == "call_function":
            fn = node.target
            if fn in (F.relu, torch.relu):
                kind = "relu"
            elif fn is torch.flatten and _flatten_start(node) == 1:
                kind = "flatten"
            else:
                raise _unsupported(f"{node.name!r} (function {getattr(fn, '__name__', fn)!r})")
        elif node.op == "call_method":
            if node.target == "relu":
                kind = "relu"
            elif node.target == "flatten" and _flatten_start(node) == 1:
                kind = "flatten"
            else:
                raise _unsupported(f"{node.name!r} (method .{node.target}())")
        if kind == "relu":
            flush()
        elif kind == "flatten":
            shape = (math.prod(shape),)
        current = node

    if len(shape) != 1:
        raise ValueError(f"the model must end with logits of shape (C,) per example, its last layer gives {shape}")
    flush()
    return ReluNetwork(weights, biases, tuple(int(s) for s in input_shape))


def checked_network(model: nn.Module, x: Tensor) -> ReluNetwork:
    """:func:`relu_network` for inputs like x (N, ...), checked to reproduce ``model``'s logits on x.

    Why the check: a converter that silently misreads a layer would give
    wrong bounds; comparing logits catches it before any bound is computed.
    """
    net = relu_network(model, tuple(x.shape[1:]))
    with eval_mode(model), torch.no_grad():
        want = model(x).double().cpu()
    got = net(x.cpu())
    scale = 1.0 + want.abs().max().item()
    err = (want - got).abs().max().item() if want.numel() else 0.0
    tol = (1e-4 if x.dtype in (torch.float32, torch.float16, torch.bfloat16) else 1e-9) * scale
    if got.shape != want.shape or err > tol:
        raise RuntimeError(f"the network read from {type(model).__name__} does not reproduce its logits "
                           f"(max difference {err:.3g}); please report this model")
    return net


# ----------------------------------------------------------------------------
# Bounds
# ----------------------------------------------------------------------------

@dataclass
class InputSet:
    """The inputs a perturbation can reach, per example: the ℓ∞ box or the ℓ2 ball of radius ε around x.

    For ℓ∞ the box is intersected with ``clip`` (still a box: [lo, hi]). For ℓ2
    the ball is used alone (why: ball ∩ box has no closed-form support
    function; the ball contains it, so the bounds stay sound, only looser).
    Shapes: x, lo, hi (N, n_0); eps (N,).
    """

    x: Tensor
    eps: Tensor
    norm: str
    lo: Tensor | None = None
    hi: Tensor | None = None

    @classmethod
    def around(cls, x: Tensor, eps: Tensor, norm: str, clip: Clip) -> "InputSet":
        x = x.reshape(x.shape[0], -1).double()
        eps = eps.double().reshape(-1)
        if norm == "l2":
            return cls(x, eps, norm)
        lo, hi = x - eps[:, None], x + eps[:, None]
        if clip is not None:
            lo, hi = lo.clamp_min(clip[0]), hi.clamp_max(clip[1])
        return cls(x, eps, norm, lo, hi)

    def upper(self, a: Tensor, c: Tensor) -> Tensor:
        """max over the set of A x + c, per row: A (N, m, n_0), c (N, m) -> (N, m).

        ℓ∞ box: A·mid + |A|·rad. ℓ2 ball: A·x + ε‖A_row‖₂ — the dual norm of each coefficient row.
        """
        if self.norm == "l2":
            return torch.einsum("nmi,ni->nm", a, self.x) + self.eps[:, None] * a.norm(dim=2) + c
        mid, rad = (self.hi + self.lo) / 2, (self.hi - self.lo) / 2
        return torch.einsum("nmi,ni->nm", a, mid) + torch.einsum("nmi,ni->nm", a.abs(), rad) + c


def _relaxation(l: Tensor, u: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Linear bounds of ReLU on [l, u]: d_low·z ≤ ReLU(z) ≤ d_up·z + c_up. Shapes (N, n) each.

    Unstable neurons (l < 0 < u): the upper line is the chord through (l, 0) and
    (u, u); the lower line is z or 0, whichever leaves less area (CROWN's choice).
    """
    active, unstable = l >= 0, (l < 0) & (u > 0)
    width = (u - l).clamp_min(torch.finfo(l.dtype).tiny)
    slope = torch.where(unstable, u / width, active.double())
    c_up = torch.where(unstable, -l * u / width, torch.zeros_like(l))
    d_low = torch.where(unstable, (u >= -l).double(), active.double())
    return d_low, slope, c_up


def _backward_upper(net: ReluNetwork, bounds: list[tuple[Tensor, Tensor]], k: int, a: Tensor, c: Tensor,
                    region: InputSet) -> Tensor:
    """Upper bound of A·a_{k-1} + c over the input set, by CROWN's backward pass through layers k-1 .. 1.

    ``a`` (N, m, n_{k-1}) holds the coefficients on the ReLU outputs a_{k-1}
    (k is the index into ``net.weights`` of the layer they feed, k ≥ 1), c (N, m).
    Each ReLU is replaced by its upper line where the coefficient is positive
    and its lower line where negative; each affine layer is substituted exactly.
    """
    for i in range(k - 1, -1, -1):
        d_low, d_up, c_up = _relaxation(*bounds[i])
        pos, neg = a.clamp_min(0), a.clamp_max(0)
        c = c + torch.einsum("nmj,nj->nm", pos, c_up)
        a = pos * d_up[:, None, :] + neg * d_low[:, None, :]
        c = c + a @ net.biases[i]
        a = a @ net.weights[i]
    return region.upper(a, c)


def _spec(y: Tensor, num_classes: int) -> Tensor:
    """Rows e_j − e_y for every class j (the row j = y is zero): (N, C, C)."""
    eye = torch.eye(num_classes, dtype=torch.float64)
    return eye[None, :, :] - eye[y][:, None, :]


def layer_bounds(net: ReluNetwork, x: Tensor, y: Tensor, eps: Tensor, *, norm: str, clip: Clip,
                 method: str = "crown") -> tuple[list[tuple[Tensor, Tensor]], Tensor]:
    """Bounds of every hidden pre-activation and of z_j − z_y over the input set of radius eps.

    Args:
        net: the network; x (N, ...) inputs; y (N,) labels; eps (N,) radii.
        norm: "linf" or "l2"; clip: the valid box (used for ℓ∞), or None.
        method: "ibp" (intervals, layer by layer) or "crown" (backward linear
            relaxation for every layer, intersected with intervals).

    Returns:
        (bounds, spec_upper): bounds[k] = (l_k, u_k), each (N, n_k), for the
        hidden layers k = 1 .. K-1; spec_upper (N, C) upper bounds of
        z_j − z_y (0 at j = y). A negative entry proves that class j cannot
        overtake y anywhere in the set.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS!r}, got {method!r}")
    region = InputSet.around(x, eps, norm, clip)
    n = region.x.shape[0]
    bounds: list[tuple[Tensor, Tensor]] = []
    for k, (w, b) in enumerate(zip(net.weights, net.biases)):
        last = k == len(net.weights) - 1
        if last:  # fold the specification into the last layer: bound z_j − z_y directly (tighter)
            s = _spec(y.cpu(), w.shape[0])
            w_eff, b_eff = s @ w, s @ b  # (N, C, n_{K-1}), (N, C)
        else:
            w_eff, b_eff = w.expand(n, *w.shape), b.expand(n, *b.shape)
        if k == 0:  # the first layer is linear in x: exact bounds either way
            up = region.upper(w_eff, b_eff)
            low = -region.upper(-w_eff, -b_eff)
        else:
            l_prev, u_prev = bounds[-1]
            a_lo, a_hi = l_prev.clamp_min(0), u_prev.clamp_min(0)
            mid, rad = (a_hi + a_lo) / 2, (a_hi - a_lo) / 2
            centre = torch.einsum("nmj,nj->nm", w_eff, mid) + b_eff
            spread = torch.einsum("nmj,nj->nm", w_eff.abs(), rad)
            up, low = centre + spread, centre - spread
            if method == "crown":
                stacked = torch.cat([w_eff, -w_eff], dim=1)
                both = _backward_upper(net, bounds, k, stacked, torch.cat([b_eff, -b_eff], dim=1), region)
                m = w_eff.shape[1]
                up, low = torch.minimum(up, both[:, :m]), torch.maximum(low, -both[:, m:])
        if last:
            return bounds, up
        bounds.append((low, up))
    raise AssertionError("unreachable")


def unstable_fraction(bounds: list[tuple[Tensor, Tensor]]) -> Tensor:
    """Fraction of hidden ReLUs whose sign the bounds leave open (l < 0 < u), per example: (N,)."""
    if not bounds:
        return torch.zeros(0)
    flags = torch.cat([(l < 0) & (u > 0) for l, u in bounds], dim=1)
    return flags.double().mean(dim=1)


def certified_margins(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    *,
    norm: str = "linf",
    max_eps: float,
    method: str = "crown",
    tol: float | None = None,
    clip: Clip = (0.0, 1.0),
    batch_size: int = 32,
) -> Tensor:
    """Certified margins: the largest ε (up to ``tol``) at which bound propagation proves the decision holds.

    For each ε tested, :func:`layer_bounds` bounds z_j − z_y over every input
    the ε-ball (ℓ∞: intersected with ``clip``) can reach; if every class j ≠ y
    has a negative upper bound, no perturbation of that size changes the
    decision. Bisection on ε per example. Since the bounds are sound, the
    result is a **lower bound** of the true margin; how far below depends on
    the relaxation (CROWN is never looser than IBP on the first layers and
    usually much tighter after).

    Args:
        model: a ReLU network of supported layers (:data:`SUPPORTED`).
        x: inputs (N, ...); y: labels (N,).
        norm: "linf" or "l2"; max_eps: largest radius tested (> 0).
        method: "crown" or "ibp".
        tol: width of the final bisection bracket (default max_eps / 1000).
        clip: the valid input box, or None.
        batch_size: examples bounded together (memory grows with it).

    Returns:
        (N,) float64: 0 for misclassified examples, max_eps where certified
        at max_eps (the margin is at least that), else the bracket's lower end.
    """
    norms.check_norm(norm)
    check_batch(x, y, clip)
    check_not_empty(x.shape[0], "x")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS!r}, got {method!r}")
    if not (isinstance(max_eps, (int, float)) and math.isfinite(max_eps) and max_eps > 0):
        raise ValueError(f"max_eps must be a positive number, got {max_eps!r}")
    check_count(batch_size, "batch_size", 1)
    tol = max_eps / 1000 if tol is None else tol
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    with one_thread():
        return _certified(checked_network(model, x), x.detach().cpu(), y.cpu(), norm, float(max_eps), method, tol,
                          clip, batch_size)


def _certified(net: ReluNetwork, x: Tensor, y: Tensor, norm: str, max_eps: float, method: str, tol: float,
               clip: Clip, batch_size: int) -> Tensor:
    """The bisection of :func:`certified_margins` (arguments checked, tensors on the CPU)."""
    correct = is_correct(net(x), y)
    out = torch.zeros(x.shape[0], dtype=torch.float64)
    steps = max(0, math.ceil(math.log2(max_eps / tol)))
    for start in range(0, x.shape[0], batch_size):
        sl = slice(start, start + batch_size)
        xb, yb = x[sl], y[sl]

        def proved(eps: Tensor) -> Tensor:
            _, spec_up = layer_bounds(net, xb, yb, eps, norm=norm, clip=clip, method=method)
            spec_up = spec_up.scatter(1, yb[:, None], -math.inf)  # z_y − z_y is not a rival
            return (spec_up < 0).all(dim=1)

        lo = torch.zeros(xb.shape[0], dtype=torch.float64)
        hi = torch.full_like(lo, float(max_eps))
        done = proved(hi)
        lo[done] = max_eps
        for _ in range(steps):
            mid = (lo + hi) / 2
            ok = proved(mid)
            lo = torch.where(ok & ~done, mid, lo)
            hi = torch.where(ok | done, hi, mid)
        out[sl] = torch.where(correct[sl], lo, torch.zeros_like(lo))
    return out
