"""bench/notebooks_under_load: its competing load starts and stops cleanly, and bad arguments are named."""

import time

import pytest

from bench.notebooks_under_load import cpu_load, main


def test_cpu_load_runs_busy_processes_and_stops_them():
    with cpu_load(2) as workers:
        time.sleep(0.3)
        assert [w.is_alive() for w in workers] == [True, True]
    assert [w.is_alive() for w in workers] == [False, False] and all(w.exitcode == 0 for w in workers)


@pytest.mark.parametrize("argv, words", [(["--only", "99"], "no notebooks match --only"),
                                         (["--load", "0"], "--load must be at least 1")])
def test_bad_arguments_are_named(argv, words, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert words in capsys.readouterr().err
