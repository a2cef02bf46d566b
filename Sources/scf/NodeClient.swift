import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import LedgerAPI
import LedgerCore

/// A small blocking client for a node's HTTP API, for the command line.
struct NodeClient {
    let base: String

    func submit(_ transaction: SignedTransaction, waitSeconds: Double) throws -> TransactionView {
        var request = URLRequest(url: try url("/v1/transactions?wait=true&timeout=\(waitSeconds)"))
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = try JSONEncoder().encode(SubmitRequest(transaction: transaction.wireBytes.hexString))
        request.timeoutInterval = waitSeconds + 30
        let data = try send(request)
        if let view = try? JSONDecoder().decode(TransactionView.self, from: data) { return view }
        throw CLIError(errorMessage(data))
    }

    func get<T: Decodable>(_ type: T.Type, _ path: String) throws -> T {
        let data = try send(URLRequest(url: try url(path)))
        if let value = try? JSONDecoder().decode(T.self, from: data) { return value }
        throw CLIError(errorMessage(data))
    }

    func url(_ path: String) throws -> URL {
        let trimmed = base.hasSuffix("/") ? String(base.dropLast()) : base
        guard let url = URL(string: trimmed + path), url.scheme == "http" || url.scheme == "https" else {
            throw CLIError("\(base) is not a node URL; use e.g. http://127.0.0.1:8100")
        }
        return url
    }

    func errorMessage(_ data: Data) -> String {
        if let body = try? JSONDecoder().decode(ErrorBody.self, from: data) { return "\(body.error.code): \(body.error.message)" }
        return "the node answered: \(String(decoding: data.prefix(300), as: UTF8.self))"
    }

    /// Sends one request and waits for the answer (the CLI does one thing at a time).
    func send(_ request: URLRequest) throws -> Data {
        final class Box: @unchecked Sendable { var result: Result<Data, any Error>? }
        let box = Box()
        let done = DispatchSemaphore(value: 0)
        URLSession.shared.dataTask(with: request) { data, _, error in
            box.result = error.map { .failure($0) } ?? .success(data ?? Data())
            done.signal()
        }.resume()
        done.wait()
        switch box.result! {
        case .success(let data): return data
        case .failure(let error): throw CLIError("cannot reach the node at \(base): \(error.localizedDescription); is `scf node start` running there?")
        }
    }
}
