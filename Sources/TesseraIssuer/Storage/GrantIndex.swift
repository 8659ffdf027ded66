import TesseraJOSE

/// How many live refresh-token families each user holds with each client, so an issue can revoke the oldest
/// beyond `RefreshTokenLedger.maximumFamiliesPerGrant` without a scan (issue 18, item 12).
///
/// Memory: a count per pair (a million single-family users cost a few bytes each); the families themselves,
/// oldest first, only for pairs with at least `heavy` of them, listed by one scan when a pair reaches it.
/// Pairs are keyed by a hash of the client's interned id and the subject's bytes (never `String` hashing,
/// which goes by Unicode equivalence); a collision of two pairs would only make them share a count.
struct GrantIndex {
    static let heavy = 16

    /// Off while a store loads its files; `rebuild` turns it on.
    private(set) var enabled: Bool
    private var counts: [Int: UInt32] = [:]
    private var lists: [Int: [FamilyKey]] = [:]

    init(enabled: Bool) { self.enabled = enabled }

    static func hash(client: UInt32, subject: String) -> Int {
        var hasher = Hasher()
        hasher.combine(client)
        var subject = subject
        subject.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        return hasher.finalize()
    }

    /// How many live families a pair holds, and, when many, which (oldest first).
    func families(client: UInt32, subject: String) -> (count: Int, oldestFirst: [FamilyKey]) {
        let hash = Self.hash(client: client, subject: subject)
        return (Int(counts[hash] ?? 0), lists[hash] ?? [])
    }

    /// A live family joined the table (`table` already holds it).
    mutating func added(_ family: Family, in table: FamilyTable) {
        guard enabled else { return }
        let hash = Self.hash(client: family.client, subject: family.subject)
        let count = (counts[hash] ?? 0) + 1
        counts[hash] = count
        if var keys = lists.removeValue(forKey: hash) {
            keys.append(family.key)
            lists[hash] = keys
        } else if count >= UInt32(Self.heavy) {
            lists[hash] = Self.live(in: table, client: family.client, subject: family.subject)
        }
    }

    /// A family stopped being live (revoked or removed).
    mutating func removed(_ family: Family) {
        guard enabled else { return }
        let hash = Self.hash(client: family.client, subject: family.subject)
        guard let count = counts[hash] else { return }
        counts[hash] = count > 1 ? count - 1 : nil
        guard var keys = lists.removeValue(forKey: hash) else { return }
        if count - 1 >= UInt32(Self.heavy / 2) {  // hysteresis: a pair near the line is not listed again and again
            keys.removeAll { $0 == family.key }
            lists[hash] = keys
        }
    }

    /// Counts every live family of `table` and lists the heavy pairs, in two passes.
    mutating func rebuild(from table: FamilyTable) {
        enabled = true
        counts = [:]
        counts.reserveCapacity(table.count)  // grown once, not by doubling (each doubling leaves its old table to the allocator)
        lists = [:]
        for slot in table.indices where !table[slot].revoked {
            let hash = Self.hash(client: table[slot].client, subject: table[slot].subject)
            counts[hash, default: 0] += 1
        }
        var heavy: [Int: [(key: FamilyKey, created: Int64)]] = [:]
        for (hash, count) in counts where count >= UInt32(Self.heavy) { heavy[hash] = [] }
        guard !heavy.isEmpty else { return }
        for slot in table.indices where !table[slot].revoked {
            heavy[Self.hash(client: table[slot].client, subject: table[slot].subject)]?.append((table[slot].key, Self.created(table[slot])))
        }
        for (hash, members) in heavy { lists[hash] = members.sorted { $0.created < $1.created }.map(\.key) }
    }

    /// The live families of one pair, oldest first, by a scan of the table.
    private static func live(in table: FamilyTable, client: UInt32, subject: String) -> [FamilyKey] {
        table.indices.lazy.map { table[$0] }
            .filter { !$0.revoked && $0.client == client && $0.subject.sameBytes(as: subject) }
            .sorted { created($0) < created($1) }
            .map(\.key)
    }

    /// What orders a pair's families by creation: the creation time is not stored, but every family of one
    /// client has the same absolute lifetime, so its absolute expiry sorts the same way.
    private static func created(_ family: Family) -> Int64 { family.absoluteExpiry }
}
