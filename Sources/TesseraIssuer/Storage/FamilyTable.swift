/// The ledger's families in fixed-size chunks: growing never copies (or doubles) the whole table, so a
/// store of a million families does not briefly need twice its memory when one more arrives.
struct FamilyTable: RandomAccessCollection, MutableCollection {
    private static let shift = 16
    private static let chunkSize = 1 << shift
    private var chunks: [[Family]] = []
    private(set) var count = 0

    var startIndex: Int { 0 }
    var endIndex: Int { count }

    subscript(position: Int) -> Family {
        get { chunks[position >> Self.shift][position & (Self.chunkSize - 1)] }
        set { chunks[position >> Self.shift][position & (Self.chunkSize - 1)] = newValue }
    }

    mutating func append(_ family: Family) {
        if count == chunks.count << Self.shift {
            var chunk: [Family] = []
            chunk.reserveCapacity(Self.chunkSize)
            chunks.append(chunk)
        }
        chunks[chunks.count - 1].append(family)
        count += 1
    }

    mutating func removeLast() {
        chunks[chunks.count - 1].removeLast()
        count -= 1
        if chunks[chunks.count - 1].isEmpty { chunks.removeLast() }
    }

    mutating func removeAll() {
        chunks.removeAll()
        count = 0
    }
}
