public import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One HTTP GET with a timeout and a bound on the body; what the remote key source needs from a client.
public protocol HTTPGetter: Sendable {
    /// Fetches `url`. `timeout` bounds the whole exchange (connect, request, every byte of the answer),
    /// not only a silence between packets: a server that accepts and never answers, or drips its body,
    /// fails within `timeout`.
    func get(_ url: URL, headers: [String: String], timeout: TimeInterval, maximumSize: Int) async throws -> HTTPGetResponse
}

public struct HTTPGetResponse: Sendable {
    public let status: Int
    /// Header names in lower case.
    public let headers: [String: String]
    public let body: [UInt8]

    public init(status: Int, headers: [String: String], body: [UInt8]) {
        self.status = status
        self.headers = Dictionary(headers.map { ($0.key.lowercased(), $0.value) }, uniquingKeysWith: { first, _ in first })
        self.body = body
    }
}

public struct HTTPGetError: Error, Sendable, CustomStringConvertible {
    public let description: String
}

/// `HTTPGetter` over Foundation's URLSession (libcurl on Linux): no Swift package, no NIO.
///
/// One long-lived session serves every fetch; its delegate streams each body into a buffer and cancels
/// the transfer past `maximumSize`. The session is never invalidated: creating and invalidating a
/// delegate session per request raced with the delegate's last callback in swift-corelibs-foundation
/// and corrupted memory under load.
///
/// The deadline is kept here, not left to `URLRequest.timeoutInterval`: swift-corelibs-foundation
/// (Swift 6.3, Linux) did not end a request to a server that accepted the connection and never
/// answered, while libcurl spun a core; it waited as long as the server did.
public final class URLSessionHTTPGetter: HTTPGetter, @unchecked Sendable {
    /// The process-wide getter (one URLSession).
    public static let shared = URLSessionHTTPGetter()

    private let delegate = BoundedBodyDelegate()
    private let session: URLSession
    private let deadlines = DispatchQueue(label: "tessera.http-getter.deadlines")

    public init() {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.urlCache = nil
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        session = URLSession(configuration: configuration, delegate: delegate, delegateQueue: nil)
    }

    public func get(_ url: URL, headers: [String: String], timeout: TimeInterval, maximumSize: Int) async throws -> HTTPGetResponse {
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: timeout)
        request.httpMethod = "GET"
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        return try await withCheckedThrowingContinuation { continuation in
            let task = session.dataTask(with: request)
            let identifier = task.taskIdentifier
            delegate.register(identifier, limit: maximumSize, continuation: continuation)
            task.resume()
            deadlines.asyncAfter(deadline: .now() + max(timeout, 0)) { [delegate] in
                if delegate.expire(identifier, after: timeout) { task.cancel() }
            }
        }
    }
}

private final class BoundedBodyDelegate: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    private struct Transfer {
        let limit: Int
        let continuation: CheckedContinuation<HTTPGetResponse, any Error>
        var body: [UInt8] = []
        var response: HTTPURLResponse?
        var exceeded = false
    }

    private let lock = NSLock()
    private var transfers: [Int: Transfer] = [:]

    func register(_ identifier: Int, limit: Int, continuation: CheckedContinuation<HTTPGetResponse, any Error>) {
        lock.withLock { transfers[identifier] = Transfer(limit: limit, continuation: continuation) }
    }

    /// Ends a transfer still running at its deadline: its caller gets an error at once, and a late
    /// callback finds nothing to resume. True when there was such a transfer (the task is to be cancelled).
    func expire(_ identifier: Int, after timeout: TimeInterval) -> Bool {
        guard let transfer = lock.withLock({ transfers.removeValue(forKey: identifier) }) else { return false }
        transfer.continuation.resume(throwing: HTTPGetError(description: "no complete answer within \(timeout) s"))
        return true
    }

    func urlSession(
        _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
        completionHandler: @escaping (URLSession.ResponseDisposition) -> Void
    ) {
        let tooLarge = lock.withLock { () -> Bool in
            guard var transfer = transfers[dataTask.taskIdentifier] else { return true }
            transfer.response = response as? HTTPURLResponse
            if response.expectedContentLength > Int64(transfer.limit) { transfer.exceeded = true }
            transfers[dataTask.taskIdentifier] = transfer
            return transfer.exceeded
        }
        completionHandler(tooLarge ? .cancel : .allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        let cancel = lock.withLock { () -> Bool in
            guard var transfer = transfers[dataTask.taskIdentifier] else { return true }
            if transfer.body.count + data.count > transfer.limit {
                transfer.exceeded = true
            } else {
                transfer.body.append(contentsOf: data)
            }
            transfers[dataTask.taskIdentifier] = transfer
            return transfer.exceeded
        }
        if cancel { dataTask.cancel() }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: (any Error)?) {
        guard let transfer = lock.withLock({ transfers.removeValue(forKey: task.taskIdentifier) }) else { return }
        if transfer.exceeded {
            transfer.continuation.resume(throwing: HTTPGetError(description: "response larger than \(transfer.limit) bytes"))
        } else if let error {
            transfer.continuation.resume(throwing: HTTPGetError(description: error.localizedDescription))
        } else if let response = transfer.response {
            var headers: [String: String] = [:]
            for (name, value) in response.allHeaderFields {
                if let name = name as? String, let value = value as? String { headers[name.lowercased()] = value }
            }
            transfer.continuation.resume(returning: HTTPGetResponse(status: response.statusCode, headers: headers, body: transfer.body))
        } else {
            transfer.continuation.resume(throwing: HTTPGetError(description: "no HTTP response"))
        }
    }
}
