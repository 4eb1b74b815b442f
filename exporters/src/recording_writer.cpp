#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "exporters/recording.hpp"
#include "recording_format.hpp"

namespace pysample::exporters {

using recording::Encoder;

namespace {

std::string bool_text(bool value) { return value ? "1" : "0"; }

std::string compress_block(const std::string& records) {
    uLongf size = compressBound(static_cast<uLong>(records.size()));
    std::string out(recording::kBlockHeaderSize + size, '\0');
    auto* data = reinterpret_cast<Bytef*>(out.data() + recording::kBlockHeaderSize);
    if (compress2(data, &size, reinterpret_cast<const Bytef*>(records.data()), static_cast<uLong>(records.size()),
                  Z_DEFAULT_COMPRESSION) != Z_OK) {
        throw std::runtime_error("zlib could not compress a block");
    }
    out.resize(recording::kBlockHeaderSize + size);
    std::string header;
    Encoder encoder(header);
    header += recording::kBlockMagic;
    encoder.fixed(size, 4);
    encoder.fixed(records.size(), 4);
    encoder.fixed(crc32(0, reinterpret_cast<const Bytef*>(records.data()), static_cast<uInt>(records.size())), 4);
    out.replace(0, header.size(), header);
    return out;
}

}  // namespace

// The blocks go to the file from a thread of their own: compressing and syncing never hold up a
// sample. Each block is synced to disk before the next one is written.
struct RecordingWriter::Shared {
    explicit Shared(int descriptor) : fd(descriptor) {}
    struct Block {
        std::string records;
        std::uint64_t samples = 0;
        std::uint64_t up_to_us = 0;
    };

    void run() {
        std::unique_lock lock(mutex);
        while (true) {
            wake.wait(lock, [&] { return stopping || !queue.empty(); });
            if (queue.empty()) break;
            Block block = std::move(queue.front());
            queue.pop_front();
            lock.unlock();
            bool ok = error.empty() && write_block(block);
            lock.lock();
            if (ok) {
                safe_up_to_us = block.up_to_us;
            } else {
                lost_samples += block.samples;
            }
        }
    }

    // Called without the lock: `error` is only written here, on this thread.
    bool write_block(const Block& block) {
        std::string bytes;
        try {
            bytes = compress_block(block.records);
        } catch (const std::exception& e) {
            set_error(e.what());
            return false;
        }
        if (!write_all(bytes)) return false;
        // Pipes and devices cannot be synced, and need not be.
        if (::fdatasync(fd) != 0 && errno != EINVAL && errno != EROFS) {
            set_error(std::strerror(errno));
            return false;
        }
        bytes_written += bytes.size();
        return true;
    }

    bool write_all(const std::string& bytes) {
        std::size_t done = 0;
        while (done < bytes.size()) {
            ssize_t wrote = ::write(fd, bytes.data() + done, bytes.size() - done);
            if (wrote < 0 && errno == EINTR) continue;
            if (wrote <= 0) {
                set_error(wrote < 0 ? std::strerror(errno) : "nothing could be written");
                // A part of a block left at the end is told from a whole one by its sizes and CRC.
                return false;
            }
            done += static_cast<std::size_t>(wrote);
        }
        return true;
    }

    void set_error(const std::string& text) {
        std::lock_guard lock(error_mutex);
        error = text;
    }

