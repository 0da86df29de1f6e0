// Checks a shared library file before it is handed to the dynamic loader. glibc's dlopen
// maps an ELF file's segments as its program headers describe them without comparing
// them with the file's size: a truncated library (an interrupted download or copy, a full
// disk) maps pages past the end of the file, and the loader's first touch of them raises
// SIGBUS, which takes the whole process down. Reading the headers first turns that into a
// reason. Only ELF is checked: macOS's dyld and Windows' loader refuse a truncated image
// themselves.
#pragma once

#include <filesystem>
#include <string>

namespace llama_kv {

// Why `file` cannot be loaded safely ("" when nothing is found wrong, or when it is not an
// ELF file of this machine's class and byte order: the loader then says what it is).
std::string library_file_problem(const std::filesystem::path & file);

}  // namespace llama_kv
