# Cross-compiling for 64-bit ARM Linux with Debian's cross toolchain (g++-aarch64-linux-gnu) against the
# multiarch :arm64 -dev packages; the binaries run under qemu-user. Used by scripts/arm64.sh.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# pkg-config sees only the arm64 .pc files and the architecture-independent ones, never the host's.
set(ENV{PKG_CONFIG_LIBDIR} "/usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig")
set(ENV{PKG_CONFIG_PATH} "")

# Tests (ctest, gtest discovery) run through qemu-user. No -L prefix: the binaries' interpreter
# /lib/ld-linux-aarch64.so.1 and all their libraries come from the :arm64 packages (libc6:arm64 and
# the /usr/lib/aarch64-linux-gnu multiarch dir). `-L /usr/aarch64-linux-gnu` would load the cross
# toolchain's ld.so (libc6-arm64-cross) next to libc6:arm64's libc.so.6; the two Debian builds differ
# (2.36-8cross1 vs 2.36-9+deb12u*), and their private ld.so/libc interface does not match: the first
# pthread_create loops forever on the loader's stack cache. The CPU model comes from QEMU_CPU.
find_program(OPTIQ_QEMU_AARCH64 NAMES qemu-aarch64-static qemu-aarch64 REQUIRED)
set(CMAKE_CROSSCOMPILING_EMULATOR ${OPTIQ_QEMU_AARCH64})
