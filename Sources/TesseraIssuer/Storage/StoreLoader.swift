import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a store folder back into a ledger: newest snapshot, then the logs after it, in order.
///
/// Only the newest log may end in a torn record (the last, unacknowledged write of a process that died);
/// it is dropped when opening and reported when checking. Damage anywhere else stops with the file,
/// the offset and the recovery command.
struct StoreLoader {
    enum Mode {
        /// Opening for use: tidy leftovers, truncate a torn tail.
        case open
        /// `tessera store check`: change nothing, report.
        case check
    }

    struct State {
        var ledger: RefreshTokenLedger
        var snapshotGeneration: UInt64
        var logGeneration: UInt64
        var logBytes: Int
        var lastLogBytes: Int
        var files: [String]
        var tornTail: (file: String, offset: Int, bytes: Int)?
        var records: Int
    }

    let directory: SecureDirectory
    let mode: Mode
    var onEvent: (@Sendable (FileRefreshTokenStore.StoreEvent) -> Void)?

    func load() throws -> State {
        let names = try directory.fileNames()
        if mode == .open {
            for name in names where name.hasSuffix(".tmp") { directory.remove(name) }
        }
        var snapshots: [UInt64] = []
        var logs: [UInt64] = []
        for name in names {
            guard let (kind, generation) = StoreFileName.parse(name) else { continue }
            if kind == .snapshot { snapshots.append(generation) } else { logs.append(generation) }
        }
        let base = snapshots.max() ?? 0
        if mode == .open {
            // Leftovers of a compaction that renamed its snapshot but died before deleting what it covers.
            for generation in snapshots where generation < base { directory.remove(StoreFileName.snapshot(generation)) }
            for generation in logs where generation < base { directory.remove(StoreFileName.log(generation)) }
            try directory.sync()
        }
        var live = logs.filter { $0 >= base }.sorted()
        let first = max(base, 1)
        if let start = live.first, start != first {
            throw StoreDamage(file: StoreFileName.log(first), kind: .missingLog, detail: "is missing (the logs start at \(StoreFileName.log(start)))")
        }
        for (position, generation) in live.enumerated() where generation != first + UInt64(position) {
            throw StoreDamage(
                file: StoreFileName.log(first + UInt64(position)), kind: .missingLog,
                detail: "is missing (the logs jump to \(StoreFileName.log(generation)))")
        }

        var ledger = RefreshTokenLedger(indexingGrants: false)
        var records = 0
        if base > 0 { records += try Self.loadSnapshot(directory, base, into: &ledger) }
        var logBytes = 0
        var torn: (file: String, offset: Int, bytes: Int)?
        var lastLogBytes = 0
        if live.isEmpty {
            guard mode == .open else {
                return State(
                    ledger: ledger, snapshotGeneration: base, logGeneration: first, logBytes: 0, lastLogBytes: 0,
                    files: names.sorted(), tornTail: nil, records: records)
            }
            try Self.createLog(directory, first)
            live = [first]
        }
        for generation in live {
            let isLast = generation == live.last
            let result = try replay(generation, isLast: isLast, into: &ledger)
            records += result.records
            logBytes += result.size
            lastLogBytes = result.size
            if let cut = result.torn { torn = cut }
        }
        if mode == .open { ledger.rebuildGrants() }
        return State(
            ledger: ledger, snapshotGeneration: base, logGeneration: live.last!, logBytes: logBytes, lastLogBytes: lastLogBytes,
            files: names.sorted(), tornTail: torn, records: records)
    }

