import Foundation
import PostgresNIO
import TesseraIssuer

/// Group commit for rotations, as the file store has for its log: predicted rotations (`PredictedRotation`)
/// that callers present while a batch is at the database wait, and go together in the next one — one
/// statement and one commit (one WAL flush) for all of them, instead of one each. One batch is in flight at a
/// time; a caller alone waits for nobody. Every rotation is durable before its caller hears of it, and a
/// batch that fails changes nothing (one statement), so each caller gets the error and may retry.
final class RotationBatches: @unchecked Sendable {
    private struct Waiter {
        let predicted: PredictedRotation
        let clientID: String
        let continuation: CheckedContinuation<RefreshFamilyRow?, any Error>
    }

    /// Rotations one statement carries at most (the rest go in the next).
    static let maximumBatch = 256

    private let database: PostgresDatabase
    private let lock = NSLock()
    private var pending: [Waiter] = []
    private var writing = false

    init(database: PostgresDatabase) { self.database = database }

    /// The row as the rotation left it; nil when its conditions did not hold (nothing was written for it).
    func rotate(_ predicted: PredictedRotation, clientID: String) async throws -> RefreshFamilyRow? {
        try await withCheckedThrowingContinuation { continuation in
            let lead = lock.withLock {
                pending.append(Waiter(predicted: predicted, clientID: clientID, continuation: continuation))
                defer { writing = true }
                return !writing
            }
            // A task of its own: a caller's cancellation must not fail the others' batch.
            if lead { Task { await self.write() } }
        }
    }

    private func write() async {
        while true {
            let batch = lock.withLock { () -> [Waiter] in
                let batch = Array(pending.prefix(Self.maximumBatch))
                pending.removeFirst(batch.count)
                if batch.isEmpty { writing = false }
                return batch
            }
            guard !batch.isEmpty else { return }
            do {
                let statement = PredictedSwaps(batch: batch.map { ($0.predicted, $0.clientID) })
                let rows = try await database.withConnection { connection in
                    var rows: [RefreshFamilyRow] = []
                    for try await row in try await connection.execute(statement, logger: connection.logger) { rows.append(FamilyColumns.decode(row)) }
                    return rows
                }
                // A row answers the caller whose successor it holds.
                var written: [[UInt8]: RefreshFamilyRow] = [:]
                for row in rows { written[row.currentDigest] = row }
                for waiter in batch {
                    let row = written[waiter.predicted.successorDigest]
                    waiter.continuation.resume(returning: row?.key == waiter.predicted.familyKey ? row : nil)
                }
            } catch {
                for waiter in batch { waiter.continuation.resume(throwing: error) }
            }
        }
    }
}
