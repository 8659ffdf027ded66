/// The names of the store's files: `log.000000000007`, `snapshot.000000000006`.
enum StoreFileName {
    static func log(_ generation: UInt64) -> String { "log." + padded(generation) }
    static func snapshot(_ generation: UInt64) -> String { "snapshot." + padded(generation) }

    private static func padded(_ generation: UInt64) -> String {
        let digits = String(generation)
        return String(repeating: "0", count: max(0, 12 - digits.count)) + digits
    }

    /// (kind, generation) for a store file name; nil for anything else.
    static func parse(_ name: String) -> (StoreFormat.FileKind, UInt64)? {
        let parts = name.split(separator: ".")
        guard parts.count == 2, parts[1].count == 12, let generation = UInt64(parts[1]) else { return nil }
        switch parts[0] {
        case "log": return (.log, generation)
        case "snapshot": return (.snapshot, generation)
        default: return nil
        }
    }
}
