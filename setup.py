"""Builds the Cython extension ``safe_data._core`` -- and nothing else (metadata is in
pyproject.toml).

Policy: the extension is always built from the ``.pyx`` (Cython is a build requirement,
no generated C is shipped); compiler directives live here and only here.
``SAFE_DATA_NO_EXTENSIONS=1`` skips the build and installs the pure-Python twin only.
"""

import os

from setuptools import Extension, setup

ext_modules = []
if os.environ.get("SAFE_DATA_NO_EXTENSIONS", "") in ("", "0"):
    from Cython.Build import cythonize

    ext_modules = cythonize(
        [Extension("safe_data._core", ["src/safe_data/_core.pyx"], include_dirs=["src/safe_data"])],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
    )

setup(ext_modules=ext_modules)
