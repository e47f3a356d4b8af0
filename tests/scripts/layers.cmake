# Layering of src/ (scripts/check_layers.py, issue #16): include rules and the 800-line file limit as two
# tests, so each names its own failure. Until the kernel seam lands, layers_includes fails on the
# models -> kernels rule (and on decode/generate.cpp's kernel includes); layers_file_length fails until the
# three large files are split.
find_package(Python3 COMPONENTS Interpreter)
if(Python3_Interpreter_FOUND)
  add_test(NAME layers_includes
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/scripts/check_layers.py --src ${CMAKE_SOURCE_DIR}/src
                   --checks includes --graph)
  add_test(NAME layers_file_length
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_SOURCE_DIR}/scripts/check_layers.py --src ${CMAKE_SOURCE_DIR}/src
                   --checks lengths)
endif()
