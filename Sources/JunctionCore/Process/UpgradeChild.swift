#if canImport(Glibc)
    import Glibc
#endif

/// The new process of an upgrade, seen from the old one: spawned with the listening sockets, a
/// ready pipe and its stderr piped back; watched (blocking, off the event loops) until it says it
/// is ready, exits, or runs out of time.
struct UpgradeChild: Sendable {
    /// The new process.
    let pid: Int32
    /// The read end of the ready pipe.
    private let readyDescriptor: CInt
    /// The read end of the new process's stderr while it starts.
    private let errorDescriptor: CInt
    /// The write end of the go pipe: closed (`go`) once this process stopped accepting, so the
    /// two never accept on the same socket at once.
    private let goDescriptor: CInt

    /// How much of the new process's stderr is kept for the failure line.
    static let tailBytes = 2048

    /// Starts `executable` with `arguments` (argv[0] included) and this process's environment plus
    /// the hand-over of `sockets` (descriptors this process keeps; copies go to the new process).
    static func spawn(
        executable: String,
        arguments: [String],
        sockets: [Handover.Socket]
    ) throws -> UpgradeChild {
        // The new process's descriptors: 0 and 1 as here, 2 the stderr pipe, then the sockets, the
        // ready pipe, the real stderr, the go pipe. Every source is first copied above that range,
        // so no `dup2` of the file actions overwrites a source still to be copied.
        let first: CInt = 3
        let readyTarget = first + CInt(sockets.count)
        let standardErrorTarget = readyTarget + 1
        let goTarget = standardErrorTarget + 1
        let floor = goTarget + 1
        var opened: [CInt] = []
        defer { for descriptor in opened { close(descriptor) } }
        func copy(_ descriptor: CInt) throws -> CInt {
            let copy = try ListeningSocket.duplicate(descriptor, minimum: floor)
            opened.append(copy)
            return copy
        }
        var ready: [CInt] = [-1, -1]
        var error: [CInt] = [-1, -1]
        var go: [CInt] = [-1, -1]
        guard Self.makePipe(&ready) else {
            throw ListeningSocket.Failure(description: "pipe: \(ListeningSocket.lastError())")
        }
        guard Self.makePipe(&error) else {
            let failure = ListeningSocket.lastError()
            close(ready[0])
            close(ready[1])
            throw ListeningSocket.Failure(description: "pipe: \(failure)")
        }
        guard Self.makePipe(&go) else {
            let failure = ListeningSocket.lastError()
            for descriptor in ready + error { close(descriptor) }
            throw ListeningSocket.Failure(description: "pipe: \(failure)")
        }
        opened += [ready[1], error[1], go[0]]
        var keep = false
        defer {
            if !keep {
                close(ready[0])
                close(error[0])
                close(go[1])
            }
        }
        var moves: [(source: CInt, target: CInt)] = []
        var handed: [Handover.Socket] = []
        for (index, socket) in sockets.enumerated() {
            let target = first + CInt(index)
            moves.append((try copy(socket.descriptor), target))
            var entry = socket
            entry.descriptor = target
            handed.append(entry)
        }
        moves.append((try copy(ready[1]), readyTarget))
        moves.append((try copy(STDERR_FILENO), standardErrorTarget))
        moves.append((try copy(error[1]), STDERR_FILENO))
        moves.append((try copy(go[0]), goTarget))

        let handover = Handover(
            sockets: handed,
            readyDescriptor: readyTarget,
            standardErrorDescriptor: standardErrorTarget,
            goDescriptor: goTarget,
            previousPID: getpid()
        )
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for move in moves {
            // `dup2` clears close-on-exec on the target: these are the descriptors the new process
            // inherits.
            posix_spawn_file_actions_adddup2(&actions, move.source, move.target)
        }
        // Everything else is close-on-exec already (NIO's sockets, Junction's own); this closes
        // what a library may have opened without the flag, where glibc has it (2.34+).
        if let closeFrom = Self.addCloseFrom {
            _ = closeFrom(&actions, floor)
        }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // The new process starts with nothing blocked, and the stop signals at their default.
        var defaults = sigset_t()
        sigemptyset(&defaults)
        // Signals this process catches are at their default in the new one anyway (exec resets
        // them); SIGPIPE, ignored here, stays ignored there.
        for signal in [SIGINT, SIGTERM, SIGCHLD, SIGQUIT] {
            sigaddset(&defaults, signal)
        }
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setsigmask(&attributes, &mask)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK))

        var environment = Self.environment(adding: handover.environment)
        var argv = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var envp = environment.map { strdup($0) } + [nil]
        defer { for pointer in envp { free(pointer) } }
        environment.removeAll()
        var pid: pid_t = 0
        let result = posix_spawn(&pid, executable, &actions, &attributes, &argv, &envp)
        guard result == 0 else {
            throw ListeningSocket.Failure(
                description: "cannot start \(executable): \(String(cString: strerror(result))) (errno \(result))"
            )
        }
        keep = true
        return UpgradeChild(pid: pid, readyDescriptor: ready[0], errorDescriptor: error[0], goDescriptor: go[1])
    }

    /// This process's environment without an earlier hand-over's variables, plus `variables`.
    private static func environment(adding variables: [String: String]) -> [String] {
        var entries: [String] = []
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            let name = text.split(separator: "=", maxSplits: 1).first.map(String.init) ?? text
            if !Handover.Variable.all.contains(name) { entries.append(text) }
            pointer = pointer.advanced(by: 1)
        }
        for (name, value) in variables.sorted(by: { $0.key < $1.key }) {
            entries.append("\(name)=\(value)")
        }
        return entries
    }

    /// A pipe whose two ends are close-on-exec (Swift's Glibc module has no `pipe2`; only one
    /// upgrade runs at a time, and nothing else here spawns).
    private static func makePipe(_ ends: inout [CInt]) -> Bool {
        guard pipe(&ends) == 0 else { return false }
        _ = fcntl(ends[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(ends[1], F_SETFD, FD_CLOEXEC)
        return true
    }

    private typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, CInt) -> CInt

    /// glibc's `posix_spawn_file_actions_addclosefrom_np`, found at run time (Swift's Glibc module
    /// does not declare it).
    private static let addCloseFrom: AddCloseFrom? = {
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "posix_spawn_file_actions_addclosefrom_np")
        else { return nil }
        return unsafeBitCast(symbol, to: AddCloseFrom.self)
    }()

    /// Follows the new process until it is ready, exits, or `timeout` passes (then it is killed).
    /// Its stderr is copied to this process's stderr meanwhile, and its tail kept for the outcome.
    /// Blocking: run it on a thread pool.
    func watch(timeout: Duration) -> UpgradeStateMachine.Outcome {
        var tail: [UInt8] = []
        var deadline = timespec()
        clock_gettime(CLOCK_MONOTONIC, &deadline)
        let end = Double(deadline.tv_sec) + Double(deadline.tv_nsec) / 1e9 + Double(timeout.components.seconds)
        var readyBytes: [UInt8] = []
        var readyOpen = true
        var errorOpen = true
        while true {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            if Double(now.tv_sec) + Double(now.tv_nsec) / 1e9 >= end {
                Glibc.kill(self.pid, SIGKILL)
                var status: CInt = 0
                waitpid(self.pid, &status, 0)
                self.closeReadEnds()
                return .failed(
                    pid: self.pid,
                    reason:
                        "the new process (pid \(self.pid)) was not ready within \(timeout.components.seconds) s and was killed"
                        + Self.describe(tail: tail)
                )
            }
            var descriptors = [
                pollfd(fd: readyOpen ? self.readyDescriptor : -1, events: Int16(POLLIN), revents: 0),
                pollfd(fd: errorOpen ? self.errorDescriptor : -1, events: Int16(POLLIN), revents: 0),
            ]
            _ = poll(&descriptors, 2, 100)
            if errorOpen, descriptors[1].revents != 0 {
                errorOpen = self.forwardError(into: &tail)
            }
            if readyOpen, descriptors[0].revents != 0 {
                var buffer = [UInt8](repeating: 0, count: 64)
                let count = read(self.readyDescriptor, &buffer, buffer.count)
                if count > 0 {
                    readyBytes += buffer[0..<count]
                    if readyBytes.contains(UInt8(ascii: "\n")) {
                        // The rest of its stderr is copied by `forwardRest`: the hand-over must
                        // not wait for it.
                        close(self.readyDescriptor)
                        return .ready(pid: self.pid)
                    }
                } else if count == 0 || errno != EINTR {
                    // Closed without a word: the process is going (or went); its exit says why.
                    readyOpen = false
                }
            }
            var status: CInt = 0
            if waitpid(self.pid, &status, WNOHANG) == self.pid {
                // What it wrote last is still in the pipe.
                while errorOpen, self.forwardError(into: &tail) {}
                self.closeReadEnds()
                return .failed(
                    pid: self.pid,
                    reason: "the new process (pid \(self.pid)) \(Self.describe(status: status)) before it was ready"
                        + Self.describe(tail: tail)
                )
            }
        }
    }

    /// Stops the new process (a shutdown during its start): SIGTERM, which ends it at once until
    /// it traps the signal, and drains it once it does (it may have begun to accept); `watch`
    /// reaps it.
    func terminate() {
        Glibc.kill(self.pid, SIGTERM)
    }

    /// Copies one read of the new process's stderr to ours and to `tail`; false at its end.
    private func forwardError(into tail: inout [UInt8]) -> Bool {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let count = read(self.errorDescriptor, &buffer, buffer.count)
        guard count > 0 else { return count < 0 && errno == EINTR }
        buffer.withUnsafeBytes { bytes in
            let chunk = UnsafeRawBufferPointer(rebasing: bytes[0..<count])
            LineWriter.standardError.write(chunk, lines: chunk.reduce(0) { $0 + ($1 == 0x0A ? 1 : 0) })
        }
        tail += buffer[0..<count]
        if tail.count > Self.tailBytes { tail.removeFirst(tail.count - Self.tailBytes) }
        return true
    }

    /// After `.ready`: the new process takes its real stderr; what it wrote to the pipe before
    /// that is copied on until the pipe ends (bounded: 5 s), then the pipe is closed. Blocking.
    func forwardRest() {
        var tail: [UInt8] = []
        var descriptor = pollfd(fd: self.errorDescriptor, events: Int16(POLLIN), revents: 0)
        // A pipe that ended already reads its end at once.
        for _ in 0..<50 {
            descriptor.revents = 0
            guard poll(&descriptor, 1, 100) > 0 else { continue }
            guard self.forwardError(into: &tail) else { break }
        }
        close(self.errorDescriptor)
    }

    private func closeReadEnds() {
        close(self.readyDescriptor)
        close(self.errorDescriptor)
        close(self.goDescriptor)
    }

    /// After `.ready`: `accept` true once this process stopped accepting (the new process accepts
    /// now), false when the hand-over is called off (the new process is being stopped and must not
    /// accept). Once.
    func go(accept: Bool) {
        if accept {
            let word = Array("go\n".utf8)
            _ = word.withUnsafeBytes { write(self.goDescriptor, $0.baseAddress, $0.count) }
        }
        close(self.goDescriptor)
    }

    /// "exited with status 1", "was killed by signal 9".
    static func describe(status: CInt) -> String {
        let signal = status & 0x7F
        return signal == 0 ? "exited with status \((status >> 8) & 0xFF)" : "was killed by signal \(signal)"
    }

    /// The tail's last lines, for the log line.
    static func describe(tail: [UInt8]) -> String {
        var lines = String(decoding: tail, as: UTF8.self).split(separator: "\n").map {
            $0.trimmingCharacters(in: " \r\t")
        }
        lines = Array(lines.filter { !$0.isEmpty }.suffix(5))
        guard !lines.isEmpty else { return "; it wrote nothing to stderr" }
        return "; its stderr ended with: " + lines.joined(separator: " | ")
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        let characters = Set(set)
        var view = self[...]
        while let first = view.first, characters.contains(first) { view = view.dropFirst() }
        while let last = view.last, characters.contains(last) { view = view.dropLast() }
        return String(view)
    }
}
