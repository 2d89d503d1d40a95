"""HyperDETR in PyTorch (training and export side only).

Architecture (Apple ML Research, "On-device Panoptic Segmentation for Camera
Using Transformers", 2021; DETR: Carion et al., "End-to-End Object Detection
with Transformers", ECCV 2020):

- a MobileNet backbone gives a feature pyramid (strides 2…32);
- a DETR transformer encoder/decoder over the stride-32 features with N object
  queries (seed: 4) returns every decoder layer's output, so every layer can be
  supervised (auxiliary losses) and trailing layers pruned at export;
- a U-Net-like convolutional decoder turns the pyramid into a 16-channel map at
  output resolution;
- *dynamic head*: each query's decoder output is mapped to the 16 weights and
  the bias of a 1×1 convolution over that map — one mask per query for the cost
  of one dot product per pixel, so the cost stays flat as N grows;
- scene-level categories (sky, hair, skin, teeth, glasses) are static 1×1
  channels of the conv path and need no transformer.

``DetrPanopticHead`` is DETR's batched mask head (attention maps + FPN conv
stack run once per query), kept as the comparison baseline for the scaling
benchmark only.

Forward passes are export-friendly (DESIGN.md §4.7): tensors in, a tuple of
tensors out, no dicts and no per-image Python loops.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from camseg.contract import IMAGENET_MEAN, IMAGENET_STD, SCENE_CATEGORIES, THING_CATEGORIES
from camseg.train.backbones import build_backbone


@dataclass(frozen=True)
class HyperDetrConfig:
    """Hyper-parameters of a HyperDETR model (serialised into checkpoints)."""

    backbone: str = "mobilenet_v2"
    backbone_width: float = 1.5  # only for mobilenet_v3_large
    hidden_dim: int = 128
    num_heads: int = 8
    ffn_dim: int = 512
    encoder_layers: int = 3
    decoder_layers: int = 6
    num_queries: int = 4
    mask_channels: int = 16
    scene_categories: tuple = SCENE_CATEGORIES
    thing_categories: tuple = THING_CATEGORIES
    mask_head: str = "hyper"  # "hyper" (dynamic 1×1 conv) or "detr" (baseline, benchmark only)
    #: Position terms the dynamic head may use: 0, or 5 for x, y, x², y², xy (see DynamicMaskHead).
    mask_coords: int = 5

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "HyperDetrConfig":
        data = dict(data)
        data.setdefault("mask_coords", 0)  # checkpoints from before the field had no position terms
        for key in ("scene_categories", "thing_categories"):
            if key in data:
                data[key] = tuple(data[key])
        return cls(**data)


# --------------------------------------------------------------------------- transformer


def sine_position_encoding(height: int, width: int, dim: int, device=None) -> torch.Tensor:
    """DETR's normalised 2-D sine position encoding, shape (H*W, dim).

    Coordinates are normalised to [0, 2π] so a model trained at one input size
    sees the same encoding range at another.
    """
    half = dim // 2
    y = (torch.arange(height, dtype=torch.float32, device=device) + 0.5) / height * 2 * math.pi
    x = (torch.arange(width, dtype=torch.float32, device=device) + 0.5) / width * 2 * math.pi
    dim_t = torch.arange(half, dtype=torch.float32, device=device)
    dim_t = 10000 ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / half)
    pos_y = y[:, None] / dim_t  # H × half
    pos_x = x[:, None] / dim_t  # W × half
    pos_y = torch.stack((pos_y[:, 0::2].sin(), pos_y[:, 1::2].cos()), dim=2).flatten(1)
    pos_x = torch.stack((pos_x[:, 0::2].sin(), pos_x[:, 1::2].cos()), dim=2).flatten(1)
    pos = torch.cat((pos_y[:, None, :].expand(height, width, half),
                     pos_x[None, :, :].expand(height, width, half)), dim=2)
    return pos.reshape(height * width, dim)


class Attention(nn.Module):
    """Multi-head scaled dot-product attention written with plain matmuls (clean ONNX export)."""

    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, query, key, value):
        b, lq, d = query.shape
        lk = key.shape[1]
        h = self.heads
        q = self.q(query).reshape(b, lq, h, d // h).transpose(1, 2)  # B,h,Lq,dh
        k = self.k(key).reshape(b, lk, h, d // h).transpose(1, 2)
        v = self.v(value).reshape(b, lk, h, d // h).transpose(1, 2)
        attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // h), dim=-1)
        return self.out((attn @ v).transpose(1, 2).reshape(b, lq, d))


class EncoderLayer(nn.Module):
    """DETR post-norm encoder layer; position encodings are added to queries and keys only."""

    def __init__(self, dim, heads, ffn):
        super().__init__()
        self.attn = Attention(dim, heads)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(inplace=True), nn.Linear(ffn, dim))
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)

    def forward(self, x, pos):
        qk = x + pos
        x = self.norm1(x + self.attn(qk, qk, x))
        return self.norm2(x + self.ffn(x))


class DecoderLayer(nn.Module):
    """DETR post-norm decoder layer: query self-attention, cross-attention to memory, FFN."""

    def __init__(self, dim, heads, ffn):
        super().__init__()
        self.self_attn = Attention(dim, heads)
        self.cross_attn = Attention(dim, heads)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(inplace=True), nn.Linear(ffn, dim))
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, tgt, query_pos, memory, pos):
        q = tgt + query_pos
        tgt = self.norm1(tgt + self.self_attn(q, q, tgt))
        tgt = self.norm2(tgt + self.cross_attn(tgt + query_pos, memory + pos, memory))
        return self.norm3(tgt + self.ffn(tgt))


class Transformer(nn.Module):
    """DETR encoder/decoder returning every decoder layer's (normalised) output."""

    def __init__(self, dim, heads, ffn, encoder_layers, decoder_layers, num_queries):
        super().__init__()
        self.encoder = nn.ModuleList(EncoderLayer(dim, heads, ffn) for _ in range(encoder_layers))
        self.decoder = nn.ModuleList(DecoderLayer(dim, heads, ffn) for _ in range(decoder_layers))
        self.decoder_norm = nn.LayerNorm(dim)
        self.query_embed = nn.Embedding(num_queries, dim)

    def forward(self, src, pos):
        """src, pos: (B, L, dim). Returns (memory (B, L, dim), hs (layers, B, N, dim))."""
        memory = src
        for layer in self.encoder:
            memory = layer(memory, pos)
        b = src.shape[0]
        query_pos = self.query_embed.weight.unsqueeze(0).expand(b, -1, -1)
        tgt = torch.zeros_like(query_pos)
        outputs = []
        for layer in self.decoder:
            tgt = layer(tgt, query_pos, memory, pos)
            outputs.append(self.decoder_norm(tgt))
        return memory, torch.stack(outputs)


