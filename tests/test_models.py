import json
from pathlib import Path

import pytest
import torch

from mma_edu.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mma_edu.models import (
    MLP,
    LeNet5Madry,
    PerImageStandardization,
    WideResNet,
    build_model,
    cifar10_wrn28_4,
    count_parameters,
)

# Every key and shape of the authors' released checkpoints (a copy of ../shared/reference_state_dict_shapes.json,
# kept in the repository so that a bare checkout tests against it too).
SHAPES = Path(__file__).resolve().parent / "data" / "reference_state_dict_shapes.json"


def _reference_shapes() -> dict:
    return json.loads(SHAPES.read_text())


def _state_dict_from_shapes(shapes: dict) -> dict:
    g = torch.Generator().manual_seed(0)
    out = {}
    for k, s in shapes.items():
        out[k] = torch.tensor(7) if k.endswith("num_batches_tracked") else torch.randn(s, generator=g)
    return out


@pytest.mark.parametrize("name, build, n_params", [
    ("lenet5_madry", LeNet5Madry, 3_274_634),
    ("cifar10_wrn28_4", cifar10_wrn28_4, 5_849_050),
])
def test_reference_state_dict_loads_strictly(name, build, n_params):
    model = build()
    assert count_parameters(model) == n_params
    shapes = _reference_shapes()[name]
    assert set(model.state_dict()) == set(shapes)
    model.load_state_dict(_state_dict_from_shapes(shapes), strict=True)


def test_authors_checkpoint_format_loads_and_model_is_inferred(tmp_path):
    for name, build in [("lenet5_madry", LeNet5Madry), ("cifar10_wrn28_4", cifar10_wrn28_4)]:
        sd = _state_dict_from_shapes(_reference_shapes()[name])
        path = tmp_path / f"{name}_model_best.pt"
        torch.save({"epoch": 12, "model": sd}, path)
        ck = load_checkpoint(path)  # no model given: inferred from the keys
        assert ck.epoch == 12
        assert type(ck.model) is type(build())
        first = next(iter(sd))
        torch.testing.assert_close(ck.model.state_dict()[first], sd[first])


def test_mismatched_architecture_is_a_clear_error(tmp_path):
    path = tmp_path / "lenet.pt"
    torch.save({"epoch": 1, "model": LeNet5Madry().state_dict()}, path)
    with pytest.raises(CheckpointError, match="does not fit WideResNet") as info:
        load_checkpoint(path, WideResNet(16, 1))
    assert "missing keys" in str(info.value)
    torch.save({"epoch": 1, "model": LeNet5Madry(num_classes=3).state_dict()}, path)
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_checkpoint(path, LeNet5Madry())


def test_checkpoints_load_with_weights_only(tmp_path):
    # A pickle that would run code on load is refused.
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "x": Evil()}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(path, LeNet5Madry())


def test_our_format_round_trips_and_write_is_atomic(tmp_path, monkeypatch):
    model = MLP(hidden=8)
    path = save_checkpoint(tmp_path / "ck.pt", {
        "format": "mma-edu/1", "model_name": "mlp", "model_kwargs": {"hidden": 8},
        "epoch": 3, "model": model.state_dict(),
    })
    ck = load_checkpoint(path)
    assert ck.epoch == 3 and ck.model_name == "mlp"
    torch.testing.assert_close(ck.model.state_dict(), model.state_dict())

    # A crash in the middle of writing leaves the previous checkpoint intact and no temp file.
    def crash(obj, f, *a, **k):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"model": {}})
    monkeypatch.undo()
    assert load_checkpoint(path).epoch == 3
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]


def test_missing_checkpoint_file():
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint("nope/model_best.pt")


def test_per_image_standardization_matches_its_definition():
    x = torch.rand(4, 3, 32, 32)
    out = PerImageStandardization()(x)
    flat = out.flatten(1)
    torch.testing.assert_close(flat.mean(1), torch.zeros(4), atol=1e-5, rtol=0)
    torch.testing.assert_close(flat.std(1), torch.ones(4), atol=1e-4, rtol=0)
    # A constant image has std 0: the floor 1/√numel keeps it finite.
    const = PerImageStandardization()(torch.full((1, 3, 32, 32), 0.5))
    assert torch.equal(const, torch.zeros(1, 3, 32, 32))


def test_model_output_shapes():
    assert LeNet5Madry()(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert cifar10_wrn28_4().eval()(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    assert MLP()(torch.rand(5, 2)).shape == (5, 2)
    assert build_model("mlp", hidden=4)(torch.rand(1, 2)).shape == (1, 2)


def test_model_bad_arguments():
    with pytest.raises(ValueError, match="depth must be 6n"):
        WideResNet(depth=27)
    with pytest.raises(ValueError, match="model must be one of"):
        build_model("resnet50")
