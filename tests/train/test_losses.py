"""The training losses: matching, partial labels, and the per-layer average."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from camseg.train.losses import LossWeights, hungarian_match, instance_loss, total_loss  # noqa: E402


def _people(k=3, h=32, w=40):
    """k disjoint vertical bands as instance targets, (1, K, H, W)."""
    targets = torch.zeros(1, k, h, w)
    for i in range(k):
        targets[0, i, :, i * (w // k):(i + 1) * (w // k)] = 1
    return targets


def test_matching_recovers_permutation_in_every_layer():
    targets = _people()
    order = [[2, 0, 1, 3], [1, 3, 0, 2]]  # query q predicts band order[layer][q] (3: nothing)
    masks = torch.full((2, 1, 4, 32, 40), -8.0)
    for layer, perm in enumerate(order):
        for q, t in enumerate(perm):
            if t < 3:
                masks[layer, 0, q][targets[0, t] > 0] = 8.0
    classes = torch.zeros(2, 1, 4, 2)
    matches = hungarian_match(classes, masks, targets, [3], LossWeights())
    for layer, perm in enumerate(order):
        qi, ti = matches[layer][0]
        assert {int(q): int(t) for q, t in zip(qi, ti)} == {q: t for q, t in enumerate(perm) if t < 3}


def _batch(b=3, k=3, h=32, w=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    targets = (torch.rand(b, k, h, w, generator=g) > 0.6).float()
    inside = torch.ones(b, h, w)
    return targets, inside, g


def test_images_with_unknown_instances_get_no_gradient():
    targets, inside, g = _batch()
    classes = torch.randn(2, 3, 4, 2, generator=g, requires_grad=True)
    masks = torch.randn(2, 3, 4, 32, 40, generator=g, requires_grad=True)
    loss = instance_loss(classes, masks, targets, [3, 2, 1], torch.tensor([1.0, 0.0, 1.0]), inside, LossWeights())
    loss.backward()
    assert float(masks.grad[:, 1].abs().max()) == 0 and float(classes.grad[:, 1].abs().max()) == 0
    assert float(masks.grad[:, 0].abs().max()) > 0 and float(masks.grad[:, 2].abs().max()) > 0
    # no image with known instances: zero, and still differentiable
    none = instance_loss(classes, masks, targets, [3, 2, 1], torch.zeros(3), inside, LossWeights())
    assert float(none.detach()) == 0 and none.requires_grad


def test_layers_are_averaged():
    """The batched loss over L layers equals the mean of each layer's loss computed alone."""
    targets, inside, g = _batch()
    classes = torch.randn(4, 3, 4, 2, generator=g)
    masks = torch.randn(4, 3, 4, 32, 40, generator=g)
    counts, valid = [3, 0, 2], torch.ones(3)
    together = float(instance_loss(classes, masks, targets, counts, valid, inside, LossWeights()))
    alone = [float(instance_loss(classes[i:i + 1], masks[i:i + 1], targets, counts, valid, inside, LossWeights()))
             for i in range(4)]
    assert len(set(np.round(alone, 4))) == 4  # the layers differ, so the average is a real test
    assert together == pytest.approx(np.mean(alone), rel=1e-5)


def test_scene_loss_ignores_unlabelled_channels():
    targets, inside, g = _batch()
    scene = torch.randn(3, 5, 32, 40, generator=g, requires_grad=True)
    scene_target = (torch.rand(3, 5, 32, 40, generator=g) > 0.5).float()
    valid = torch.ones(3, 5, 32, 40)
    valid[1, 2] = 0  # image 1 does not label channel 2
    valid[2, 3, :, :20] = 0  # image 2 labels channel 3 on its right half only
    batch = (None, scene_target, valid, targets, [0, 0, 0], torch.zeros(3), inside)
    classes, masks = torch.zeros(1, 3, 4, 2), torch.zeros(1, 3, 4, 32, 40)
    loss, parts = total_loss((scene, classes, masks), batch)
    loss.backward()
    assert float(scene.grad[1, 2].abs().max()) == 0 and float(scene.grad[1, 1].abs().max()) > 0
    assert float(scene.grad[2, 3, :, :20].abs().max()) == 0 and float(scene.grad[2, 3, :, 20:].abs().min()) > 0
    assert float(parts["instances"]) == 0
