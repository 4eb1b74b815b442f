#include "commands/profile_files.hpp"

#include "attach/error.hpp"
#include "commands/output_file.hpp"

namespace pysample::sampler {

exporters::WriteOptions write_options(bool thread_roots, bool line_numbers, bool reverse, exporters::SortKey sort,
                                      std::size_t top) {
    exporters::WriteOptions write;
    write.thread_roots = thread_roots;
    write.line_numbers = line_numbers;
    write.reverse = reverse;
    write.sort = sort;
    write.top = top;
    write.version = PYSAMPLE_VERSION;
    return write;
}

WrittenOutputs write_files(const std::vector<OutputSpec>& outputs,
                           const std::function<std::string(exporters::Format)>& default_path,
                           const std::function<void(exporters::Format, std::ostream&)>& write) {
    WrittenOutputs done;
    for (const auto& output : outputs) {
        if (output.format == exporters::Format::Recording) continue;
        std::string path = output.path.empty() ? default_path(output.format) : output.path;
        try {
            OutputFile file(path);
            write(output.format, file.stream());
            file.commit();
            std::string name = (path == kStandardOutput ? std::string("standard output") : path) + " (" +
                               std::string(exporters::format_name(output.format)) + ")";
            if (file.reader_closed()) name += ", until its reader closed the pipe";
            done.written.push_back(name);
        } catch (const attach::Error& e) {
            done.failed.push_back(e.what());
        } catch (const std::exception& e) {
            done.failed.push_back("cannot write the profile to '" + path + "': " + e.what());
        }
    }
    return done;
}

WrittenOutputs write_profile_files(const exporters::Profile& profile, const std::vector<OutputSpec>& outputs,
                                   const exporters::WriteOptions& write,
                                   const std::function<std::string(exporters::Format)>& default_path) {
    return write_files(outputs, default_path, [&](exporters::Format format, std::ostream& out) {
        exporters::write_profile(format, profile, write, out);
    });
}

}  // namespace pysample::sampler
