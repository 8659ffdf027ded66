import Foundation

/// The byte format of the refresh-token store's files (documented in `docs/refresh-token-store.md`).
///
/// Every file starts with a 32-byte header: an 8-byte magic (`TSRLOG01` for a log, `TSRSNP01` for a
/// snapshot), the format version (u32), the file's generation (u64), its creation time (i64 seconds),
/// and a CRC-32C of those 28 bytes. Then frames follow: payload length (u32), CRC-32C of the length
/// and payload (u32), payload. The payload's first byte is the record type. Integers are little-endian.
enum StoreFormat {
    static let version: UInt32 = 1
    static let headerSize = 32
    static let frameOverhead = 8
    /// No record comes near this; a larger length is damage, not data.
    static let maximumPayload = 64 * 1024

    enum FileKind {
        case log, snapshot
        var magic: [UInt8] { Array((self == .log ? "TSRLOG01" : "TSRSNP01").utf8) }
    }

    struct Header: Equatable {
        var kind: FileKind
        var generation: UInt64
        var createdAt: Int64
    }

    enum RecordType: UInt8 {
        // Log records: one change each.
        case issue = 1
        case rotate = 2
        case revokeFamily = 3
        case revokeClient = 4
        case revokeSubject = 5
        case revokeAll = 6
        // Snapshot records.
        case snapshotBegin = 16
        case string = 17
        case family = 18
        case snapshotEnd = 19
    }

    static func header(_ header: Header) -> [UInt8] {
        var writer = ByteWriter()
        writer.bytes(header.kind.magic)
        writer.u32(version)
        writer.u64(header.generation)
        writer.i64(header.createdAt)
        writer.u32(CRC32C.checksum(writer.buffer))
        return writer.buffer
    }

    static func parseHeader(_ bytes: ArraySlice<UInt8>, expected kind: FileKind) throws -> Header {
        guard bytes.count >= headerSize else { throw FormatError("the file is shorter than its header") }
        let header = bytes.prefix(headerSize)
        var reader = ByteReader(header)
        guard Array(try reader.bytes(8)) == kind.magic else {
            throw FormatError("the file does not start with \(String(decoding: kind.magic, as: UTF8.self))")
        }
        let fileVersion = try reader.u32()
        let generation = try reader.u64()
        let createdAt = try reader.i64()
        let checksum = try reader.u32()
        guard checksum == CRC32C.checksum(header.prefix(28)) else { throw FormatError("the header checksum does not match") }
        guard fileVersion == version else { throw FormatError("format version \(fileVersion) is not supported (this build reads \(version))") }
        return Header(kind: kind, generation: generation, createdAt: createdAt)
    }

    /// Appends one framed record.
    static func frame(_ payload: [UInt8], into out: inout [UInt8]) {
        precondition(payload.count <= maximumPayload)
        var length = ByteWriter()
        length.u32(UInt32(payload.count))
        let checksum = CRC32C.update(CRC32C.update(CRC32C.initial, length.buffer), payload) ^ 0xFFFF_FFFF
        out += length.buffer
        var crc = ByteWriter()
        crc.u32(checksum)
        out += crc.buffer
        out += payload
    }

    enum FrameResult {
        case record(ArraySlice<UInt8>, next: Int)
        /// Not a whole, intact frame at this offset (short, oversized, or checksum mismatch).
        case bad(reason: String)
        case end
    }

    static func readFrame(_ bytes: [UInt8], at offset: Int) -> FrameResult {
        if offset == bytes.count { return .end }
        guard bytes.count - offset >= frameOverhead else { return .bad(reason: "a frame header is cut short") }
        let length = Int(readU32(bytes, offset))
        guard length >= 1, length <= maximumPayload else { return .bad(reason: "a frame length of \(length) bytes is out of range") }
        guard bytes.count - offset - frameOverhead >= length else { return .bad(reason: "a record is cut short") }
        let checksum = readU32(bytes, offset + 4)
        let start = offset + frameOverhead
        let computed = CRC32C.update(CRC32C.update(CRC32C.initial, bytes[offset..<offset + 4]), bytes[start..<start + length]) ^ 0xFFFF_FFFF
        guard computed == checksum else { return .bad(reason: "a record checksum does not match") }
        return .record(bytes[start..<start + length], next: start + length)
    }