# --------------------------------------------------------------------------- conv decoder


class ResidualBlock(nn.Module):
    """Two 3×3 conv-BN layers with an identity shortcut (He et al., CVPR 2016)."""

    def __init__(self, channels):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(x + self.bn2(self.conv2(y)), inplace=True)


class UNetDecoder(nn.Module):
    """U-Net-like decoder: stride 32 → full resolution with skip connections.

    Channels shrink as resolution grows (96, 64, 48, 32, 16), which keeps the
    full-resolution stages cheap; the last stage also sees the input image so
    mask edges can follow image edges at full resolution.
    """

    WIDTHS = (96, 64, 48, 32)

    def __init__(self, in_channels, out_channels=16):
        super().__init__()
        c2, c4, c8, c16, c32 = in_channels
        w16, w8, w4, w2 = self.WIDTHS
        self.top = nn.Conv2d(c32, w16, 1)
        self.stages = nn.ModuleList()
        for cin, skip, cout in ((w16, c16, w16), (w16, c8, w8), (w8, c4, w4), (w4, c2, w2)):
            self.stages.append(nn.ModuleDict({
                "reduce": nn.Conv2d(cin, cout, 1, bias=False),
                "lateral": nn.Conv2d(skip, cout, 1, bias=False),
                "block": ResidualBlock(cout),
            }))
        self.full_reduce = nn.Conv2d(w2, out_channels, 1, bias=False)
        self.full_image = nn.Conv2d(3, out_channels, 3, padding=1, bias=False)
        self.full_block = nn.Sequential(nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
                                        nn.Conv2d(out_channels, out_channels, 3, padding=1))

    def forward(self, features, image):
        c2, c4, c8, c16, c32 = features
        x = self.top(c32)
        for stage, skip in zip(self.stages, (c16, c8, c4, c2)):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = stage["block"](stage["reduce"](x) + stage["lateral"](skip))
        x = F.interpolate(x, size=image.shape[-2:], mode="bilinear", align_corners=False)
        return self.full_block(self.full_reduce(x) + self.full_image(image))


# --------------------------------------------------------------------------- heads


