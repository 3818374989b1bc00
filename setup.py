"""Ship the paper presets (``tasks/*.toml``) and dataset cards (``datasets/*.toml``) inside the wheel.

The top-level folders stay the one place they are written; the build copies them into
``sam_bench/_presets/`` of the built package, where an installed sam-bench reads them
(``sam_bench.config.preset_dirs``).
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildWithPresets(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "sam_bench" / "_presets"
        for folder in ("tasks", "datasets"):
            dst = target / folder
            dst.mkdir(parents=True, exist_ok=True)
            for src in sorted((HERE / folder).glob("*.toml")) + sorted((HERE / folder).glob("README.md")):
                shutil.copy2(src, dst / src.name)


setup(cmdclass={"build_py": BuildWithPresets})
