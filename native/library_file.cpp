#include "library_file.h"

#include <cstdint>
#include <cstring>
#include <fstream>
#include <system_error>
#include <vector>

#if defined(__linux__)
#    include <elf.h>
#endif

namespace llama_kv {

#if defined(__linux__)

namespace {

#    if UINTPTR_MAX == UINT64_MAX
using elf_ehdr                  = Elf64_Ehdr;
using elf_phdr                  = Elf64_Phdr;
constexpr unsigned char elf_class = ELFCLASS64;
#    else
using elf_ehdr                  = Elf32_Ehdr;
using elf_phdr                  = Elf32_Phdr;
constexpr unsigned char elf_class = ELFCLASS32;
#    endif

bool native_byte_order(unsigned char data) {
    const uint16_t one = 1;
    unsigned char  first;
    std::memcpy(&first, &one, 1);
    return data == (first == 1 ? ELFDATA2LSB : ELFDATA2MSB);
}

// offset + length, or UINT64_MAX when a corrupt header makes the sum wrap (then it is past any file).
uint64_t end_of(uint64_t offset, uint64_t length) {
    return offset > UINT64_MAX - length ? UINT64_MAX : offset + length;
}

std::string truncated(uint64_t size, uint64_t needed, const char * what) {
    return "the file is truncated: it has " + std::to_string(size) + " bytes, but its " + what + " reach byte " +
           std::to_string(needed) + " (an interrupted download or copy?)";
}

}  // namespace

std::string library_file_problem(const std::filesystem::path & file) {
    std::error_code ec;
    const uint64_t  size = std::filesystem::file_size(file, ec);
    if (ec) {
        return "";  // the loader says why it cannot open it
    }
    std::ifstream in(file, std::ios::binary);
    if (!in) {
        return "";
    }
    unsigned char ident[EI_NIDENT] = {};
    in.read(reinterpret_cast<char *>(ident), EI_NIDENT);
    if (in.gcount() < static_cast<std::streamsize>(SELFMAG) || std::memcmp(ident, ELFMAG, SELFMAG) != 0) {
        return size < SELFMAG ? truncated(size, SELFMAG, "ELF header would") : "";
    }
    if (ident[EI_CLASS] != elf_class || !native_byte_order(ident[EI_DATA])) {
        return "";
    }
    if (size < sizeof(elf_ehdr)) {
        return truncated(size, sizeof(elf_ehdr), "ELF header would");
    }
    elf_ehdr header;
    in.seekg(0);
    in.read(reinterpret_cast<char *>(&header), sizeof header);
    if (!in) {
        return "";
    }
    if (header.e_phentsize != sizeof(elf_phdr)) {
        return "";  // not an image this loader maps; it says so
    }
    const uint64_t phdrs_end = end_of(header.e_phoff, uint64_t{ header.e_phnum } * sizeof(elf_phdr));
    if (phdrs_end > size) {
        return truncated(size, phdrs_end, "program headers");
    }
    std::vector<elf_phdr> phdrs(header.e_phnum);
    in.seekg(static_cast<std::streamoff>(header.e_phoff));
    in.read(reinterpret_cast<char *>(phdrs.data()), static_cast<std::streamsize>(phdrs.size() * sizeof(elf_phdr)));
    if (!in) {
        return "";
    }
    uint64_t needed = 0;
    for (const elf_phdr & p : phdrs) {
        if (p.p_type == PT_LOAD || p.p_type == PT_DYNAMIC) {
            const uint64_t end = end_of(p.p_offset, p.p_filesz);
            needed             = end > needed ? end : needed;
        }
    }
    if (needed > size) {
        return truncated(size, needed, "loadable segments");
    }
    if (header.e_shnum > 0) {
        const uint64_t shdrs_end = end_of(header.e_shoff, uint64_t{ header.e_shnum } * header.e_shentsize);
        if (shdrs_end > size) {
            return truncated(size, shdrs_end, "section headers");
        }
    }
    return "";
}

#else

std::string library_file_problem(const std::filesystem::path &) {
    return "";
}

#endif

}  // namespace llama_kv
