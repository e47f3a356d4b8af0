# Test executables of the cross-compiled ARM64 CI step (scripts/arm64.sh, docs/ci.md), included by
# CMakeLists.txt under OPTIQ_CROSS_TESTS_ONLY: the kernels (on every Highway target the CPU supports),
# the model goldens against shared/fixtures, and the tokenizer.
enable_testing()
find_package(GTest REQUIRED)
file(GLOB OPTIQ_KERNEL_TEST_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/kernels/*_test.cpp)
file(GLOB OPTIQ_TOKENIZER_TEST_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/tokenizer/*_test.cpp)
optiq_test_executable(optiq_kernel_tests ${OPTIQ_KERNEL_TEST_SOURCES})
optiq_test_executable(optiq_model_golden_tests ${CMAKE_SOURCE_DIR}/tests/models/dhara_golden_test.cpp
  ${CMAKE_SOURCE_DIR}/tests/models/diffusion_gemma_test.cpp)
optiq_test_executable(optiq_tokenizer_tests ${OPTIQ_TOKENIZER_TEST_SOURCES})

if(CMAKE_CROSSCOMPILING_EMULATOR)
  # qemu-user takes its CPU model from QEMU_CPU. The kernels run on five, each with the Highway target
  # dispatch must pick there (SimdTarget prints it; a run that dispatches to any other target fails),
  # and every kernel test also loops over the other compiled targets the CPU supports:
  #   sve128   max, 128-bit SVE2 (as Neoverse N2, V2): SVE2_128; loops also SVE2, SVE, NEON
  #   sve256   max, 256-bit (as Neoverse V1): SVE_256; loops also SVE2, SVE, NEON
  #   sve512   max at qemu-user's default length: SVE2 with 16 float lanes
  #   sve2048  max, the longest SVE vectors: SVE2 with 64 float lanes (gemm's partial last vector,
  #            the per-key decode scores, the int8 layout's widest step)
  #   neon     cortex-a72: NEON only
  # pauth=off: Debian's arm64 libraries are built with pointer authentication, which "max" emulates
  # with the QARMA cipher in every function prologue and epilogue, doubling the run time; it is no
  # part of what is tested.
  set(OPTIQ_HWY_ARM_TARGETS NEON SVE SVE2 SVE_256 SVE2_128 EMU128 SCALAR)
  set(OPTIQ_CPU_sve128 "max,pauth=off,sve-default-vector-length=16")
  set(OPTIQ_CPU_sve256 "max,pauth=off,sve-default-vector-length=32")
  set(OPTIQ_CPU_sve512 "max,pauth=off,sve-default-vector-length=64")
  set(OPTIQ_CPU_sve2048 "max,pauth=off,sve-default-vector-length=256")
  set(OPTIQ_CPU_neon cortex-a72)
  set(OPTIQ_TARGET_sve128 SVE2_128)
  set(OPTIQ_TARGET_sve256 SVE_256)
  set(OPTIQ_TARGET_sve512 SVE2)
  set(OPTIQ_TARGET_sve2048 SVE2)
  set(OPTIQ_TARGET_neon NEON)
  foreach(cpu sve128 sve256 sve512 sve2048 neon)
    set(others ${OPTIQ_HWY_ARM_TARGETS})
    list(REMOVE_ITEM others ${OPTIQ_TARGET_${cpu}})
    list(JOIN others "|" others)
    add_test(NAME kernels_${cpu} COMMAND optiq_kernel_tests)
    set_tests_properties(kernels_${cpu} PROPERTIES ENVIRONMENT "QEMU_CPU=${OPTIQ_CPU_${cpu}}"
      FAIL_REGULAR_EXPRESSION "Highway dispatched target: (${others}) \\(")
  endforeach()
else()
  add_test(NAME kernels COMMAND optiq_kernel_tests)
endif()
add_test(NAME model_goldens COMMAND optiq_model_golden_tests)
add_test(NAME tokenizer COMMAND optiq_tokenizer_tests)
if(CMAKE_CROSSCOMPILING_EMULATOR)
  # The models end to end on 128-bit SVE2 (the SVE2_128 kernels); the tokenizer has no SIMD kernels.
  set_tests_properties(model_goldens PROPERTIES ENVIRONMENT "QEMU_CPU=${OPTIQ_CPU_sve128}")
  set_tests_properties(tokenizer PROPERTIES ENVIRONMENT "QEMU_CPU=${OPTIQ_CPU_neon}")
endif()
