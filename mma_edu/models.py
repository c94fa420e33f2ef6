"""The paper's models (§5 of the notes), with the parameter names of the released checkpoints.

- :class:`LeNet5Madry` — MNIST: two 5×5 convolutions and two linear layers
  (3,274,634 parameters; keys conv1, conv2, linear1, linear2).
- :func:`cifar10_wrn28_4` — CIFAR10: ``nn.Sequential(PerImageStandardization(),
  WideResNet(28, 4))`` (5,849,050 parameters; every key starts with ``1.``).
- :class:`MLP` — a small fully connected net for the 2-D toys.

All models map inputs in [0, 1] to logits (N, num_classes).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
import torch.nn.functional as F


class LeNet5Madry(nn.Module):
    """The MNIST model of Madry et al. used by the paper: (N, 1, 28, 28) -> (N, 10)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.linear1 = nn.Linear(7 * 7 * 64, 1024)
        self.linear2 = nn.Linear(1024, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        # conv → ReLU → 2×2 max-pool, computed as pool then ReLU: ReLU is monotone, so
        # the two orders give bitwise the same values and gradients, and this one
        # applies ReLU to 4× fewer elements.
        x = F.relu(F.max_pool2d(self.conv1(x), 2))
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        x = F.relu(self.linear1(x.flatten(1)))
        return self.linear2(x)


class SmallCNN(nn.Module):
    """LeNet5-Madry's shape at a fraction of its width, for CPU demos and tests: (N, C, 28, 28) -> (N, 10).

    conv 5×5 ``width`` → pool → conv 5×5 2·``width`` → pool → linear → ``hidden`` → linear.
    """

    def __init__(self, width: int = 8, hidden: int = 64, num_classes: int = 10, in_channels: int = 1,
                 image_size: int = 28):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 5, padding=2)
        self.conv2 = nn.Conv2d(width, 2 * width, 5, padding=2)
        self.linear1 = nn.Linear(2 * width * (image_size // 4) ** 2, hidden)
        self.linear2 = nn.Linear(hidden, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))  # = pool(ReLU(·)), see LeNet5Madry
        x = F.relu(F.max_pool2d(self.conv2(x), 2))
        return self.linear2(F.relu(self.linear1(x.flatten(1))))


class PerImageStandardization(nn.Module):
    """(x − mean(x)) / max(std(x), 1/√numel(x)) per image, as TensorFlow's per_image_standardization.

    Shapes: (N, C, H, W) -> (N, C, H, W). Uses the unbiased std, as the reference does.
    """

    def forward(self, x: Tensor) -> Tensor:
        flat = x.flatten(1)
        mean = flat.mean(dim=1)
        std = flat.std(dim=1).clamp_min(1.0 / math.sqrt(flat.shape[1]))
        shape = (-1,) + (1,) * (x.dim() - 1)
        return (x - mean.view(shape)) / std.view(shape)


class _BasicBlock(nn.Module):
    """Pre-activation residual block: BN-ReLU-conv3×3-BN-ReLU-conv3×3 (+ 1×1 shortcut when shapes change)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.equal_in_out = c_in == c_out and stride == 1
        self.conv_shortcut = None if self.equal_in_out else nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(x))
        # When the shape changes the shortcut starts from the pre-activated input.
        shortcut = x if self.conv_shortcut is None else self.conv_shortcut(out)
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class _ConvGroup(nn.Module):
    def __init__(self, n_blocks: int, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.layer = nn.Sequential(
            *[_BasicBlock(c_in if i == 0 else c_out, c_out, stride if i == 0 else 1) for i in range(n_blocks)]
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)


class WideResNet(nn.Module):
    """WideResNet-depth-widen_factor (Zagoruyko & Komodakis), pre-activation, no dropout.

    (N, 3, H, W) -> (N, num_classes). depth must be 6n + 4.
    """

    def __init__(self, depth: int = 28, widen_factor: int = 4, num_classes: int = 10, in_channels: int = 3):
        super().__init__()
        if depth < 10 or (depth - 4) % 6:
            raise ValueError(f"depth must be 6n + 4 with n >= 1 (10, 16, 22, 28, ...), got {depth}")
        if widen_factor < 1:
            raise ValueError(f"widen_factor must be >= 1, got {widen_factor}")
        n = (depth - 4) // 6
        widths = [16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False)
        self.convgroup1 = _ConvGroup(n, widths[0], widths[1], 1)
        self.convgroup2 = _ConvGroup(n, widths[1], widths[2], 2)
        self.convgroup3 = _ConvGroup(n, widths[2], widths[3], 2)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                k = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / k))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(x)
        out = self.convgroup3(self.convgroup2(self.convgroup1(out)))
        out = F.relu(self.bn1(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.fc(out)


def cifar10_wrn28_4(num_classes: int = 10) -> nn.Sequential:
    """The paper's CIFAR10 model: per-image standardization then WideResNet-28-4 (keys ``1.*``)."""
    return nn.Sequential(PerImageStandardization(), WideResNet(28, 4, num_classes))


class MLP(nn.Module):
    """A small ReLU network for 2-D toys: (N, in_dim) -> (N, num_classes)."""

    def __init__(self, in_dim: int = 2, hidden: int = 64, depth: int = 2, num_classes: int = 2):
        super().__init__()
        if depth < 1 or hidden < 1:
            raise ValueError(f"depth and hidden must be >= 1, got depth={depth}, hidden={hidden}")
        layers: list[nn.Module] = []
        d = in_dim
        for _ in range(depth):
            layers += [nn.Linear(d, hidden), nn.ReLU()]
            d = hidden
        layers.append(nn.Linear(d, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Linear(nn.Module):
    """A multiclass linear model z = W x + b on flattened inputs: (N, ...) -> (N, num_classes).

    Its exact margins are known in closed form (:func:`mma_edu.margins.linear_margins`).
    """

    def __init__(self, in_dim: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(in_dim, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(x.flatten(1))


MODELS = {
    "lenet5_madry": LeNet5Madry,
    "cifar10_wrn28_4": cifar10_wrn28_4,
    "small_cnn": SmallCNN,
    "mlp": MLP,
}


def build_model(name: str, **kwargs) -> nn.Module:
    """Build a model by name: one of :data:`MODELS`."""
    if name not in MODELS:
        raise ValueError(f"model must be one of {tuple(MODELS)!r}, got {name!r}")
    model = MODELS[name](**kwargs)
    # Checkpoints record how to rebuild the model.
    model._mma_edu_spec = {"name": name, "kwargs": dict(kwargs)}
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
