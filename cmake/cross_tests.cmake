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
  # qemu-user takes its CPU model from QEMU_CPU. The kernels run on two: "max" (SVE and SVE2, 512-bit
  # vectors by default in user mode) and "cortex-a72" (NEON only). SimdTarget prints the target
  # Highway dispatched to; a run that falls back to a non-SIMD target fails. pauth=off: Debian's arm64
  # libraries are built with pointer authentication, which "max" emulates with the QARMA cipher in
  # every function prologue and epilogue, doubling the run time; it is no part of what is tested.
  set(OPTIQ_CPU_max "max,pauth=off")
  set(OPTIQ_CPU_cortex-a72 cortex-a72)
  foreach(cpu max cortex-a72)
    add_test(NAME kernels_${cpu} COMMAND optiq_kernel_tests)
    set_tests_properties(kernels_${cpu} PROPERTIES ENVIRONMENT "QEMU_CPU=${OPTIQ_CPU_${cpu}}"
      FAIL_REGULAR_EXPRESSION "Highway dispatched target: (EMU128|SCALAR)")
  endforeach()
  set(OPTIQ_CROSS_CPU "QEMU_CPU=${OPTIQ_CPU_max}")
else()
  add_test(NAME kernels COMMAND optiq_kernel_tests)
endif()
add_test(NAME model_goldens COMMAND optiq_model_golden_tests)
add_test(NAME tokenizer COMMAND optiq_tokenizer_tests)
if(OPTIQ_CROSS_CPU)
  set_tests_properties(model_goldens tokenizer PROPERTIES ENVIRONMENT ${OPTIQ_CROSS_CPU})
endif()
