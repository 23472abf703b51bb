import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// A plain blocking TCP client for what no real client will send: smuggling attempts, broken
/// chunking, partial heads, pipelined requests, and a deliberately slow reader.
final class RawClient {
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private let fd: CInt

    init(port: Int, receiveBuffer: Int? = nil, receiveTimeout: Int = 15) throws {
        self.fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard self.fd >= 0 else { throw Failure(description: "socket: \(errno)") }
        if var size = receiveBuffer.map(CInt.init) {
            setsockopt(self.fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<CInt>.size))
        }
        var timeout = timeval(tv_sec: receiveTimeout, tv_usec: 0)
        setsockopt(self.fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(self.fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else {
            close(self.fd)
            throw Failure(description: "connect to port \(port): errno \(errno)")
        }
    }

    deinit {
        close(self.fd)
    }

    func send(_ text: String) throws {
        try self.send(Array(text.utf8))
    }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes {
                Glibc.send(self.fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL))
            }
            guard written > 0 else { throw Failure(description: "send failed: errno \(errno)") }
            offset += written
        }
    }

    /// Reads what is available (up to `max` bytes); empty at EOF.
    func receive(max: Int = 65536) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: max)
        let count = buffer.withUnsafeMutableBytes { recv(self.fd, $0.baseAddress, max, 0) }
        if count < 0 { throw Failure(description: "recv failed: errno \(errno)") }
        return Array(buffer[0..<count])
    }

    /// Reads until EOF (or `limit` bytes); returns the text.
    func receiveAll(limit: Int = 16 << 20) throws -> String {
        var data: [UInt8] = []
        while data.count < limit {
            let chunk = try self.receive()
            if chunk.isEmpty { break }
            data += chunk
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// Reads until `text` contains `marker` occurrences `count` times (or EOF).
    func receive(until marker: String, count: Int = 1) throws -> String {
        var text = ""
        while text.components(separatedBy: marker).count - 1 < count {
            let chunk = try self.receive()
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        return text
    }

    /// Reads exactly `count` bytes (or until EOF); returns how many arrived.
    func drain(_ count: Int) throws -> Int {
        var total = 0
        while total < count {
            let chunk: [UInt8]
            do { chunk = try self.receive(max: min(65536, count - total)) } catch {
                throw Failure(description: "\(error) after \(total) of \(count) bytes")
            }
            if chunk.isEmpty { break }
            total += chunk.count
        }
        return total
    }

    func shutdownWrite() {
        shutdown(self.fd, Int32(SHUT_WR))
    }

    /// Keeps reading (past receive timeouts) until `marker` arrives or `timeout` seconds pass.
    static func waitForAnswer(_ client: RawClient, until marker: String, timeout: TimeInterval) throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        var text = ""
        while !text.contains(marker) && Date() < deadline {
            if let chunk = try? client.receive() {
                if chunk.isEmpty { break }
                text += String(decoding: chunk, as: UTF8.self)
            }
        }
        return text
    }
}
