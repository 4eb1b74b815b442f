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
    pysample dump [OPTIONS] --core CORE
    pysample top [OPTIONS] --pid PID
    pysample report [OPTIONS] RECORDING.pysample
    pysample diff [OPTIONS] BASE NEW

SUBCOMMANDS:
    record    Samples a process and writes a profile: flamegraph SVG, collapsed stacks (default subcommand)
    dump      Prints the Python stack of every thread of a process once, or of a core file
    top       Shows a live table of the functions a process spends its time in, like top
    report    Makes any output from a recording (record -o run.pysample), later
    diff      Compares two runs (recordings or collapsed stacks): a differential flame graph, a table

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
         ".txt (collapsed), .speedscope.json, .pstats or .prof, .prof.txt (text), .json (chrome), .pb.gz (pprof), "
         "callgrind.out.* (callgrind), .pysample (recording: every sample, written as it is taken, for 'pysample "
         "report' to make any of the others from later). Default: pysample-<pid>-<time>.<ext>")
        ("format,f", po::value<std::string>(), format_help.c_str())
        ("blocking", po::bool_switch(), "Stop the program's threads while each sample is read (consistent stacks, "
                                        "slows the program); default reads without stopping it")
        ("idle,i", po::bool_switch(), "Keep samples of threads that are not running on a CPU (same as --mode wall)")
        ("mode", po::value<std::string>(), "cpu: sample threads running on a CPU (default); wall: every thread, "
                                           "sleeping or waiting too (wall-clock time)")
        ("threads,t", po::bool_switch(), "Put each thread's id and name as the root frame")
        ("async", po::bool_switch(), "asyncio: rebuild each stack that runs a task along its await chain, the "
                                     "awaiting tasks above it, each task marked '<task NAME>'; with --idle, count "
                                     "every waiting task too, where it waits (Python 3.8+)")
        ("async-markers", po::value<std::string>(), "With --async: name each task's marker by the task's name "
                                                    "(default: '<task fetcher-1>') or by its coroutine's function "
                                                    "('coroutine': '<task fetch>'), which merges the tasks that run "
                                                    "the same code, as a task per request does")
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

// The options report and diff end with: the flame graph's and table's shape, logging, help.
void add_file_command_tail(po::options_description& desc) {
    desc.add_options()
        ("reverse", po::bool_switch(), "flamegraph: icicle graph, root at the top")
        ("top", po::value<std::string>()->default_value("0"), "text: print only the first N rows (0: all)")
        ("verbose,v", po::bool_switch(), "Log what pysample does (debug level)")
        ("quiet,q", po::bool_switch(), "No summary")
        ("help,h", "Print this help");
}

po::options_description report_options() {
    static const std::string format_help =
        "Output format: " + exporters::format_names() + " (default: from the output suffix, else flamegraph)";
    po::options_description desc("Report options", 110, 60);
    desc.add_options()
        ("output,o", po::value<std::vector<std::string>>(),
         "Output file; repeat for several, each in the format its suffix names (as for record). Default: the "
         "recording's name with .svg for .pysample")
        ("format,f", po::value<std::string>(), format_help.c_str())
        ("threads,t", po::bool_switch(), "Put each thread's id and name as the root frame")
        ("nolineno", po::bool_switch(), "Leave line numbers out; aggregate by function")
        ("idle,i", po::bool_switch(), "Count every thread, running or not (the recording must be made with --idle)")
        ("cpu", po::bool_switch(), "Count only the threads that were running (of a recording made with --idle)")
        ("gil", po::bool_switch(), "Count only the thread holding the GIL (the recording must be made with --gil)")
        ("thread", po::value<std::string>(), "Only this thread: its id or its name")
        ("process", po::value<std::string>(), "Only this process (of a recording made with --subprocesses)")
        ("from", po::value<std::string>(), "Only the samples from this many seconds after the run started")
        ("to", po::value<std::string>(), "Only the samples before this many seconds after the run started")
        ("sort", po::value<std::string>()->default_value("tottime"), "text: sort by tottime|cumtime|samples|name (ncalls: samples)");
    add_file_command_tail(desc);
    return desc;
}

