"""Losses for HyperDETR with partial labels.

- Scene channels: sigmoid focal loss (Lin et al., "Focal Loss for Dense Object
  Detection", ICCV 2017) + dice loss (Milletari et al., V-Net, 2016), counted
  only where the pixel's label is known and the pixel lies inside the source
  photo (``scene_known`` × ``inside``): unlabelled is ignored, never
  "background".
- Person instances: DETR's set prediction loss (Carion et al. 2020): Hungarian
  matching of queries to instances on a class + mask cost, cross-entropy class
  loss with a down-weighted no-object class, focal + dice on matched masks;
  applied to *every* decoder layer (auxiliary losses), so trailing layers can be
  pruned at export. Images whose instances are unknown contribute nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch.nn import functional as F


@dataclass(frozen=True)
class LossWeights:
    scene_focal: float = 20.0
    scene_dice: float = 1.0
    mask_focal: float = 20.0
    mask_dice: float = 1.0
    class_ce: float = 2.0
    no_object: float = 0.1  # DETR's eos_coef
    match_class: float = 2.0
    match_mask: float = 5.0
    match_dice: float = 5.0


def focal_map(logits, target, alpha=0.25, gamma=2.0):
    """Per-pixel sigmoid focal loss (same shape as logits)."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    loss = ce * (1 - p_t) ** gamma
    return (alpha * target + (1 - alpha) * (1 - target)) * loss


def dice_loss(logits, target, weight):
    """1 − soft dice over the last two axes, pixels weighted by ``weight``; shape (...,)."""
    p = torch.sigmoid(logits) * weight
    t = target * weight
    num = 2 * (p * t).flatten(-2).sum(-1) + 1
    den = p.flatten(-2).sum(-1) + t.flatten(-2).sum(-1) + 1
    return 1 - num / den


def scene_loss(logits, target, known, inside, w: LossWeights):
    """logits/target (B,S,H,W); known (B,S,H,W), 1 where the target is known; inside (B,H,W).

    Focal is the mean over an image's known pixels of a channel, dice is over them too; both
    are averaged over the (image, channel) pairs with any known pixel.
    """
    weight = known.float() * inside[:, None]
    valid = (weight.flatten(2).amax(-1) > 0).float()  # B,S
    n_valid = valid.sum().clamp(min=1)
    # alpha = 0.5: scene positives are sparse (sky covers 7.6 % of ADE pixels), so they are not down-weighted
    focal = (focal_map(logits, target, alpha=0.5) * weight).flatten(2).sum(-1) / weight.flatten(2).sum(-1).clamp(min=1)
    dice = dice_loss(logits, target, weight)
    return (w.scene_focal * (focal * valid).sum() + w.scene_dice * (dice * valid).sum()) / n_valid


@torch.no_grad()
def hungarian_match(class_logits, mask_logits, targets, counts, w: LossWeights):
    """Match queries to instances for every decoder layer and image.

    class_logits (L, B, N, T+1), mask_logits (L, B, N, H, W), targets (B, K, H, W), counts: B
    instance counts. Returns a list over layers of lists over images of (query_idx, target_idx)
    int64 arrays. The costs of all layers and images are computed in one batched pass and reach
    the CPU in one transfer: a per-image loop with a transfer each stalled the GPU 6 × B times a
    step. Costs use 4× downsampled masks (matching needs ranks, not detail).
    """
    L, B, N = class_logits.shape[:3]
    prob = class_logits.softmax(-1)[..., 0]  # L,B,N: probability of "person"
    pred = F.avg_pool2d(mask_logits.flatten(0, 1), 4).flatten(2).reshape(L, B, N, -1)  # L,B,N,P
    tgt = F.avg_pool2d(targets, 4).flatten(2)  # B,K,P
    p = pred.sigmoid()
    dice = 1 - (2 * torch.einsum("lbnp,bkp->lbnk", p, tgt) + 1) / (
        p.sum(-1)[..., None] + tgt.sum(-1)[None, :, None, :] + 1)
    # binary cross-entropy against 1 and 0 is softplus(-x) and softplus(x)
    bce = (torch.einsum("lbnp,bkp->lbnk", F.softplus(-pred), tgt)
           + torch.einsum("lbnp,bkp->lbnk", F.softplus(pred), 1 - tgt)) / pred.shape[-1]
    cost = (w.match_mask * bce + w.match_dice * dice - w.match_class * prob[..., None]).cpu().numpy()
    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    return [[tuple(np.asarray(a, np.int64) for a in linear_sum_assignment(cost[layer, b, :, :n])) if n else empty
             for b, n in enumerate(counts)] for layer in range(L)]


