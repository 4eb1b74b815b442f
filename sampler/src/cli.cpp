#include "sampler/cli.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <boost/program_options.hpp>
#include <cstring>
#include <iostream>

#include "attach/error.hpp"
#include "options.hpp"

namespace pysample::sampler {
namespace po = boost::program_options;

namespace {

constexpr const char* kUsage = R"(pysample )" PYSAMPLE_VERSION R"(
Sampling profiler for Python programs: attaches to a running CPython without restarting it.

USAGE:
    pysample [record] [OPTIONS] --pid PID
    pysample [record] [OPTIONS] -- python3 program.py [ARGS...]
    pysample dump [OPTIONS] --pid PID

SUBCOMMANDS:
    record    Samples a process and writes a profile: flamegraph SVG, collapsed stacks (default subcommand)
    dump      Prints the Python stack of every thread of a process once

Run 'pysample <SUBCOMMAND> --help' for the options of each.
)";

std::string format_list() { return "collapsed|flamegraph|speedscope|pstats|text"; }

po::options_description common_options() {
    po::options_description desc("Target and output", 110, 60);
    desc.add_options()("pid,p", po::value<int>(), "PID of a running Python program")(
        "python-version", po::value<std::string>(),
        "Read the target as this Python version (X.Y) instead of detecting it")("verbose,v", po::bool_switch(),
                                                                                "Log what pysample does (debug level)")(
        "quiet,q", po::bool_switch(), "No progress line or summary")("help,h", "Print this help");
    return desc;
}

po::options_description record_options() {
    po::options_description desc("Record options", 110, 60);
    desc.add_options()("rate,r", po::value<double>()->default_value(100), "Samples per second")(
        "duration,d", po::value<double>(), "Seconds to sample for (default: until Ctrl-C or the program exits)")(
        "output,o", po::value<std::string>(), "Output file (default: pysample-<pid>-<time>.<ext>)")(
        "format,f", po::value<std::string>(),
        ("Output format: " + format_list() + " (default: from the output suffix, else flamegraph)").c_str())(
        "blocking", po::bool_switch(),
        "Stop the program's threads while each sample is read (consistent stacks, "
        "slows the program); default reads without stopping it")(
        "idle,i", po::bool_switch(), "Keep samples of threads that are not running on a CPU")(
        "threads,t", po::bool_switch(), "Put each thread's id and name as the root frame")(
        "nolineno", po::bool_switch(), "Do not record line numbers; aggregate by function");
    return desc;
}

po::options_description dump_options() {
    po::options_description desc("Dump options", 110, 60);
    desc.add_options()("nonblocking", po::bool_switch(),
                       "Read the stacks without stopping the program (they may be torn)");
    return desc;
}

void configure_logging(bool verbose) {
    auto logger = spdlog::stderr_color_mt("pysample");
    logger->set_pattern("pysample: [%l] %v");
    spdlog::set_default_logger(logger);
    spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::warn);
}

int exit_code_for(attach::ErrorKind kind) {
    switch (kind) {
        case attach::ErrorKind::Usage: return kExitUsage;
        case attach::ErrorKind::NoSuchProcess: return kExitNoSuchProcess;
        case attach::ErrorKind::PermissionDenied: return kExitPermissionDenied;
        case attach::ErrorKind::NotPython: return kExitNotPython;
        case attach::ErrorKind::UnsupportedVersion: return kExitUnsupportedVersion;
        case attach::ErrorKind::TargetExited: return kExitTargetExited;
        case attach::ErrorKind::Other: return kExitError;
    }
    return kExitError;
}

std::optional<exporters::Format> format_from_suffix(const std::string& path) {
    auto ends_with = [&](std::string_view suffix) {
        return path.size() >= suffix.size() && path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
    };
    if (ends_with(".svg")) return exporters::Format::Flamegraph;
    if (ends_with(".speedscope.json") || ends_with(".speedscope")) return exporters::Format::Speedscope;
    if (ends_with(".pstats") || ends_with(".prof")) return exporters::Format::Pstats;
    if (ends_with(".txt") || ends_with(".folded") || ends_with(".collapsed")) return exporters::Format::Collapsed;
    return std::nullopt;
}

void fill_common(const po::variables_map& vm, CommonOptions& options) {
    if (vm.count("pid")) options.pid = vm["pid"].as<int>();
    options.verbose = vm["verbose"].as<bool>();
    options.quiet = vm["quiet"].as<bool>();
    if (vm.count("python-version")) {
        auto version = parse_version_text(vm["python-version"].as<std::string>());
        if (!version) throw attach::Error(attach::ErrorKind::Usage, "--python-version takes X.Y, e.g. 3.11");
        version->source = "--python-version";
        options.python_version = version;
    }
}