    static func readU32(_ bytes: [UInt8], _ offset: Int) -> UInt32 {
        UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
    }

    // MARK: Log records

    static func payload(_ change: LedgerChange) -> [UInt8] {
        var w = ByteWriter()
        switch change {
        case .issue(let e):
            w.u8(RecordType.issue.rawValue)
            w.key(e.key)
            w.digest(e.digest)
            w.i64(e.authTime)
            w.i64(e.issuedAt)
            w.i64(e.absoluteExpiry)
            w.i32(e.idleLifetime)
            w.i32(e.retryWindow)
            w.string(e.clientID)
            w.string(e.scope)
            w.string(e.subject)
            // Optional trailing member (absent when empty, so such records read as before).
            if !e.context.isEmpty { w.string(e.context) }
        case .rotate(let e):
            w.u8(RecordType.rotate.rawValue)
            w.key(e.key)
            w.u32(e.generation)
            w.digest(e.digest)
            w.i64(e.issuedAt)
            w.retry(e.retry)
        case .revokeFamily(let key, let at, let reason):
            w.u8(RecordType.revokeFamily.rawValue)
            w.key(key)
            w.i64(at)
            w.u8(reason.rawValue)
        case .revokeClient(let clientID, let at):
            w.u8(RecordType.revokeClient.rawValue)
            w.i64(at)
            w.string(clientID)
        case .revokeSubject(let subject, let at):
            w.u8(RecordType.revokeSubject.rawValue)
            w.i64(at)
            w.string(subject)
        case .revokeAll(let at):
            w.u8(RecordType.revokeAll.rawValue)
            w.i64(at)
        }
        return w.buffer
    }

    static func change(from payload: ArraySlice<UInt8>) throws -> LedgerChange {
        var r = ByteReader(payload)
        let type = try r.u8()
        let change: LedgerChange
        switch RecordType(rawValue: type) {
        case .issue:
            let key = try r.key()
            let digest = try r.digest()
            let authTime = try r.i64()
            let issuedAt = try r.i64()
            let absoluteExpiry = try r.i64()
            let idle = try r.i32()
            let retry = try r.i32()
            let clientID = try r.string()
            let scope = try r.string()
            let subject = try r.string()
            let context = r.isAtEnd ? "" : try r.string()
            change = .issue(
                IssueEntry(
                    key: key, digest: digest, clientID: clientID, subject: subject, scope: scope,
                    authTime: authTime, issuedAt: issuedAt, absoluteExpiry: absoluteExpiry,
                    idleLifetime: idle, retryWindow: retry, context: context))
        case .rotate:
            let key = try r.key()
            let generation = try r.u32()
            let digest = try r.digest()
            let issuedAt = try r.i64()
            change = .rotate(RotateEntry(key: key, generation: generation, digest: digest, issuedAt: issuedAt, retry: try r.retry()))
        case .revokeFamily:
            let key = try r.key()
            let at = try r.i64()
            guard let reason = RevocationReason(rawValue: try r.u8()) else { throw FormatError("unknown revocation reason") }
            change = .revokeFamily(key, at: at, reason: reason)
        case .revokeClient:
            let at = try r.i64()
            change = .revokeClient(try r.string(), at: at)
        case .revokeSubject:
            let at = try r.i64()
            change = .revokeSubject(try r.string(), at: at)
        case .revokeAll:
            change = .revokeAll(at: try r.i64())
        default:
            throw FormatError("record type \(type) is not a log record")
        }
        guard r.isAtEnd else { throw FormatError("a record of type \(type) has trailing bytes") }
        return change
    }

    // MARK: Snapshot records

