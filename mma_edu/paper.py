"""Numbers the authors reported (§7 of the paper notes), as anchors for what the course measures.

Keys are the names of the zoo models that play the same role (:mod:`mma_edu.zoo`).
"""

from __future__ import annotations

# MNIST ℓ∞, LeNet5-Madry, 100,000 steps: clean, then robust accuracy at ε = 0.1, 0.2, 0.3, 0.4 (%).
MNIST_LINF: dict[str, tuple[float, ...]] = {
    "mma-0.45": (98.9, 97.9, 96.0, 92.6, 85.2),
    "trades-0.3": (99.5, 98.8, 97.3, 94.1, 0.1),
}
MNIST_LINF_AVG_ACC = {"mma-0.45": 94.1, "trades-0.3": 78.0}

# MNIST ℓ2: minimum ℓ2 distance found by Carlini-Wagner ℓ2 on the first 1,000 test images, models trained with
# ℓ2 attacks: (clean accuracy %, mean distance, median distance).
MNIST_L2_DISTANCES: dict[str, tuple[float, float, float]] = {
    "standard": (99.0, 1.57, 1.57),
    "l2-pgd-2": (98.6, 2.32, 2.43),
    "l2-pgd-4": (91.8, 2.53, 2.75),
    "l2-mma-2": (99.3, 2.15, 2.22),
    "l2-mma-4": (98.5, 2.67, 2.72),
    "l2-mma-6": (97.7, 2.76, 2.72),
}
