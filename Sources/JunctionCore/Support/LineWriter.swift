import Dispatch
import Logging
import Synchronization

import struct NIOConcurrencyHelpers.NIOLockedValueBox

#if canImport(Glibc)
    import Glibc
#endif

/// Log lines to one file descriptor (stdout, stderr, an access-log file) without ever blocking the
/// caller: lines are queued, up to `capacity` bytes, and written by a dispatch queue of the
/// writer's own. When the reader cannot keep up (a stuck journald or `docker logs`, a pipe nobody
/// reads), lines past the bound are dropped and counted, and once the queue has drained a warning
/// says how many were lost. No event loop ever waits on a log write.
public final class LineWriter: Sendable {
    /// The process's stdout (listening lines, the access log by default).
    public static let standardOutput = LineWriter(fileDescriptor: STDOUT_FILENO, name: "stdout")
    /// The process's stderr (the application log).
    public static let standardError = LineWriter(fileDescriptor: STDERR_FILENO, name: "stderr")

    /// Lines dropped by every writer since the start (`junction_log_lines_dropped_total`).
    public static let droppedLines = Atomic<Int>(0)

    /// What waits to be written.
    private struct Queue {
        var pending: [UInt8] = []
        /// Whether the writer is at work (and will look at `pending` again before it stops).
        var writing = false
        /// Lines dropped since the last warning about it.
        var dropped = 0
    }

    let fileDescriptor: CInt
    let name: String
    private let capacity: Int
    private let ownsDescriptor: Bool
    private let queue = NIOLockedValueBox(Queue())
    private let dispatchQueue: DispatchQueue

    /// `capacity`: the most bytes that may wait; `ownsDescriptor`: close it when the writer goes.
    init(fileDescriptor: CInt, name: String, capacity: Int = 1 << 20, ownsDescriptor: Bool = false) {
        self.fileDescriptor = fileDescriptor
        self.name = name
        self.capacity = capacity
        self.ownsDescriptor = ownsDescriptor
        self.dispatchQueue = DispatchQueue(label: "junction.log.\(name)")
    }

    deinit {
        if self.ownsDescriptor { close(self.fileDescriptor) }
    }

    /// Queues `line` and a newline.
    public func writeLine(_ line: String) {
        var text = line + "\n"
        text.withUTF8 { self.write(UnsafeRawBufferPointer($0), lines: 1) }
    }

    /// Queues `bytes` (`lines` whole lines), or drops them all if the queue is full.
    func write(_ bytes: UnsafeRawBufferPointer, lines: Int) {
        guard bytes.count > 0 else { return }
        enum Outcome { case queued, queuedAndStart, dropped }
        let outcome: Outcome = self.queue.withLockedValue { queue in
            guard queue.pending.count + bytes.count <= self.capacity else {
                queue.dropped += lines
                return .dropped
            }
            queue.pending.append(contentsOf: bytes)
            if queue.writing { return .queued }
            queue.writing = true
            return .queuedAndStart
        }
        switch outcome {
        case .queuedAndStart: self.dispatchQueue.async { self.drain() }
        case .queued: break
        case .dropped: Self.droppedLines.add(lines, ordering: .relaxed)
        }
    }

    /// Writes until nothing is pending; runs on the writer's dispatch queue.
    private func drain() {
        while true {
            let (batch, dropped): ([UInt8], Int) = self.queue.withLockedValue { queue in
                let batch = queue.pending
                queue.pending = []
                if batch.isEmpty {
                    queue.writing = false
                    let dropped = queue.dropped
                    queue.dropped = 0
                    return (batch, dropped)
                }
                return (batch, 0)
            }
            if batch.isEmpty {
                if dropped > 0 { self.reportDropped(dropped) }
                return
            }
            batch.withUnsafeBytes { Self.writeFully(self.fileDescriptor, $0) }
        }
    }

    /// The sink caught up after dropping lines: say so on the application log.
    private func reportDropped(_ count: Int) {
        Logger(label: "junction").warning(
            "log lines were dropped: the reader could not keep up",
            metadata: ["sink": "\(self.name)", "lines": "\(count)"]
        )
    }

    /// Whether everything queued has been written.
    var isIdle: Bool {
        self.queue.withLockedValue { !$0.writing && $0.pending.isEmpty }
    }

    /// Waits until the queue is written out, at most `milliseconds` (a stuck reader must not
    /// hold up the exit). For the end of the process and for tests.
    public func flush(milliseconds: Int = 2000) {
        for _ in 0..<max(1, milliseconds) {
            if self.isIdle { return }
            usleep(1000)
        }
    }

    /// Flushes stdout and stderr, each at most `milliseconds`.
    public static func flushStandardStreams(milliseconds: Int = 2000) {
        self.standardOutput.flush(milliseconds: milliseconds)
        self.standardError.flush(milliseconds: milliseconds)
    }

    /// `write(2)` until all of `bytes` went out, retrying on EINTR; errors drop the rest.
    static func writeFully(_ fileDescriptor: CInt, _ bytes: UnsafeRawBufferPointer) {
        var offset = 0
        while offset < bytes.count {
            let written = Glibc.write(fileDescriptor, bytes.baseAddress! + offset, bytes.count - offset)
            if written < 0 {
                if errno == EINTR { continue }
                return
            }
            offset += written
        }
    }
}