po::options_description diff_options() {
    po::options_description desc("Diff options", 110, 60);
    desc.add_options()
        ("output,o", po::value<std::vector<std::string>>(),
         "Output file: .svg (a differential flamegraph, the default, as diff.svg) or, with --format text, the table "
         "(default: standard output); repeat for both")
        ("format,f", po::value<std::string>(), "flamegraph or text (default: from the output suffix, else flamegraph)")
        ("lineno", po::bool_switch(), "Match frames by line as well (default: by function and file, whatever line "
                                      "they are at, since a change moves lines)")
        ("threads,t", po::bool_switch(), "Compare each thread on its own, under a root frame of its id and name");
    add_file_command_tail(desc);
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
        ("idle,i", po::bool_switch(), "Count threads that are not running on a CPU as well")
        ("async", po::bool_switch(), "asyncio: count each running task under the tasks awaiting it, each marked "
                                     "'<task NAME>'; with --idle, the waiting tasks too (Python 3.8+)")
        ("async-markers", po::value<std::string>(), "With --async: 'name' (default) or 'coroutine', as for record");
    return desc;
}

po::options_description dump_options() {
    po::options_description desc("Dump options", 110, 60);
    desc.add_options()
        ("nonblocking", po::bool_switch(), "Read the stacks without stopping the program (they may be torn)")
        ("locals", po::bool_switch(), "Show each frame's local variables, with a short repr of each value")
        ("opcodes", po::bool_switch(),
         "Show the bytecode instruction each Python frame executes, as dis names it, with its argument and (3.11+) "
         "the columns of its expression")
        ("json", po::bool_switch(), "Print one JSON document instead of tracebacks")
        ("gil", po::bool_switch(), "Show only the thread holding the GIL")
        ("async", po::bool_switch(), "Also show the asyncio tasks of each event loop: who awaits whom, and where "
                                     "each waits (Python 3.8+)")
        ("core", po::value<std::string>(), "Read a core file (from the kernel or gcore; may be gzip-compressed) "
                                           "instead of a live process")
        ("executable", po::value<std::string>(), "With --core: the program's executable, when it is not where "
                                                 "the core says")
        ("root", po::value<std::string>(), "With --core: look the program's files up under this directory (a "
                                           "container's or another machine's root)");
    return desc;
}
// clang-format on

