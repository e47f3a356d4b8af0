# Cross-compiling for 64-bit ARM Linux with Debian's cross toolchain (g++-aarch64-linux-gnu) against the
# multiarch :arm64 -dev packages; the binaries run under qemu-user. Used by scripts/arm64.sh.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# pkg-config sees only the arm64 .pc files and the architecture-independent ones, never the host's.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# Tests (ctest, gtest discovery) run through qemu-user. -L makes the dynamic loader and the cross
# toolchain's libstdc++ resolve from /usr/aarch64-linux-gnu; the other arm64 libraries come from
# /usr/lib/aarch64-linux-gnu, where the :arm64 packages put them. The CPU model comes from QEMU_CPU.
find_program(OPTIQ_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64 REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR ${OPTIQ_QEMU_AARCH64} -L /usr/aarch64-linux-gnu)
