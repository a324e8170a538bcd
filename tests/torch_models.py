"""Microcontroller backbones written in `torch.nn` (torchvision does not import with the
torch we test with), for the ONNX acceptance tests: MobileNetV2 and MobileNetV3-small as
torchvision builds them, EEGNet (Lawhern et al. 2018), a 2-layer ViT with a class token
and a small CNN with group, instance and explicit padding.

Every model's parameters and buffers can be set to distinct random values
(`randomize`), so that an exporter never merges equal initializers and a trained
parameter can be found in the ONNX file by its value.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's `_make_divisible`: round to a multiple of `divisor`, never more
    than 10 % down."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_bn(inp: int, out: int, kernel: int, stride: int = 1, groups: int = 1,
            activation: type[nn.Module] | None = nn.ReLU6) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(inp, out, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out),
    ]
    if activation is not None:
        layers.append(activation())
    return nn.Sequential(*layers)


# --------------------------------------------------------------------------------------
# MobileNetV2
# --------------------------------------------------------------------------------------


class InvertedResidual(nn.Module):
    def __init__(self, inp: int, out: int, stride: int, expand: int):
        super().__init__()
        hidden = round(inp * expand)
        self.residual = stride == 1 and inp == out
        layers = [conv_bn(inp, hidden, 1)] if expand != 1 else []
        layers += [
            conv_bn(hidden, hidden, 3, stride, groups=hidden),
            conv_bn(hidden, out, 1, activation=None),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    """torchvision's `mobilenet_v2(width_mult=...)`: 17 inverted residual blocks with
    ReLU6, a 1x1 conv to 1280 channels, average pool, dropout, linear."""

    SETTING = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
               (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, width_mult: float = 1.0, classes: int = 10):
        super().__init__()
        channels = make_divisible(32 * width_mult)
        last = make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [conv_bn(3, channels, 3, 2)]
        for expand, c, n, s in self.SETTING:
            out = make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(channels, out, s if i == 0 else 1, expand))
                channels = out
        features.append(conv_bn(channels, last, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


# --------------------------------------------------------------------------------------
# MobileNetV3-small
# --------------------------------------------------------------------------------------


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeeze: int):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = F.adaptive_avg_pool2d(x, 1)
        scale = F.hardsigmoid(self.fc2(F.relu(self.fc1(scale))))
        return scale * x


class Bneck(nn.Module):
    def __init__(self, inp: int, kernel: int, expanded: int, out: int, se: bool,
                 activation: type[nn.Module], stride: int):
        super().__init__()
        self.residual = stride == 1 and inp == out
        layers: list[nn.Module] = []
        if expanded != inp:
            layers.append(conv_bn(inp, expanded, 1, activation=activation))
        layers.append(conv_bn(expanded, expanded, kernel, stride, expanded, activation))
        if se:
            layers.append(SqueezeExcitation(expanded, make_divisible(expanded // 4)))
        layers.append(conv_bn(expanded, out, 1, activation=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


class MobileNetV3Small(nn.Module):
    """torchvision's `mobilenet_v3_small`: hardswish, squeeze-excitation with
    hardsigmoid, 11 bottlenecks, a 576-channel 1x1 conv, a 1024-wide classifier."""

    SETTING = [  # input, kernel, expanded, output, SE, activation, stride
        (16, 3, 16, 16, True, nn.ReLU, 2), (16, 3, 72, 24, False, nn.ReLU, 2),
        (24, 3, 88, 24, False, nn.ReLU, 1), (24, 5, 96, 40, True, nn.Hardswish, 2),
        (40, 5, 240, 40, True, nn.Hardswish, 1), (40, 5, 240, 40, True, nn.Hardswish, 1),
        (40, 5, 120, 48, True, nn.Hardswish, 1), (48, 5, 144, 48, True, nn.Hardswish, 1),
        (48, 5, 288, 96, True, nn.Hardswish, 2), (96, 5, 576, 96, True, nn.Hardswish, 1),
        (96, 5, 576, 96, True, nn.Hardswish, 1),
    ]

    def __init__(self, classes: int = 10):
        super().__init__()
        layers: list[nn.Module] = [conv_bn(3, 16, 3, 2, activation=nn.Hardswish)]
        layers += [Bneck(*setting) for setting in self.SETTING]
        layers.append(conv_bn(96, 576, 1, activation=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(576, 1024), nn.Hardswish(), nn.Dropout(0.2), nn.Linear(1024, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), 1)
        return self.classifier(torch.flatten(x, 1))


# --------------------------------------------------------------------------------------
# EEGNet
# --------------------------------------------------------------------------------------


class EEGNet(nn.Module):
    """EEGNet-8,2 (Lawhern et al. 2018) on (N, 1, channels, samples): a temporal conv,
    a depthwise spatial conv, ELU, average pool, dropout, a separable conv (depthwise
    temporal + pointwise), ELU, average pool, dropout, linear."""

    def __init__(self, channels: int = 8, samples: int = 128, classes: int = 4,
                 f1: int = 8, depth: int = 2, f2: int = 16, kernel: int = 64):
        super().__init__()
        self.temporal = nn.Conv2d(1, f1, (1, kernel), padding=(0, kernel // 2), bias=False)
        self.bn1 = nn.BatchNorm2d(f1)
        self.spatial = nn.Conv2d(f1, f1 * depth, (channels, 1), groups=f1, bias=False)
        self.bn2 = nn.BatchNorm2d(f1 * depth)
        self.pool1 = nn.AvgPool2d((1, 4))
        self.drop1 = nn.Dropout(0.5)
        self.separable_depthwise = nn.Conv2d(f1 * depth, f1 * depth, (1, 16),
                                             padding=(0, 8), groups=f1 * depth, bias=False)
        self.separable_pointwise = nn.Conv2d(f1 * depth, f2, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(f2)
        self.pool2 = nn.AvgPool2d((1, 8))
        self.drop2 = nn.Dropout(0.5)
        with torch.no_grad():
            features = self.features(torch.zeros(1, 1, channels, samples)).shape[1]
        self.classifier = nn.Linear(features, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn2(self.spatial(self.bn1(self.temporal(x))))
        x = self.drop1(self.pool1(F.elu(x)))
        x = self.bn3(self.separable_pointwise(self.separable_depthwise(x)))
        x = self.drop2(self.pool2(F.elu(x)))
        return torch.flatten(x, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


# --------------------------------------------------------------------------------------
# ViT
# --------------------------------------------------------------------------------------


class Attention(nn.Module):
    """Multi-head self-attention as timm writes it (one qkv projection)."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads)
        qkv = qkv.permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attention = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attention @ v).transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = Attention(dim, heads)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class ViT(nn.Module):
    """Patch embedding (a strided conv), a class token expanded to the batch, position
    embeddings, `depth` pre-norm blocks, the head on the class token."""

    def __init__(self, image: int = 32, patch: int = 8, dim: int = 32, depth: int = 2,
                 heads: int = 2, hidden: int = 64, classes: int = 10):
        super().__init__()
        self.embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.position = nn.Parameter(torch.zeros(1, (image // patch) ** 2 + 1, dim))
        self.blocks = nn.Sequential(*(Block(dim, heads, hidden) for _ in range(depth)))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x).flatten(2).transpose(1, 2)
        token = self.cls_token.expand(x.shape[0], -1, -1)
        x = torch.cat([token, x], dim=1) + self.position
        x = self.norm(self.blocks(x))
        return self.head(x[:, 0])


# --------------------------------------------------------------------------------------
# Group norm, instance norm and padding
# --------------------------------------------------------------------------------------


class NormPadNet(nn.Module):
    """The input rounded to quarters (frozen: nothing before it trains), reflect
    padding, conv, group norm, PReLU, constant padding, conv, instance norm, leaky relu,
    edge padding, conv, global max pool, linear."""

    def __init__(self, classes: int = 5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3)
        self.gn = nn.GroupNorm(2, 8)
        self.prelu = nn.PReLU(8)
        self.conv2 = nn.Conv2d(8, 12, 3, stride=2)
        self.instance = nn.InstanceNorm2d(12, affine=True)
        self.conv3 = nn.Conv2d(12, 16, 3)
        self.fc = nn.Linear(16, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.round(x * 4) / 4
        x = self.prelu(self.gn(self.conv1(F.pad(x, (1, 1, 2, 0), mode="reflect"))))
        x = self.conv2(F.pad(x, (0, 1, 1, 0), value=0.5))
        x = F.leaky_relu(self.instance(x), 0.1)
        x = self.conv3(F.pad(x, (1, 1, 1, 1), mode="replicate"))
        return self.fc(torch.flatten(F.adaptive_max_pool2d(x, 1), 1))


def randomize(model: nn.Module, seed: int) -> nn.Module:
    """Distinct random values for every parameter and buffer (batch-norm variances
    positive), in eval mode: batch norm uses its running statistics, dropout is off."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if not tensor.dtype.is_floating_point:
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith("running_mean") or name.endswith("bias"):
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=generator))
            elif "prelu" in name:
                tensor.copy_(0.25 + 0.05 * torch.randn(tensor.shape, generator=generator))
            elif tensor.ndim <= 1:  # norm scales
                tensor.copy_(1.0 + 0.1 * torch.randn(tensor.shape, generator=generator))
            else:
                fan_in = tensor[0].numel() if tensor.ndim > 1 else 1
                tensor.copy_(torch.randn(tensor.shape, generator=generator)
                             * (2.0 / fan_in) ** 0.5)
    return model.eval()
