"""Training methods check every setting when they are made, naming the argument (issue 9).

Before: PGDAT(0.3, steps=-2) trained with no attack, PGDAT(0.3, steps=2.5)
failed later with a TypeError, MMA(0.3, steps=-1) only once the model was confident.
"""

import math

import pytest

from mma_edu.presets import PRESETS
from mma_edu.train import MMA, OMMA, PGDAT

NAN, INF = math.nan, math.inf

BAD = [
    # PGDAT
    (PGDAT, dict(steps=-2), "steps"),
    (PGDAT, dict(steps=0), "steps"),
    (PGDAT, dict(steps=2.5), "steps"),
    (PGDAT, dict(steps=3.0), "steps"),
    (PGDAT, dict(steps=True), "steps"),
    (PGDAT, dict(eps=NAN), "eps"),
    (PGDAT, dict(eps=INF), "eps"),
    (PGDAT, dict(eps=0.0), "eps"),
    (PGDAT, dict(eps=-0.1), "eps"),
    (PGDAT, dict(eps="0.3"), "eps"),
    (PGDAT, dict(step_size=0.0), "step_size"),
    (PGDAT, dict(step_size=-0.01), "step_size"),
    (PGDAT, dict(step_size=NAN), "step_size"),
    (PGDAT, dict(loss="xent"), "loss"),
    (PGDAT, dict(norm="l1"), "norm"),
    (PGDAT, dict(clean_weight=1.5), "clean_weight"),
    (PGDAT, dict(clean_weight=NAN), "clean_weight"),
    (PGDAT, dict(label_smoothing=1.0), "label_smoothing"),
    (PGDAT, dict(label_smoothing=-0.1), "label_smoothing"),
    (PGDAT, dict(label_smoothing=NAN), "label_smoothing"),
    (PGDAT, dict(clip=(1.0, 0.0)), "clip"),
    (PGDAT, dict(clip=(0.0, NAN)), "clip"),
    # MMA
    (MMA, dict(steps=-1), "steps"),
    (MMA, dict(steps=0), "steps"),
    (MMA, dict(steps=2.5), "steps"),
    (MMA, dict(search_steps=0), "search_steps"),
    (MMA, dict(search_steps=1.5), "search_steps"),
    (MMA, dict(d_max=NAN), "d_max"),
    (MMA, dict(d_max=INF), "d_max"),
    (MMA, dict(d_max=0.0), "d_max"),
    (MMA, dict(mineps=NAN), "mineps"),
    (MMA, dict(mineps=-0.1), "mineps"),
    (MMA, dict(mineps=0.5), "mineps"),  # above hinge_factor·d_max
    (MMA, dict(step_scale=0.0), "step_scale"),
    (MMA, dict(step_scale=NAN), "step_scale"),
    (MMA, dict(hinge_factor=0.5), "hinge_factor"),
    (MMA, dict(hinge_factor=NAN), "hinge_factor"),
    (MMA, dict(clean_weight=-0.1), "clean_weight"),
    (MMA, dict(clean_weight=NAN), "clean_weight"),
    (MMA, dict(bn_mode="train"), "bn_mode"),
    (MMA, dict(precision="fp16"), "precision"),
    (MMA, dict(norm="linf2"), "norm"),
    (MMA, dict(clip_training_point="yes"), "clip_training_point"),
    (MMA, dict(clip=(0.0,)), "clip"),
    (OMMA, dict(steps=-1), "steps"),
]


@pytest.mark.parametrize("factory, kwargs, arg", BAD, ids=[f"{f.__name__}-{k}" for f, k, _ in BAD])
def test_bad_setting_raises_at_construction_naming_the_argument(factory, kwargs, arg):
    first = {"eps": 0.3} if factory is PGDAT else {"d_max": 0.3}
    first.update({k: v for k, v in kwargs.items() if k in first})
    rest = {k: v for k, v in kwargs.items() if k not in first}
    with pytest.raises(ValueError) as info:
        factory(*first.values(), **rest)
    message = str(info.value)
    assert message.startswith(f"{arg} "), message  # names the argument first
    assert "must be" in message  # says what is valid


@pytest.mark.parametrize("factory, kwargs", [
    (PGDAT, dict(eps=0.3, steps=1, step_size=0.01, label_smoothing=0.0)),
    (PGDAT, dict(eps=1, steps=10, label_smoothing=0.5, clean_weight=1)),
    (MMA, dict(d_max=0.3, steps=1, search_steps=1, hinge_factor=1, bn_mode="reference", clip_training_point=False)),
    (MMA, dict(d_max=2, mineps=0.5, norm="l2", precision="bf16", clip=None)),
])
def test_valid_settings_are_accepted(factory, kwargs):
    factory(**kwargs)


def test_every_preset_builds_its_method():
    for preset in PRESETS.values():
        preset.method()
