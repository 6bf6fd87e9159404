"""CamVid (SegNet's 11 classes): a fabricated tree in the exact layout, and the real copy when present."""
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import SHARED_CAMVID
from support.camvid import NAMES, SHAPE, blocky, labels_of, write_tiny_config
from support.cli import call_main as cli

from fairseg_bench.data import DATASETS, build_dataset
from fairseg_bench.data.camvid import CAMVID_PALETTE, PREDICTION_LUT, check_root
from fairseg_bench.data.label_sets import CAMVID_CLASSES
from fairseg_bench.errors import UserError
from fairseg_bench.results import read_record


def one_line_error(call) -> str:
    with pytest.raises(UserError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message
    return message


# ----------------------------------------------------------------------------- the dataset
def test_splits_keep_the_list_order_and_trainval_is_train_then_val(root):
    for split in ("train", "val", "test"):
        ds = build_dataset("camvid", root=root, split=split)
        assert ds.image_names() == NAMES[split]
        assert [Path(p).parent.name for p in ds.labels] == [f"{split}annot"] * len(NAMES[split])
    trainval = build_dataset("camvid", root=root, split="trainval")
    assert trainval.image_names() == NAMES["train"] + NAMES["val"]
    assert "choose one of ['train', 'val', 'test', 'trainval']" in one_line_error(
        lambda: build_dataset("camvid", root=root, split="training"))


def test_void_maps_to_ignore_and_other_values_are_errors(root, labels):
    ds = build_dataset("camvid", root=root, split="test")
    assert ds.num_classes == 11 and ds.classes == CAMVID_CLASSES and ds.palette.shape == (11, 3)
    for i, raw in enumerate(labels["test"]):
        np.testing.assert_array_equal(ds.label(i), np.where(raw == 11, 255, raw))
    assert list(ds.LUT[:12]) == [*range(11), 255] and (ds.LUT[12:] == -1).all()
    bad = labels["test"][0].copy()
    bad[0, 0] = 12
    Image.fromarray(bad).save(ds.labels[0])
    assert "label values [12] are not in the camvid label set" in one_line_error(lambda: ds.label(0))


def test_segnet_palette():
    assert CAMVID_PALETTE.tolist()[:4] == [[128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128]]
    assert CAMVID_PALETTE.tolist()[-1] == [0, 128, 192]  # bicyclist


def test_sequences_are_the_name_prefixes(root):
    ds = build_dataset("camvid", root=root, split="train")
    assert ds.image_attributes() == {"sequence": ["0016E5", "0001TP", "0006R0", "Seq05VD"]}


def test_items_are_normalised_crops_with_ignore(root):
    ds = build_dataset("camvid", root=root, split="train", crop_size=(16, 16), scale_range=(0.5, 0.5))
    image, target = ds[0]
    assert image.shape == (3, 16, 16) and target.shape == (16, 16)
    assert set(target.unique().tolist()) <= {*range(11), 255}
    image, target = build_dataset("camvid", root=root, split="val")[1]
    assert image.shape == (3, *SHAPE) and target.shape == SHAPE


def test_frame_size_downscales_once_and_keys_the_class_index(root, labels):
    full = build_dataset("camvid", root=root, split="val", augment=False)
    half = build_dataset("camvid", root=root, split="val", augment=False, frame_size=[12, 20])
    assert half.image(0).shape == (12, 20, 3) and half.label(0).shape == (12, 20)
    raw = labels["val"][0]  # blocks of 4 pixels: nearest at half size picks one pixel of each 2x2
    assert set(np.unique(half.raw_label(0))) <= set(np.unique(raw))
    assert half.image(0) is half.image(0)  # kept, not decoded again
    assert half[0][1].shape == (12, 20)
    assert full.fingerprint() != half.fingerprint()
    for bad in ("12x20", [12], [0, 20]):
        assert "expected [height, width]" in one_line_error(
            lambda bad=bad: build_dataset("camvid", root=root, split="val", frame_size=bad))


def test_full_size_labels_evaluate_the_label_files_pixels(root, labels):
    """Downscaled frames in, logits upsampled to the label file's size: the confusion matrix counts
    every pixel of the full-size labels, against a brute force with torch's bilinear upsampling."""
    import torch

    from fairseg_bench import engine

    ds = build_dataset("camvid", root=root, split="test", frame_size=[12, 20], full_size_labels=True)
    image, target = ds[1]
    assert image.shape == (3, 12, 20) and tuple(target.shape) == labels["test"][1].shape
    torch.manual_seed(0)
    model = torch.nn.Conv2d(3, 11, 3, padding=1).eval()
    loader = torch.utils.data.DataLoader(ds, batch_size=2)
    cm = engine.evaluate(model, loader, 11, device=torch.device("cpu"), progress=False).compute().numpy()
    expected = np.zeros((11, 11), np.int64)
    for i in range(len(ds)):
        x, y = ds[i]
        with torch.no_grad():
            up = torch.nn.functional.interpolate(model(x[None]), size=tuple(y.shape), mode="bilinear")
        pred, y = up.argmax(1)[0].numpy(), y.numpy()
        keep = y != 255
        np.add.at(expected, (y[keep], pred[keep]), 1)
    np.testing.assert_array_equal(cm, expected)
    assert cm.sum() == sum(int((lab != 11).sum()) for lab in labels["test"])


# ----------------------------------------------------------------------------- bad roots
def test_valid_root(root):
    assert check_root(root) is None and DATASETS["camvid"].check_root(root) is None


@pytest.mark.parametrize("damage, expected", [
    (lambda r: (r / "valannot" / "0016E5_07961.png").unlink(), "valannot/0016E5_07961.png is listed in val.txt"),
    (lambda r: shutil.rmtree(r / "testannot"), "testannot is missing"),
    (lambda r: (r / "test.txt").unlink(), "test.txt is missing"),
    (lambda r: (r / "val.txt").write_text("/SegNet/CamVid/val/0016E5_07959.png\n"),
     "val.txt:1: expected 'IMAGE LABEL'"),
    (lambda r: (r / "val.txt").write_text("\n"), "val.txt lists no images"),
])
def test_bad_trees_are_one_line_errors_naming_the_layout(root, damage, expected):
    damage(root)
    problem = check_root(root)
    assert expected in problem and "expected" in problem and "\n" not in problem
    split = "val" if "val" in expected else "test"
    assert expected in one_line_error(lambda: build_dataset("camvid", root=root, split=split))


def test_missing_root(tmp_path):
    assert "does not exist; expected layout: ROOT/{train,val,test}/*.png" in check_root(tmp_path / "nowhere")
    assert "a data root is required" in one_line_error(lambda: build_dataset("camvid"))


# ----------------------------------------------------------------------------- CLI
def test_cli_datasets_recognises_the_root_and_indexes_it(root, tmp_path, capsys, labels):
    code, out, err = cli(capsys, "datasets", "--root", root)
    assert code == 0, err
    lines = out.splitlines()
    validity = {lines[i - 2].split()[0]: line for i, line in enumerate(lines) if "--data-root" in line}
    assert validity["camvid"].endswith(": valid") and "invalid" in validity["cityscapes"]
    assert any(line.startswith("camvid") and "11 classes" in line for line in lines)

    code, out, err = cli(capsys, "datasets", "index", "--dataset", "camvid", "--root", root, "--cache", tmp_path / "c")
    assert code == 0, err
    counts = np.stack([np.bincount(raw.ravel(), minlength=12) for raw in labels["train"]])
    rows = {line[:11].strip(): line.split()[-2:] for line in out.splitlines()[2:]}
    assert float(rows["bicyclist"][0]) == pytest.approx(counts[:, 10].sum() / counts[:, :11].sum() * 100, abs=1e-3)
    assert len(list((tmp_path / "c").glob("class_index-camvid-train-*.npz"))) == 1


def test_evaluate_prediction_folder_against_brute_force(root, labels, tmp_path, capsys):
    rng = np.random.default_rng(1)
    preds = {}
    (tmp_path / "preds").mkdir()
    for name, label in zip(NAMES["test"], labels["test"], strict=True):
        # void written both ways: 11 as in the labels, 255 as most tools write it
        preds[name] = np.where(rng.random(SHAPE) < 0.3, blocky(rng, [*range(12), 255], block=2), label)
        Image.fromarray(preds[name]).save(tmp_path / "preds" / f"{name}.png")
    out = tmp_path / "m.json"
    code, _, err = cli(capsys, "evaluate", "--predictions", tmp_path / "preds", "--dataset", "camvid", "--root", root,
                       "--split", "test", "--out", out, "--quiet")
    assert code == 0, err
    cm, void = np.zeros((11, 11), np.int64), np.zeros(11, np.int64)
    for name, gt in zip(NAMES["test"], labels["test"], strict=True):
        for g, p in zip(gt.ravel().tolist(), preds[name].ravel().tolist(), strict=True):
            if g == 11:
                continue
            if p in (11, 255):
                void[g] += 1
            else:
                cm[g, p] += 1
    result = read_record(out)
    np.testing.assert_array_equal(result["confusion_matrix"], cm)
    np.testing.assert_array_equal(result["void_predictions"], void)
    assert result["classes"] == CAMVID_CLASSES and void.all() and cm.sum() > 0

    (tmp_path / "preds" / f"{NAMES['test'][1]}.png").unlink()
    code, _, err = cli(capsys, "evaluate", "--predictions", tmp_path / "preds", "--dataset", "camvid", "--root", root,
                       "--split", "test", "--out", tmp_path / "n.json")
    assert code == 2 and "no prediction for 1 of 3 ground-truth images (0001TP_008550)" in err
    assert not (tmp_path / "n.json").exists()


# ----------------------------------------------------------------------------- the real copy
real = pytest.mark.skipif(not SHARED_CAMVID.is_dir(), reason=f"no CamVid copy at {SHARED_CAMVID}")


@real
def test_real_split_sizes_and_root():
    assert check_root(SHARED_CAMVID) is None
    sizes = {s: len(build_dataset("camvid", root=SHARED_CAMVID, split=s)) for s in ("train", "val", "test", "trainval")}
    assert sizes == {"train": 367, "val": 101, "test": 233, "trainval": 468}
    assert sizes["train"] + sizes["val"] + sizes["test"] == 701


@real
def test_real_test_split_sequences():
    ds = build_dataset("camvid", root=SHARED_CAMVID, split="test")
    assert Counter(ds.image_attributes()["sequence"]) == {"0001TP": 62, "Seq05VD": 171}


@real
def test_real_train_pixel_shares_match_the_readme():
    ds = build_dataset("camvid", root=SHARED_CAMVID, split="train")
    counts = np.stack([np.bincount(ds.raw_label(i).ravel(), minlength=12) for i in range(len(ds))])
    assert counts.shape == (367, 12)  # no value above 11
    share = dict(zip([*CAMVID_CLASSES, "void"], counts.sum(0) / counts.sum() * 100, strict=True))
    printed = {"road": 31.7, "building": 23.3, "sky": 16.8, "tree": 9.7, "car": 5.9, "pavement": 4.5, "void": 3.9,
               "sign symbol": 1.2, "fence": 1.1, "pole": 1.0, "pedestrian": 0.64, "bicyclist": 0.29}
    for name, value in printed.items():
        decimals = len(str(value).split(".")[1])
        assert round(share[name], decimals) == value, name
    present = counts > 0
    assert present[:, CAMVID_CLASSES.index("fence")].sum() == 173
    assert present[:, CAMVID_CLASSES.index("bicyclist")].sum() == 201


# ----------------------------------------------------------------------------- a run on CamVid
def test_a_camvid_run_evaluates_the_label_files_and_its_predictions_reproduce_it(root, tmp_path, capsys):
    """A tiny run on the fabricated tree (the preset's data options, a few steps), then
    ``evaluate --checkpoint --save-predictions`` on test, then ``evaluate --predictions`` on those
    PNGs: the same confusion matrix and per-image counts, bit for bit; the run records names and sequences."""
    write_tiny_config(root, tmp_path, iters=3)
    code, _, err = cli(capsys, "run", "-c", tmp_path / "tiny.yaml", "--no-report")
    assert code == 0, err
    run = read_record(tmp_path / "runs" / "camvid" / "mcce-s0")
    assert run["split"] == "test" and run["image_names"] == NAMES["test"]
    assert run["image_attributes"] == {"sequence": ["Seq05VD", "0001TP", "Seq05VD"]}
    assert np.asarray(run["confusion_matrix"]).sum() == sum(int((lab != 11).sum()) for lab in labels_of(root))

    code, _, err = cli(capsys, "evaluate", "--checkpoint", tmp_path / "runs" / "camvid" / "mcce-s0" / "last.pt",
                       "--split", "test", "--quiet", "--save-predictions", tmp_path / "preds")
    assert code == 0, err
    again = read_record(tmp_path / "runs" / "camvid" / "mcce-s0" / "metrics-test.json")
    np.testing.assert_array_equal(again["confusion_matrix"], run["confusion_matrix"])
    assert sorted(p.stem for p in (tmp_path / "preds").glob("*.png")) == sorted(NAMES["test"])
    code, _, err = cli(capsys, "evaluate", "--predictions", tmp_path / "preds", "--dataset", "camvid", "--root", root,
                       "--split", "test", "--out", tmp_path / "m", "--quiet")
    assert code == 0, err
    folder = read_record(tmp_path / "m" / "metrics.json")
    np.testing.assert_array_equal(folder["confusion_matrix"], run["confusion_matrix"])
    order = [folder["image_names"].index(name) for name in run["image_names"]]  # the folder's rows are sorted
    for key in ("tp", "fp", "fn"):
        np.testing.assert_array_equal(np.asarray(folder["per_image"][key])[order], run["per_image"][key])


@real
@pytest.mark.slow
def test_real_short_run_and_evaluate_on_test_through_the_cli(tmp_path, capsys):
    """The camvid preset on the real copy, cut to a few steps: it trains, evaluates the 233 test
    frames on the label files' pixels, and `evaluate --checkpoint` reproduces its confusion matrix."""
    import yaml

    from fairseg_bench.config import load_config

    raw = load_config("camvid").override(losses=["mcce"], seeds=[0], data_root=str(SHARED_CAMVID),
                                         out=str(tmp_path / "runs"), quiet=True).resolved_dict()
    raw["train"].update(iters=4, checkpoint_every=4)
    raw["eval"].update(samples=2)
    (tmp_path / "short.yaml").write_text(yaml.safe_dump(raw))
    code, _, err = cli(capsys, "run", "-c", tmp_path / "short.yaml", "--no-report")
    assert code == 0, err
    run = read_record(tmp_path / "runs" / "camvid" / "mcce-s0")
    assert run["split"] == "test" and len(run["image_names"]) == 233
    void = sum(int((np.asarray(Image.open(SHARED_CAMVID / "testannot" / f"{n}.png")) == 11).sum())
               for n in run["image_names"])
    assert np.asarray(run["confusion_matrix"]).sum() == 233 * 360 * 480 - void  # every labelled pixel, full size
    code, _, err = cli(capsys, "evaluate", "--checkpoint", tmp_path / "runs" / "camvid" / "mcce-s0" / "last.pt",
                       "--split", "test", "--quiet")
    assert code == 0, err
    again = read_record(tmp_path / "runs" / "camvid" / "mcce-s0" / "metrics-test.json")
    np.testing.assert_array_equal(again["confusion_matrix"], run["confusion_matrix"])


@real
def test_real_boundary_counts_of_a_prediction_folder_match_a_per_class_erosion():
    """Real label maps (poles, signs, the void border): ``PairCounter`` counts Boundary IoU on the raw ids
    (each class one id), checked against d binary erosions of every class mask (scipy), at d = 12."""
    from scipy import ndimage

    from fairseg_bench.core.boundary import boundary_width
    from fairseg_bench.predictions import PairCounter

    ds = build_dataset("camvid", root=SHARED_CAMVID, split="test")
    counter = PairCounter(type(ds).LUT, PREDICTION_LUT, 11, boundary=True)
    assert counter.raw_classes is not None  # ids 0-10 are the classes: no lookup of the maps
    square = np.ones((3, 3), bool)
    for i in (0, 70, 150):  # dusk and daylight frames; the next frame's label as the "prediction"
        label, prediction = ds.raw_label(i), ds.raw_label(i + 1)
        d = boundary_width(*label.shape)
        assert d == 12
        matrix = counter.count_maps(label, prediction, Path("label"), Path("prediction"))
        inter, union = counter.boundary_counts(label, prediction, matrix)
        valid = label != 11
        for c in range(11):
            g, p = label == c, prediction == c
            g_d = g & ~ndimage.binary_erosion(g, square, iterations=d, border_value=0) & valid
            p_d = p & ~ndimage.binary_erosion(p, square, iterations=d, border_value=0) & valid
            assert (inter[c], union[c]) == ((g_d & p_d).sum(), (g_d | p_d).sum()), (i, CAMVID_CLASSES[c])
