import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A folder holding secrets (the refresh-token store, the key ring): files opened relative to one
/// directory descriptor, never through a symlink, created 0600, every rename made durable by an fsync of
/// the folder, and one `flock` on a lock file serialising the processes that use it.
final class SecureDirectory: @unchecked Sendable {
    let path: String
    let fd: Int32
    private let lockName: String
    private var lockFD: Int32 = -1

    static let lockName = "LOCK"

    /// How to take the folder's lock.
    enum Locking {
        /// Refuse at once if another process holds it (the refresh-token store: one process per store).
        case exclusiveOrFail
        /// Wait for it (CLI writers of the key ring queue behind each other).
        case exclusiveWaiting
        /// No lock (readers that only see whole files, thanks to write-then-rename).
        case none
    }

    /// Opens (creating with mode 0700 if missing and `create`) the folder and takes its lock.
    /// `privateToOwner` refuses a folder group or others may even read (the key folder).
    init(
        path: String, create: Bool = true, lockName: String = SecureDirectory.lockName, locking: Locking = .exclusiveOrFail,
        what: String = "the refresh-token store", privateToOwner: Bool = false
    ) throws {
        self.path = path
        self.lockName = lockName
        var info = stat()
        if lstat(path, &info) != 0 {
            guard errno == ENOENT, create else { throw FileError.system("inspect", path, errno, code: .unsafe) }
            try FileManager.default.createDirectory(
                atPath: URL(fileURLWithPath: path).deletingLastPathComponent().path,
                withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
            guard mkdir(path, 0o700) == 0 || errno == EEXIST else { throw FileError.system("create", path, errno) }
            guard lstat(path, &info) == 0 else { throw FileError.system("inspect", path, errno, code: .unsafe) }
        }
        guard info.st_mode & S_IFMT == S_IFDIR else {
            throw FileError(
                .unsafe, path: path, operation: "open", "\(path) is not a directory (a symlink is refused too); point the option at a folder")
        }
        guard info.st_uid == geteuid() else {
            throw FileError(
                .unsafe, path: path, operation: "open", "\(path) belongs to another user (uid \(info.st_uid)); chown it to the service user")
        }
        guard info.st_mode & (privateToOwner ? 0o077 : 0o022) == 0 else {
            throw FileError(
                .unsafe, path: path, operation: "open",
                "\(path) is \(privateToOwner ? "open to" : "writable by") group or others; run: chmod 700 \(path)")
        }
        fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw FileError.system("open", path, errno, code: .unsafe) }
        // If this throws, deinit still runs (every property is set) and closes `fd`: do not close it here.
        if locking != .none { try takeLock(wait: locking == .exclusiveWaiting, what: what) }
    }

    deinit {
        unlock()
        closeFile(fd)
    }

    /// Releases the store's lock. Explicitly: a child forked by this process (Foundation's `Process`) holds
    /// a copy of the descriptor until it execs, and closing ours alone would leave the lock held meanwhile.
    func unlock() {
        if lockFD >= 0 {
            _ = flock(lockFD, LOCK_UN)
            closeFile(lockFD)
        }
        lockFD = -1
    }

    /// flock(2), not fcntl(2): an fcntl lock vanishes when any descriptor of the file is closed by the
    /// process, and a second open in the same process would not conflict.
    private func takeLock(wait: Bool, what: String) throws {
        lockFD = openat(fd, lockName, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard lockFD >= 0 else { throw FileError.system("open", "\(path)/\(lockName)", errno, code: .unsafe) }
        var result: Int32
        repeat { result = flock(lockFD, wait ? LOCK_EX : LOCK_EX | LOCK_NB) } while result != 0 && errno == EINTR
        if result != 0 {
            let holder =
                (try? readAll(lockFD, from: 0, maximum: 64)).map {
                    String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
                } ?? ""
            closeFile(lockFD)
            lockFD = -1
            let who = holder.isEmpty ? "another process" : "process \(holder)"
            throw FileError(.locked, path: path, operation: "lock", "\(what) \(path) is in use by \(who); stop it first")
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(lockFD, 0)
        _ = pid.withUnsafeBytes { pwrite(lockFD, $0.baseAddress, $0.count, 0) }
    }

    func fileNames() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: path)
    }

    /// Opens an existing regular file for reading or appending, refusing symlinks.
    func openFile(_ name: String, writable: Bool) throws -> Int32 {
        let file = openat(fd, name, (writable ? O_RDWR : O_RDONLY) | O_NOFOLLOW | O_CLOEXEC)
        guard file >= 0 else { throw FileError.system("open", "\(path)/\(name)", errno, code: .unsafe) }
        return file
    }

    /// Writes `bytes` to a new file `name` atomically and durably: a temporary file created 0600 with
    /// O_EXCL (a planted file or symlink makes it fail), fsync, rename, fsync of the folder.
    func writeAtomically(_ name: String, produce: (Int32) throws -> Void) throws {
        let temporary = name + ".tmp"
        // A symlink (or anything but a regular file) at either name was planted: refuse rather than replace it.
        for existing in [temporary, name] {
            var info = stat()
            if fstatat(fd, existing, &info, AT_SYMLINK_NOFOLLOW) == 0, info.st_mode & S_IFMT != S_IFREG {
                throw FileError(
                    .unsafe, path: "\(path)/\(existing)", operation: "write",
                    "\(path)/\(existing) is not a regular file (a symlink?); refusing to write through it")
            }
        }
        _ = unlinkat(fd, temporary, 0)
        let file = openat(fd, temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard file >= 0 else { throw FileError.system("create", "\(path)/\(temporary)", errno) }
        do {
            try produce(file)
            guard fsync(file) == 0 else { throw FileError.system("fsync", "\(path)/\(temporary)", errno) }
            closeFile(file)
        } catch {
            closeFile(file)
            _ = unlinkat(fd, temporary, 0)
            throw error
        }
        guard renameat(fd, temporary, fd, name) == 0 else { throw FileError.system("rename", "\(path)/\(temporary)", errno) }
        try sync()
    }

    func remove(_ name: String) {
        _ = unlinkat(fd, name, 0)
    }

    /// fsync of the folder: makes creations, renames and removals in it durable (POSIX rename(2)).
    func sync() throws {
        guard fsync(fd) == 0 else { throw FileError.system("fsync", path, errno) }
    }

}

func closeFile(_ fd: Int32) {
    _ = close(fd)
}

/// Writes all of `bytes`, retrying short writes and EINTR.
func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws {
    var written = 0
    try bytes.withUnsafeBytes { buffer in
        while written < buffer.count {
            let result = write(fd, buffer.baseAddress! + written, buffer.count - written)
            if result < 0 {
                if errno == EINTR { continue }
                throw FileError.system("write", "descriptor \(fd)", errno)
            }
            written += result
        }
    }
}

/// Reads up to `maximum` bytes of `fd` starting at `offset`.
func readAll(_ fd: Int32, from offset: Int, maximum: Int) throws -> [UInt8] {
    var out = [UInt8](repeating: 0, count: maximum)
    var total = 0
    while total < maximum {
        let result = out.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + total, maximum - total, off_t(offset + total)) }
        if result < 0 {
            if errno == EINTR { continue }
            throw FileError.system("read", "descriptor \(fd)", errno)
        }
        if result == 0 { break }
        total += result
    }
    out.removeLast(maximum - total)
    return out
}

func fileSize(_ fd: Int32) throws -> Int {
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw FileError.system("stat", "descriptor \(fd)", errno) }
    return Int(info.st_size)
}
