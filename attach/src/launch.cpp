#include "attach/launch.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "attach/error.hpp"

namespace pysample::attach {

// A close-on-exec pipe tells the parent whether exec succeeded: it reads EOF on success, or the
// child's errno on failure.
ChildProcess::ChildProcess(const std::vector<std::string>& argv) {
    if (argv.empty()) throw Error(ErrorKind::Usage, "no command given to launch");
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw Error(ErrorKind::Other, std::string("pipe: ") + std::strerror(errno));
    std::vector<char*> args;
    for (const auto& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
    args.push_back(nullptr);

    pid_ = ::fork();
    if (pid_ < 0) {
        ::close(fds[0]);
        ::close(fds[1]);
        throw Error(ErrorKind::Other, std::string("fork: ") + std::strerror(errno));
    }
    if (pid_ == 0) {
        ::close(fds[0]);
        // An ignored signal stays ignored across exec: the command gets SIGPIPE as the shell gives it.
        ::signal(SIGPIPE, SIG_DFL);
        ::execvp(args[0], args.data());
        int err = errno;
        [[maybe_unused]] auto n = ::write(fds[1], &err, sizeof(err));
        ::_exit(127);
    }
    ::close(fds[1]);
    int child_errno = 0;
    ssize_t n;
    do {
        n = ::read(fds[0], &child_errno, sizeof(child_errno));
    } while (n < 0 && errno == EINTR);
    ::close(fds[0]);
    if (n == sizeof(child_errno)) {
        wait();
        throw Error(ErrorKind::Usage, "cannot run '" + argv[0] + "': " + std::strerror(child_errno));
    }
}

ChildProcess::~ChildProcess() {
    if (pid_ > 0 && !status_) {
        ::kill(pid_, SIGTERM);
        wait();
    }
}

// Peeks with WNOWAIT first: when the child is also being traced by us, a ptrace stop must stay
// queued for the tracer, and only a real exit is reaped here.
std::optional<int> ChildProcess::poll() {
    if (status_) return status_;
    siginfo_t info{};
    if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT | __WALL) != 0 ||
        info.si_pid != pid_) {
        return std::nullopt;
    }
    if (info.si_code == CLD_EXITED || info.si_code == CLD_KILLED || info.si_code == CLD_DUMPED) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG | __WALL) == pid_ && (WIFEXITED(status) || WIFSIGNALED(status))) {
            status_ = status;
        }
    }
    return status_;
}

int ChildProcess::wait() {
    while (!status_) {
        int status = 0;
        pid_t got = ::waitpid(pid_, &status, 0);
        if (got == pid_ && (WIFEXITED(status) || WIFSIGNALED(status))) {
            status_ = status;
        } else if (got < 0 && errno != EINTR) {
            status_ = 0;  // reaped elsewhere and not recorded; nothing more to learn
        }
    }
    return *status_;
}

void ChildProcess::send_signal(int sig) const {
    if (pid_ > 0 && !status_) ::kill(pid_, sig);
}

int ChildProcess::exit_code(int wait_status) {
    if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
    if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
    return 1;
}

std::string ChildProcess::describe_status(int wait_status) {
    if (WIFEXITED(wait_status)) return "exited with status " + std::to_string(WEXITSTATUS(wait_status));
    if (WIFSIGNALED(wait_status)) {
        const char* name = ::strsignal(WTERMSIG(wait_status));
        return "was killed by signal " + std::to_string(WTERMSIG(wait_status)) +
               (name != nullptr ? std::string(" (") + name + ")" : "");
    }
    return "ended";
}

}  // namespace pysample::attach
