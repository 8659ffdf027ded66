import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One HTTP GET with a timeout and a bound on the body; what the remote key source needs from a client.
public protocol HTTPGetter: Sendable {
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
/// The body is streamed into a buffer that cancels the transfer past `maximumSize`.
public struct URLSessionHTTPGetter: HTTPGetter {
    public init() {}

    public func get(_ url: URL, headers: [String: String], timeout: TimeInterval, maximumSize: Int) async throws -> HTTPGetResponse {
        var request = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: timeout)
        request.httpMethod = "GET"
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        let configuration = URLSessionConfiguration.ephemeral
        configuration.urlCache = nil
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = timeout
        let delegate = BoundedBodyDelegate(limit: maximumSize)
        let session = URLSession(configuration: configuration, delegate: delegate, delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        return try await withCheckedThrowingContinuation { continuation in
            delegate.start(continuation)
            session.dataTask(with: request).resume()
        }
    }
}

private final class BoundedBodyDelegate: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    private let limit: Int
    private let lock = NSLock()
    private var body: [UInt8] = []
    private var response: HTTPURLResponse?
    private var exceeded = false
    private var continuation: CheckedContinuation<HTTPGetResponse, Error>?

    init(limit: Int) { self.limit = limit }

    func start(_ continuation: CheckedContinuation<HTTPGetResponse, Error>) {
        lock.withLock { self.continuation = continuation }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        let tooLarge = response.expectedContentLength > Int64(limit)
        lock.withLock {
            self.response = response as? HTTPURLResponse
            if tooLarge { exceeded = true }
        }
        completionHandler(tooLarge ? .cancel : .allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        let cancel = lock.withLock { () -> Bool in
            if body.count + data.count > limit {
                exceeded = true
                return true
            }
            body.append(contentsOf: data)
            return false
        }
        if cancel { dataTask.cancel() }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        let (continuation, result) = lock.withLock { () -> (CheckedContinuation<HTTPGetResponse, Error>?, Result<HTTPGetResponse, Error>) in
            defer { self.continuation = nil }
            if exceeded { return (self.continuation, .failure(HTTPGetError(description: "response larger than \(limit) bytes"))) }
            if let error { return (self.continuation, .failure(HTTPGetError(description: error.localizedDescription))) }
            guard let response else { return (self.continuation, .failure(HTTPGetError(description: "no HTTP response"))) }
            var headers: [String: String] = [:]
            for (name, value) in response.allHeaderFields {
                if let name = name as? String, let value = value as? String { headers[name.lowercased()] = value }
            }
            return (self.continuation, .success(HTTPGetResponse(status: response.statusCode, headers: headers, body: body)))
        }
        continuation?.resume(with: result)
    }
}
