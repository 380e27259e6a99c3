# FindBrotli: pgolf::brotli from libbrotlienc/libbrotlidec (Debian libbrotli-dev) when present.
# Optional: the brotli compressor registers only where it is found (the GPU image lacks the headers
# unless the .debs are unpacked into a prefix named by BROTLI_ROOT).
find_path(BROTLI_INCLUDE_DIR brotli/encode.h HINTS ${BROTLI_ROOT}/usr/include ${BROTLI_ROOT}/include)
find_library(BROTLI_ENC_LIB brotlienc HINTS ${BROTLI_ROOT}/usr/lib/x86_64-linux-gnu ${BROTLI_ROOT}/lib)
find_library(BROTLI_DEC_LIB brotlidec HINTS ${BROTLI_ROOT}/usr/lib/x86_64-linux-gnu ${BROTLI_ROOT}/lib)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(Brotli DEFAULT_MSG BROTLI_INCLUDE_DIR BROTLI_ENC_LIB BROTLI_DEC_LIB)
if(Brotli_FOUND AND NOT TARGET pgolf::brotli)
  add_library(pgolf_brotli INTERFACE)
  add_library(pgolf::brotli ALIAS pgolf_brotli)
  target_include_directories(pgolf_brotli INTERFACE ${BROTLI_INCLUDE_DIR})
  target_link_libraries(pgolf_brotli INTERFACE ${BROTLI_ENC_LIB} ${BROTLI_DEC_LIB})
  target_compile_definitions(pgolf_brotli INTERFACE PGOLF_HAVE_BROTLI=1)
endif()
