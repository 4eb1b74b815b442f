#include "sampler/cli.hpp"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/program_options.hpp>
#include <cctype>
#include <cmath>
#include <csignal>
#include <cstring>
#include <iostream>
#include <limits>
#include <map>
#include <regex>

#include "attach/error.hpp"
#include "commands/logging.hpp"
#include "commands/options.hpp"
#include "commands/output_file.hpp"
#include "engine/timer.hpp"
#include "exporters/utf8.hpp"
#include "model/layout.hpp"
#include "model/python_error.hpp"
#include "model/python_version.hpp"

namespace pysample::sampler {
namespace po = boost::program_options;

namespace {

constexpr const char* kUsage = R"(pysample )" PYSAMPLE_VERSION R"(
Sampling profiler for Python programs: attaches to a running CPython without restarting it.

USAGE:
    pysample [record] [OPTIONS] --pid PID
    pysample [record] [OPTIONS] -- python3 program.py [ARGS...]
    pysample dump [OPTIONS] --pid PID
    pysample top [OPTIONS] --pid PID

SUBCOMMANDS:
    record    Samples a process and writes a profile: flamegraph SVG, collapsed stacks (default subcommand)
    dump      Prints the Python stack of every thread of a process once
    top       Shows a live table of the functions a process spends its time in, like top

Run 'pysample <SUBCOMMAND> --help' for the options of each.
)";

// clang-format off
po::options_description common_options() {
    po::options_description desc("Target and output", 110, 60);
    desc.add_options()
        ("pid,p", po::value<std::string>(), "PID of a running Python program")
        ("python-version", po::value<std::string>(), "Read the target as this Python version (X.Y) instead of detecting it")
        ("verbose,v", po::bool_switch(), "Log what pysample does (debug level)")
        ("quiet,q", po::bool_switch(), "No progress line or summary")
        ("help,h", "Print this help");
    return desc;
}

po::options_description record_options() {
    static const std::string format_help =
        "Output format: " + exporters::format_names() + " (default: from the output suffix, else flamegraph)";
    po::options_description desc("Record options", 110, 60);
    desc.add_options()
        ("rate,r", po::value<std::string>()->default_value("100"),
         "Samples per second, or 'max' to sample as fast as pysample can")
        ("duration,d", po::value<std::string>(), "Seconds to sample for (default: until Ctrl-C or the program exits)")
        ("output,o", po::value<std::vector<std::string>>(),
         "Output file; repeat for several, each in the format its suffix names: .svg (flamegraph), "
         ".txt (collapsed), .speedscope.json, .pstats or .prof, .prof.txt (text), .json (chrome). "
         "Default: pysample-<pid>-<time>.<ext>")
        ("format,f", po::value<std::string>(), format_help.c_str())
        ("blocking", po::bool_switch(), "Stop the program's threads while each sample is read (consistent stacks, "
                                        "slows the program); default reads without stopping it")
        ("idle,i", po::bool_switch(), "Keep samples of threads that are not running on a CPU (same as --mode wall)")
        ("mode", po::value<std::string>(), "cpu: sample threads running on a CPU (default); wall: every thread, "
                                           "sleeping or waiting too (wall-clock time)")
        ("threads,t", po::bool_switch(), "Put each thread's id and name as the root frame")
        ("subprocesses,s", po::bool_switch(), "Also sample the target's Python child processes (and theirs) as they come "
                                              "and go; each process is a root frame 'process <pid> <command line>'")
        ("nolineno", po::bool_switch(), "Do not record line numbers; aggregate by function")
        ("gil", po::bool_switch(), "Keep only samples of the thread holding the GIL (a sample in which no thread "
                                   "holds it has no stack)")
        ("reverse", po::bool_switch(), "flamegraph: icicle graph, root at the top")
        ("sort", po::value<std::string>()->default_value("tottime"), "text: sort by tottime|cumtime|samples|name (ncalls: samples)")
        ("top", po::value<std::string>()->default_value("0"), "text: print only the first N rows (0: all)");
    return desc;
}

po::options_description native_options() {
    po::options_description desc("Native stacks", 110, 60);
    desc.add_options()
        ("native,n", po::bool_switch(), "Include C/C++ frames (extensions, libraries, the interpreter) between the "
                                        "Python frames they run; stops each thread while its stack is copied")
        ("native-all", po::bool_switch(), "Like --native, also showing the interpreter's call machinery and the "
                                          "thread start-up frames, hidden by default");
    return desc;
}

po::options_description top_options() {
    po::options_description desc("Top options", 110, 60);
    desc.add_options()
        ("rate,r", po::value<std::string>()->default_value("100"), "Samples per second, or 'max'")
        ("duration,d", po::value<std::string>(), "Seconds to run for (default: until q, Ctrl-C or the program exits)")
        ("interval", po::value<std::string>()->default_value("1"), "Seconds between refreshes of the table")
        ("rows", po::value<std::string>(), "Show at most this many functions (default: as many as fit the "
                                           "terminal; 20 when the output is not a terminal)")
        ("blocking", po::bool_switch(), "Stop the program's threads while each sample is read (consistent stacks, "
                                        "slows the program); default reads without stopping it")
        ("idle,i", po::bool_switch(), "Count threads that are not running on a CPU as well");
    return desc;
}

po::options_description dump_options() {
    po::options_description desc("Dump options", 110, 60);
    desc.add_options()
        ("nonblocking", po::bool_switch(), "Read the stacks without stopping the program (they may be torn)")
        ("locals", po::bool_switch(), "Show each frame's local variables, with a short repr of each value")
        ("json", po::bool_switch(), "Print one JSON document instead of tracebacks")
        ("gil", po::bool_switch(), "Show only the thread holding the GIL");
    return desc;
}
// clang-format on

const char* subcommand_summary(const std::string& subcommand) {
    if (subcommand == "record") return "sample a Python program and write a profile";
    if (subcommand == "top") return "show a live table of the functions a Python program spends its time in";
    return "print the current Python stack of every thread";
}

void configure_logging(bool verbose) {
    auto logger = spdlog::stderr_color_mt("pysample");
    logger->set_formatter(log_formatter());
    spdlog::set_default_logger(logger);
    spdlog::set_level(verbose ? spdlog::level::debug : spdlog::level::warn);
}

int exit_code_for(attach::ErrorKind kind) {
    switch (kind) {
        case attach::ErrorKind::Usage: return kExitUsage;
        case attach::ErrorKind::NoSuchProcess: return kExitNoSuchProcess;
        case attach::ErrorKind::PermissionDenied: return kExitPermissionDenied;
        case attach::ErrorKind::TargetExited: return kExitTargetExited;
        case attach::ErrorKind::OutputUnwritable: return kExitOutputUnwritable;
        case attach::ErrorKind::Other: return kExitError;
    }
    return kExitError;
}

// The whole of `text` as a finite decimal number ("10", "0.5", "1e3"), or nullopt. Hexadecimal
// ("0x10" would be 16), "inf", "nan" and spaces are refused: strtod would take them all.
std::optional<double> parse_number(const std::string& text) {
    static const std::regex decimal(R"([+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)");
    if (!std::regex_match(text, decimal)) return std::nullopt;
    std::size_t used = 0;
    double value = 0;
    try {
        value = std::stod(text, &used);
    } catch (const std::exception&) {
        return std::nullopt;
    }
    if (used != text.size() || !std::isfinite(value)) return std::nullopt;
    return value;
}

// The whole of `text` as a count from 0 to 1,000,000,000: digits only, so that "-1" is not read
// as 2^64 - 1.
std::size_t parse_count(const std::string& option, const std::string& text, const std::string& accepted) {
    bool digits = !text.empty() && text.size() <= 10 && std::all_of(text.begin(), text.end(), [](char c) {
        return std::isdigit(static_cast<unsigned char>(c));
    });
    unsigned long long count = digits ? std::stoull(text) : 0;
    if (!digits || count > 1'000'000'000ULL) {
        throw attach::Error(attach::ErrorKind::Usage, "invalid " + option + " '" + text + "': it takes " + accepted);
    }
    return static_cast<std::size_t>(count);
}

[[noreturn]] void bad_value(const std::string& option, const std::string& text, const std::string& accepted) {
    throw attach::Error(attach::ErrorKind::Usage, "invalid " + option + " '" + text + "': it takes " + accepted);
}

pid_t parse_pid(const std::string& text) {
    auto is_digit = [](char c) { return std::isdigit(static_cast<unsigned char>(c)) != 0; };
    bool digits = !text.empty() && text.size() <= 10 && std::all_of(text.begin(), text.end(), is_digit);
    long long pid = digits ? std::stoll(text) : 0;
    if (pid < 1 || pid > std::numeric_limits<pid_t>::max()) {
        bad_value("--pid", text, "the id of a running process, a whole number above 0");
    }
    return static_cast<pid_t>(pid);
}

void require_supported(const PythonVersion& version) {
    if (find_layout(version.major, version.minor)) return;
    throw PythonError(PythonErrorKind::UnsupportedVersion, "--python-version " + version.to_string() +
                                                               ": pysample cannot read this version; it reads Python " +
                                                               supported_versions_text());
}

void fill_common(const po::variables_map& vm, CommonOptions& options) {
    if (vm.count("pid")) options.pid = parse_pid(vm["pid"].as<std::string>());
    options.verbose = vm["verbose"].as<bool>();
    options.quiet = vm["quiet"].as<bool>();
    if (vm.count("python-version")) {
        auto version = parse_version_text(vm["python-version"].as<std::string>());
        if (!version) bad_value("--python-version", vm["python-version"].as<std::string>(), "X.Y, e.g. 3.11");
        version->source = "--python-version";
        require_supported(*version);
        options.python_version = version;
    }
}

void fill_native(const po::variables_map& vm, CommonOptions& options) {
    if (vm["native-all"].as<bool>()) {
        options.native = NativeMode::All;
    } else if (vm["native"].as<bool>()) {
        options.native = NativeMode::Filtered;
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

// Each -o names its format by suffix; --format applies where the suffix does not, and to the
// default file when no -o is given.
std::vector<RecordOptions::Output> parse_outputs(const po::variables_map& vm) {
    std::optional<exporters::Format> asked;
    if (vm.count("format")) {
        asked = exporters::parse_format(vm["format"].as<std::string>());
        if (!asked) {
            throw attach::Error(attach::ErrorKind::Usage, "unknown format '" + vm["format"].as<std::string>() +
                                                              "'; choose one of " + exporters::format_names());
        }
    }
    if (!vm.count("output")) return {{"", asked.value_or(exporters::Format::Flamegraph)}};
    const auto& paths = vm["output"].as<std::vector<std::string>>();
    std::vector<RecordOptions::Output> outputs;
    for (const auto& path : paths) {
        auto format = paths.size() == 1 && asked ? asked : exporters::format_for_path(path);
        if (!format) format = asked;
        if (!format && path == kStandardOutput) format = exporters::Format::Collapsed;  // text for a pipe
        if (!format) {
            throw attach::Error(
                attach::ErrorKind::Usage,
                "cannot tell the format of '" + path + "' from its suffix; add --format " + exporters::format_names());
        }
        outputs.push_back({path, *format});
    }
    return outputs;
}

double parse_rate(const std::string& text) {
    if (text == "max") return kRateMax;
    auto rate = parse_number(text);
    if (!rate || !(*rate > 0 && *rate <= 1'000'000)) {
        bad_value("--rate", text, "a number of samples per second above 0 and up to 1000000, or 'max'");
    }
    return *rate;
}

// 0 would read as "no limit", which leaving the option out already says.
double parse_duration(const std::string& text, const char* until) {
    auto duration = parse_number(text);
    if (!duration || !(*duration > 0)) {
        bad_value("--duration", text,
                  std::string("a number of seconds above 0, e.g. 10 or 0.5; leave it out to run ") + until);
    }
    return *duration;
}

void parse_rate_and_duration(const po::variables_map& vm, double& rate, double& duration, const char* until) {
    rate = parse_rate(vm["rate"].as<std::string>());
    if (vm.count("duration")) duration = parse_duration(vm["duration"].as<std::string>(), until);
}

TopOptions parse_top(const po::variables_map& vm) {
    TopOptions options;
    fill_common(vm, options);
    parse_rate_and_duration(vm, options.rate, options.duration, "until q, Ctrl-C or the program exits");
    const auto& interval = vm["interval"].as<std::string>();
    auto seconds = parse_number(interval);
    if (!seconds || !(*seconds >= 0.05 && *seconds <= 3600)) {
        bad_value("--interval", interval, "a number of seconds from 0.05 to 3600");
    }
    options.interval = *seconds;
    if (vm.count("rows")) {
        options.rows = parse_count("--rows", vm["rows"].as<std::string>(), "a number of rows, 1 or more");
        if (options.rows == 0) bad_value("--rows", vm["rows"].as<std::string>(), "a number of rows, 1 or more");
    }
    options.blocking = vm["blocking"].as<bool>();
    options.idle = vm["idle"].as<bool>();
    fill_native(vm, options);
    return options;
}

RecordOptions parse_record(const po::variables_map& vm) {
    RecordOptions options;
    fill_common(vm, options);
    parse_rate_and_duration(vm, options.rate, options.duration, "until Ctrl-C or the program exits");
    options.outputs = parse_outputs(vm);
    options.reverse = vm["reverse"].as<bool>();
    auto sort = exporters::parse_sort_key(vm["sort"].as<std::string>());
    if (!sort)
        throw attach::Error(attach::ErrorKind::Usage, "--sort takes tottime, cumtime, samples (or ncalls) or name");
    options.sort = *sort;
    options.top = parse_count("--top", vm["top"].as<std::string>(), "a number of rows, or 0 for all");
    options.blocking = vm["blocking"].as<bool>();
    options.idle = vm["idle"].as<bool>();
    if (vm.count("mode")) {
        const auto& mode = vm["mode"].as<std::string>();
        if (mode != "cpu" && mode != "wall") throw attach::Error(attach::ErrorKind::Usage, "--mode takes cpu or wall");
        if (mode == "cpu" && options.idle) {
            throw attach::Error(attach::ErrorKind::Usage, "--idle keeps idle threads, which --mode cpu leaves out");
        }
        options.idle = mode == "wall";
    }
    options.threads = vm["threads"].as<bool>();
    options.line_numbers = !vm["nolineno"].as<bool>();
    options.gil = vm["gil"].as<bool>();
    options.subprocesses = vm["subprocesses"].as<bool>();
    fill_native(vm, options);
    return options;
}

// "--rate -5" would read as an option -5 and be refused as a missing value, not as a bad one: a
// value that starts with '-' is attached to its option ("--rate=-5") so that it is checked like any other.
void attach_dashed_values(std::vector<std::string>& args) {
    static const std::map<std::string, std::string> kTakesNumber = {
        {"--pid", "--pid"},           {"-p", "--pid"},      {"--rate", "--rate"},        {"-r", "--rate"},
        {"--duration", "--duration"}, {"-d", "--duration"}, {"--interval", "--interval"}};
    for (std::size_t i = 0; i + 1 < args.size(); ++i) {
        auto option = kTakesNumber.find(args[i]);
        if (option == kTakesNumber.end() || args[i + 1].size() < 2 || args[i + 1][0] != '-') continue;
        if (!std::isdigit(static_cast<unsigned char>(args[i + 1][1])) && args[i + 1][1] != '.') continue;
        args[i] = option->second + "=" + args[i + 1];
        args.erase(args.begin() + static_cast<std::ptrdiff_t>(i) + 1);
    }
}

}  // namespace

int run_cli(int argc, char** argv) {
    // A closed pipe ends the output written to it, with a message, not pysample: the other outputs
    // are still written.
    ::signal(SIGPIPE, SIG_IGN);
    std::vector<std::string> args(argv + 1, argv + argc);
    std::vector<std::string> command;
    if (auto dashes = std::find(args.begin(), args.end(), "--"); dashes != args.end()) {
        command.assign(dashes + 1, args.end());
        args.erase(dashes, args.end());
    }
    attach_dashed_values(args);
    std::string subcommand = "record";
    if (!args.empty() && (args[0] == "record" || args[0] == "dump" || args[0] == "top")) {
        subcommand = args[0];
        args.erase(args.begin());
    } else if (!args.empty() && (args[0] == "help" || args[0] == "--help" || args[0] == "-h")) {
        std::cout << kUsage;
        return kExitOk;
    } else if (!args.empty() && args[0] == "--version") {
        std::cout << "pysample " << PYSAMPLE_VERSION << "\n";
        return kExitOk;
    } else if (!args.empty() && args[0][0] != '-') {
        std::cerr << "pysample: unknown subcommand '" << exporters::escape_control_characters(args[0]) << "'\n\n"
                  << kUsage;
        return kExitUsage;
    }

    po::options_description visible(110, 60);
    visible.add(common_options());
    visible.add(subcommand == "record" ? record_options() : subcommand == "top" ? top_options() : dump_options());
    visible.add(native_options());
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
            std::cout << "pysample " << subcommand << ": " << subcommand_summary(subcommand)
                      << "\n\nUSAGE:\n    pysample " << subcommand << " [OPTIONS] --pid PID\n"
                      << (subcommand != "dump"
                              ? "    pysample " + subcommand + " [OPTIONS] -- python3 program.py [ARGS...]\n"
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
            options.locals = vm["locals"].as<bool>();
            options.json = vm["json"].as<bool>();
            options.gil = vm["gil"].as<bool>();
            fill_native(vm, options);
            if (options.native != NativeMode::Off && !options.blocking) {
                throw attach::Error(
                    attach::ErrorKind::Usage,
                    "--native stops each thread to copy its stack; it cannot be used with --nonblocking");
            }
            require_target(options, false);
            return run_dump(options);
        }
        if (subcommand == "top") {
            TopOptions options = parse_top(vm);
            options.command = command;
            require_target(options, true);
            return run_top(options);
        }
        RecordOptions options = parse_record(vm);
        options.command = command;
        require_target(options, true);
        return run_record(options);
    } catch (const po::error& e) {
        // Messages carry what was given, and paths and names from the target: printed escaped, so that
        // none can split the line or drive the terminal.
        std::cerr << "pysample: " << exporters::escape_control_characters(e.what()) << " (see 'pysample " << subcommand
                  << " --help')\n";
        return kExitUsage;
    } catch (const attach::Error& e) {
        std::cerr << "pysample: " << exporters::escape_control_characters(e.what()) << "\n";
        return exit_code_for(e.kind());
    } catch (const PythonError& e) {
        std::cerr << "pysample: " << exporters::escape_control_characters(e.what()) << "\n";
        return e.kind() == PythonErrorKind::NotPython ? kExitNotPython : kExitUnsupportedVersion;
    } catch (const std::exception& e) {
        std::cerr << "pysample: error: " << exporters::escape_control_characters(e.what()) << "\n";
        return kExitError;
    }
}

}  // namespace pysample::sampler