const char* subcommand_summary(const std::string& subcommand) {
    if (subcommand == "record") return "sample a Python program and write a profile";
    if (subcommand == "top") return "show a live table of the functions a Python program spends its time in";
    if (subcommand == "report") return "write any output format from a recording made by 'record -o FILE.pysample'";
    if (subcommand == "diff") {
        return "compare two runs, each a recording or collapsed stacks, by each frame's and function's share of the "
               "samples";
    }
    return "print the current Python stack of every thread of a process or a core file";
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
        case attach::ErrorKind::BadInput: return kExitBadInput;
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

void fill_core(const po::variables_map& vm, DumpOptions& options) {
    if (vm.count("core")) options.core = vm["core"].as<std::string>();
    if (vm.count("executable")) options.executable = vm["executable"].as<std::string>();
    if (vm.count("root")) options.root = vm["root"].as<std::string>();
    if (options.core.empty() && (!options.executable.empty() || !options.root.empty())) {
        throw attach::Error(attach::ErrorKind::Usage, "--executable and --root go with --core CORE");
    }
    if (!options.core.empty() && (options.pid != 0 || !options.command.empty())) {
        throw attach::Error(attach::ErrorKind::Usage, "give either --pid or --core, not both");
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
    if (std::count_if(outputs.begin(), outputs.end(),
                      [](const auto& output) { return output.format == exporters::Format::Recording; }) > 1) {
        throw attach::Error(attach::ErrorKind::Usage, "one recording per run: give one .pysample output");
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

// --async-markers: how --async names each task's marker; only with --async.
void fill_async(const po::variables_map& vm, CommonOptions& options) {
    options.async_tasks = vm["async"].as<bool>();
    if (!vm.count("async-markers")) return;
    const auto& markers = vm["async-markers"].as<std::string>();
    if (markers != "name" && markers != "coroutine") {
        throw attach::Error(attach::ErrorKind::Usage, "--async-markers takes name or coroutine");
    }
    if (!options.async_tasks) throw attach::Error(attach::ErrorKind::Usage, "--async-markers goes with --async");
    options.async_by_coroutine = markers == "coroutine";
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
    fill_async(vm, options);
    fill_native(vm, options);
    return options;
}

void parse_sort_and_top(const po::variables_map& vm, exporters::SortKey& sort, std::size_t& top) {
    auto key = exporters::parse_sort_key(vm["sort"].as<std::string>());
    if (!key)
        throw attach::Error(attach::ErrorKind::Usage, "--sort takes tottime, cumtime, samples (or ncalls) or name");
    sort = *key;
    top = parse_count("--top", vm["top"].as<std::string>(), "a number of rows, or 0 for all");
}

RecordOptions parse_record(const po::variables_map& vm) {
    RecordOptions options;
    fill_common(vm, options);
    parse_rate_and_duration(vm, options.rate, options.duration, "until Ctrl-C or the program exits");
    options.outputs = parse_outputs(vm);
    options.reverse = vm["reverse"].as<bool>();
    parse_sort_and_top(vm, options.sort, options.top);
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
    fill_async(vm, options);
    fill_native(vm, options);
    return options;
}

double parse_seconds(const po::variables_map& vm, const char* name) {
    const auto& text = vm[name].as<std::string>();
    auto seconds = parse_number(text);
    if (!seconds || !(*seconds >= 0)) bad_value(std::string("--") + name, text, "a number of seconds, 0 or more");
    return *seconds;
}

ReportOptions parse_report(const po::variables_map& vm, const std::vector<std::string>& positional) {
    ReportOptions options;
    if (positional.size() != 1) {
        throw attach::Error(attach::ErrorKind::Usage,
                            positional.empty() ? "give the recording to report: pysample report FILE.pysample"
                                               : "report takes one recording");
    }
    options.input = positional[0];
    if (vm.count("output") || vm.count("format")) options.outputs = parse_outputs(vm);
    options.threads = vm["threads"].as<bool>();
    options.line_numbers = !vm["nolineno"].as<bool>();
    options.reverse = vm["reverse"].as<bool>();
    parse_sort_and_top(vm, options.sort, options.top);
    int views = int{vm["idle"].as<bool>()} + int{vm["cpu"].as<bool>()} + int{vm["gil"].as<bool>()};
    if (views > 1) throw attach::Error(attach::ErrorKind::Usage, "give one of --idle, --cpu and --gil");
    if (vm["idle"].as<bool>()) options.view = ReportOptions::View::Wall;
    if (vm["cpu"].as<bool>()) options.view = ReportOptions::View::Cpu;
    if (vm["gil"].as<bool>()) options.view = ReportOptions::View::Gil;
    if (vm.count("thread")) options.thread = vm["thread"].as<std::string>();
    if (vm.count("process")) options.process = parse_pid(vm["process"].as<std::string>());
    if (vm.count("from")) options.from = parse_seconds(vm, "from");
    if (vm.count("to")) options.to = parse_seconds(vm, "to");
    if (options.from && options.to && *options.to <= *options.from) {
        throw attach::Error(attach::ErrorKind::Usage, "--to must come after --from");
    }
    options.quiet = vm["quiet"].as<bool>();
    return options;
}

DiffOptions parse_diff(const po::variables_map& vm, const std::vector<std::string>& positional) {
    if (positional.size() != 2) {
        throw attach::Error(attach::ErrorKind::Usage, "give two runs to compare: pysample diff BASE NEW");
    }
    DiffOptions options;
    options.base = positional[0];
    options.changed = positional[1];
    if (vm.count("output")) {
        options.outputs = parse_outputs(vm);
    } else if (vm.count("format")) {
        auto format = exporters::parse_format(vm["format"].as<std::string>());
        if (!format) throw attach::Error(attach::ErrorKind::Usage, "--format takes flamegraph or text");
        options.outputs.push_back({"", *format});
    }
    options.line_numbers = vm["lineno"].as<bool>();
    options.threads = vm["threads"].as<bool>();
    options.reverse = vm["reverse"].as<bool>();
    options.top = parse_count("--top", vm["top"].as<std::string>(), "a number of rows, or 0 for all");
    options.quiet = vm["quiet"].as<bool>();
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
    if (!args.empty() &&
        (args[0] == "record" || args[0] == "dump" || args[0] == "top" || args[0] == "report" || args[0] == "diff")) {
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
    if (subcommand == "report" || subcommand == "diff") {
        visible.add(subcommand == "report" ? report_options() : diff_options());
    } else {
        visible.add(common_options());
        visible.add(subcommand == "record" ? record_options() : subcommand == "top" ? top_options() : dump_options());
        visible.add(native_options());
    }
    po::options_description all = visible;
    all.add_options()("command", po::value<std::vector<std::string>>(), "");
    po::positional_options_description positional;
    positional.add("command", -1);

    try {
        po::variables_map vm;
        po::store(po::command_line_parser(args).options(all).positional(positional).run(), vm);
        po::notify(vm);
        bool on_files = subcommand == "report" || subcommand == "diff";
        if (on_files && !vm.count("help") && !args.empty()) {
            configure_logging(vm["verbose"].as<bool>());
            auto inputs =
                vm.count("command") ? vm["command"].as<std::vector<std::string>>() : std::vector<std::string>{};
            inputs.insert(inputs.end(), command.begin(), command.end());
            if (subcommand == "diff") return run_diff(parse_diff(vm, inputs));
            return run_report(parse_report(vm, inputs));
        }
        if (on_files) {
            std::cout << "pysample " << subcommand << ": " << subcommand_summary(subcommand)
                      << "\n\nUSAGE:\n    pysample "
                      << (subcommand == "report" ? "report [OPTIONS] RECORDING.pysample" : "diff [OPTIONS] BASE NEW")
                      << "\n"
                      << visible << "\n";
            return kExitOk;
        }
        if (vm.count("help") || (args.empty() && command.empty())) {
            if (vm.count("help") == 0 && subcommand == "record" && args.empty()) {
                std::cout << kUsage;
                return kExitOk;
            }
            std::cout << "pysample " << subcommand << ": " << subcommand_summary(subcommand)
                      << "\n\nUSAGE:\n    pysample " << subcommand << " [OPTIONS] --pid PID\n"
                      << (subcommand != "dump"
                              ? "    pysample " + subcommand + " [OPTIONS] -- python3 program.py [ARGS...]\n"
                              : "    pysample dump [OPTIONS] --core CORE\n")
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
            options.opcodes = vm["opcodes"].as<bool>();
            options.json = vm["json"].as<bool>();
            options.gil = vm["gil"].as<bool>();
            options.async_tasks = vm["async"].as<bool>();
            fill_native(vm, options);
            fill_core(vm, options);
            if (options.native != NativeMode::Off && !options.blocking && options.core.empty()) {
                throw attach::Error(
                    attach::ErrorKind::Usage,
                    "--native stops each thread to copy its stack; it cannot be used with --nonblocking");
            }
            if (options.core.empty()) require_target(options, false);
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