class MLP(nn.Module):
    """Small perceptron (DETR's box/mask embedding MLP)."""

    def __init__(self, cin, hidden, cout, layers):
        super().__init__()
        dims = [cin] + [hidden] * (layers - 1) + [cout]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class DynamicMaskHead(nn.Module):
    """HyperDETR's head: query embedding → weights and bias of a 1×1 conv over the mask map.

    With ``coords = 5`` each query also gets five position weights, for x, y,
    x², y² and xy on the output grid normalised to [-1, 1]: a quadratic in
    position, so a query can confine its mask to an ellipse around its person.
    Without them the head is translation-equivariant (a 1×1 conv over shared
    features), so two look-alike people give identical logits under every
    query and the queries collapse onto the union — what the first trained
    model did. CondInst (Tian et al., "Conditional Convolutions for Instance
    Segmentation", ECCV 2020) feeds relative coordinates to its dynamic
    filters for the same reason. The terms are extra input channels of the
    same matrix product (constant maps built from two 1-D ramps by broadcasting:
    the exported file carries no full-size constant, and onnxruntime folds them
    once at load), so the head stays one product whatever N is.
    """

    def __init__(self, dim, mask_channels, coords: int = 0):
        super().__init__()
        if coords not in (0, 5):
            raise ValueError(f"coords must be 0 or 5, got {coords}")
        self.mask_channels = mask_channels
        self.coords = coords
        self.weights = MLP(dim, dim, mask_channels + coords + 1, 3)

    def forward(self, hs, mask_features, image_features=None, memory=None):
        """hs (..., B, N, dim), mask_features (B, C, H, W) → mask logits (..., B, N, H, W)."""
        params = self.weights(hs)
        w, bias = params[..., :-1], params[..., -1:]
        b, c, h, wd = mask_features.shape
        flat = mask_features.reshape(b, c, h * wd)  # B, C, HW
        if self.coords:
            x = torch.linspace(-1.0, 1.0, wd, device=flat.device, dtype=flat.dtype).expand(h, wd)
            y = torch.linspace(-1.0, 1.0, h, device=flat.device, dtype=flat.dtype)[:, None].expand(h, wd)
            grid = torch.stack([x, y, x * x, y * y, x * y]).reshape(1, 5, h * wd).expand(b, 5, h * wd)
            flat = torch.cat([flat, grid], dim=1)  # B, C + 5, HW
        masks = torch.matmul(w, flat) + bias  # (..., B, N, HW)
        return masks.reshape(*masks.shape[:-1], h, wd)


