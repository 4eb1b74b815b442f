#include "attach/target_files.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <vector>

namespace pysample::attach {
namespace {

std::optional<TargetFile> read_at(const std::string& where, std::size_t max_bytes) {
    struct stat info {};
    if (::stat(where.c_str(), &info) != 0 || !S_ISREG(info.st_mode)) return std::nullopt;
    std::ifstream in(where, std::ios::binary);
    if (!in) return std::nullopt;
    TargetFile file;
    file.text.resize(max_bytes);
    in.read(file.text.data(), static_cast<std::streamsize>(max_bytes));
    file.text.resize(static_cast<std::size_t>(in.gcount()));
    file.truncated = static_cast<std::uint64_t>(info.st_size) > max_bytes;
    file.mtime_ns = static_cast<std::int64_t>(info.st_mtim.tv_sec) * 1'000'000'000 + info.st_mtim.tv_nsec;
    file.read_from = where;
    return file;
}

}  // namespace

std::optional<TargetFile> read_target_file(pid_t pid, const std::string& path, std::size_t max_bytes) {
    if (path.empty()) return std::nullopt;
    std::string proc = "/proc/" + std::to_string(pid);
    std::string seen = path.front() == '/' ? proc + "/root" + path : proc + "/cwd/" + path;
    if (pid > 0 && ::access(proc.c_str(), F_OK) == 0) return read_at(seen, max_bytes);
    return read_at(path, max_bytes);
}

std::optional<std::int64_t> process_start_ns(pid_t pid) {
    std::ifstream stat_file("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat_file)), std::istreambuf_iterator<char>());
    auto close = text.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream fields(text.substr(close + 2));
    std::string field;
    // Field 22, starttime, is the 20th after the command's closing parenthesis: clock ticks since boot.
    for (int i = 0; i < 20 && fields >> field; ++i) {
    }
    if (!fields) return std::nullopt;
    std::ifstream uptime_file("/proc/uptime");
    double uptime = 0;
    if (!(uptime_file >> uptime)) return std::nullopt;
    long ticks = ::sysconf(_SC_CLK_TCK);
    if (ticks <= 0) return std::nullopt;
    struct timespec now {};
    ::clock_gettime(CLOCK_REALTIME, &now);
    double started_after_boot = std::stod(field) / static_cast<double>(ticks);
    double now_s = static_cast<double>(now.tv_sec) + static_cast<double>(now.tv_nsec) * 1e-9;
    return static_cast<std::int64_t>((now_s - uptime + started_after_boot) * 1e9);
}

}  // namespace pysample::attach
