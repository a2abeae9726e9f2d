"""Build of the optional compiled core (auditimds._core); everything else is in pyproject.toml.

The extension is optional: without a C compiler or the Python headers, `pip install .` still installs
auditimds, which then runs its pure-Python core (`auditimds --version` says which core is in use).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "auditimds._core",
            sources=["auditimds/csrc/core.c", "auditimds/csrc/module.c"],
            depends=["auditimds/csrc/core.h"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-std=gnu11"],
            optional=True,
        )
    ]
)
