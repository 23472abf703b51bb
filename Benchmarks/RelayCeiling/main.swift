// The ceiling of lever (d) of issue 23 (relaying established tunnels outside NIO): a bare TCP relay
// in Swift on edge-triggered epoll, one thread doing the work, nothing per message but read(2) and
// send(2). It has none of a tunnel's behaviour (no idle timeout, frame tracking, drain, metrics):
// what it costs per round trip is the least any relay in Swift can cost here. ws_echo.sh --relay
// runs it beside Junction and nginx.
//
//   relay LISTEN-PORT BACKEND-PORT
//
// Each accepted connection gets its own backend connection (blocking connect, then non-blocking),
// and bytes flow both ways until either side closes. Limits that do not touch the measurement: a
// full socket stalls every relay while `sendAll` waits for room, either side's close (or a read
// error) closes both at once (no half-close), and descriptors past 65,535 are refused. A second thread sleeps for good, so that the
// kernel treats the process as multi-threaded, as it does Junction's (each system call on a
// descriptor then takes and drops a reference on its file).
import Glibc

let listenPort = UInt16(CommandLine.arguments[1])!
let backendPort = UInt16(CommandLine.arguments[2])!

func loopback(_ port: UInt16) -> sockaddr_in {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return address
}

func withSockaddr<R>(_ address: sockaddr_in, _ body: (UnsafePointer<sockaddr>, socklen_t) -> R) -> R {
    var address = address
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { body($0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
}

func fail(_ what: String) -> Never {
    fputs("relay: \(what): \(String(cString: strerror(errno)))\n", stderr)
    exit(1)
}

var on: Int32 = 1
func setUp(_ fd: Int32) {
    setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
}

let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
guard withSockaddr(loopback(listenPort), { bind(listener, $0, $1) }) == 0 else { fail("bind") }
guard listen(listener, 1024) == 0 else { fail("listen") }
_ = fcntl(listener, F_SETFL, fcntl(listener, F_GETFL) | O_NONBLOCK)

let epoll = epoll_create1(0)
let edgeTriggered = UInt32(1) << 31  // EPOLLET: a macro Swift does not import
func watch(_ fd: Int32, events: UInt32) {
    var event = epoll_event()
    event.events = events
    event.data.fd = fd
    guard epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) == 0 else { fail("epoll_ctl") }
}
watch(listener, events: UInt32(EPOLLIN.rawValue))

var idle = pthread_t()
pthread_create(
    &idle,
    nil,
    { _ in
        while true { sleep(3600) }
    },
    nil
)

/// partner[fd]: the other end of fd's relay, or -1.
var partner = [Int32](repeating: -1, count: 1 << 16)
let bufferSize = 65536
let buffer = UnsafeMutableRawPointer.allocate(byteCount: bufferSize, alignment: 16)

/// Sends all of `count` bytes to `fd`; a full socket buffer waits for room (a measurement tool:
/// the relay stalls rather than buffer). False when the connection is gone.
func sendAll(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Bool {
    var sent = 0
    while sent < count {
        let n = send(fd, bytes + sent, count - sent, Int32(MSG_NOSIGNAL))
        if n > 0 {
            sent += n
        } else if n < 0 && errno == EAGAIN {
            var waiting = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            _ = poll(&waiting, 1, 1000)
        } else {
            return false
        }
    }
    return true
}

func closePair(_ fd: Int32) {
    let other = partner[Int(fd)]
    partner[Int(fd)] = -1
    close(fd)
    if other >= 0 {
        partner[Int(other)] = -1
        close(other)
    }
}

var events = [epoll_event](repeating: epoll_event(), count: 512)
while true {
    let ready = epoll_wait(epoll, &events, Int32(events.count), -1)
    if ready < 0 { continue }
    for index in 0..<Int(ready) {
        let fd = events[index].data.fd
        if fd == listener {
            while case let client = accept(listener, nil, nil), client >= 0 {
                let backend = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                guard withSockaddr(loopback(backendPort), { connect(backend, $0, $1) }) == 0 else {
                    close(client)
                    close(backend)
                    continue
                }
                guard client < partner.count, backend < partner.count else {
                    close(client)
                    close(backend)
                    continue
                }
                setUp(client)
                setUp(backend)
                partner[Int(client)] = backend
                partner[Int(backend)] = client
                let wanted = UInt32(EPOLLIN.rawValue) | UInt32(EPOLLRDHUP.rawValue) | edgeTriggered
                watch(client, events: wanted)
                watch(backend, events: wanted)
            }
            continue
        }
        // Edge-triggered: read until the socket is empty. A short read says it is, unless the peer
        // also closed (EPOLLRDHUP, no further edge): then read on to the end of the stream.
        let closing = events[index].events & (UInt32(EPOLLRDHUP.rawValue) | UInt32(EPOLLHUP.rawValue)) != 0
        while partner[Int(fd)] >= 0 {
            let n = read(fd, buffer, bufferSize)
            if n > 0 {
                if !sendAll(partner[Int(fd)], buffer, n) {
                    closePair(fd)
                } else if n < bufferSize && !closing {
                    break
                }
            } else if n < 0 && errno == EAGAIN {
                break
            } else {
                closePair(fd)
            }
        }
    }
}
