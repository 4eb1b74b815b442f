#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "attach/error.hpp"
#include "commands/output_file.hpp"
#include "exporters/utf8.hpp"

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

TEST_CASE("a replaced file keeps its mode and owner") {
    ScratchDirectory dir;
    write_file(dir / "kept.txt", "old\n");
    ::chmod((dir / "kept.txt").c_str(), 0600);
    bool as_root = ::geteuid() == 0;
    if (as_root) REQUIRE(::chown((dir / "kept.txt").c_str(), 65534, 65534) == 0);
    sampler::OutputFile file(dir / "kept.txt");
    file.stream() << "new\n";
    file.commit();
    CHECK(contents(dir / "kept.txt") == "new\n");
    CHECK(mode_of(dir / "kept.txt") == 0600);
    struct stat st {};
    ::stat((dir / "kept.txt").c_str(), &st);
    if (as_root) CHECK(st.st_uid == 65534);
}

TEST_CASE("a symbolic link at the output's name is refused, never written through") {
    ScratchDirectory dir;
    write_file(dir / "victim.txt", "precious\n");
    fs::create_symlink(dir / "victim.txt", dir / "link.txt");
    fs::create_symlink(dir / "created-by-us.txt", dir / "dangling.txt");
    for (const char* name : {"link.txt", "dangling.txt"}) {
        std::string refused = refusal(dir / name);
        CHECK(refused.find("it is a symbolic link") != std::string::npos);
        // Also when the link appears after the check, before the run ends.
        CHECK_THROWS_AS(sampler::OutputFile(dir / name), attach::Error);
    }
    CHECK(contents(dir / "victim.txt") == "precious\n");
    CHECK_FALSE(fs::exists(dir / "created-by-us.txt"));
    CHECK(dir.entries() == 3);  // no temporary file left
}

TEST_CASE("a link planted between the check and the commit is replaced, its target untouched") {
    ScratchDirectory dir;
    write_file(dir / "victim.txt", "precious\n");
    sampler::OutputFile file(dir / "out.txt");
    file.stream() << "profile\n";
    fs::create_symlink(dir / "victim.txt", dir / "out.txt");
    file.commit();
    CHECK(contents(dir / "victim.txt") == "precious\n");
    CHECK_FALSE(fs::is_symlink(dir / "out.txt"));
    CHECK(contents(dir / "out.txt") == "profile\n");
}

TEST_CASE("another user's file in a sticky directory is not replaced") {
    if (::geteuid() != 0) return;  // only root can make a file another user's
    ScratchDirectory dir;
    REQUIRE(::chmod(dir.path.c_str(), 01777) == 0);
    write_file(dir / "theirs.svg", "theirs\n");
    REQUIRE(::chown((dir / "theirs.svg").c_str(), 65534, 65534) == 0);
    CHECK(refusal(dir / "theirs.svg").find("belongs to another user (uid 65534)") != std::string::npos);
    CHECK_THROWS_AS(sampler::OutputFile(dir / "theirs.svg"), attach::Error);
    CHECK(contents(dir / "theirs.svg") == "theirs\n");
    REQUIRE(::chmod(dir.path.c_str(), 0755) == 0);  // outside a sticky directory, root replaces it as asked
    CHECK(refusal(dir / "theirs.svg").empty());
}

TEST_CASE("a name too long for the file system is refused before sampling") {
    ScratchDirectory dir;
    std::string refused = refusal(dir / (std::string(300, 'n') + ".svg"));
    CHECK(refused.find("the file name is 304 bytes long, and the file system takes 255 at most") != std::string::npos);
}

TEST_CASE("a FIFO with no reader fails after a bounded wait instead of blocking for ever") {
    ScratchDirectory dir;
    REQUIRE(::mkfifo((dir / "fifo").c_str(), 0600) == 0);
    CHECK(refusal(dir / "fifo").empty());
    auto started = std::chrono::steady_clock::now();
    try {
        sampler::OutputFile file(dir / "fifo", std::chrono::milliseconds(200));
        FAIL("opened a FIFO nobody reads");
    } catch (const attach::Error& e) {
        CHECK(std::string(e.what()).find("no process opened the FIFO for reading within 0.2 s") != std::string::npos);
    }
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(5));
}

TEST_CASE("a pipe whose reader went away ends that output, which is not an error") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    ::close(fds[0]);
    auto previous = ::signal(SIGPIPE, SIG_IGN);
    std::string path = "/dev/fd/" + std::to_string(fds[1]);
    {
        sampler::OutputFile file(path);
        for (int i = 0; i < 100000; ++i) file.stream() << "line of a profile\n";
        CHECK_NOTHROW(file.commit());
        CHECK(file.reader_closed());
    }
    ::signal(SIGPIPE, previous);
    ::close(fds[1]);
}

TEST_CASE("pysample's own descriptors are written in place, appending") {
    ScratchDirectory dir;
    write_file(dir / "log.txt", "before\n");
    int fd = ::open((dir / "log.txt").c_str(), O_WRONLY | O_APPEND);
    REQUIRE(fd >= 0);
    {
        sampler::OutputFile file("/dev/fd/" + std::to_string(fd));
        file.stream() << "profile\n";
        file.commit();
    }
    ::close(fd);
    CHECK(contents(dir / "log.txt") == "before\nprofile\n");
    CHECK(refusal("/dev/fd/987").find("descriptor 987 is not open") != std::string::npos);
}

TEST_CASE("control characters and line separators are spelled out, invalid UTF-8 replaced") {
    using exporters::escape_control_characters;
    CHECK(escape_control_characters("plain caf\xC3\xA9 \xF0\x9F\x94\xA5") == "plain caf\xC3\xA9 \xF0\x9F\x94\xA5");
    CHECK(escape_control_characters(std::string("a\0b\n\t\x1b[0m\x7f", 10)) == "a\\x00b\\x0a\\x09\\x1b[0m\\x7f");
    CHECK(escape_control_characters("\xC2\x85|\xE2\x80\xA8|\xE2\x80\xA9") == "\\x85|\\u2028|\\u2029");
    CHECK(escape_control_characters("\xFF\xED\xB3\xBF") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
}
