import Testing

@testable import TesseraJOSE

@Suite("RFC 8259 strict JSON")
struct JSONTests {
    @Test("RFC 7515 §5.2: duplicate member names are rejected at every depth")
    func duplicates() {
        expectError(JOSEError.Code.invalidJSON) { try JSONValue(parsing: #"{"alg":"none","alg":"RS256"}"#) }
        expectError(JOSEError.Code.invalidJSON) { try JSONValue(parsing: #"{"a":{"b":1,"b":2}}"#) }
        expectError(JOSEError.Code.invalidJSON) { try JSONValue(parsing: #"[{"x":1,"x":1}]"#) }
        // Escapes name the same member: "\u0061lg" is "alg".
        expectError(JOSEError.Code.invalidJSON) { try JSONValue(parsing: #"{"alg":1,"\u0061lg":2}"#) }
    }

    @Test("nesting deeper than the bound is rejected without exhausting the stack")
    func depth() throws {
        let deep = String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)
        expectError(JOSEError.Code.invalidJSON) { try JSONValue(parsing: deep) }
        let ok = String(repeating: "[", count: 32) + String(repeating: "]", count: 32)
        #expect(throws: Never.self) { try JSONValue(parsing: ok) }
        let tooDeep = String(repeating: "[", count: 33) + String(repeating: "]", count: 33)
        expectError(JOSEError.Code.invalidJSON) { try JSONValue(parsing: tooDeep) }
    }

    @Test("RFC 8259 §8.1: a byte-order mark, invalid UTF-8 and lone surrogates are rejected")
    func encoding() {
        expectError(JOSEError.Code.invalidJSON) { try JSONValue(parsing: [0xEF, 0xBB, 0xBF] + Array(#"{"a":1}"#.utf8)) }
        expectError(JOSEError.Code.invalidJSON) { try JSONValue(parsing: Array(#"{"a":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)) }
        expectError(JOSEError.Code.invalidJSON) { try JSONValue(parsing: Array(#"{"a":""#.utf8) + [0xED, 0xA0, 0x80] + Array(#""}"#.utf8)) }
        expectError(JOSEError.Code.invalidJSON) { try JSONValue(parsing: #"{"a":"\ud800"}"#) }
        expectError(JOSEError.Code.invalidJSON) { try JSONValue(parsing: #"{"a":"\udc00x"}"#) }
    }

    @Test("escapes decode, including surrogate pairs")
    func escapes() throws {
        let value = try JSONValue(parsing: #"{"s":"a\"b\\c\/d\n\u00e9\ud83d\ude00"}"#)
        #expect(value.objectValue?["s"]?.stringValue == "a\"b\\c/d\né😀")
    }

    @Test("grammar errors: trailing content, trailing comma, leading zeros, control characters, bare values")
    func grammar() {
        for text in [
            #"{"a":1} x"#, #"{"a":1,}"#, "[1,]", #"{"a":01}"#, "{\"a\":\"\u{01}\"}", "{'a':1}", "{a:1}",
            "[1.]", "[-]", "[1e]", "[.5]", "[+1]", "", " ", "[NaN]", "[tru]", #"{"a" 1}"#, "[\"\\x\"]",
        ] {
            expectError(JOSEError.Code.invalidJSON, "\(text)") { try JSONValue(parsing: text) }
        }
    }

    @Test("numbers keep their literal; 64-bit integers are exact and overflow is explicit")
    func numbers() throws {
        let object = try JSONObject(parsing: #"{"a":1700000000,"b":9223372036854775808,"c":1e30,"d":1.5,"e":-0}"#)
        #expect(object["a"]?.numberValue?.int64Value == 1_700_000_000)
        #expect(object["b"]?.numberValue?.int64Value == nil)
        #expect(object["c"]?.numberValue?.int64Value == nil)
        #expect(object["c"]?.numberValue?.doubleValue == 1e30)
        #expect(object["d"]?.numberValue?.isIntegerLiteral == false)
        #expect(object["e"]?.numberValue?.int64Value == 0)
    }

    @Test("writing escapes quotes, backslashes and control characters and keeps member order")
    func writing() throws {
        var object = JSONObject()
        object["z"] = .string("q\"b\\\n\u{01}é")
        object["a"] = .array([.number(JSONNumber(Int64(42))), .bool(true), .null])
        #expect(object.jsonString == #"{"z":"q\"b\\\n\u0001é","a":[42,true,null]}"#)
        #expect(try JSONObject(parsing: object.jsonString) == object)
    }
}