    /// The live state as snapshot records: a count, the string table, every family, an end marker.
    static func snapshotRecords(of ledger: RefreshTokenLedger, into out: inout [UInt8], flush: (inout [UInt8]) throws -> Void) rethrows {
        var w = ByteWriter()
        w.u8(RecordType.snapshotBegin.rawValue)
        w.u64(UInt64(ledger.count))
        w.u64(UInt64(ledger.strings.count))
        frame(w.buffer, into: &out)
        for (id, string) in ledger.strings.enumerated() {
            w = ByteWriter()
            w.u8(RecordType.string.rawValue)
            w.u32(UInt32(id))
            w.string(string)
            frame(w.buffer, into: &out)
        }
        for family in ledger.families {
            w = ByteWriter()
            w.u8(RecordType.family.rawValue)
            w.key(family.key)
            w.digest(family.current)
            w.u32(family.generation)
            w.i64(family.authTime)
            w.i64(family.issuedAt)
            w.i64(family.absoluteExpiry)
            w.i32(family.idleLifetime)
            w.i32(family.retryWindow)
            w.u32(family.client)
            w.u32(family.scope)
            w.string(family.subject)
            w.u8(family.revoked ? 1 : 0)
            w.retry(ledger.retries[family.key])
            if let context = ledger.contexts[family.key] { w.string(context) }
            frame(w.buffer, into: &out)
            if out.count >= 1 << 20 { try flush(&out) }
        }
        w = ByteWriter()
        w.u8(RecordType.snapshotEnd.rawValue)
        w.u64(UInt64(ledger.count))
        frame(w.buffer, into: &out)
        try flush(&out)
    }

    /// Reads a whole snapshot (after its header) into `ledger`. A snapshot is written whole and renamed
    /// into place, so any damage in it, torn tail included, is corruption.
    static func loadSnapshot(_ reader: inout FrameReader, into ledger: inout RefreshTokenLedger) throws {
        var expectedFamilies: UInt64 = 0
        var strings: [UInt32] = []
        var sawBegin = false
        while true {
            switch try reader.next() {
            case .end:
                throw CorruptionError(offset: reader.position, reason: "the snapshot has no end record")
            case .bad(let offset, let reason):
                throw CorruptionError(offset: offset, reason: reason)
            case .record(let payload, let offset):
                var r = ByteReader(payload)
                do {
                    let type = RecordType(rawValue: try r.u8())
                    guard sawBegin || type == .snapshotBegin else { throw FormatError("the snapshot does not start with its begin record") }
                    switch type {
                    case .snapshotBegin:
                        guard !sawBegin else { throw FormatError("a second begin record") }
                        sawBegin = true
                        expectedFamilies = try r.u64()
                        let stringCount = try r.u64()
                        guard expectedFamilies <= UInt64(reader.size), stringCount <= UInt64(reader.size) else {
                            throw FormatError("implausible counts")
                        }
                        ledger.reserveCapacity(Int(expectedFamilies))
                        strings.reserveCapacity(Int(stringCount))
                    case .string:
                        let id = try r.u32()
                        guard id == UInt32(strings.count) else { throw FormatError("string table out of order") }
                        strings.append(ledger.intern(try r.string()))
                    case .family:
                        let key = try r.key()
                        let current = try r.digest()
                        let generation = try r.u32()
                        let authTime = try r.i64()
                        let issuedAt = try r.i64()
                        let absoluteExpiry = try r.i64()
                        let idle = try r.i32()
                        let retryWindow = try r.i32()
                        let client = try r.u32()
                        let scope = try r.u32()
                        guard Int(client) < strings.count, Int(scope) < strings.count else {
                            throw FormatError("a family names a string that is not in the table")
                        }
                        let subject = try r.string()
                        let revoked = try r.u8()
                        guard revoked <= 1 else { throw FormatError("a revoked flag is neither 0 nor 1") }
                        let retry = try r.retry()
                        let context = r.isAtEnd ? "" : try r.string()
                        ledger.insert(
                            Family(
                                key: key, current: current, subject: subject, authTime: authTime, issuedAt: issuedAt,
                                absoluteExpiry: absoluteExpiry, generation: generation, client: strings[Int(client)],
                                scope: strings[Int(scope)], idleLifetime: idle, retryWindow: retryWindow,
                                revoked: revoked == 1), retry: retry, context: context)
                    case .snapshotEnd:
                        guard try r.u64() == expectedFamilies, UInt64(ledger.count) == expectedFamilies else {
                            throw FormatError("the family count does not match the begin record")
                        }
                        guard reader.position == reader.size else { throw FormatError("bytes follow the end record") }
                        return
                    default:
                        throw FormatError("a log record in a snapshot")
                    }
                    guard r.isAtEnd else { throw FormatError("a record has trailing bytes") }
                } catch let error as FormatError {
                    throw CorruptionError(offset: offset, reason: error.reason)
                }
            }
        }
    }
}
