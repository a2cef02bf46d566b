import Foundation
#if canImport(Glibc)
import Glibc
#endif
@testable import scf
import Synchronization
import Testing

/// The load generator's HTTP client against a scripted server on loopback: keep-alive,
/// Content-Length and chunked answers, and a server that closes an idle connection.
@Suite struct BenchHTTPTests {
    /// Accepts connections on 127.0.0.1 and answers each request with the next scripted answer;
    /// records (connection number, request line, body) for every request.
    final class ScriptedServer: @unchecked Sendable {
        let port: UInt16
        private let recorded = Mutex<[(connection: Int, line: String, body: String)]>([])
        private let listener: Int32

        var requests: [(connection: Int, line: String, body: String)] { recorded.withLock { $0 } }

        /// `answers[i]`: the raw bytes sent for request i (none when empty), and whether the server
        /// then closes the connection.
        /// `reset`: close with a reset (SO_LINGER 0) instead of an orderly end of stream.
        init(answers: [(String, close: Bool)], reset: Bool = false) throws {
            let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            self.listener = listener
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = 0
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && getsockname(listener, $0, &length) == 0 }
            }
            guard bound, listen(listener, 4) == 0 else { throw CocoaError(.fileWriteUnknown) }
            port = UInt16(bigEndian: address.sin_port)
            Thread { [self] in
                var next = 0
                var connection = 0
                while next < answers.count {
                    let client = accept(listener, nil, nil)
                    guard client >= 0 else { return }
                    connection += 1
                    var pending: [UInt8] = []
                    serving: while next < answers.count {
                        // Read one request: headers, then Content-Length bytes of body.
                        var headerEnd: Int?
                        var bodyLength = 0
                        while true {
                            if headerEnd == nil, let range = pending.firstRange(of: Array("\r\n\r\n".utf8)) {
                                headerEnd = range.upperBound
                                let head = String(decoding: pending[..<range.lowerBound], as: UTF8.self)
                                for line in head.split(separator: "\r\n") where line.lowercased().hasPrefix("content-length:") {
                                    bodyLength = Int(line.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) ?? 0
                                }
                            }
                            if let end = headerEnd, pending.count >= end + bodyLength { break }
                            var chunk = [UInt8](repeating: 0, count: 4_096)
                            let count = recv(client, &chunk, chunk.count, 0)
                            if count <= 0 { break serving }
                            pending += chunk[..<count]
                        }
                        let end = headerEnd!
                        let head = String(decoding: pending[..<end], as: UTF8.self)
                        let body = String(decoding: pending[end..<end + bodyLength], as: UTF8.self)
                        pending.removeFirst(end + bodyLength)
                        recorded.withLock { $0.append((connection, String(head.split(separator: "\r\n")[0]), body)) }
                        let (answer, close) = answers[next]
                        next += 1
                        if !answer.isEmpty {
                            _ = Array(answer.utf8).withUnsafeBytes { send(client, $0.baseAddress!, $0.count, Int32(MSG_NOSIGNAL)) }
                        }
                        if close { break }
                    }
                    if reset {
                        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
                        _ = setsockopt(client, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
                    }
                    Glibc.close(client)
                }
                Glibc.close(listener)
            }.start()
        }
    }

    static func ok(_ body: String) -> String {
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)"
    }

    @Test func keepsTheConnectionAndReadsLengthAndChunkedAnswers() throws {
        let chunked = "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n"
        let server = try ScriptedServer(answers: [(Self.ok(#"{"a":1}"#), false), (chunked, false), (Self.ok(""), false)])
        let connection = try #require(BenchHTTPConnection(url: URL(string: "http://127.0.0.1:\(server.port)/base")!))
        let first = try connection.request("POST", "/v1/x", body: Array("payload".utf8))
        #expect(first.status == 200)
        #expect(String(decoding: first.body, as: UTF8.self) == #"{"a":1}"#)
        let second = try connection.request("GET", "/v1/blocks/7")
        #expect(second.status == 201)
        #expect(String(decoding: second.body, as: UTF8.self) == "hello, world")
        let third = try connection.request("GET", "/empty")
        #expect(third.status == 200 && third.body.isEmpty)
        let seen = server.requests
        #expect(seen.map(\.connection) == [1, 1, 1], "one keep-alive connection for all three")
        #expect(seen.map(\.line) == ["POST /base/v1/x HTTP/1.1", "GET /base/v1/blocks/7 HTTP/1.1", "GET /base/empty HTTP/1.1"])
        #expect(seen[0].body == "payload")
    }

    /// The server may end an idle connection with an end of stream or, racing our next request,
    /// with a reset; CI saw the reset once. Both are retried on a new connection.
    @Test(arguments: [false, true]) func reconnectsWhenTheServerClosedAnIdleConnection(reset: Bool) throws {
        let server = try ScriptedServer(answers: [(Self.ok("one"), true), (Self.ok("two"), false)], reset: reset)
        let connection = try #require(BenchHTTPConnection(url: URL(string: "http://127.0.0.1:\(server.port)")!))
        #expect(String(decoding: try connection.request("GET", "/a").body, as: UTF8.self) == "one")
        // The server closed after answering; the next request is sent again on a new connection.
        #expect(String(decoding: try connection.request("GET", "/b").body, as: UTF8.self) == "two")
        #expect(server.requests.map(\.connection) == [1, 2])
    }

    /// The reset arrives while the client waits for the answer (the receive fails, not the send).
    @Test func reconnectsWhenTheServerResetsBeforeAnswering() throws {
        let server = try ScriptedServer(answers: [(Self.ok("one"), false), ("", true), (Self.ok("two"), false)], reset: true)
        let connection = try #require(BenchHTTPConnection(url: URL(string: "http://127.0.0.1:\(server.port)")!))
        #expect(String(decoding: try connection.request("GET", "/a").body, as: UTF8.self) == "one")
        #expect(String(decoding: try connection.request("GET", "/b").body, as: UTF8.self) == "two")
        #expect(server.requests.map(\.connection) == [1, 1, 2])
    }

    /// A request the server began to answer was processed: it is not sent again.
    @Test func aPartAnswerIsNotSentAgain() throws {
        let partial = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
        let server = try ScriptedServer(answers: [(Self.ok("one"), false), (partial, true)])
        let connection = try #require(BenchHTTPConnection(url: URL(string: "http://127.0.0.1:\(server.port)")!))
        #expect(String(decoding: try connection.request("GET", "/a").body, as: UTF8.self) == "one")
        let failure = #expect(throws: BenchHTTPConnection.Failure.self) { try connection.request("POST", "/b", body: [1]) }
        #expect(failure?.description.hasPrefix("closed by") == true, "the part answer is reported, not a second attempt's connect error")
        #expect(server.requests.map(\.connection) == [1, 1])
    }

    @Test func refusesWhatItDoesNotSpeak() throws {
        #expect(BenchHTTPConnection(url: URL(string: "https://127.0.0.1:8443")!) == nil)
        let server = try ScriptedServer(answers: [("SSH-2.0-OpenSSH\r\n\r\n", true)])
        let connection = try #require(BenchHTTPConnection(url: URL(string: "http://127.0.0.1:\(server.port)")!))
        #expect(throws: BenchHTTPConnection.Failure.self) { try connection.request("GET", "/") }
    }

    @Test func aBatchAnswerIsReadOnlyWhenSomethingWasRefused() {
        #expect(BenchLoad.allAccepted(Array(#"{"results":[{"id":"ab","accepted":true},{"id":"cd","accepted":true}]}"#.utf8)))
        #expect(!BenchLoad.allAccepted(Array(#"{"results":[{"id":"ab","accepted":false,"code":"replayed"}]}"#.utf8)))
        #expect(!BenchLoad.allAccepted(Array(#"{"error":"badRequest","message":"…"}"#.utf8)))
    }
}
