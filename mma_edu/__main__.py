"""``python -m mma_edu`` is the ``mma-edu`` command; under torchrun: ``torchrun --nproc_per_node N -m mma_edu train ...``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
