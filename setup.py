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
        [Extension(
            "safe_data._core", ["src/safe_data/_core.pyx"], include_dirs=["src/safe_data"],
            # `cdef inline` is only a hint; the encoder's tiny buffer writers must really be
            # inlined (gcc stopped doing it as the module grew: 4x slower encoding)
            define_macros=[("CYTHON_INLINE", "__attribute__((always_inline)) inline")],
        )],
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