    int fd;
    std::mutex mutex;
    std::condition_variable wake;
    std::deque<Block> queue;
    bool stopping = false;
    std::mutex error_mutex;
    std::string error;
    std::atomic<std::uint64_t> bytes_written = 0;
    std::uint64_t lost_samples = 0;
    std::uint64_t safe_up_to_us = 0;
    std::uint64_t block_samples = 0;
    std::thread thread;
};

RecordingWriter::RecordingWriter(int fd, const RecordingInfo& info)
    : shared_(std::make_unique<Shared>(fd)), block_started_(std::chrono::steady_clock::now()) {
    std::string header(recording::kMagic);
    Encoder(header).fixed(recording::kVersion, 4);
    if (!shared_->write_all(header)) {
        // Said by error(); the thread then drops every block.
    } else {
        shared_->bytes_written = header.size();
    }
    const RunInfo& run = info.run;
    std::vector<std::pair<std::string, std::string>> fields = {
        {"pysample_version", info.pysample_version},
        {"host", info.host},
        {"pid", std::to_string(run.pid)},
        {"command_line", run.command_line},
        {"python_version", run.python_version},
        {"start_time", run.start_time},
        {"start_unix_ns", std::to_string(run.start_unix_ns)},
        {"counting", run.counting},
        {"mode", info.mode},
        {"gil_read", bool_text(info.gil_read)},
        {"subprocesses", bool_text(info.subprocesses)},
        {"async", bool_text(info.async_tasks)},
    };
    Encoder out(block_);
    out.byte(recording::kInfo);
    out.varint(fields.size() + 1);
    for (const auto& [key, value] : fields) {
        out.string(key);
        out.string(value);
    }
    // Exact: the rate asked is given back as it was.
    std::string rate;
    Encoder(rate).real(info.rate_asked);
    out.string("rate_asked");
    out.string(rate);
    shared_->thread = std::thread([shared = shared_.get()] { shared->run(); });
}

RecordingWriter::~RecordingWriter() {
    if (!shared_->thread.joinable()) return;
    end_block();
    {
        std::lock_guard lock(shared_->mutex);
        shared_->stopping = true;
    }
    shared_->wake.notify_one();
    shared_->thread.join();
    ::close(shared_->fd);
}

void RecordingWriter::process(std::int64_t pid, const std::string& root_label, const std::string& command_line) {
    Encoder out(block_);
    out.byte(recording::kProcess);
    out.signed_varint(pid);
    out.string(root_label);
    out.string(command_line);
}

void RecordingWriter::define_thread(std::int64_t pid, std::uint32_t thread, const ThreadInfo& info) {
    Encoder out(block_);
    out.byte(recording::kThread);
    out.signed_varint(pid);
    out.varint(info.id);
    out.string(info.name);
    threads_[{pid, thread}] = static_cast<std::uint32_t>(last_stack_.size());
    last_stack_.push_back(0);
}

void RecordingWriter::define_stacks_up_to(const Profile& source, StackId stack) {
    if (stack < stacks_written_) return;
    Encoder out(block_);
    for (; frames_written_ < source.frames().size(); ++frames_written_) {
        const Frame& frame = source.frame(static_cast<FrameId>(frames_written_));
        out.byte(recording::kFrame);
        out.string(frame.function);
        out.string(frame.filename);
        out.signed_varint(frame.line);
        out.signed_varint(frame.first_line);
        out.varint(frame.synthetic ? 1 : 0);
        out.string(frame.name);
    }
    for (; stacks_written_ <= stack; ++stacks_written_) {
        const auto& frames = source.stacks()[stacks_written_].frames;
        out.byte(recording::kStack);
        out.varint(frames.size());
        for (FrameId id : frames) out.varint(id);
    }
}

void RecordingWriter::sample(const Profile& source, std::int64_t pid, StackId stack, std::uint32_t weight,
                             std::uint8_t flags) {
    define_stacks_up_to(source, stack);
    std::uint32_t thread = source.stacks()[stack].thread;
    auto known = threads_.find({pid, thread});
    if (known == threads_.end()) {
        define_thread(pid, thread, source.threads()[thread]);
        known = threads_.find({pid, thread});
    }
    std::uint32_t id = known->second;
    Encoder out(tick_);
    bool same_stack = last_stack_[id] == stack + 1;
    bool plain = same_stack && weight == 1 && (flags & 3U) == 0;
    out.varint((std::uint64_t{id} << 1) | (plain ? 1 : 0));
    if (!plain) {
        out.varint(same_stack ? 0 : stack + 1);
        out.varint((std::uint64_t{weight} << 2) | (flags & 3U));
    }
    last_stack_[id] = stack + 1;
    ++tick_samples_;
    ++samples_;
}

// A tick without samples (no thread ran, in CPU time) is counted with the others like it, at the
// time of the last: only the run's tick and error counts need them.
void RecordingWriter::tick(std::uint64_t time_us, bool failed) {
    time_us = std::max(time_us, last_tick_us_);
    if (tick_samples_ == 0) {
        if (empty_ticks_ == 0) empty_from_us_ = last_tick_us_;
        ++empty_ticks_;
        if (failed) ++empty_failed_;
        last_tick_us_ = time_us;
    } else {
        write_empty_ticks();
        Encoder out(block_);
        std::uint64_t count_and_failed = (std::uint64_t{tick_samples_} << 1) | (failed ? 1 : 0);
        if (tick_samples_ < recording::kSmallTickCount) {
            out.byte(static_cast<std::uint8_t>(recording::kSmallTick + count_and_failed));
            out.varint(time_us - last_tick_us_);
        } else {
            out.byte(recording::kTick);
            out.varint(time_us - last_tick_us_);
            out.varint(count_and_failed);
        }
        block_ += tick_;
        tick_.clear();
        shared_->block_samples += tick_samples_;
        tick_samples_ = 0;
        last_tick_us_ = time_us;
    }
    auto now = std::chrono::steady_clock::now();
    if (now - block_started_ >= kBlockInterval || block_.size() >= kMaxBlockBytes) end_block();
}

void RecordingWriter::write_empty_ticks() {
    if (empty_ticks_ == 0) return;
    Encoder out(block_);
    out.byte(recording::kEmptyTicks);
    out.varint(empty_ticks_);
    out.varint(empty_failed_);
    out.varint(last_tick_us_ - empty_from_us_);
    empty_ticks_ = 0;
    empty_failed_ = 0;
}

void RecordingWriter::end_block() {
    write_empty_ticks();
    block_started_ = std::chrono::steady_clock::now();
    if (block_.empty()) return;
    {
        std::lock_guard lock(shared_->mutex);
        shared_->queue.push_back({std::move(block_), shared_->block_samples, last_tick_us_});
    }
    shared_->block_samples = 0;
    block_.clear();
    shared_->wake.notify_one();
}

void RecordingWriter::finish(const RunInfo& run) {
    if (!shared_->thread.joinable()) return;
    write_empty_ticks();
    Encoder out(block_);
    out.byte(recording::kEnd);
    out.real(run.duration_s);
    out.real(run.rate_hz);
    out.varint(run.samples);
    out.varint(run.errors);
    end_block();
    {
        std::lock_guard lock(shared_->mutex);
        shared_->stopping = true;
    }
    shared_->wake.notify_one();
    shared_->thread.join();
    if (::close(shared_->fd) != 0 && shared_->error.empty()) shared_->set_error(std::strerror(errno));
}

std::string RecordingWriter::error() const {
    std::string error;
    {
        std::lock_guard lock(shared_->error_mutex);
        error = shared_->error;
    }
    if (error.empty()) return "";
    std::lock_guard lock(shared_->mutex);
    char up_to[32];
    std::snprintf(up_to, sizeof(up_to), "%.1f", static_cast<double>(shared_->safe_up_to_us) / 1e6);
    return error + "; it holds the samples of the first " + up_to + " s, " + std::to_string(shared_->lost_samples) +
           " thread samples after them were lost";
}

std::uint64_t RecordingWriter::bytes_written() const { return shared_->bytes_written; }

}  // namespace pysample::exporters
