import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The load generator's HTTP client: one keep-alive HTTP/1.1 connection over a blocking socket,
/// used from one thread of its own.
///
/// The load generator shares the machine with the four nodes it measures, so every cycle it spends
/// is taken from them. URLSession (libcurl and Dispatch on Linux) cost about 10% of this machine at
/// 1,500 tx/s, most of it per request in callbacks, header parsing and cookie handling; this client
/// writes a prepared request and reads the answer with a few system calls. It speaks only what the
/// bench needs of a node's API: plain `http://` URLs, Content-Length or chunked answers. Anything
/// else (an `https://` node) goes through URLSession as before.
final class BenchHTTPConnection {
    struct Failure: Error, CustomStringConvertible {
        let description: String
        /// The server closed or reset the connection before a byte of the answer arrived.
        var beforeAnswer = false
    }

    let host: String
    let port: UInt16
    let basePath: String
    private var socket: Int32 = -1
    private var buffer: [UInt8] = []
    private var consumed = 0
    private var scratch = [UInt8](repeating: 0, count: 65_536)

    /// Nil when the URL is not plain `http://host:port[/path]`.
    init?(url: URL) {
        guard url.scheme == "http", let host = url.host, !host.isEmpty else { return nil }
        self.host = host
        port = UInt16(url.port ?? 80)
        basePath = url.path.hasSuffix("/") ? String(url.path.dropLast()) : url.path
    }

    deinit { close() }

    func close() {
        if socket >= 0 { _ = systemClose(socket) }
        socket = -1
        buffer.removeAll(keepingCapacity: true)
        consumed = 0
    }

    /// Sends one request and reads its answer. A request on a reused connection that the server
    /// closed before answering is sent once more on a new connection (nothing of it was processed:
    /// the server closes an idle connection only between requests).
    func request(_ method: String, _ path: String, body: [UInt8] = [], contentType: String = "application/json") throws -> (status: Int, body: [UInt8]) {
        var head = "\(method) \(basePath)\(path) HTTP/1.1\r\nHost: \(host):\(port)\r\n"
        if method == "POST" { head += "Content-Type: \(contentType)\r\nContent-Length: \(body.count)\r\n" }
        head += "\r\n"
        var message = Array(head.utf8)
        message.append(contentsOf: body)
        let reused = socket >= 0
        do {
            return try exchange(message)
        } catch let failure as Failure where reused && failure.beforeAnswer {
            close()
            return try exchange(message)
        }
    }

    /// One attempt: connects if needed, writes, reads; closes the connection when anything fails.
    private func exchange(_ message: [UInt8]) throws -> (status: Int, body: [UInt8]) {
        do {
            try ensureConnected()
            try writeAll(message)
            return try readResponse()
        } catch {
            close()
            throw error
        }
    }

    // MARK: Socket

