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


def test_random_crop_flip_shifts_and_mirrors():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).reshape(2, 1, 6, 6) + 1
    torch.manual_seed(0)
    out = data.random_crop_flip(x, padding=2)
    assert out.shape == x.shape
    for i in range(2):
        # Every output is a (possibly flipped) window of the zero-padded image.
        padded = torch.nn.functional.pad(x[i], (2,) * 4)
        windows = [padded[:, r : r + 6, c : c + 6] for r in range(5) for c in range(5)]
        windows += [w.flip(-1) for w in windows]
        assert any(torch.equal(out[i], w) for w in windows)


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
