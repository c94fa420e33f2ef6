import numpy as np
import pytest
import torch

from mma_edu import data
from mma_edu.data import DatasetNotFoundError


def test_mnist_offline_is_a_balanced_4000_1000_split_in_unit_range():
    train, test = data.mnist_offline()
    assert train.x.shape == (4000, 1, 28, 28) and test.x.shape == (1000, 1, 28, 28)
    assert train.x.dtype == torch.float32 and train.y.dtype == torch.int64
    assert torch.equal(train.y.bincount(), torch.full((10,), 400))
    assert torch.equal(test.y.bincount(), torch.full((10,), 100))
    assert train.x.min() == 0 and train.x.max() == 1
    # Real digits: mean intensity of MNIST is about 0.13.
    assert 0.1 < train.x.mean() < 0.16
    # Fixed split: calling again gives the same images; train and test are disjoint.
    again = data.mnist_offline()
    assert torch.equal(again.test.x, test.x)
    seen = {img.numpy().tobytes() for img in train.x}
    assert not any(img.numpy().tobytes() in seen for img in test.x)


def test_with_index_hands_out_the_example_index():
    train = data.mnist_offline().train.with_index()
    x, y, i = train[17]
    assert i == 17 and torch.equal(x, train.x[17]) and y == train.y[17]
    batch = next(iter(torch.utils.data.DataLoader(train, batch_size=5, shuffle=True)))
    xb, yb, ib = batch
    assert torch.equal(xb, train.x[ib]) and torch.equal(yb, train.y[ib])


def test_subset_is_fixed_and_sized():
    test = data.mnist_offline().test
    a, b = test.subset(100), test.subset(100)
    assert len(a) == 100 and torch.equal(a.x, b.x)
    with pytest.raises(ValueError, match="n must be positive"):
        test.subset(0)