    private func ensureConnected() throws {
        guard socket < 0 else { return }
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Glibc)
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        #else
        hints.ai_socktype = SOCK_STREAM
        #endif
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else { throw Failure(description: "cannot resolve \(host): \(String(cString: gai_strerror(status)))") }
        defer { freeaddrinfo(list) }
        var lastError: Int32 = 0
        var candidate: UnsafeMutablePointer<addrinfo>? = first
        while let info = candidate {
            let fd = systemSocket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
            if fd >= 0 {
                if connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 {
                    var one: Int32 = 1
                    _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
                    var timeout = timeval(tv_sec: 120, tv_usec: 0)
                    _ = setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                    socket = fd
                    return
                }
                lastError = errno
                _ = systemClose(fd)
            } else {
                lastError = errno
            }
            candidate = info.pointee.ai_next
        }
        throw Failure(description: "cannot connect to \(host):\(port): \(String(cString: strerror(lastError)))")
    }

    private func writeAll(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { raw in
                send(socket, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if written < 0 {
                if errno == EINTR { continue }
                let closed = errno == EPIPE || errno == ECONNRESET
                throw Failure(description: closed ? "closed while sending" : "send: \(String(cString: strerror(errno)))", beforeAnswer: closed)
            }
            offset += written
        }
    }

    /// Appends what the socket has to the buffer; throws when the peer closed the connection.
    private func fill() throws {
        var received = 0
        repeat {
            received = scratch.withUnsafeMutableBytes { raw in recv(socket, raw.baseAddress!, raw.count, 0) }
        } while received < 0 && errno == EINTR
        // A keep-alive connection the server closed while idle shows up as an end of stream, or as
        // a reset when our request reached a socket already closed; either way before any answer.
        let nothingYet = buffer.count == consumed
        if received == 0 {
            throw Failure(description: "closed by \(host):\(port) before the answer was complete", beforeAnswer: nothingYet)
        }
        if received < 0 {
            let reset = errno == ECONNRESET
            throw Failure(description: "receive from \(host):\(port): \(String(cString: strerror(errno)))", beforeAnswer: reset && nothingYet)
        }
        buffer.append(contentsOf: scratch[..<received])
    }

    /// The next line (without its CRLF), reading more as needed.
    private func line() throws -> Range<Int> {
        var index = consumed
        while true {
            while index + 1 < buffer.count {
                if buffer[index] == 13, buffer[index + 1] == 10 {
                    let range = consumed..<index
                    consumed = index + 2
                    return range
                }
                index += 1
            }
            try fill()
        }
    }

    private func take(_ count: Int) throws -> [UInt8] {
        while buffer.count - consumed < count { try fill() }
        let bytes = Array(buffer[consumed..<consumed + count])
        consumed += count
        return bytes
    }

    private func readResponse() throws -> (status: Int, body: [UInt8]) {
        if consumed > 0 {
            buffer.removeFirst(consumed)
            consumed = 0
        }
        let statusLine = String(decoding: buffer[try line()], as: UTF8.self)
        let parts = statusLine.split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let status = Int(parts[1]) else {
            throw Failure(description: "not an HTTP answer from \(host):\(port): \(statusLine.prefix(80))")
        }
        var length: Int?
        var chunked = false
        var closeAfter = parts[0] == "HTTP/1.0"
        while true {
            let range = try line()
            if range.isEmpty { break }
            let header = String(decoding: buffer[range], as: UTF8.self)
            guard let colon = header.firstIndex(of: ":") else { continue }
            let name = header[..<colon].lowercased()
            let value = header[header.index(after: colon)...].trimmingCharacters(in: .whitespaces).lowercased()
            switch name {
            case "content-length": length = Int(value)
            case "transfer-encoding": chunked = value.contains("chunked")
            case "connection": closeAfter = value.contains("close")
            default: break
            }
        }
        var body: [UInt8] = []
        if chunked {
            while true {
                let sizeText = String(decoding: buffer[try line()], as: UTF8.self).split(separator: ";").first ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else {
                    throw Failure(description: "bad chunk size from \(host):\(port)")
                }
                if size == 0 {
                    while !(try line()).isEmpty {}
                    break
                }
                body.append(contentsOf: try take(size))
                _ = try line()
            }
        } else if let length {
            body = try take(length)
        } else {
            // No length: the body runs to the end of the connection.
            while true {
                do { try fill() } catch { break }
            }
            body = Array(buffer[consumed...])
            consumed = buffer.count
            closeAfter = true
        }
        if closeAfter { close() }
        return (status, body)
    }
}

private func systemClose(_ fd: Int32) -> Int32 {
    #if canImport(Glibc)
    Glibc.close(fd)
    #else
    Darwin.close(fd)
    #endif
}

private func systemSocket(_ family: Int32, _ type: Int32, _ proto: Int32) -> Int32 {
    #if canImport(Glibc)
    Glibc.socket(family, type, proto)
    #else
    Darwin.socket(family, type, proto)
    #endif
}

/// Runs `body` on a thread of its own (blocking socket calls must not hold one of the few
/// threads Swift concurrency runs tasks on) and returns its result.
func onOwnThread<T: Sendable>(_ name: String, _ body: @escaping @Sendable () -> T) async -> T {
    await withCheckedContinuation { continuation in
        let thread = Thread { continuation.resume(returning: body()) }
        thread.name = name
        thread.stackSize = 1 << 20
        thread.start()
    }
}
