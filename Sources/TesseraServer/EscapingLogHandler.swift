public import Logging

/// A log handler that escapes what it is given before another handler writes it: every message and
/// metadata value (request-derived values among them) goes out with no line break, NUL, terminal escape
/// sequence or bidirectional override in it, so a request cannot forge a log line or repaint an operator's
/// terminal. One place for every log call, present and future (issue 18, item 15).
public struct EscapingLogHandler: LogHandler {
    private var inner: any LogHandler
    private let output: LogOutput?

    public init(_ inner: any LogHandler) {
        self.inner = inner
        output = nil
    }

    /// Text lines on standard error, as swift-log's `StreamLogHandler` formats them, written through
    /// `LogOutput` (lines logged at once share a `write`; `notice` and above are written before `log` returns).
    public static func standardError(label: String) -> EscapingLogHandler {
        EscapingLogHandler(StreamLogHandler(label: label, stream: LogOutputStream(output: .standardError)), output: .standardError)
    }

    init(_ inner: any LogHandler, output: LogOutput) {
        self.inner = inner
        self.output = output
    }

    public func log(event: LogEvent) {
        var event = event
        event.message = "\(Self.escape(event.message.description))"
        event.metadata = event.metadata.map(Self.escape)
        inner.log(event: event)
        if event.level >= .notice { output?.flush() }
    }

    public var metadataProvider: Logger.MetadataProvider? {
        get { inner.metadataProvider }
        set { inner.metadataProvider = newValue }
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { inner[metadataKey: key] }
        set { inner[metadataKey: key] = newValue.map(Self.escape) }
    }

    public var metadata: Logger.Metadata {
        get { inner.metadata }
        set { inner.metadata = Self.escape(newValue) }
    }

    public var logLevel: Logger.Level {
        get { inner.logLevel }
        set { inner.logLevel = newValue }
    }

    static func escape(_ metadata: Logger.Metadata) -> Logger.Metadata {
        Logger.Metadata(uniqueKeysWithValues: metadata.map { (escape($0.key), escape($0.value)) })
    }

    /// A value is also quoted when it holds a space, `=` or `"`, so it cannot pass for further `key=value` fields.
    static func escape(_ value: Logger.Metadata.Value) -> Logger.Metadata.Value {
        switch value {
        case .string(let text): .string(quoted(escape(text)))
        case .stringConvertible(let convertible): .string(quoted(escape(convertible.description)))
        case .array(let values): .array(values.map(escape))
        case .dictionary(let values): .dictionary(escape(values))
        }
    }

    static func quoted(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == 0x20 || $0 == 0x3D || $0 == 0x22 }) else { return text }
        return "\"" + text.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\\\"") + "\""
    }

    /// `text` with C0 and C1 control characters, DEL, line and paragraph separators and bidirectional
    /// controls written as `\u{…}` (`\n`, `\r`, `\t` as such), and `\` doubled so the escaping cannot be forged.
    public static func escape(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: needsEscaping) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where needsEscaping(scalar): out += "\\u{" + String(scalar.value, radix: 16) + "}"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    private static func needsEscaping(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: true  // C0, DEL, C1 (ESC starts terminal sequences)
        case 0x2028, 0x2029: true  // line and paragraph separators
        case 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069, 0x061C: true  // bidirectional marks, embeddings, overrides, isolates
        case 0x5C: true  // the backslash, so an escape in the input cannot pass for one of ours
        default: false
        }
    }
}

/// `LogOutput` as the stream a `StreamLogHandler` writes each formatted line to.
struct LogOutputStream: TextOutputStream, Sendable {
    let output: LogOutput

    mutating func write(_ string: String) { output.write(string.utf8) }
}