def test_cifar10_missing_offline_gives_a_clear_error(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        data.cifar10(tmp_path)
    msg = str(info.value)
    assert "CIFAR10" in msg and str(tmp_path) in msg
    assert "download=True" in msg and "mnist_offline()" in msg


def test_mnist_missing_offline_gives_a_clear_error(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        data.mnist(tmp_path)
    assert "MNIST" in str(info.value) and "download=True" in str(info.value)


def test_cifar10_reads_the_cifar_format(tmp_path):
    folder = data.write_cifar10_fixture(tmp_path, n_train=50, n_test=20)
    train, test = data.cifar10(tmp_path)
    assert train.x.shape == (50, 3, 32, 32) and test.x.shape == (20, 3, 32, 32)
    assert 0 <= train.x.min() and train.x.max() <= 1 and train.y.max() < 10
    # Pixel layout: the first 1024 bytes of a row are the red plane.
    import pickle

    with open(folder / "test_batch", "rb") as f:
        raw = pickle.load(f, encoding="latin1")
    assert torch.equal((test.x[3, 0] * 255).round().to(torch.uint8).flatten(),
                       torch.from_numpy(raw["data"][3][:1024]))
    assert test.y[3] == raw["labels"][3]


def test_load_by_name():
    assert len(data.load("mnist_offline").train) == 4000
    with pytest.raises(ValueError, match="dataset must be one of"):
        data.load("imagenet")


def _reflect_windows(img, padding):
    """Every crop of img (C, H, W) reflect-padded by numpy (an independent reference), unflipped and flipped."""
    c, h, w = img.shape
    padded = torch.from_numpy(np.pad(img.numpy(), ((0, 0), (padding,) * 2, (padding,) * 2), mode="reflect"))
    windows = [padded[:, r : r + h, k : k + w] for r in range(2 * padding + 1) for k in range(2 * padding + 1)]
    return windows, [win.flip(-1) for win in windows]


def test_crop_flip_matches_a_manual_reflect_pad_crop():
    x = torch.arange(2 * 3 * 6 * 5, dtype=torch.float32).reshape(2, 3, 6, 5) + 1
    top, left, flip = torch.tensor([0, 4]), torch.tensor([3, 1]), torch.tensor([False, True])
    out = data.crop_flip(x, top, left, flip, padding=2)
    for i in range(2):
        padded = torch.from_numpy(np.pad(x[i].numpy(), ((0, 0), (2, 2), (2, 2)), mode="reflect"))
        crop = padded[:, top[i] : top[i] + 6, left[i] : left[i] + 5]
        assert torch.equal(out[i], crop.flip(-1) if flip[i] else crop)
    centre = data.crop_flip(x, torch.tensor([2, 2]), torch.tensor([2, 2]), torch.tensor([False, False]), padding=2)
    assert torch.equal(centre, x)


def test_random_crop_flip_reflects_shifts_and_mirrors():
    x = torch.rand(64, 3, 8, 8) * 0.9 + 0.1  # no zero pixel anywhere
    torch.manual_seed(0)
    out = data.random_crop_flip(x, padding=4)
    assert out.shape == x.shape and out.min() > 0  # reflect padding adds no zero border (zero padding would)
    flipped = 0
    for i in range(64):
        plain, mirrored = _reflect_windows(x[i], 4)
        in_plain = any(torch.equal(out[i], win) for win in plain)
        assert in_plain or any(torch.equal(out[i], win) for win in mirrored)
        flipped += not in_plain
    assert 10 < flipped < 54  # about half are mirrored


def test_random_crop_flip_can_leave_digits_unmirrored():
    x = torch.rand(32, 1, 28, 28)
    torch.manual_seed(1)
    out = data.random_crop_flip(x, flip=False)
    for i in range(32):
        plain, _ = _reflect_windows(x[i], 4)
        assert any(torch.equal(out[i], win) for win in plain)
    # Same crops and same random stream afterwards as with flips: only the mirroring is off.
    after = torch.rand(1)
    torch.manual_seed(1)
    flipped = data.random_crop_flip(x)
    assert torch.equal(torch.rand(1), after)
    same = [torch.equal(out[i], flipped[i]) or torch.equal(out[i].flip(-1), flipped[i]) for i in range(32)]
    assert all(same)
    with pytest.raises(ValueError, match="padding"):
        data.random_crop_flip(x, padding=28)


def test_dataset_family_reads_names():
    assert data.dataset_family("mnist_offline/test[40]") == "mnist"
    assert data.dataset_family("mnist/train-holdout5000") == "mnist"
    assert data.dataset_family("cifar10/test") == "cifar10"
    assert data.dataset_family("moons(n=200)") is None and data.dataset_family("") is None


@pytest.mark.parametrize("name", data.TOYS)
def test_toy_datasets_are_seeded_and_shaped(name):
    a = data.toy_2d(name, 120, noise=0.05, seed=1)
    b = data.toy_2d(name, 120, noise=0.05, seed=1)
    c = data.toy_2d(name, 120, noise=0.05, seed=2)
    assert a.x.shape == (120, 2) and a.y.shape == (120,)
    assert torch.equal(a.x, b.x) and not torch.equal(a.x, c.x)
    assert len(a.y.unique()) >= 2


def test_toy_bad_arguments():
    with pytest.raises(ValueError, match="name must be one of"):
        data.toy_2d("swissroll")
    with pytest.raises(ValueError, match="noise must be >= 0"):
        data.toy_2d("moons", noise=-1)


def test_linear_toy_is_linearly_separable():
    ds = data.toy_2d("linear", 400, noise=0.0)
    assert torch.equal((ds.x.sum(1) > 0).long(), ds.y)


def test_cifar10_or_standin_prefers_real_data_then_says_why_it_fell_back(tmp_path, monkeypatch):
    import torchvision.datasets
    import urllib.error

    from mma_edu.data import cifar10_or_standin, write_cifar10_fixture

    class Offline:
        def __init__(self, *args, **kwargs):
            raise urllib.error.URLError("no network")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", Offline)
    splits, why = cifar10_or_standin(tmp_path / "none", download=True, timeout=1)
    assert "stand-in" in splits.train.name and "download failed" in why and "no network" in why
    splits, why = cifar10_or_standin(tmp_path / "none")
    assert "stand-in" in splits.test.name and "download not asked for" in why
    write_cifar10_fixture(tmp_path / "real", n_train=10, n_test=4)
    splits, why = cifar10_or_standin(tmp_path / "real", download=True)
    assert splits.train.name == "cifar10/train" and len(splits.test) == 4 and "found under" in why
