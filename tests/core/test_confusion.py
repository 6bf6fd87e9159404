"""The confusion-matrix engine against sklearn, torchmetrics and hand-made cases."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import confusion_matrix as sk_confusion_matrix

from fairseg_bench.core.confusion import ConfusionMatrix, confusion_matrix


def coherent_maps(n, k, size=(24, 40), block=4, ignore=255, ignore_share=0.15, seed=0):
    """Spatially coherent label maps: upsampled low-res random maps, blocks of ignored pixels,
    and predictions that agree with the labels except in random blocks."""
    g = torch.Generator().manual_seed(seed)
    h, w = size

    def up(x):
        return F.interpolate(x[:, None].float(), size=size, mode="nearest")[:, 0]

    low = (n, h // block, w // block)
    target = up(torch.randint(0, k, low, generator=g)).long()
    ignored = up((torch.rand(low, generator=g) < ignore_share).long()).bool()
    wrong = up((torch.rand(low, generator=g) < 0.3).long()).bool()
    other = up(torch.randint(0, k, low, generator=g)).long()
    pred = torch.where(wrong, other, target)
    target[ignored] = ignore
    return pred, target


def sklearn_reference(pred, target, k, ignore=255):
    keep = (target != ignore).numpy().ravel()
    return sk_confusion_matrix(target.numpy().ravel()[keep], pred.numpy().ravel()[keep], labels=list(range(k)))


@pytest.mark.parametrize("target_dtype", [torch.uint8, torch.int64, torch.int32])
@pytest.mark.parametrize("pred_dtype", [torch.uint8, torch.int64])
def test_matches_sklearn_on_coherent_maps(target_dtype, pred_dtype):
    pred, target = coherent_maps(3, 19)
    cm = confusion_matrix(pred.to(pred_dtype), target.to(target_dtype), 19)
    assert cm.dtype == torch.int64 and cm.shape == (19, 19)
    np.testing.assert_array_equal(cm.numpy(), sklearn_reference(pred, target, 19))
    assert cm.sum() == (target != 255).sum()  # ignored pixels count nowhere


def test_matches_torchmetrics_confusion_matrix():
    from torchmetrics.classification import MulticlassConfusionMatrix

    pred, target = coherent_maps(4, 19, seed=1)
    reference = MulticlassConfusionMatrix(num_classes=19, ignore_index=255)
    ours = ConfusionMatrix(19)
    for p, t in zip(pred.split(2), target.split(2)):  # streaming, two batches
        reference.update(p, t)
        ours.update(p.to(torch.uint8), t.to(torch.uint8))
    torch.testing.assert_close(ours.compute(), reference.compute().long(), rtol=0, atol=0)


def test_logits_are_argmaxed_over_dim_1():
    torch.manual_seed(0)
    _, target = coherent_maps(2, 7, seed=2)
    logits = torch.randn(2, 7, *target.shape[1:])
    expected = sklearn_reference(logits.argmax(1), target, 7)
    np.testing.assert_array_equal(confusion_matrix(logits, target, 7).numpy(), expected)
    with pytest.raises(ValueError, match="8 classes"):
        confusion_matrix(torch.randn(2, 8, *target.shape[1:]), target, 7)


@pytest.mark.parametrize("target_dtype", [torch.uint8, torch.int64])
def test_150_classes(target_dtype):
    pred, target = coherent_maps(2, 150, size=(40, 48), block=2, seed=3)
    cm = confusion_matrix(pred, target.to(target_dtype), 150)
    np.testing.assert_array_equal(cm.numpy(), sklearn_reference(pred, target, 150))


@pytest.mark.parametrize("ignore", [-1, -100, 0, 300])
def test_other_ignore_indices(ignore):
    pred, target = coherent_maps(2, 6, ignore=ignore, seed=4)
    if ignore == 0:  # a class id used as ignore index: pixels labelled 0 count nowhere
        target = target.clone()
    cm = confusion_matrix(pred, target, 6, ignore_index=ignore)
    np.testing.assert_array_equal(cm.numpy(), sklearn_reference(pred, target, 6, ignore=ignore))


def test_hand_computed_case():
    target = torch.tensor([[0, 0, 1, 255], [2, 2, 2, 1]], dtype=torch.uint8)
    pred = torch.tensor([[0, 1, 1, 2], [2, 0, 2, 1]], dtype=torch.uint8)
    expected = [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
    assert confusion_matrix(pred, target, 3).tolist() == expected


def test_bad_ground_truth_is_named_or_ignored_on_request():
    pred, target = coherent_maps(1, 5, seed=5)
    bad = target.clone()
    bad[0, 0, 0] = 7
    with pytest.raises(ValueError, match=r"ground-truth value 7 is outside \[0, 5\)"):
        confusion_matrix(pred, bad.to(torch.uint8), 5)
    with pytest.raises(ValueError, match="ground-truth value 7"):
        confusion_matrix(pred, bad, 5)  # int64 path
    kept = bad != 7
    ignored = confusion_matrix(pred, bad, 5, ignore_out_of_range=True)
    expected = sklearn_reference(pred[kept][None], bad[kept][None], 5)
    np.testing.assert_array_equal(ignored.numpy(), expected)
    far = target.clone()
    far[0, 0, 0] = 100_000
    with pytest.raises(ValueError, match="a value above 255"):
        confusion_matrix(pred, far, 5)
    far[0, 0, 0] = -3
    with pytest.raises(ValueError, match="a value below 0"):
        confusion_matrix(pred, far, 5)


def test_bad_prediction_is_named():
    pred, target = coherent_maps(1, 5, seed=6)
    bad = pred.clone()
    bad[0, 3, 3] = 9
    with pytest.raises(ValueError, match=r"prediction value 9 is outside \[0, 5\)"):
        confusion_matrix(bad.to(torch.uint8), target, 5)
    bad[0, 3, 3] = -2
    with pytest.raises(ValueError, match="prediction value -2"):
        confusion_matrix(bad, target, 5)


def test_shape_and_dtype_errors():
    with pytest.raises(ValueError, match="do not match"):
        confusion_matrix(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 4, dtype=torch.long), 3)
    with pytest.raises(ValueError, match="integer class labels"):
        confusion_matrix(torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3), 3)


def test_streaming_merge_reset():
    pred, target = coherent_maps(4, 9, seed=7)
    whole = confusion_matrix(pred, target, 9)
    a, b = ConfusionMatrix(9), ConfusionMatrix(9)
    a.update(pred[:1], target[:1])
    a.update(pred[1:2], target[1:2])
    b.update(pred[2:], target[2:])
    assert torch.equal(a.merge(b).compute(), whole)
    a.reset()
    assert a.compute().sum() == 0
    with pytest.raises(ValueError, match="same num_classes"):
        a.merge(ConfusionMatrix(8))


def test_numpy_inputs_and_empty_batches():
    pred, target = coherent_maps(1, 4, seed=8)
    np.testing.assert_array_equal(
        confusion_matrix(pred.numpy(), target.numpy(), 4).numpy(), sklearn_reference(pred, target, 4)
    )
    assert confusion_matrix(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), 4).sum() == 0


def test_per_image_stats_match_per_image_matrices():
    pred, target = coherent_maps(3, 6, seed=9)
    cm = ConfusionMatrix(6, per_image=True)
    cm.update(pred[:2], target[:2].to(torch.uint8))
    cm.update(pred[2:], target[2:])
    stats = cm.per_image_stats()
    assert set(stats) == {"tp", "fp", "fn"} and stats["tp"].shape == (3, 6) and stats["tp"].dtype == np.int64
    for i in range(3):
        ref = sklearn_reference(pred[i : i + 1], target[i : i + 1], 6)
        tp = np.diag(ref)
        np.testing.assert_array_equal(stats["tp"][i], tp)
        np.testing.assert_array_equal(stats["fp"][i], ref.sum(0) - tp)
        np.testing.assert_array_equal(stats["fn"][i], ref.sum(1) - tp)
    np.testing.assert_array_equal(stats["tp"].sum(0), np.diag(cm.compute().numpy()))
    with pytest.raises(ValueError, match="per_image=True"):
        ConfusionMatrix(6).per_image_stats()


def test_deterministic_algorithms_give_identical_results():
    pred, target = coherent_maps(3, 19, seed=10)
    normal = confusion_matrix(pred, target.to(torch.uint8), 19)
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        deterministic = confusion_matrix(pred, target.to(torch.uint8), 19)
    finally:
        torch.use_deterministic_algorithms(previous)
    assert torch.equal(normal, deterministic)


def test_all_reduce_single_process_group(tmp_path):
    import torch.distributed as dist

    pred, target = coherent_maps(2, 5, seed=11)
    cm = ConfusionMatrix(5, per_image=True)
    cm.update(pred, target)
    before = cm.compute()
    assert torch.equal(ConfusionMatrix(5).all_reduce().compute(), torch.zeros(5, 5, dtype=torch.long))  # no-op
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        cm.all_reduce()
    finally:
        dist.destroy_process_group()
    assert torch.equal(cm.compute(), before)
    assert cm.per_image_stats()["tp"].shape == (2, 5)


def test_inference_mode_and_normal_updates_mix():
    pred, target = coherent_maps(2, 5, seed=12)
    cm = ConfusionMatrix(5, per_image=True)
    with torch.inference_mode():
        cm.update(pred[:1], target[:1])
    cm.update(pred[1:], target[1:])
    with torch.inference_mode():
        cm.update(pred, target)
    expected = 2 * sklearn_reference(pred, target, 5)
    np.testing.assert_array_equal(cm.compute().numpy(), expected)
    assert cm.per_image_stats()["tp"].shape == (4, 5)


def test_sync_free_path_used_on_gpus(monkeypatch):
    """The accelerator path (scatter_add_ count, checks deferred to compute) run on CPU tensors."""
    monkeypatch.setattr(ConfusionMatrix, "_sync_free", staticmethod(lambda device: True))
    pred, target = coherent_maps(3, 19, seed=13)
    cm = ConfusionMatrix(19, per_image=True)
    cm.update(pred[:2].to(torch.uint8), target[:2].to(torch.uint8))
    cm.update(pred[2:], target[2:])
    np.testing.assert_array_equal(cm.compute().numpy(), sklearn_reference(pred, target, 19))
    bad_label = target.clone()
    bad_label[0, 0, 0] = 40
    deferred = ConfusionMatrix(19)
    deferred.update(pred, bad_label)  # no error yet: that would need a host sync
    with pytest.raises(ValueError, match="ground-truth value 40"):
        deferred.compute()
    bad_pred = pred.clone()
    bad_pred[0, 0, 0] = 300  # outside the histogram: clamped, then reported
    deferred = ConfusionMatrix(19)
    deferred.update(bad_pred, target)
    with pytest.raises(ValueError, match="prediction value 300"):
        deferred.compute()
