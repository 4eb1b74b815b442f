#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "attach/error.hpp"
#include "exporters/utf8.hpp"
#include "output_file.hpp"

using namespace pysample;
namespace fs = std::filesystem;

namespace {

// A fresh directory, removed with everything in it at the end of the test.
struct ScratchDirectory {
    fs::path path;
    ScratchDirectory() {
        std::string pattern = (fs::temp_directory_path() / "pysample-output-XXXXXX").string();
        if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        path = pattern;
    }
    ~ScratchDirectory() { fs::remove_all(path); }
    std::string operator/(const std::string& name) const { return (path / name).string(); }
    std::size_t entries() const {
        return static_cast<std::size_t>(std::distance(fs::directory_iterator(path), fs::directory_iterator()));
    }
};

std::string contents(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

mode_t mode_of(const std::string& path) {
    struct stat st {};
    ::stat(path.c_str(), &st);
    return st.st_mode & 07777;
}

std::string refusal(const std::string& path) {
    try {
        sampler::check_output_path(path);
    } catch (const attach::Error& e) {
        CHECK(e.kind() == attach::ErrorKind::OutputUnwritable);
        return e.what();
    }
    return "";
}

}  // namespace

TEST_CASE("an output path is checked before sampling: its directory, and what is already there") {
    ScratchDirectory dir;
    CHECK(refusal(dir / "profile.svg").empty());
    CHECK(refusal(dir / "missing/profile.svg") == "cannot write the profile to '" + (dir / "missing/profile.svg") +
                                                      "': directory '" + (dir / "missing") + "' does not exist");
    CHECK(refusal(dir.path.string()) ==
          "cannot write the profile to '" + dir.path.string() + "': it is a directory; give a file name");
    write_file(dir / "file", "x");
    CHECK(refusal(dir / "file/profile.svg") == "cannot write the profile to '" + (dir / "file/profile.svg") + "': '" +
                                                   (dir / "file") + "' is not a directory");
    CHECK(refusal(dir / "file").empty());  // replaced when the run ends
    CHECK(refusal("/dev/null").empty());
    CHECK(dir.entries() == 1);  // the check leaves nothing behind
}

TEST_CASE("temporary files sit next to the output, hidden, with room for mkstemp's suffix") {
    CHECK(sampler::temporary_name_pattern("/a/b/profile.svg") == "/a/b/.profile.svg.XXXXXX");
    CHECK(sampler::temporary_name_pattern("profile.svg") == ".profile.svg.XXXXXX");
    CHECK(sampler::temporary_name_pattern("/" + std::string(300, 'n')) == "/." + std::string(200, 'n') + ".XXXXXX");
}

TEST_CASE("an output file appears whole at commit, with the mode a new file gets") {
    ScratchDirectory dir;
    mode_t previous = ::umask(027);
    {
        sampler::OutputFile file(dir / "out.txt");
        file.stream() << "complete\n";
        CHECK_FALSE(fs::exists(dir / "out.txt"));
        CHECK(fs::exists(file.temporary_path()));
        file.commit();
    }
    ::umask(previous);
    CHECK(contents(dir / "out.txt") == "complete\n");
    CHECK(mode_of(dir / "out.txt") == 0640);
    CHECK(dir.entries() == 1);
}

TEST_CASE("an output file never committed leaves the old file and no temporary file") {
    ScratchDirectory dir;
    write_file(dir / "out.txt", "old\n");
    {
        sampler::OutputFile file(dir / "out.txt");
        file.stream() << "half a profile";
    }
    CHECK(contents(dir / "out.txt") == "old\n");
    CHECK(dir.entries() == 1);
}

TEST_CASE("a replaced file keeps its mode and owner, and a symbolic link keeps pointing at the file it names") {
    ScratchDirectory dir;
    write_file(dir / "kept.txt", "old\n");
    ::chmod((dir / "kept.txt").c_str(), 0600);
    bool as_root = ::geteuid() == 0;
    if (as_root) REQUIRE(::chown((dir / "kept.txt").c_str(), 65534, 65534) == 0);
    fs::create_symlink("target.txt", dir / "link.txt");  // dangling until the profile is written
    for (const char* name : {"kept.txt", "link.txt"}) {
        sampler::OutputFile file(dir / name);
        file.stream() << "new\n";
        file.commit();
    }
    CHECK(contents(dir / "kept.txt") == "new\n");
    CHECK(mode_of(dir / "kept.txt") == 0600);
    struct stat st {};
    ::stat((dir / "kept.txt").c_str(), &st);
    if (as_root) CHECK(st.st_uid == 65534);
    CHECK(fs::is_symlink(dir / "link.txt"));
    CHECK(contents(dir / "target.txt") == "new\n");
}

TEST_CASE("control characters and line separators are spelled out, invalid UTF-8 replaced") {
    using exporters::escape_control_characters;
    CHECK(escape_control_characters("plain caf\xC3\xA9 \xF0\x9F\x94\xA5") == "plain caf\xC3\xA9 \xF0\x9F\x94\xA5");
    CHECK(escape_control_characters(std::string("a\0b\n\t\x1b[0m\x7f", 10)) == "a\\x00b\\x0a\\x09\\x1b[0m\\x7f");
    CHECK(escape_control_characters("\xC2\x85|\xE2\x80\xA8|\xE2\x80\xA9") == "\\x85|\\u2028|\\u2029");
    CHECK(escape_control_characters("\xFF\xED\xB3\xBF") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}