class DetrPanopticHead(nn.Module):
    """DETR's panoptic mask head (baseline): per-query attention maps + FPN conv stack.

    The conv stack runs once per query on the batch-expanded feature maps,
    so its cost grows linearly with N (Carion et al. 2020, §4.4, Fig. 8).
    """

    def __init__(self, dim, heads, backbone_channels):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Conv2d(dim, dim, 1)
        context = dim + heads
        dims = [context, context // 2, context // 4, context // 8, context // 16]
        self.lay1 = nn.Conv2d(context, context, 3, padding=1)
        self.lay2 = nn.Conv2d(context, dims[1], 3, padding=1)
        self.lay3 = nn.Conv2d(dims[1], dims[2], 3, padding=1)
        self.lay4 = nn.Conv2d(dims[2], dims[3], 3, padding=1)
        self.lay5 = nn.Conv2d(dims[3], dims[4], 3, padding=1)
        self.out = nn.Conv2d(dims[4], 1, 3, padding=1)
        _, c4, c8, c16, _ = backbone_channels
        self.adapter1 = nn.Conv2d(c16, dims[1], 1)
        self.adapter2 = nn.Conv2d(c8, dims[2], 1)
        self.adapter3 = nn.Conv2d(c4, dims[3], 1)

    def forward(self, hs, mask_features, image_features, memory):
        """hs (B, N, dim) for one decoder layer; memory (B, dim, h, w) projected stride-32 map."""
        _, c4, c8, c16, _ = image_features
        b, n, d = hs.shape
        h32, w32 = memory.shape[-2:]
        q = self.q(hs).reshape(b, n, self.heads, d // self.heads)
        k = self.k(memory).reshape(b, self.heads, d // self.heads, h32, w32)
        attn = torch.einsum("bnhc,bhcyx->bnhyx", q, k) / math.sqrt(d / self.heads)
        attn = torch.softmax(attn.flatten(2), dim=-1).reshape(b * n, self.heads, h32, w32)

        def expand(t):  # B,C,H,W → B*N,C,H,W: the per-query batch that makes this head costly
            return t.unsqueeze(1).expand(-1, n, -1, -1, -1).flatten(0, 1)

        x = torch.cat([expand(memory), attn], 1)
        x = F.relu(self.lay1(x))
        x = F.relu(self.lay2(x))
        for lay, adapter, skip in ((self.lay3, self.adapter1, c16), (self.lay4, self.adapter2, c8),
                                   (self.lay5, self.adapter3, c4)):
            x = expand(adapter(skip)) + F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = F.relu(lay(x))
        x = self.out(x)
        x = F.interpolate(x, size=mask_features.shape[-2:], mode="bilinear", align_corners=False)
        return x.reshape(b, n, *x.shape[-2:])


# --------------------------------------------------------------------------- model


class HyperDetr(nn.Module):
    """HyperDETR panoptic segmentation model.

    ``forward(image)`` takes float32 (B, 3, H, W) sRGB-encoded RGB in [0, 1]
    (H, W multiples of 32) and returns a tuple
    ``(scene_logits (B, S, H, W), class_logits (L, B, N, T+1), mask_logits (L, B, N, H, W))``
    where L is the number of decoder layers run (all of them during training,
    so auxiliary losses see every layer; 1 with ``last_layer_only=True``).
    """

    def __init__(self, config: HyperDetrConfig = HyperDetrConfig()):
        super().__init__()
        self.config = config
        kwargs = {"width": config.backbone_width} if config.backbone == "mobilenet_v3_large" else {}
        self.backbone = build_backbone(config.backbone, **kwargs)
        channels = self.backbone.channels
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1), persistent=False)
        self.decoder = UNetDecoder(channels, config.mask_channels)
        self.scene_head = nn.Conv2d(config.mask_channels, len(config.scene_categories), 1)
        self.input_proj = nn.Conv2d(channels[-1], config.hidden_dim, 1)
        self.transformer = Transformer(config.hidden_dim, config.num_heads, config.ffn_dim,
                                       config.encoder_layers, config.decoder_layers, config.num_queries)
        self.class_head = nn.Linear(config.hidden_dim, len(config.thing_categories) + 1)
        if config.mask_head == "hyper":
            self.mask_head = DynamicMaskHead(config.hidden_dim, config.mask_channels, config.mask_coords)
        elif config.mask_head == "detr":
            self.mask_head = DetrPanopticHead(config.hidden_dim, config.num_heads, channels)
        else:
            raise ValueError(f"mask_head must be 'hyper' or 'detr', got {config.mask_head!r}")
        # Scene channels start pessimistic (sigmoid ≈ 0.01), the focal-loss prior of Lin et al. 2017.
        nn.init.constant_(self.scene_head.bias, -4.6)

    def conv_path(self, image):
        """Backbone + U-Net decoder. Returns (features pyramid, mask map (B, C, H, W), scene logits)."""
        x = (image - self.mean) / self.std
        features = self.backbone(x)
        mask_features = self.decoder(features, image)
        return features, mask_features, self.scene_head(mask_features)

    def forward(self, image, last_layer_only: bool = False):
        features, mask_features, scene_logits = self.conv_path(image)
        src = self.input_proj(features[-1])
        b, d, h, w = src.shape
        pos = sine_position_encoding(h, w, d, device=src.device).unsqueeze(0)
        memory, hs = self.transformer(src.flatten(2).transpose(1, 2), pos)  # hs: L,B,N,d
        if last_layer_only:
            # Inference: the heads run on the last decoder layer only (L = 1). Applying them to
            # every layer and keeping the last would double the mask work for nothing.
            hs = hs[-1:]
        class_logits = self.class_head(hs)
        if isinstance(self.mask_head, DetrPanopticHead):
            memory_map = memory.transpose(1, 2).reshape(b, d, h, w)  # B,d,h,w for the attention maps
            mask_logits = torch.stack([self.mask_head(layer, mask_features, features, memory_map)
                                       for layer in hs])
        else:
            mask_logits = self.mask_head(hs, mask_features)
        return scene_logits, class_logits, mask_logits


class ExportWrapper(nn.Module):
    """What goes into the ONNX file: the last kept decoder layer only (pruning), contract outputs.

    ``decoder_layers`` < the trained count removes the trailing layers outright
    (they are not run), which every-layer supervision makes safe.
    ``scene_only`` drops the transformer and the heads entirely.
    """

    def __init__(self, model: HyperDetr, *, decoder_layers: int | None = None, scene_only: bool = False):
        super().__init__()
        self.model = model
        self.scene_only = scene_only
        keep = len(model.transformer.decoder) if decoder_layers is None else decoder_layers  # (0 is refused, not "all")
        if not 1 <= keep <= len(model.transformer.decoder):
            raise ValueError(f"decoder_layers must be in 1..{len(model.transformer.decoder)}, got {keep}")
        model.transformer.decoder = model.transformer.decoder[:keep]

    def forward(self, image):
        if self.scene_only:
            return (self.model.conv_path(image)[2],)
        scene, classes, masks = self.model(image, last_layer_only=True)
        return scene, classes[0], masks[0]
