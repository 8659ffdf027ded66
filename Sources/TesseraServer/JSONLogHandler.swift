import Foundation
public import Logging
import TesseraJOSE

/// One JSON object per line on standard error (descriptor 2, or `output`) (`tessera serve --log-format json`), for log shippers:
/// `time` (RFC 3339, UTC, milliseconds), `level`, `logger`, `message`, then each metadata field under its
/// own name (`hb.request.id` as `request_id`; a field named like one of those four gets a `meta_` prefix).
/// Text is escaped as in the text format (`EscapingLogHandler.escape`: no control or bidirectional
/// character survives raw), then written as JSON strings; each line goes out whole through `LogOutput`.
public struct JSONLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    public var logLevel: Logger.Level = .info
    private let label: String
    private let output: LogOutput

    /// Lines on standard error, or on `output` (a descriptor this handler then owns the writing to).
    public init(label: String, output: Int32 = 2) {
        self.label = label
        self.output = output == 2 ? .standardError : LogOutput(descriptor: output)
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    static let reserved: Set<String> = ["time", "level", "logger", "message"]

    public func log(event: LogEvent) {
        var fields = metadata
        if let provided = metadataProvider?.get() { fields.merge(provided) { _, new in new } }
        if let extra = event.metadata { fields.merge(extra) { _, new in new } }
        var object = JSONObject([
            "time": .string(Self.timestamp(Date())), "level": .string(event.level.rawValue), "logger": .string(label),
            "message": .string(EscapingLogHandler.escape(event.message.description)),
        ])
        for (key, value) in fields.sorted(by: { $0.key < $1.key }) {
            var name = key == "hb.request.id" ? "request_id" : EscapingLogHandler.escape(key)
            if Self.reserved.contains(name) { name = "meta_" + name }
            object[name] = Self.json(value)
        }
        var line = object.jsonBytes
        line.append(UInt8(ascii: "\n"))
        output.write(line)
        if event.level >= .notice { output.flush() }
    }

    static func json(_ value: Logger.Metadata.Value) -> JSONValue {
        switch value {
        case .string(let text): .string(EscapingLogHandler.escape(text))
        case .stringConvertible(let convertible): .string(EscapingLogHandler.escape(convertible.description))
        case .array(let values): .array(values.map(json))
        case .dictionary(let values):
            .object(values.sorted { $0.key < $1.key }.reduce(into: JSONObject()) { $0[EscapingLogHandler.escape($1.key)] = json($1.value) })
        }
    }

    /// RFC 3339 in UTC with milliseconds: `2026-11-30T21:30:00.123Z`.
    static func timestamp(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        let milliseconds = Int((date.timeIntervalSince1970 - Double(seconds)) * 1_000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        return String(
            format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", Int(parts.tm_year) + 1_900, Int(parts.tm_mon) + 1, Int(parts.tm_mday),
            Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec), milliseconds)
    }
}
