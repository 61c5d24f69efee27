"""Conan 2 recipe for penstock: the header-only DSL and the compiled runtime.

    conan create conan --profile:all conan/profiles/system --build=missing

(scripts/conan_create.sh does this offline, with oneTBB, fmt, CLI11, cereal,
xxHash and SQLite taken from the system through the profile's [platform_requires].)
The build is penstock's own CMake, which finds those libraries itself, and
the package carries penstock's own CMake config (find_package(penstock)),
which finds them again with find_dependency.
"""
import os
import re

from conan import ConanFile
from conan.tools.build import check_min_cppstd
from conan.tools.cmake import CMake, CMakeToolchain, cmake_layout
from conan.tools.files import copy, load


class PenstockConan(ConanFile):
    name = "penstock"
    description = "Typed, cached ML pipelines for C++"
    # No license attribute: the project has not declared one yet.
    topics = ("pipeline", "dsl", "machine-learning", "tbb")
    package_type = "static-library"
    settings = "os", "arch", "compiler", "build_type"

    def set_version(self):
        # The version is defined once, in the top-level CMakeLists.txt's
        # project() call. Only called on export, from the source tree.
        text = load(self, os.path.join(self.recipe_folder, "..", "CMakeLists.txt"))
        match = re.search(r"project\(\s*penstock\s+VERSION\s+(\d+\.\d+\.\d+)", text)
        if not match:
            raise ValueError("no project(penstock VERSION x.y.z) in CMakeLists.txt")
        self.version = match.group(1)

    def export_sources(self):
        root = os.path.join(self.recipe_folder, "..")
        copy(self, "CMakeLists.txt", root, self.export_sources_folder)
        for folder in ("cmake", "include", "runtime"):
            copy(self, f"{folder}/*", root, self.export_sources_folder)

    def layout(self):
        cmake_layout(self)

    def requirements(self):
        # What penstock's CMake finds; with the system profile these are
        # [platform_requires], i.e. the Debian packages.
        self.requires("onetbb/[>=2021.5 <2023]")
        self.requires("fmt/[>=9 <11]")
        self.requires("cli11/[>=2.1 <3]")
        self.requires("cereal/[>=1.3 <2]")
        self.requires("xxhash/[>=0.8 <0.9]")
        self.requires("sqlite3/[>=3.40 <4]")

    def validate(self):
        check_min_cppstd(self, 20)

    def generate(self):
        tc = CMakeToolchain(self)
        tc.cache_variables["PENSTOCK_BUILD_TESTS"] = False
        tc.cache_variables["PENSTOCK_BUILD_EXAMPLES"] = False
        tc.cache_variables["PENSTOCK_BUILD_BENCH"] = False
        tc.cache_variables["PENSTOCK_INSTALL"] = True
        tc.generate()

    def build(self):
        cmake = CMake(self)
        cmake.configure()
        cmake.build()

    def package(self):
        CMake(self).install()

    def package_info(self):
        # Consumers use the installed penstockConfig.cmake, which finds the
        # system libraries with find_dependency. CMakeDeps is told to make
        # none: it makes no config for [platform_requires] packages either
        # (it skips them), so its penstock targets would name dependency
        # targets that nothing defines.
        self.cpp_info.set_property("cmake_find_mode", "none")
        self.cpp_info.set_property("cmake_file_name", "penstock")

        runtime = self.cpp_info.components["runtime"]
        runtime.set_property("cmake_target_name", "penstock::runtime")
        runtime.libs = ["penstock_runtime"]
        runtime.requires = ["onetbb::onetbb", "fmt::fmt", "cli11::cli11", "sqlite3::sqlite3"]
        if self.settings.os in ("Linux", "FreeBSD"):
            runtime.system_libs = ["pthread"]

        dsl = self.cpp_info.components["penstock"]
        dsl.set_property("cmake_target_name", "penstock::penstock")
        dsl.libs = []
        dsl.libdirs = []
        dsl.requires = ["runtime", "cereal::cereal", "xxhash::xxhash"]
        # Puts lib/cmake/penstock on CMAKE_PREFIX_PATH (CMakeToolchain), so
        # find_package(penstock CONFIG) finds the package's own config.
        dsl.builddirs = [os.path.join("lib", "cmake", "penstock")]