void require_target(const CommonOptions& options, bool launch_allowed) {
    bool has_pid = options.pid != 0;
    bool has_command = !options.command.empty();
    if (has_pid && has_command)
        throw attach::Error(attach::ErrorKind::Usage, "give either --pid or a command, not both");
    if (!has_pid && !has_command) {
        throw attach::Error(attach::ErrorKind::Usage,
                            launch_allowed ? "give --pid PID or a command after --" : "give --pid PID");
    }
    if (has_command && !launch_allowed)
        throw attach::Error(attach::ErrorKind::Usage, "dump takes --pid, not a command");
}

RecordOptions parse_record(const po::variables_map& vm) {
    RecordOptions options;
    fill_common(vm, options);
    options.rate = vm["rate"].as<double>();
    if (!(options.rate > 0 && options.rate <= 100000)) {
        throw attach::Error(attach::ErrorKind::Usage, "--rate must be between 0 and 100000 samples per second");
    }
    if (vm.count("duration")) {
        options.duration = vm["duration"].as<double>();
        if (!(options.duration > 0)) throw attach::Error(attach::ErrorKind::Usage, "--duration must be positive");
    }
    if (vm.count("output")) options.output = vm["output"].as<std::string>();
    if (vm.count("format")) {
        options.format = exporters::parse_format(vm["format"].as<std::string>());
        if (!options.format) {
            throw attach::Error(attach::ErrorKind::Usage, "unknown format '" + vm["format"].as<std::string>() +
                                                              "'; choose one of " + format_list());
        }
    } else if (!options.output.empty()) {
        options.format = format_from_suffix(options.output);
    }
    if (!options.format) options.format = exporters::Format::Flamegraph;
    if (!exporters::format_available(*options.format)) {
        throw attach::Error(attach::ErrorKind::Usage,
                            "the " + std::string(exporters::format_name(*options.format)) +
                                " format is not available in this version; use collapsed or flamegraph");
    }
    options.blocking = vm["blocking"].as<bool>();
    options.idle = vm["idle"].as<bool>();
    options.threads = vm["threads"].as<bool>();
    options.line_numbers = !vm["nolineno"].as<bool>();
    return options;
}

}  // namespace

int run_cli(int argc, char** argv) {
    std::vector<std::string> args(argv + 1, argv + argc);
    std::vector<std::string> command;
    if (auto dashes = std::find(args.begin(), args.end(), "--"); dashes != args.end()) {
        command.assign(dashes + 1, args.end());
        args.erase(dashes, args.end());
    }
    std::string subcommand = "record";
    if (!args.empty() && (args[0] == "record" || args[0] == "dump")) {
        subcommand = args[0];
        args.erase(args.begin());
    } else if (!args.empty() && (args[0] == "help" || args[0] == "--help" || args[0] == "-h")) {
        std::cout << kUsage;
        return kExitOk;
    } else if (!args.empty() && args[0] == "--version") {
        std::cout << "pysample " << PYSAMPLE_VERSION << "\n";
        return kExitOk;
    } else if (!args.empty() && args[0][0] != '-') {
        std::cerr << "pysample: unknown subcommand '" << args[0] << "'\n\n" << kUsage;
        return kExitUsage;
    }

    po::options_description visible(110, 60);
    visible.add(common_options());
    visible.add(subcommand == "record" ? record_options() : dump_options());
    po::options_description all = visible;
    all.add_options()("command", po::value<std::vector<std::string>>(), "");
    po::positional_options_description positional;
    positional.add("command", -1);

    try {
        po::variables_map vm;
        po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
        po::notify(vm);
        if (vm.count("help") || (args.empty() && command.empty())) {
            if (vm.count("help") == 0 && subcommand == "record" && args.empty()) {
                std::cout << kUsage;
                return kExitOk;
            }
            std::cout << "pysample " << subcommand << ": "
                      << (subcommand == "record" ? "sample a Python program and write a profile"
                                                 : "print the current Python stack of every thread")
                      << "\n\nUSAGE:\n    pysample " << subcommand << " [OPTIONS] --pid PID\n"
                      << (subcommand == "record" ? "    pysample record [OPTIONS] -- python3 program.py [ARGS...]\n"
                                                 : "")
                      << "\n"
                      << visible << "\n";
            return kExitOk;
        }
        if (vm.count("command")) {
            auto extra = vm["command"].as<std::vector<std::string>>();
            command.insert(command.begin(), extra.begin(), extra.end());
        }
        configure_logging(vm["verbose"].as<bool>());
        if (subcommand == "dump") {
            DumpOptions options;
            fill_common(vm, options);
            options.command = command;
            options.blocking = !vm["nonblocking"].as<bool>();
            require_target(options, false);
            return run_dump(options);
        }
        RecordOptions options = parse_record(vm);
        options.command = command;
        require_target(options, true);
        return run_record(options);
    } catch (const po::error& e) {
        std::cerr << "pysample: " << e.what() << "\nTry 'pysample " << subcommand << " --help'.\n";
        return kExitUsage;
    } catch (const attach::Error& e) {
        std::cerr << "pysample: " << e.what() << "\n";
        return exit_code_for(e.kind());
    } catch (const std::exception& e) {
        std::cerr << "pysample: error: " << e.what() << "\n";
        return kExitError;
    }
}

}  // namespace pysample::sampler
