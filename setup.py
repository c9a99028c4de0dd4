"""Declares the optional C accelerator ``wsstream._speedups``; pyproject.toml holds everything else.

The extension is optional: without a working C compiler (or with ``WSSTREAM_NO_SPEEDUPS`` set to a
non-empty value other than "0" at build time) the build prints a warning and installs the pure-Python
package, which wsstream.core.mask detects at import.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _speedups_disabled() -> bool:
    value = os.environ.get("WSSTREAM_NO_SPEEDUPS", "")
    return value not in ("", "0")


class OptionalBuildExt(build_ext):
    """build_ext that turns any compiler failure into a warning, and adds -O3 where it is understood."""

    def build_extensions(self) -> None:
        if self.compiler.compiler_type == "unix":
            for ext in self.extensions:
                # -O3 lets gcc/clang vectorise the 8-byte-word XOR loop in _speedups.c.
                ext.extra_compile_args = [*ext.extra_compile_args, "-O3"]
        super().build_extensions()

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler at all surfaces as various distutils/OS errors
            self._warn(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._warn(exc)

    @staticmethod
    def _warn(exc: BaseException) -> None:
        print(
            f"WARNING: could not build the optional C accelerator wsstream._speedups ({exc}); "
            "wsstream will use its pure-Python implementation.",
            file=sys.stderr,
        )


ext_modules = (
    [] if _speedups_disabled() else [Extension("wsstream._speedups", sources=["wsstream/_speedups.c"], optional=True)]
)

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
