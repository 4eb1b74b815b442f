#include "commands/recorder.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "attach/error.hpp"
#include "attach/processes.hpp"
#include "attach/threads.hpp"
#include "exporters/utf8.hpp"

namespace pysample::sampler {

Recorder::Recorder(std::unique_ptr<PythonProcess> target, pid_t root_pid, const RecordOptions& options)
    : options_(options),
      root_pid_(root_pid),
      stacks_(profile_, options.line_numbers, options.subprocesses && options.threads),
      recorded_stacks_(recorded_profile_, true, false) {
    recorded_profile_.keep_timeline(false);
    profile_.keep_timeline(std::any_of(options.outputs.begin(), options.outputs.end(),
                                       [](const auto& output) { return exporters::shows_time_order(output.format); }));
    if (target != nullptr) {
        auto& ref = *target;
        add_process(ref, std::move(target));
    }
}

bool Recorder::sample(std::uint64_t time_us) {
    ++ticks_;
    follow_processes(time_us, false);
    bool failed = false;
    bool look_again = false;
    for (auto it = processes_.begin(); it != processes_.end();) {
        auto outcome = it->snapshotter->take(threads_, options_.idle);
        if (outcome == Snapshotter::Outcome::ProcessGone) {
            retire(it);
            continue;
        }
        // A process that exec'ed fails to read: its image is checked at once.
        if (outcome == Snapshotter::Outcome::Failed && exec_ed(*it)) {
            look_again = true;
            ++it;
            continue;
        }
        failed = failed || outcome == Snapshotter::Outcome::Failed;
        if (it->async) it->async->rebuild(threads_, it->snapshotter->thread_states());
        for (const auto& thread : threads_) count_sample(*it, thread, time_us);
        if (it->async) {
            for (const auto& waiting : it->async->waiting()) count_sample(*it, waiting, time_us);
        }
        ++it;
    }
    if (look_again) follow_processes(time_us, true);
    if (processes_.empty() && !root_alive()) {
        --ticks_;
        return false;
    }
    if (failed) ++failed_ticks_;
    if (recording_) recording_->tick(time_us, failed);
    return true;
}

void Recorder::count_sample(SampledProcess& sampled, const ThreadSnapshot& thread, std::uint64_t time_us) {
    if (thread.frames.empty() || thread.joined) return;
    bool gil_holder = options_.gil && thread.holds_gil;
    // --gil keeps the holder whatever it does; CPU time counts what each thread ran.
    std::uint64_t samples = options_.gil ? (gil_holder ? 1 : 0) : thread.weight;
    if (samples > 0) stacks_.add(sampled.stacks, thread, time_us, samples);
    // The recording keeps what any view of the run counts: the CPU (or wall-clock) weight, and
    // whether the thread was idle or held the GIL.
    if (!recording_ || (thread.weight == 0 && !gil_holder)) return;
    auto stack = recorded_stacks_.add(sampled.recorded, thread, time_us, 1);
    std::uint8_t flags = (thread.idle ? exporters::kSampleIdle : 0) | (gil_holder ? exporters::kSampleGilHolder : 0);
    recording_->sample(recorded_profile_, sampled.process->pid(), stack, thread.weight, flags);
}

void Recorder::record_to(std::unique_ptr<exporters::RecordingWriter> recording) {
    recording_ = std::move(recording);
    for (const auto& sampled : processes_) {
        recording_->process(sampled.process->pid(), sampled.root_label, sampled.command_line);
    }
}

RunTotals Recorder::totals() {
    RunTotals totals = retired_;
    for (const auto& sampled : processes_) totals.add(*sampled.snapshotter, sampled.async.get());
    return totals;
}

std::chrono::nanoseconds Recorder::mean_pause() const {
    const auto* root = root_process();
    return root == nullptr ? last_mean_pause_ : root->snapshotter->mean_pause();
}

void Recorder::serve_stops() {
    for (auto& sampled : processes_) sampled.snapshotter->serve_stops();
}

attach::ThreadSuspender* Recorder::suspender() {
    const auto* root = root_process();
    return root == nullptr ? nullptr : root->snapshotter->suspender();
}

const Recorder::SampledProcess* Recorder::root_process() const {
    for (const auto& sampled : processes_) {
        if (sampled.process->pid() == root_pid_) return &sampled;
    }
    return nullptr;
}

void Recorder::add_process(PythonProcess& process, std::unique_ptr<PythonProcess> owned) {
    SampledProcess sampled;
    sampled.process = &process;
    sampled.owned = std::move(owned);
    sampled.snapshotter = std::make_unique<Snapshotter>(process, options_.blocking, options_.native);
    sampled.snapshotter->read_gil(options_.gil);
    if (options_.async_tasks) {
        sampled.async = std::make_unique<AsyncStacks>(
            process, options_.idle,
            options_.async_by_coroutine ? AsyncStacks::Markers::Coroutine : AsyncStacks::Markers::Name);
        // The tasks are read while the threads are stopped, if they are: they then agree with the stacks.
        sampled.snapshotter->inspect_each_snapshot(
            [async = sampled.async.get(), snapshotter = sampled.snapshotter.get()](std::vector<ThreadSnapshot>&) {
                async->read(snapshotter->thread_states());
            });
    }
    sampled.command_line = attach::read_cmdline(process.pid());
    sampled.image = attach::process_image(process.pid());
    if (options_.subprocesses) {
        std::string label = "process " + std::to_string(process.pid()) + " " + sampled.command_line;
        if (label.size() > 200) label = label.substr(0, 197) + "...";
        sampled.stacks.has_root = true;
        sampled.stacks.root = profile_.intern(exporters::Frame::made_by_pysample(label));
        sampled.root_label = label;
    }
    if (recording_) recording_->process(process.pid(), sampled.root_label, sampled.command_line);
    images_[process.pid()] = {sampled.image, std::chrono::steady_clock::now(), true};
    ++followed_;
    processes_.push_back(std::move(sampled));
}

// Whether the process now runs another program than the one attached (a title changed with
// setproctitle, as gunicorn and celery do, is no exec).
bool Recorder::exec_ed(const SampledProcess& sampled) const {
    std::string image = attach::process_image(sampled.process->pid());
    return !image.empty() && image != sampled.image;
}

// A few times a second, and at once when a read fails: a process that exec'ed is attached
// afresh (or, when it does not run Python now, watched until it does or exits), and with
// --subprocesses new Python descendants are attached.
void Recorder::follow_processes(std::uint64_t time_us, bool at_once) {
    if (!at_once && time_us < next_scan_us_) return;
    next_scan_us_ = time_us + kProcessScanUs;
    for (auto it = processes_.begin(); it != processes_.end();) {
        if (!exec_ed(*it)) {
            ++it;
            continue;
        }
        pid_t pid = it->process->pid();
        ++execs_;
        spdlog::info("process {} exec'ed: {}", pid, exporters::escape_control_characters(attach::read_cmdline(pid)));
        images_.erase(pid);
        retire(it);
    }
    attach_new_processes();
}

// A process found not to be Python is looked at again only once it has exec'ed.
void Recorder::attach_new_processes() {
    std::vector<pid_t> candidates{root_pid_};
    if (options_.subprocesses) {
        auto descendants = attach::descendants(root_pid_);
        candidates.insert(candidates.end(), descendants.begin(), descendants.end());
    }
    auto now = std::chrono::steady_clock::now();
    for (pid_t pid : candidates) {
        auto image = attach::process_image(pid);
        auto known = images_.find(pid);
        // A program that has just been exec'ed may still be loading libpython.
        if (image.empty() || (known != images_.end() && known->second.image == image &&
                              (known->second.attached || now - known->second.seen > kLoadingTime))) {
            continue;
        }
        try {
            auto process = std::make_unique<PythonProcess>(pid, options_.python_version);
            auto& ref = *process;
            add_process(ref, std::move(process));
            spdlog::info("following process {}: {}", pid,
                         exporters::escape_control_characters(processes_.back().command_line));
        } catch (const PythonError& e) {
            // Not Python yet: it may exec an interpreter later.
            if (e.kind() == PythonErrorKind::NotPython && (known == images_.end() || known->second.image != image))
                images_[pid] = {image, now, false};
        } catch (const attach::Error&) {
            // Already gone, or not ours to read: looked at again if it execs.
        }
    }
    if (images_.size() > kMaxRememberedProcesses) {
        std::erase_if(images_, [](const auto& entry) { return attach::process_image(entry.first).empty(); });
    }
}

bool Recorder::root_alive() const {
    char state = attach::read_thread_state(root_pid_, root_pid_);
    return state != '?' && state != 'Z' && state != 'X';
}

void Recorder::retire(std::list<SampledProcess>::iterator& it) {
    retired_.add(*it->snapshotter, it->async.get());
    if (it->process->pid() == root_pid_) {
        last_mean_pause_ = it->snapshotter->mean_pause();
        if (auto* suspender = it->snapshotter->suspender()) reaped_ = suspender->reaped_exit_status();
    }
    it = processes_.erase(it);
}

}  // namespace pysample::sampler
