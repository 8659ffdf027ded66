public import Foundation

/// Where Tessera reads the time of day: injected, so tests advance a fixed clock instead of sleeping.
public struct WallClock: Sendable {
    private let read: @Sendable () -> Date

    public init(_ read: @escaping @Sendable () -> Date) { self.read = read }

    public func now() -> Date { read() }

    /// The system's clock.
    public static let system = WallClock { Date() }

    /// A clock that always reads `date`.
    public static func fixed(_ date: Date) -> WallClock { WallClock { date } }
}
