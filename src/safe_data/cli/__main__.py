"""``python -m safe_data.cli``, as ``python -m safe_data``."""

from . import main

main()  # pragma: no cover
