# nextblock_content_sha256(<dir> <out-var>)
# SHA-256 of a source tree's content, independent of how it was packed (tarball compression,
# timestamps): the SHA-256 of the text that `cd DIR && find . -type f -print0 | LC_ALL=C sort -z |
# xargs -0 sha256sum` prints, i.e. one "<sha256>  ./<path>\n" line per regular file in byte order.
# The same tree from `git archive v2.7.2` and from GitHub's release tarball gives the same value.
function(nextblock_content_sha256 dir out_var)
  file(GLOB_RECURSE files LIST_DIRECTORIES false RELATIVE "${dir}" "${dir}/*")
  list(SORT files COMPARE STRING)
  set(manifest "")
  foreach(f IN LISTS files)
    if(IS_SYMLINK "${dir}/${f}")
      continue()
    endif()
    file(SHA256 "${dir}/${f}" h)
    string(APPEND manifest "${h}  ./${f}\n")
  endforeach()
  string(SHA256 total "${manifest}")
  set(${out_var} "${total}" PARENT_SCOPE)
endfunction()

if(CMAKE_SCRIPT_MODE_FILE AND DEFINED DIR)
  nextblock_content_sha256("${DIR}" h)
  message("${h}")
endif()
