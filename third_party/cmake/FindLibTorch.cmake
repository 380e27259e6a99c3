# FindLibTorch: provides the imported target pgolf::torch and PGOLF_HAVE_CUDA.
#
# Where LibTorch comes from, first match wins:
#   1. -DPGOLF_TORCH_DIR=<dir holding include/ and lib/> (or the environment variable of that name);
#   2. the torch importable by python3 (the GPU machine's torch 2.11.0+cu130);
#   3. $PGOLF_DEPS/torch-2.11.0/torch (default ~/.cache/pgolf), unpacked from the PyPI wheel by scripts/setup.sh.
# CUDA (PGOLF_CUDA=AUTO|ON|OFF): AUTO turns it on when the LibTorch has CUDA libraries and a GPU answers.
# With CUDA we use Torch's own CMake package (it knows the CUDA flags); without, we link torch_cpu and c10
# only, so the CUDA side of the wheel never has to resolve on a machine without a GPU.
set(PGOLF_TORCH_VERSION 2.11.0)
set(PGOLF_CUDA AUTO CACHE STRING "Build the CUDA path: AUTO, ON or OFF")

if(NOT PGOLF_TORCH_DIR AND DEFINED ENV{PGOLF_TORCH_DIR})
  set(PGOLF_TORCH_DIR $ENV{PGOLF_TORCH_DIR})
endif()
if(NOT PGOLF_TORCH_DIR)
  find_package(Python3 COMPONENTS Interpreter QUIET)
  if(Python3_Interpreter_FOUND)
    execute_process(COMMAND ${Python3_EXECUTABLE} -c "import torch,os;print(os.path.dirname(torch.__file__))"
                    OUTPUT_VARIABLE _py_torch OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _py_rc)
    if(_py_rc EQUAL 0 AND EXISTS "${_py_torch}/lib")
      set(PGOLF_TORCH_DIR "${_py_torch}")
    endif()
  endif()
endif()
if(NOT PGOLF_TORCH_DIR)
  if(DEFINED ENV{PGOLF_DEPS})
    set(_deps $ENV{PGOLF_DEPS})
  else()
    set(_deps "$ENV{HOME}/.cache/pgolf")
  endif()
  set(PGOLF_TORCH_DIR "${_deps}/torch-${PGOLF_TORCH_VERSION}/torch")
endif()
if(NOT EXISTS "${PGOLF_TORCH_DIR}/lib/libtorch_cpu.so")
  message(FATAL_ERROR "LibTorch not found in '${PGOLF_TORCH_DIR}' (no lib/libtorch_cpu.so). "
                      "Run scripts/setup.sh (or `make build`), or pass -DPGOLF_TORCH_DIR=<torch dir>.")
endif()
set(PGOLF_TORCH_DIR "${PGOLF_TORCH_DIR}" CACHE PATH "LibTorch root (include/, lib/)" FORCE)

set(PGOLF_HAVE_CUDA OFF)
if(EXISTS "${PGOLF_TORCH_DIR}/lib/libtorch_cuda.so" AND NOT PGOLF_CUDA STREQUAL "OFF")
  if(PGOLF_CUDA STREQUAL "ON")
    set(PGOLF_HAVE_CUDA ON)
  else()
    execute_process(COMMAND nvidia-smi -L RESULT_VARIABLE _smi_rc OUTPUT_QUIET ERROR_QUIET)
    if(_smi_rc EQUAL 0)
      set(PGOLF_HAVE_CUDA ON)
    endif()
  endif()
endif()

add_library(pgolf_torch INTERFACE)
add_library(pgolf::torch ALIAS pgolf_torch)
if(PGOLF_HAVE_CUDA)
  find_package(Torch REQUIRED CONFIG PATHS "${PGOLF_TORCH_DIR}/share/cmake/Torch" NO_DEFAULT_PATH)
  target_link_libraries(pgolf_torch INTERFACE ${TORCH_LIBRARIES})
  target_compile_definitions(pgolf_torch INTERFACE PGOLF_WITH_CUDA=1)
  message(STATUS "pgolf: LibTorch ${PGOLF_TORCH_DIR} with CUDA")
else()
  target_include_directories(pgolf_torch SYSTEM INTERFACE
    "${PGOLF_TORCH_DIR}/include" "${PGOLF_TORCH_DIR}/include/torch/csrc/api/include")
  target_link_libraries(pgolf_torch INTERFACE
    "${PGOLF_TORCH_DIR}/lib/libtorch_cpu.so" "${PGOLF_TORCH_DIR}/lib/libc10.so")
  # libtorch_cpu.so names libcudart/libcupti; the CUDA toolkit provides them even without a GPU.
  foreach(_d /usr/local/cuda/lib64 /usr/local/cuda/lib)
    if(EXISTS ${_d})
      target_link_options(pgolf_torch INTERFACE "LINKER:-rpath-link,${_d}")
    endif()
  endforeach()
  message(STATUS "pgolf: LibTorch ${PGOLF_TORCH_DIR} CPU-only")
endif()
# The wheel's libraries find each other through RUNPATH; our binaries need the directory too.
set(CMAKE_BUILD_RPATH "${PGOLF_TORCH_DIR}/lib" ${CMAKE_BUILD_RPATH})
set(LibTorch_FOUND TRUE)
