import Foundation
import TesseraJOSE

/// A failure of the file layer (`SecureDirectory` and its helpers): which path, which operation, and the
/// errno when the system gave one. The stores above turn it into their own error (a refresh-token store
/// that cannot write is `store_unavailable`, a key folder open to others `insecure_permissions`).
public struct FileError: CodedError {
    public typealias Code = ErrorCode<FileError>

    public let code: Code
    public let path: String
    /// What was being done: `open`, `lock`, `write`, `fsync`, `rename`, …
    public let operation: String
    public let errno: Int32?
    /// For logs and the operator: what is wrong and, where one exists, how to put it right.
    public let message: String

    public init(_ code: Code, path: String, operation: String, errno: Int32? = nil, _ message: String) {
        self.code = code
        self.path = path
        self.operation = operation
        self.errno = errno
        self.message = message
    }

    /// A failed system call: the message names the operation, the path and the system's reason.
    static func system(_ operation: String, _ path: String, _ number: Int32, code: Code = .io) -> FileError {
        FileError(code, path: path, operation: operation, errno: number, "\(operation) \(path) failed: \(String(cString: strerror(number)))")
    }
}

/// The codes of `FileError`.
extension ErrorCode where Domain == FileError {
    /// The folder or a file in it cannot be trusted: not a folder, a symlink, another owner, open to others.
    public static var unsafe: Self { Self("file_unsafe") }
    /// Another process holds the folder's lock.
    public static var locked: Self { Self("file_locked") }
    /// A system call failed (EIO, ENOSPC, EFBIG, …).
    public static var io: Self { Self("file_io") }
}