def instance_loss(class_logits, mask_logits, targets, counts, inst_valid, inside, w: LossWeights):
    """DETR set loss averaged over decoder layers.

    class_logits (L, B, N, T+1), mask_logits (L, B, N, H, W), targets (B, K, H, W), counts: B
    instance counts, inst_valid (B,) 1 where the image's instances are known (a list or a host
    tensor), inside (B, H, W).
    Per layer: class cross-entropy (no-object down-weighted) + focal and dice over the matched
    masks divided by the number of matches; the layers' losses are averaged.
    """
    # a host-side list or tensor: reading a device tensor here would stall the GPU once more a step
    keep = np.flatnonzero(np.asarray(inst_valid.cpu() if torch.is_tensor(inst_valid) else inst_valid) > 0)
    if len(keep) == 0:
        return class_logits.sum() * 0
    device = class_logits.device
    index = torch.as_tensor(keep, device=device)
    class_logits, mask_logits = class_logits[:, index], mask_logits[:, index]
    targets, inside = targets[index], inside[index]
    counts = [counts[b] for b in keep]
    matches = hungarian_match(class_logits, mask_logits, targets, counts, w)
    L, B, N = class_logits.shape[:3]
    n_things = class_logits.shape[-1] - 1
    target_classes = np.full((L, B, N), n_things, np.int64)
    rows = [(layer, b, q, t) for layer, per_image in enumerate(matches) for b, (qi, ti) in enumerate(per_image)
            for q, t in zip(qi, ti)]
    for layer, b, q, _ in rows:
        target_classes[layer, b, q] = 0
    target_classes = torch.as_tensor(target_classes, device=device)
    ce_weight = torch.ones(n_things + 1, device=device)
    ce_weight[-1] = w.no_object
    ce = F.cross_entropy(class_logits.flatten(0, 2), target_classes.flatten(), ce_weight, reduction="none")
    # each layer's weighted mean, as F.cross_entropy(weight=...) computes it per layer
    per_layer = w.class_ce * ce.reshape(L, -1).sum(1) / ce_weight[target_classes].reshape(L, -1).sum(1)
    if rows:
        layer_idx, b_idx, q_idx, t_idx = (torch.as_tensor(np.array(col), device=device) for col in zip(*rows))
        pm = mask_logits[layer_idx, b_idx, q_idx]  # M,H,W
        tm = targets[b_idx, t_idx]
        wt = inside[b_idx]
        focal = (focal_map(pm, tm) * wt).flatten(1).sum(-1) / wt.flatten(1).sum(-1).clamp(min=1)
        mask_terms = w.mask_focal * focal + w.mask_dice * dice_loss(pm, tm, wt)
        # every layer matches the same number of pairs (min(N, count) per image)
        per_layer = per_layer + torch.zeros(L, device=device).index_add(0, layer_idx, mask_terms) / (len(rows) / L)
    return per_layer.mean()


def total_loss(outputs, batch, w: LossWeights = LossWeights()):
    """Sum of scene loss and per-layer instance losses; returns (loss, dict of detached parts).

    The parts stay tensors on the loss's device: turning them into numbers each step would
    make the host wait for the GPU.
    """
    scene_logits, class_logits, mask_logits = outputs
    image, scene, scene_known, inst, counts, inst_valid, inside = batch
    ls = scene_loss(scene_logits, scene, scene_known, inside, w)
    li = instance_loss(class_logits, mask_logits, inst, counts, inst_valid, inside, w)
    return ls + li, {"scene": ls.detach(), "instances": li.detach()}