    private func replay(
        _ generation: UInt64, isLast: Bool, into ledger: inout RefreshTokenLedger
    )
        throws -> (records: Int, size: Int, torn: (file: String, offset: Int, bytes: Int)?)
    {
        let name = StoreFileName.log(generation)
        let fd = try directory.openFile(name, writable: mode == .open && isLast)
        defer { closeFile(fd) }
        let size = try fileSize(fd)
        let headerBytes = try readAll(fd, from: 0, maximum: StoreFormat.headerSize)
        do {
            let header = try StoreFormat.parseHeader(headerBytes[...], expected: .log)
            guard header.generation == generation else { throw FormatError("its header says generation \(header.generation)") }
        } catch let error as FormatError {
            // A log is created whole and renamed into place, so even the newest may not lack its header.
            throw StoreDamage(file: name, kind: .badHeader, detail: "has a bad header (\(error.reason))")
        }
        var reader = try FrameReader(fd: fd, start: StoreFormat.headerSize)
        var records = 0
        while true {
            switch try reader.next() {
            case .end:
                return (records, size, nil)
            case .record(let payload, let offset):
                do {
                    ledger.apply(try StoreFormat.change(from: payload))
                } catch let error as FormatError {
                    throw StoreDamage(file: name, kind: .badRecord(offset: offset), detail: "at offset \(offset): \(error.reason)")
                }
                records += 1
            case .bad(let offset, let reason):
                guard isLast, try !reader.intactFrameFollows(offset) else {
                    throw StoreDamage(file: name, kind: .badRecord(offset: offset), detail: "at offset \(offset): \(reason)")
                }
                let cut = (file: name, offset: offset, bytes: size - offset)
                if mode == .open {
                    guard ftruncate(fd, off_t(offset)) == 0, fsync(fd) == 0 else {
                        throw FileError.system("truncate the torn tail of", "\(directory.path)/\(name)", errno)
                    }
                    onEvent?(.tornTailDropped(file: name, offset: offset, bytes: size - offset))
                }
                return (records, offset, cut)
            }
        }
    }

    @discardableResult
    static func loadSnapshot(_ directory: SecureDirectory, _ generation: UInt64, into ledger: inout RefreshTokenLedger) throws -> Int {
        let name = StoreFileName.snapshot(generation)
        let fd = try directory.openFile(name, writable: false)
        defer { closeFile(fd) }
        do {
            let header = try StoreFormat.parseHeader(try readAll(fd, from: 0, maximum: StoreFormat.headerSize)[...], expected: .snapshot)
            guard header.generation == generation else { throw FormatError("its header says generation \(header.generation)") }
            var reader = try FrameReader(fd: fd, start: StoreFormat.headerSize)
            try StoreFormat.loadSnapshot(&reader, into: &ledger)
            return ledger.count
        } catch let error as FormatError {
            throw StoreDamage(file: name, kind: .badHeader, detail: "has a bad header (\(error.reason))")
        } catch let error as CorruptionError {
            throw StoreDamage(file: name, kind: .badRecord(offset: error.offset), detail: "at offset \(error.offset): \(error.reason)")
        }
    }

    static func createLog(_ directory: SecureDirectory, _ generation: UInt64) throws {
        let header = StoreFormat.header(.init(kind: .log, generation: generation, createdAt: Int64(Date().timeIntervalSince1970)))
        try directory.writeAtomically(StoreFileName.log(generation)) { try writeAll($0, header) }
    }

    /// Compaction: folds snapshot `base` and logs `base...through` (all complete: the writer fsynced
    /// them before switching) into snapshot `generation`, then deletes what it replaces.
    static func writeSnapshot(directory: SecureDirectory, base: UInt64, through: UInt64, generation: UInt64, now: Int64) throws -> (Int, Int) {
        var ledger = RefreshTokenLedger(indexingGrants: false)
        if base > 0 { try loadSnapshot(directory, base, into: &ledger) }
        let loader = StoreLoader(directory: directory, mode: .check)
        for log in max(base, 1)...through {
            _ = try loader.replay(log, isLast: false, into: &ledger)
        }
        ledger.forgetExpired(at: now)
        var written = 0
        try directory.writeAtomically(StoreFileName.snapshot(generation)) { fd in
            var out = StoreFormat.header(.init(kind: .snapshot, generation: generation, createdAt: now))
            try StoreFormat.snapshotRecords(of: ledger, into: &out) { buffer in
                try writeAll(fd, buffer)
                written += buffer.count
                buffer.removeAll(keepingCapacity: true)
            }
        }
        if base > 0 { directory.remove(StoreFileName.snapshot(base)) }
        for log in max(base, 1)...through { directory.remove(StoreFileName.log(log)) }
        try directory.sync()
        return (ledger.count, written)
    }
}

/// Damage found while reading a store: which file, what, where. Turned into a `RefreshTokenStoreError`
/// (code `corrupt`) for callers, and read by `repair` to know what to fix.
struct StoreDamage: Error {
    enum Kind: Equatable {
        case missingLog
        case badHeader
        case badRecord(offset: Int)
    }

    let file: String
    let kind: Kind
    let detail: String

    func error(in directory: String) -> RefreshTokenStoreError {
        RefreshTokenStoreError(.corrupt, "\(directory)/\(file) \(detail); the store was not opened")
    }
}
