#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "exporters/recording.hpp"

using namespace pysample::exporters;

namespace {

struct TempFile {
    TempFile() {
        char pattern[] = "/tmp/pysample-recording-test-XXXXXX";
        fd = ::mkstemp(pattern);
        path = pattern;
    }
    ~TempFile() { ::unlink(path.c_str()); }
    std::string contents() const {
        std::ifstream in(path, std::ios::binary);
        std::ostringstream data;
        data << in.rdbuf();
        return data.str();
    }
    int fd = -1;
    std::string path;
};

RecordingInfo sample_info() {
    RecordingInfo info;
    info.run.pid = 42;
    info.run.command_line = "python app.py";
    info.run.python_version = "3.12.1";
    info.run.start_time = "2026-12-07T10:00:00+0000";
    info.run.start_unix_ns = 1'796'637'600'000'000'000;
    info.run.counting = "CPU time";
    info.rate_asked = 100;
    info.mode = "cpu";
    info.pysample_version = "0.1.0";
    return info;
}

struct Read {
    std::vector<RecordedSample> samples;
    std::vector<RecordedProcess> processes;
    std::vector<std::pair<std::uint64_t, bool>> ticks;
};

Read read_all(RecordingReader& reader, bool& whole) {
    Read read;
    RecordingReader::Visitor visitor;
    visitor.sample = [&](const RecordedSample& sample) { read.samples.push_back(sample); };
    visitor.process = [&](const RecordedProcess& process) { read.processes.push_back(process); };
    visitor.tick = [&](std::uint64_t time, bool failed) { read.ticks.emplace_back(time, failed); };
    whole = reader.read(visitor);
    return read;
}

// Two threads, two stacks, three ticks (one failed), and the run's end.
std::string write_sample_recording(bool finish) {
    TempFile file;
    Profile profile;
    auto main_thread = profile.intern_thread({100, "MainThread"});
    auto worker = profile.intern_thread({101, "worker"});
    FrameId module = profile.intern({"<module>", "app.py", 10, 1});
    FrameId work = profile.intern({"work", "app.py", 5, 4, false, ""});
    FrameId marker = profile.intern(Frame::made_by_pysample("<task t>"));
    StackId a = profile.add(main_thread, std::vector<FrameId>{module, work});
    StackId b = profile.add(worker, std::vector<FrameId>{module, marker});
    {
        RecordingWriter writer(file.fd, sample_info());
        writer.process(42, "", "python app.py");
        writer.sample(profile, 42, a, 1, 0);
        writer.sample(profile, 42, b, 3, kSampleIdle);
        writer.tick(10'000, false);
        writer.sample(profile, 42, a, 2, kSampleGilHolder);
        writer.tick(20'000, true);
        writer.tick(30'000, false);
        if (finish) {
            RunInfo end = sample_info().run;
            end.duration_s = 0.03;
            end.rate_hz = 100;
            end.samples = 3;
            end.errors = 1;
            writer.finish(end);
            CHECK(writer.error().empty());
            CHECK(writer.bytes_written() > 16);
        }
    }
    return file.contents();
}

}  // namespace

TEST_CASE("a recording reads back its run, processes, threads, frames, stacks and samples in order") {
    RecordingReader reader(write_sample_recording(true));
    bool whole = false;
    Read read = read_all(reader, whole);
    CHECK(whole);
    CHECK(reader.damage().empty());
    const auto& info = reader.info();
    CHECK(info.finished);
    CHECK(info.run.pid == 42);
    CHECK(info.run.command_line == "python app.py");
    CHECK(info.run.start_unix_ns == 1'796'637'600'000'000'000);
    CHECK(info.run.duration_s == 0.03);
    CHECK(info.run.samples == 3);
    CHECK(info.run.errors == 1);
    CHECK(info.rate_asked == 100);
    CHECK(info.mode == "cpu");
    REQUIRE(read.processes.size() == 1);
    CHECK(read.processes[0].pid == 42);
    REQUIRE(read.samples.size() == 3);
    CHECK(read.samples[0].time_us == 10'000);
    CHECK(read.samples[1].weight == 3);
    CHECK(read.samples[1].flags == kSampleIdle);
    CHECK(read.samples[2].time_us == 20'000);
    CHECK(read.samples[2].stack == read.samples[0].stack);  // "the thread's last stack"
    CHECK(read.samples[2].flags == kSampleGilHolder);
    REQUIRE(reader.threads().size() == 2);
    CHECK(reader.threads()[read.samples[1].thread].info.name == "worker");
    const auto& stack = reader.stacks()[read.samples[1].stack];
    REQUIRE(stack.size() == 2);
    CHECK(reader.frames()[stack[1]].synthetic);
    CHECK(reader.frames()[stack[1]].function == "<task t>");
    CHECK(reader.frames()[reader.stacks()[read.samples[0].stack][1]] == Frame{"work", "app.py", 5, 4, false, ""});
    REQUIRE(read.ticks.size() == 3);
    CHECK(read.ticks[1] == std::make_pair(std::uint64_t{20'000}, true));
    CHECK(reader.ticks() == 3);
    CHECK(reader.failed_ticks() == 1);
}

TEST_CASE("a recording without its end, or cut inside a block, reads up to there and says so") {
    std::string unfinished = write_sample_recording(false);
    {
        RecordingReader reader(unfinished);
        bool whole = false;
        Read read = read_all(reader, whole);
        CHECK(whole);
        CHECK_FALSE(reader.info().finished);
        CHECK(read.samples.size() == 3);
        CHECK(reader.last_time_us() == 30'000);
    }
    std::string data = write_sample_recording(true);
    RecordingReader cut(data.substr(0, data.size() - 3));
    bool whole = true;
    Read read = read_all(cut, whole);
    CHECK_FALSE(whole);
    CHECK(cut.damage().find("is cut short") != std::string::npos);
    CHECK(read.samples.empty());  // one block: everything in it is lost with it
    std::string changed = data;
    changed[30] = static_cast<char>(changed[30] ^ 0x55);
    RecordingReader damaged(changed);
    read_all(damaged, whole);
    CHECK_FALSE(whole);
    CHECK(damaged.damage().find("block 1 at byte 16") != std::string::npos);
}

TEST_CASE("a file that is no recording, or of a newer format, is refused at once") {
    CHECK_THROWS_WITH_AS(RecordingReader("#!/bin/sh\n echo hi there\n"),
                         "not a pysample recording (it does not begin with PYSAMPLE-REC)", std::runtime_error);
    std::string newer = std::string("PYSAMPLE-REC") + '\x02' + std::string(3, '\0');
    CHECK_THROWS_AS(RecordingReader{newer}, std::runtime_error);
    CHECK(looks_like_recording("PYSAMPLE-REC\x01"));
}

TEST_CASE("a tick of many threads, and runs of ticks without samples, read back as written") {
    TempFile file;
    Profile profile;
    FrameId f = profile.intern({"f", "app.py", 1, 1});
    std::vector<StackId> stacks;
    for (std::uint64_t tid = 1; tid <= 300; ++tid) {
        stacks.push_back(profile.add(profile.intern_thread({tid, ""}), std::vector<FrameId>{f}));
    }
    {
        RecordingWriter writer(file.fd, sample_info());
        for (StackId stack : stacks) writer.sample(profile, 42, stack, 1, 0);
        writer.tick(1'000, false);
        writer.tick(2'000, true);  // empty
        writer.tick(3'000, false);
        writer.tick(4'000, true);
        writer.sample(profile, 42, stacks[7], 1, 0);
        writer.tick(5'000, false);
    }
    RecordingReader reader(file.contents());
    bool whole = false;
    Read read = read_all(reader, whole);
    CHECK(whole);
    REQUIRE(read.samples.size() == 301);
    CHECK(reader.threads()[read.samples[299].thread].info.id == 300);
    CHECK(read.samples[300].time_us == 5'000);
    CHECK(reader.threads()[read.samples[300].thread].info.id == 8);
    CHECK(reader.ticks() == 5);
    CHECK(reader.failed_ticks() == 2);
    REQUIRE(read.ticks.size() == 5);
    // The empty ticks are counted at the time of the last of them.
    CHECK(read.ticks[1].first == 4'000);
    CHECK(read.ticks[3].first == 4'000);
    CHECK(read.ticks[4].first == 5'000);
}
