"""The mma-edu command line, run as a user would (in-process through main())."""

import json

import pytest

from mma_edu.cli import main


def test_presets_lists_the_paper_runs(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    for name in ["mnist-linf-mma-0.45", "mnist-l2-mma-4.0", "cifar10-linf-mma-32", "cifar10-l2-omma-3.0",
                 "mnist-linf-pgd-0.3", "cifar10-linf-pgd-8", "mnist-standard"]:
        assert name in out


def test_unknown_preset_is_one_line_with_suggestions(capsys):
    assert main(["train", "--preset", "mnist-linf-mma-0.4"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown preset" in err and "mnist-linf-mma-0.45" in err


def test_bad_arguments_exit_2_without_traceback(capsys):
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "x.pt", "--norm", "l3", "--eps", "0.1"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main(["evaluate", "missing.pt", "--norm", "linf", "--eps", "0.1"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_cifar10_offline_is_refused_clearly(capsys):
    assert main(["train", "--preset", "cifar10-linf-mma-32", "--data", "offline", "--steps", "1"]) == 2
    assert "no offline copy" in capsys.readouterr().err


def test_train_resume_evaluate_margins(tmp_path, capsys):
    out = tmp_path / "run"
    args = ["train", "--preset", "mnist-linf-mma-0.45", "--data", "offline", "--steps", "3", "--out", str(out),
            "--val-size", "20", "--no-progress", "--device", "cpu"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "3,600 train, 400 validation" in text and "(partial epoch)" in text
    assert {p.name for p in out.iterdir()} >= {"last.pt", "best.pt", "history.json"}
    # --steps is the run's total: resuming to 5 runs two more steps.
    args[args.index("3")] = "5"
    assert main(args + ["--resume"]) == 0
    hist = json.loads((out / "history.json").read_text())
    assert len(hist["step_loss"]) == 5
    res = tmp_path / "eval.json"
    assert main(["evaluate", str(out / "last.pt"), "--norm", "linf", "--eps", "0.1", "0.2", "--n", "20",
                 "--restarts", "2", "--steps", "5", "--no-progress", "--json", str(res), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "mnist_offline/test[20]" in text and "AvgRobAcc" in text
    r = json.loads(res.read_text())
    assert r["eps"] == [0.1, 0.2] and r["accuracy"][1] <= r["accuracy"][0] <= r["clean"]
    assert main(["margins", str(out / "last.pt"), "--norm", "l2", "--max-eps", "3", "--n", "10", "--steps", "5",
                 "--refine", "0", "--no-progress", "--device", "cpu"]) == 0
    assert "median" in capsys.readouterr().out
