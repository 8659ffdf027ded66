import Foundation

/// Reads a store file's frames in order, a few MiB at a time (a 1 M-family snapshot is never in memory whole).
struct FrameReader {
    enum Next {
        case record(ArraySlice<UInt8>, offset: Int)
        case bad(offset: Int, reason: String)
        case end
    }

    private let fd: Int32
    let size: Int
    private var buffer: [UInt8] = []
    private var bufferStart = 0
    private(set) var position: Int
    private static let chunk = 4 << 20

    init(fd: Int32, start: Int) throws {
        self.fd = fd
        size = try fileSize(fd)
        position = start
        bufferStart = start
    }

    mutating func next() throws -> Next {
        if position >= size { return .end }
        try load(StoreFormat.frameOverhead)
        let local = position - bufferStart
        if buffer.count - local >= StoreFormat.frameOverhead {
            let length = Int(StoreFormat.readU32(buffer, local))
            if length <= StoreFormat.maximumPayload { try load(StoreFormat.frameOverhead + length) }
        }
        switch StoreFormat.readFrame(buffer, at: position - bufferStart) {
        case .end:
            return .end
        case .bad(let reason):
            return .bad(offset: position, reason: reason)
        case .record(let payload, let next):
            let offset = position
            position = bufferStart + next
            return .record(payload, offset: offset)
        }
    }

    /// Makes sure the buffer holds `count` bytes from `position` (or up to the end of the file).
    private mutating func load(_ count: Int) throws {
        let local = position - bufferStart
        guard buffer.count - local < count, bufferStart + buffer.count < size else { return }
        buffer.removeFirst(local)
        bufferStart = position
        let more = try readAll(fd, from: bufferStart + buffer.count, maximum: max(Self.chunk, count))
        buffer += more
    }

    /// True when an intact frame starts anywhere after `offset`: then the damage at `offset` is not a
    /// torn tail (which only the last, unacknowledged write can leave) but corruption.
    func intactFrameFollows(_ offset: Int) throws -> Bool {
        let rest = try readAll(fd, from: offset, maximum: size - offset)
        var candidate = 1
        while candidate + StoreFormat.frameOverhead <= rest.count {
            if case .record = StoreFormat.readFrame(rest, at: candidate) { return true }
            candidate += 1
        }
        return false
    }
}
