import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#endif

/// Why a connection to a backend failed, in a few words for logs, status and error bodies
/// ("connection refused", "connect timed out").
enum ConnectionFailure {
    static func describe(_ error: Error) -> String {
        switch error {
        case let error as ChannelError:
            if case .connectTimeout = error { return "connect timed out" }
            return "\(error)"
        case let error as NIOConnectionError:
            return error.connectionErrors.first.map { self.describe($0.error) } ?? "no address to connect to"
        case let error as IOError:
            return String(cString: strerror(error.errnoCode)).lowercased()
        default:
            return "\(error)"
        }
    }
}
