import os
from io import StringIO

from conan import ConanFile
from conan.tools.build import can_run
from conan.tools.cmake import CMake, cmake_layout


class PenstockTestConan(ConanFile):
    settings = "os", "arch", "compiler", "build_type"
    # No CMakeDeps: penstock ships its own penstockConfig.cmake, which the
    # toolchain puts on CMAKE_PREFIX_PATH (the package's builddirs).
    generators = "CMakeToolchain", "VirtualRunEnv"
    test_type = "explicit"

    def requirements(self):
        self.requires(self.tested_reference_str)

    def layout(self):
        cmake_layout(self)

    def build(self):
        cmake = CMake(self)
        cmake.configure()
        cmake.build()

    def test(self):
        if can_run(self):
            exe = os.path.join(self.cpp.build.bindir, "test_package")
            out = StringIO()
            self.run(f"{exe} run --param n=10 --quiet", stdout=out, env="conanrun")
            if out.getvalue() != "sum = 55\n":
                raise Exception(f"test_package printed {out.getvalue()!r}, expected 'sum = 55'")
