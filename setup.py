"""Builds the Cython extension -- and nothing else (metadata is in pyproject.toml): three
modules, the record writer and codec ``safe_data.journal._writer_c``, the frame decoder of
bulk reads ``safe_data.journal._records_c`` and the containers
``safe_data.containers._containers_c``; the last two cimport the writer through its ``.pxd``.
On CPython 3.12 and newer a fourth, ``safe_data.containers._watch_c``: the dict watcher of
``safe_data.watch()``.

Policy: the extension is always built from the ``.pyx`` (Cython is a build requirement,
no generated C is shipped); compiler directives live here and only here.
``SAFE_DATA_NO_EXTENSIONS=1`` skips the build and installs the pure-Python twin only.
Where no C compiler works, the install goes on with the twin alone (and says so), as
msgpack and frozenlist do; ``SAFE_DATA_REQUIRE_EXTENSIONS=1`` makes that an error.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, ExecError, PlatformError


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


class optional_build_ext(build_ext):
    """build_ext that falls back to the pure-Python twin when compiling fails."""

    def run(self):
        try:
            super().run()
        except PlatformError as exc:  # no compiler at all
            self._fall_back(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except (CCompilerError, ExecError, PlatformError) as exc:
            self._fall_back(exc)

    def _fall_back(self, exc):
        if _flag("SAFE_DATA_REQUIRE_EXTENSIONS"):
            raise exc
        self.warn(f"safe_data: the C extension could not be built ({exc}); installing the "
                  "pure-Python twin only (same API and format, slower)")

ext_modules = []
if not _flag("SAFE_DATA_NO_EXTENSIONS"):
    from Cython.Build import cythonize

    def _extension(name: str) -> Extension:
        return Extension(
            name, ["src/" + name.replace(".", "/") + ".pyx"], include_dirs=["src/safe_data"],
            # `cdef inline` is only a hint; the encoder's tiny buffer writers must really be
            # inlined (gcc stopped doing it as the module grew: 4x slower encoding)
            define_macros=[("CYTHON_INLINE", "__attribute__((always_inline)) inline")],
        )

    modules = ["safe_data.journal._writer_c", "safe_data.journal._records_c", "safe_data.containers._containers_c"]
    if sys.version_info >= (3, 12):  # dict watchers, for safe_data.watch()
        modules.append("safe_data.containers._watch_c")
    ext_modules = cythonize(
        [_extension(name) for name in modules],
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
            # as Argument Clinic writes it: inspect.signature() reads it (__text_signature__)
            "embedsignature.format": "clinic",
        },
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": optional_build_ext})
